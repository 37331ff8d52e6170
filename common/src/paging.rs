//! Keyset pages, as every list endpoint serves them: the query asks for one row more than
//! the page holds (`limit + 1`); [`page`] keeps `limit` of them and, when there was one
//! more, names the cursor of the next page after the last row kept.

/// `rows` (fetched with a limit of `limit + 1`) cut to `limit`, and the next page's cursor
/// (`cursor` of the last row kept) when more rows follow.
pub fn page<T, C>(
    mut rows: Vec<T>,
    limit: i64,
    cursor: impl FnOnce(&T) -> C,
) -> (Vec<T>, Option<C>) {
    let keep = usize::try_from(limit).unwrap_or(0);
    if rows.len() <= keep {
        return (rows, None);
    }
    rows.truncate(keep);
    let next = rows.last().map(cursor);
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::page;

    #[test]
    fn one_row_more_than_the_limit_means_a_next_page_after_the_last_kept() {
        assert_eq!(page(vec![1, 2, 3], 2, |n| n * 10), (vec![1, 2], Some(20)));
        assert_eq!(page(vec![1, 2], 2, |n| n * 10), (vec![1, 2], None));
        assert_eq!(page(Vec::<i32>::new(), 2, |n| n * 10), (vec![], None));
        assert_eq!(page(vec![1, 2], 0, |n| n * 10), (vec![], None));
    }
}
