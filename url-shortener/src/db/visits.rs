//! Counted visits: one transaction per batch adds them to `links.visits` and records in
//! the outbox those of their `url.accessed` messages the broker has not confirmed yet.

use common::events::{Message, outbox};
use sqlx::PgPool;

/// Most `url.accessed` events one message carries (about 300 bytes each).
pub const EVENTS_PER_MESSAGE: usize = 1000;

/// Writes `counts` (code, visits) and, for the relay, `unconfirmed` messages in one
/// transaction. Each message is a batch of up to [`EVENTS_PER_MESSAGE`] `url.accessed`
/// envelopes, encoded (the broker and the relay then handle one message per batch, not
/// one per visit); a code deleted in the meantime simply updates nothing.
pub async fn record(
    pool: &PgPool,
    counts: &[(String, i64)],
    unconfirmed: &[&Message],
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let (codes, visits): (Vec<&str>, Vec<i64>) =
        counts.iter().map(|(c, n)| (c.as_str(), *n)).unzip();
    sqlx::query!(
        "update links set visits = links.visits + batch.visits
         from unnest($1::text[], $2::bigint[]) as batch(code, visits)
         where links.code = batch.code",
        &codes as &[&str],
        &visits,
    )
    .execute(&mut *tx)
    .await?;
    for message in unconfirmed {
        outbox::enqueue_message(&mut *tx, message).await?;
    }
    tx.commit().await
}
