//! MongoDB `nexus_analytics`: raw `events` (`_id` = event id, so a redelivered event is a
//! duplicate-key no-op), `counters` per tenant / day / metric, `completions` (one per task
//! and day, so a task bouncing in and out of done counts once), `dirty` (days the rollup
//! job must recompute) and `rollups` (exact daily aggregates recomputed from raw events).
//!
//! Only features both real MongoDB (6.0+) and the `nx-27017` stand-in support are used:
//! unordered `insert_many` with duplicate-key code 11000, `$inc`/`$set`/`$setOnInsert`
//! upserts, unique and TTL indexes, and plain finds; aggregation happens in Rust.

pub mod ingest;
pub mod query;
pub mod rollup;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use mongodb::IndexModel;
use mongodb::bson::{self, Document, doc};
use mongodb::error::{ErrorKind, InsertManyError};
use mongodb::options::IndexOptions;
use uuid::Uuid;

use crate::domain::event::Metric;

/// MongoDB's duplicate-key error code.
pub const DUPLICATE_KEY: i32 = 11000;

/// The analytics database and its collections.
#[derive(Clone)]
pub struct Store {
    pub db: mongodb::Database,
    pub events: mongodb::Collection<Document>,
    pub counters: mongodb::Collection<Document>,
    pub completions: mongodb::Collection<Document>,
    pub dirty: mongodb::Collection<Document>,
    pub rollups: mongodb::Collection<Document>,
}

impl Store {
    pub fn new(db: mongodb::Database) -> Self {
        Self {
            events: db.collection("events"),
            counters: db.collection("counters"),
            completions: db.collection("completions"),
            dirty: db.collection("dirty"),
            rollups: db.collection("rollups"),
            db,
        }
    }

    /// Creates the indexes every query needs (idempotent). A TTL index whose retention
    /// changed keeps its old value and is logged: change it with `collMod`.
    pub async fn ensure_indexes(&self, retention_days: u32) -> anyhow::Result<()> {
        let index = |keys: Document| IndexModel::builder().keys(keys).build();
        let ttl = IndexModel::builder()
            .keys(doc! { "occurred_at": 1 })
            .options(
                IndexOptions::builder()
                    .expire_after(std::time::Duration::from_secs(
                        u64::from(retention_days) * 86_400,
                    ))
                    .build(),
            )
            .build();
        if let Err(err) = self.events.create_index(ttl).await {
            tracing::warn!(%err, "events TTL index not (re)created");
        }
        self.events
            .create_indexes([
                index(doc! { "tenant_id": 1, "type": 1, "occurred_at": 1 }),
                index(doc! { "tenant_id": 1, "day": 1 }),
                index(doc! { "tenant_id": 1, "data.code": 1, "occurred_at": 1 }),
                index(doc! { "tenant_id": 1, "data.task_id": 1 }),
            ])
            .await
            .context("creating events indexes")?;
        let unique = IndexOptions::builder().unique(true).build();
        self.counters
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "tenant_id": 1, "day": 1, "metric": 1 })
                    .options(unique)
                    .build(),
            )
            .await
            .context("creating counters index")?;
        self.rollups
            .create_index(index(doc! { "tenant_id": 1, "day": 1 }))
            .await
            .context("creating rollups index")?;
        Ok(())
    }
}

/// What an unordered insert did with each document.
pub struct Inserted {
    /// Per document: newly inserted (not a duplicate and not refused).
    pub new: Vec<bool>,
    /// Indexes MongoDB refused for a reason other than a duplicate key.
    pub refused: Vec<usize>,
}

/// Inserts `docs` unordered. Duplicate keys are expected (redelivery) and reported as
/// not new; other per-document errors are reported as refused; anything else (MongoDB
/// unreachable, write concern) is an error and nothing can be assumed.
pub async fn insert_unordered(
    collection: &mongodb::Collection<Document>,
    docs: Vec<Document>,
) -> anyhow::Result<Inserted> {
    let mut new = vec![true; docs.len()];
    let mut refused = Vec::new();
    if docs.is_empty() {
        return Ok(Inserted { new, refused });
    }
    if let Err(err) = collection.insert_many(docs).ordered(false).await {
        match *err.kind {
            ErrorKind::InsertMany(InsertManyError {
                write_errors: Some(ref errors),
                write_concern_error: None,
                ..
            }) => {
                for error in errors {
                    if let Some(slot) = new.get_mut(error.index) {
                        *slot = false;
                    }
                    if error.code != DUPLICATE_KEY {
                        refused.push(error.index);
                    }
                }
            }
            _ => {
                return Err(anyhow::Error::new(err)
                    .context(format!("inserting into {}", collection.name())));
            }
        }
    }
    Ok(Inserted { new, refused })
}

pub fn day_key(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

pub fn bson_time(at: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(at.timestamp_millis())
}

pub fn chrono_time(at: bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or_default()
}

/// The `counters` filter of one tenant, day and metric.
pub fn counter_key(tenant: Uuid, day: NaiveDate, metric: Metric) -> Document {
    doc! { "tenant_id": tenant.to_string(), "day": day_key(day), "metric": metric.as_str() }
}
