//! The transactional outbox: a producer writes its event into `outbox` in the same
//! transaction as the change, and a relay publishes it with confirms and deletes it only
//! once the broker has confirmed it. A broker outage delays events; it never loses one.
//!
//! Each database that produces events has the `outbox` table and its `outbox_notify`
//! trigger (see `migrations/*/0001_*.sql`); the trigger wakes the relay at once, and a
//! poll interval covers missed notifications.

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgExecutor, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Broker, Envelope, Message};

/// Events a relay publishes per transaction.
pub const BATCH_SIZE: i64 = 100;

/// Channel the insert trigger notifies.
pub const NOTIFY_CHANNEL: &str = "outbox";

/// Records `event` for publication, inside the caller's transaction.
pub async fn enqueue(
    executor: impl PgExecutor<'_>,
    event: &Envelope,
    request_id: Option<&str>,
) -> sqlx::Result<()> {
    let payload = serde_json::to_string(event).map_err(|e| sqlx::Error::Encode(e.into()))?;
    insert(
        executor,
        event.id,
        event.routing_key(),
        &payload,
        request_id,
    )
    .await
}

/// Records `events`, all of one routing key, as one batch message (a JSON array of their
/// envelopes; see [`super::BATCH_CONTENT_TYPE`]), inside the caller's transaction.
/// Nothing is written for an empty slice.
pub async fn enqueue_batch<D: serde::Serialize>(
    executor: impl PgExecutor<'_>,
    events: &[Envelope<D>],
    request_id: Option<&str>,
) -> sqlx::Result<()> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    debug_assert!(events.iter().all(|e| e.kind == first.kind));
    let payload = serde_json::to_string(events).map_err(|e| sqlx::Error::Encode(e.into()))?;
    enqueue_encoded(executor, first.routing_key(), &payload, request_id).await
}

/// Records a message already encoded as JSON (an envelope, or a batch's array of them),
/// inside the caller's transaction: for producers that encode off the async threads.
pub async fn enqueue_encoded(
    executor: impl PgExecutor<'_>,
    routing_key: &str,
    payload: &str,
    request_id: Option<&str>,
) -> sqlx::Result<()> {
    insert(executor, Uuid::now_v7(), routing_key, payload, request_id).await
}

/// Records `message` (already encoded, with its own id) for publication, inside the
/// caller's transaction: for a producer that offered it to the broker first and keeps
/// what the broker did not confirm. Published again later under the same id.
pub async fn enqueue_message(executor: impl PgExecutor<'_>, message: &Message) -> sqlx::Result<()> {
    let payload = std::str::from_utf8(&message.body).map_err(|e| sqlx::Error::Encode(e.into()))?;
    insert(
        executor,
        message.id,
        &message.routing_key,
        payload,
        message.request_id.as_deref(),
    )
    .await
}

/// One outbox row. The payload is stored as the text it will be published as (the column
/// is `text`, lz4-compressed: nothing parses it on the way in or prints it on the way out).
async fn insert(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    routing_key: &str,
    payload: &str,
    request_id: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into outbox (id, routing_key, payload, request_id) values ($1, $2, $3, $4)",
        id,
        routing_key,
        payload,
        request_id,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Publishes a database's outbox to the broker.
pub struct Relay {
    pool: PgPool,
    broker: Broker,
    batch_size: i64,
    poll_interval: Duration,
}

impl Relay {
    /// A relay of `pool`'s outbox. Its notification listener holds one of the pool's
    /// connections for as long as it runs, so the pool needs at least two.
    pub fn new(pool: PgPool, broker: Broker) -> Self {
        Self {
            pool,
            broker,
            batch_size: BATCH_SIZE,
            poll_interval: Duration::from_secs(2),
        }
    }

    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Runs until `shutdown`: drains on every notification and every poll interval,
    /// backing off while the broker or database is down.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener = None;
        let mut backoff = Duration::from_millis(250);
        loop {
            if listener.is_none() {
                listener = self.listen().await.ok();
            }
            let drained = tokio::select! {
                () = shutdown.cancelled() => break,
                result = self.drain() => result,
            };
            match drained {
                Ok(_) => backoff = Duration::from_millis(250),
                Err(err) => {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "outbox relay: publishing failed; will retry"
                    );
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {},
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
            let wake = async {
                match listener.as_mut() {
                    Some(l) => {
                        if l.recv().await.is_err() {
                            listener = None;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake => {},
                () = tokio::time::sleep(self.poll_interval) => {},
            }
        }
        tracing::info!("outbox relay stopped");
    }

    async fn listen(&self) -> anyhow::Result<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        Ok(listener)
    }

    /// Publishes everything pending, batch by batch. Returns how many were published.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("connecting for the outbox")?;
        drain_on(&mut conn, &self.broker, self.batch_size).await
    }
}

/// Publishes everything pending in the outbox of `conn`'s database, batch by batch
/// (`batch_size` at a time): for a relay that holds no connection of its own between
/// drains (one relay for many tenant databases). Returns how many were published.
pub async fn drain_on(
    conn: &mut PgConnection,
    broker: &Broker,
    batch_size: i64,
) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let published = publish_batch(conn, broker, batch_size).await?;
        total += published;
        if published < usize::try_from(batch_size).unwrap_or(usize::MAX) {
            return Ok(total);
        }
    }
}

/// Locks one batch (`skip locked`, so several relays may share a table), publishes it,
/// and deletes the confirmed rows in the same transaction.
async fn publish_batch(
    conn: &mut PgConnection,
    broker: &Broker,
    batch_size: i64,
) -> anyhow::Result<usize> {
    let mut tx = conn.begin().await.context("starting outbox transaction")?;
    // The payload goes out as the text it is stored as: an envelope, or an array of
    // them (a batch), never decoded here.
    let rows = sqlx::query!(
        "select id, routing_key, payload, request_id, created_at from outbox
             order by created_at, id
             limit $1
             for update skip locked",
        batch_size,
    )
    .fetch_all(&mut *tx)
    .await
    .context("reading outbox")?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let messages: Vec<Message> = rows
        .into_iter()
        .map(|row| Message {
            id: row.id,
            routing_key: row.routing_key,
            body: row.payload.into_bytes(),
            request_id: row.request_id,
            at: row.created_at,
        })
        .collect();
    let confirmed = match broker.publish_messages(&messages).await {
        Ok(confirmed) => confirmed,
        Err(err) => {
            record_failure(&mut tx, &ids, &format!("{err:#}")).await?;
            tx.commit().await?;
            return Err(err);
        }
    };
    let (done, failed): (Vec<_>, Vec<_>) = ids.iter().zip(&confirmed).partition(|(_, ok)| **ok);
    let done: Vec<Uuid> = done.into_iter().map(|(id, _)| *id).collect();
    let failed: Vec<Uuid> = failed.into_iter().map(|(id, _)| *id).collect();
    sqlx::query!("delete from outbox where id = any($1)", &done[..])
        .execute(&mut *tx)
        .await
        .context("deleting published events")?;
    if !failed.is_empty() {
        record_failure(&mut tx, &failed, "not confirmed by the broker").await?;
    }
    tx.commit().await.context("committing outbox batch")?;
    metrics::counter!("outbox_published_total").increment(done.len() as u64);
    if failed.is_empty() {
        Ok(done.len())
    } else {
        anyhow::bail!("{} events were not confirmed", failed.len())
    }
}

async fn record_failure(tx: &mut PgConnection, ids: &[Uuid], error: &str) -> anyhow::Result<()> {
    sqlx::query!(
        "update outbox set attempts = attempts + 1, last_error = $2 where id = any($1)",
        ids,
        error,
    )
    .execute(tx)
    .await
    .context("recording publish failure")?;
    Ok(())
}
