//! Counted visits: one transaction per batch adds them to `links.visits` and records
//! their `url.accessed` events in the outbox, so a count and its events never part.

use common::events::Envelope;
use sqlx::PgPool;
use uuid::Uuid;

/// Writes `counts` (code, visits) and `events` in one transaction. The events go in with
/// one multi-row insert into the common outbox table (the relay publishes them); a code
/// deleted in the meantime simply updates nothing.
pub async fn record(
    pool: &PgPool,
    counts: &[(String, i64)],
    events: &[Envelope],
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
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let keys: Vec<&str> = events.iter().map(Envelope::routing_key).collect();
    let payloads: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap_or_default())
        .collect();
    sqlx::query(
        "insert into outbox (id, routing_key, payload)
         select * from unnest($1::uuid[], $2::text[], $3::jsonb[])",
    )
    .bind(&ids)
    .bind(&keys)
    .bind(&payloads)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
