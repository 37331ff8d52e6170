//! Writing a batch: mark its days dirty, insert the raw events, record completions,
//! `$inc` the counters for what was new, and mark the days dirty again. Every step is idempotent or keyed, so a batch
//! written again after a crash (redelivered before its ack) counts nothing twice; a crash
//! between the steps can only leave counters short, and the marked days get them
//! recomputed exactly by the rollup job.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use futures::future::try_join_all;
use mongodb::bson::{self, Document, doc};
use uuid::Uuid;

use super::{Store, bson_time, counter_key, day_key, insert_unordered};
use crate::domain::event::{Event, Metric};
use common::events::consumer::{Sink, Written};

impl Sink for Store {
    type Event = Event;

    async fn write(&self, events: &[Event]) -> anyhow::Result<Written> {
        let days: HashSet<(Uuid, NaiveDate)> =
            events.iter().map(|e| (e.tenant_id(), e.day)).collect();
        try_join_all(
            days.iter()
                .map(|&(tenant, day)| self.mark_dirty(tenant, day)),
        )
        .await?;

        let docs = events
            .iter()
            .map(raw_document)
            .collect::<Result<Vec<_>, _>>()?;
        let inserted = insert_unordered(&self.events, docs).await?;

        let mut increments: HashMap<(Uuid, NaiveDate, Metric), i64> = HashMap::new();
        for (event, _) in events.iter().zip(&inserted.new).filter(|(_, new)| **new) {
            if let Some((metric, by)) = event.increment() {
                *increments
                    .entry((event.tenant_id(), event.day, metric))
                    .or_default() += by;
            }
        }
        // Completions are keyed by (tenant, task, day) and inserted for every event of the
        // batch, new or not: the key alone decides whether the completion is counted.
        let completed: Vec<(Uuid, NaiveDate, Uuid)> = events
            .iter()
            .enumerate()
            .filter(|(i, _)| !inserted.refused.contains(i))
            .filter_map(|(_, e)| e.completion().map(|task| (e.tenant_id(), e.day, task)))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let completion_docs = completed
            .iter()
            .map(|&(tenant, day, task)| {
                doc! {
                    "_id": format!("{tenant}|{task}|{}", day_key(day)),
                    "tenant_id": tenant.to_string(), "task_id": task.to_string(), "day": day_key(day),
                }
            })
            .collect();
        let first_completions = insert_unordered(&self.completions, completion_docs).await?;
        for (&(tenant, day, _), new) in completed.iter().zip(&first_completions.new) {
            if *new {
                *increments
                    .entry((tenant, day, Metric::TasksCompleted))
                    .or_default() += 1;
            }
        }
        try_join_all(increments.into_iter().filter(|(_, by)| *by != 0).map(
            |((tenant, day, metric), by)| {
                self.counters
                    .update_one(
                        counter_key(tenant, day, metric),
                        doc! { "$inc": { "value": by } },
                    )
                    .upsert(true)
                    .into_future()
            },
        ))
        .await
        .context("incrementing counters")?;
        // Marked again once written: a rollup that ran between the first mark and the
        // insert saw the day without these events, and must run again.
        try_join_all(
            days.iter()
                .map(|&(tenant, day)| self.mark_dirty(tenant, day)),
        )
        .await?;

        let new = inserted.new.iter().filter(|n| **n).count();
        Ok(Written {
            inserted: new,
            duplicates: events.len() - new - inserted.refused.len(),
            refused: inserted.refused,
        })
    }
}

impl Store {
    /// Tells the rollup job `day` of `tenant` changed (the sequence number lets it see
    /// whether the day changed again while it was recomputing).
    async fn mark_dirty(&self, tenant: Uuid, day: NaiveDate) -> anyhow::Result<()> {
        self.dirty
            .update_one(
                doc! { "_id": format!("{tenant}|{}", day_key(day)) },
                doc! {
                    "$inc": { "seq": 1_i64 },
                    "$setOnInsert": { "tenant_id": tenant.to_string(), "day": day_key(day) },
                },
            )
            .upsert(true)
            .await
            .context("marking a day for the rollup job")?;
        Ok(())
    }
}

/// The raw event as stored: the envelope plus its UTC `day` and when it arrived.
pub fn raw_document(event: &Event) -> anyhow::Result<Document> {
    let e = &event.envelope;
    let data = bson::to_bson(&e.data).context("converting event data")?;
    Ok(doc! {
        "_id": e.id.to_string(),
        "tenant_id": e.tenant_id.to_string(),
        "type": &e.kind,
        "version": i64::from(e.version),
        "occurred_at": bson_time(e.occurred_at),
        "day": day_key(event.day),
        "actor_id": e.actor_id.map(|a| a.to_string()),
        "data": data,
        "received_at": bson_time(Utc::now()),
    })
}
