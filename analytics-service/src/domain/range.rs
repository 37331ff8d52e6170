//! `?from&to`: an inclusive range of UTC days, at most [`MAX_DAYS`] long, defaulting to
//! the last 30 days.

use chrono::{DateTime, Days, NaiveDate, Utc};
use common::ApiError;
use serde::Deserialize;

/// Longest range a report covers.
pub const MAX_DAYS: u64 = 366;

/// Query parameters of every report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// First day (UTC, `YYYY-MM-DD`), inclusive; default 29 days before `to`.
    pub from: Option<NaiveDate>,
    /// Last day (UTC, `YYYY-MM-DD`), inclusive; default today.
    pub to: Option<NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Range {
    pub fn parse(query: &RangeQuery, today: NaiveDate) -> Result<Self, ApiError> {
        let to = query.to.unwrap_or(today);
        let from = query.from.unwrap_or_else(|| to - Days::new(29));
        if from > to {
            return Err(ApiError::validation("from", "must not be after `to`"));
        }
        if to.signed_duration_since(from).num_days() >= MAX_DAYS as i64 {
            return Err(ApiError::validation(
                "from",
                format!("a range covers at most {MAX_DAYS} days"),
            ));
        }
        Ok(Self { from, to })
    }

    /// Every day of the range, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let to = self.to;
        self.from.iter_days().take_while(move |d| *d <= to)
    }

    pub fn start(&self) -> DateTime<Utc> {
        crate::store::query::midnight(self.from)
    }

    /// The instant after the last day.
    pub fn end(&self) -> DateTime<Utc> {
        crate::store::query::midnight(self.to + Days::new(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_to_the_last_thirty_days_including_today() {
        let range = Range::parse(
            &RangeQuery {
                from: None,
                to: None,
            },
            day("2026-11-23"),
        )
        .unwrap();
        assert_eq!(
            (range.from, range.to),
            (day("2026-10-25"), day("2026-11-23"))
        );
        assert_eq!(range.days().count(), 30);
    }

    #[test]
    fn backwards_and_overlong_ranges_are_refused() {
        let today = day("2026-11-23");
        let backwards = RangeQuery {
            from: Some(day("2026-11-02")),
            to: Some(day("2026-11-01")),
        };
        assert!(Range::parse(&backwards, today).is_err());
        let long = RangeQuery {
            from: Some(day("2024-01-01")),
            to: Some(day("2026-01-01")),
        };
        assert!(Range::parse(&long, today).is_err());
    }
}
