//! Counted visits: one transaction per batch adds them to `links.visits` and records
//! their `url.accessed` events in the outbox, so a count and its events never part.

use common::events::{keys, outbox};
use sqlx::PgPool;

/// Most `url.accessed` events one message carries (about 300 bytes each).
pub const EVENTS_PER_MESSAGE: usize = 1000;

/// Writes `counts` (code, visits) and `messages` in one transaction. Each message is a
/// batch of up to [`EVENTS_PER_MESSAGE`] `url.accessed` envelopes, encoded (the broker
/// and the relay then handle one message per batch, not one per visit); a code deleted
/// in the meantime simply updates nothing.
pub async fn record(
    pool: &PgPool,
    counts: &[(String, i64)],
    messages: &[String],
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let (codes, visits): (Vec<&str>, Vec<i64>) =
        counts.iter().map(|(c, n)| (c.as_str(), *n)).unzip();
    sqlx::query(
        "update links set visits = links.visits + batch.visits
         from unnest($1::text[], $2::bigint[]) as batch(code, visits)
         where links.code = batch.code",
    )
    .bind(&codes)
    .bind(&visits)
    .execute(&mut *tx)
    .await?;
    for message in messages {
        outbox::enqueue_encoded(&mut *tx, keys::URL_ACCESSED, message, None).await?;
    }
    tx.commit().await
}
