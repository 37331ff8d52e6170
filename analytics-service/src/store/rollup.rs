//! The rollup job: for every day the consumer marked dirty, recompute the day's exact
//! aggregates from the raw events into `rollups` and overwrite the day's `counters` with
//! them (repairing any count a crash left short). A day marked again while it was being
//! recomputed stays dirty for the next run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use common::events::keys;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Store, bson_time, chrono_time, counter_key, day_key};
use crate::domain::event::{Metric, completes};

/// Dirty days handled per run.
const DAYS_PER_RUN: i64 = 500;

/// A raw event as the reports read it.
#[derive(Debug, Clone)]
pub struct Raw {
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub data: Value,
}

impl Raw {
    pub fn from_document(doc: &Document) -> Option<Self> {
        Some(Self {
            kind: doc.get_str("type").ok()?.to_owned(),
            occurred_at: chrono_time(*doc.get_datetime("occurred_at").ok()?),
            data: Bson::Document(doc.get_document("data").ok()?.clone()).into_relaxed_extjson(),
        })
    }

    pub fn str(&self, field: &str) -> Option<&str> {
        self.data[field].as_str()
    }
}

/// Runs the job every `every` until `shutdown`.
pub async fn run(store: Store, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match store.roll_up_dirty_days().await {
            Ok(0) => {}
            Ok(days) => tracing::debug!(days, "rolled up"),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "rollup run failed"),
        }
    }
}

impl Store {
    /// Recomputes the days marked dirty; returns how many.
    pub async fn roll_up_dirty_days(&self) -> anyhow::Result<usize> {
        let dirty: Vec<Document> = self
            .dirty
            .find(doc! {})
            .limit(DAYS_PER_RUN)
            .await?
            .try_collect()
            .await
            .context("reading dirty days")?;
        for mark in &dirty {
            let (Ok(tenant), Ok(day)) = (mark.get_str("tenant_id"), mark.get_str("day")) else {
                continue;
            };
            let (Ok(tenant), Ok(day)) = (Uuid::parse_str(tenant), day.parse::<NaiveDate>()) else {
                continue;
            };
            self.roll_up(tenant, day).await?;
            let seq = mark.get("seq").cloned().unwrap_or(Bson::Null);
            self.dirty
                .delete_one(
                    doc! { "_id": mark.get("_id").cloned().unwrap_or(Bson::Null), "seq": seq },
                )
                .await?;
        }
        Ok(dirty.len())
    }

    /// Recomputes one day of one tenant, reading the day's events as a stream: what it
    /// holds grows with the day's links, referrers and completed tasks, not its events.
    pub async fn roll_up(&self, tenant: Uuid, day: NaiveDate) -> anyhow::Result<()> {
        let mut rollup = DayRollup::default();
        let mut completed: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut links: BTreeMap<String, i64> = BTreeMap::new();
        let mut referrers: BTreeMap<String, i64> = BTreeMap::new();
        let filter = doc! { "tenant_id": tenant.to_string(), "day": day_key(day) };
        self.each_raw(filter, |event| match event.kind.as_str() {
            keys::TASK_CREATED => rollup.tasks_created += 1,
            keys::TASK_TIME_LOGGED => {
                rollup.minutes_logged += event.data["minutes"].as_i64().unwrap_or(0);
            }
            keys::TASK_STATUS_CHANGED if completes(&event.data) => {
                if let Some(task) = event.str("task_id") {
                    let first = completed
                        .entry(task.to_owned())
                        .or_insert(event.occurred_at);
                    *first = (*first).min(event.occurred_at);
                }
            }
            keys::URL_ACCESSED => {
                rollup.link_clicks += 1;
                *links
                    .entry(event.str("code").unwrap_or_default().to_owned())
                    .or_default() += 1;
                let host = event
                    .str("referrer_host")
                    .filter(|h| !h.is_empty())
                    .unwrap_or(DIRECT);
                *referrers.entry(host.to_owned()).or_default() += 1;
                if event.str("agent_class") == Some("bot") {
                    rollup.bots += 1;
                } else {
                    rollup.browsers += 1;
                }
            }
            _ => {}
        })
        .await?;
        rollup.tasks_completed = completed.len() as i64;
        self.cycle_times(tenant, day, &completed, &mut rollup)
            .await?;
        let document = rollup.document(tenant, day, &links, &referrers);
        self.rollups
            .replace_one(
                doc! { "_id": format!("{tenant}|{}", day_key(day)) },
                document,
            )
            .upsert(true)
            .await
            .context("writing a rollup")?;
        for (metric, value) in rollup.metrics() {
            self.counters
                .update_one(
                    counter_key(tenant, day, metric),
                    doc! { "$set": { "value": value } },
                )
                .upsert(true)
                .await
                .context("repairing a counter")?;
        }
        Ok(())
    }

    /// Cycle time of the tasks that became done for the first time on `day`: from their
    /// `task.created` to that first completion.
    async fn cycle_times(
        &self,
        tenant: Uuid,
        day: NaiveDate,
        completed: &HashMap<String, DateTime<Utc>>,
        rollup: &mut DayRollup,
    ) -> anyhow::Result<()> {
        if completed.is_empty() {
            return Ok(());
        }
        let ids: Vec<&String> = completed.keys().collect();
        let start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let mut earlier: HashSet<String> = HashSet::new();
        let filter = doc! {
            "tenant_id": tenant.to_string(), "type": keys::TASK_STATUS_CHANGED,
            "data.task_id": { "$in": &ids }, "occurred_at": { "$lt": bson_time(start) },
        };
        self.each_raw(filter, |e| {
            if completes(&e.data)
                && let Some(task) = e.str("task_id")
            {
                earlier.insert(task.to_owned());
            }
        })
        .await?;
        let filter = doc! {
            "tenant_id": tenant.to_string(), "type": keys::TASK_CREATED,
            "data.task_id": { "$in": &ids },
        };
        self.each_raw(filter, |event| {
            let Some(task) = event.str("task_id") else {
                return;
            };
            if let Some(done) = completed.get(task).filter(|_| !earlier.contains(task)) {
                rollup.cycle_minutes_total += (*done - event.occurred_at).num_minutes().max(0);
                rollup.cycle_samples += 1;
            }
        })
        .await?;
        Ok(())
    }

    /// Calls `each` with every raw event matching `filter`, in the order they are stored,
    /// one cursor batch in memory at a time: a report or rollup holds what it adds up,
    /// never the events themselves, so its memory does not grow with the events stored.
    pub async fn each_raw(
        &self,
        filter: Document,
        mut each: impl FnMut(Raw),
    ) -> anyhow::Result<()> {
        let mut cursor = self
            .events
            .find(filter)
            .projection(doc! { "type": 1, "occurred_at": 1, "data": 1 })
            .await
            .context("reading events")?;
        while let Some(document) = cursor.try_next().await.context("reading events")? {
            if let Some(raw) = Raw::from_document(&document) {
                each(raw);
            }
        }
        Ok(())
    }
}

/// Referrer label of clicks without a referrer.
pub const DIRECT: &str = "(direct)";

#[derive(Debug, Default)]
struct DayRollup {
    tasks_created: i64,
    tasks_completed: i64,
    link_clicks: i64,
    minutes_logged: i64,
    browsers: i64,
    bots: i64,
    cycle_minutes_total: i64,
    cycle_samples: i64,
}

impl DayRollup {
    fn metrics(&self) -> [(Metric, i64); 4] {
        [
            (Metric::TasksCreated, self.tasks_created),
            (Metric::TasksCompleted, self.tasks_completed),
            (Metric::LinkClicks, self.link_clicks),
            (Metric::MinutesLogged, self.minutes_logged),
        ]
    }

    /// Maps become `[{key, n}]` lists: referrer hosts contain dots, which field names
    /// must not.
    fn document(
        &self,
        tenant: Uuid,
        day: NaiveDate,
        links: &BTreeMap<String, i64>,
        referrers: &BTreeMap<String, i64>,
    ) -> Document {
        let list = |map: &BTreeMap<String, i64>, key: &str| -> Vec<Document> {
            map.iter()
                .map(|(k, n)| doc! { key: k, "clicks": n })
                .collect()
        };
        let mut document = doc! {
            "tenant_id": tenant.to_string(), "day": day_key(day),
            "links": list(links, "code"), "referrers": list(referrers, "host"),
            "browsers": self.browsers, "bots": self.bots,
            "cycle_minutes_total": self.cycle_minutes_total, "cycle_samples": self.cycle_samples,
            "computed_at": bson_time(Utc::now()),
        };
        for (metric, value) in self.metrics() {
            document.insert(metric.as_str(), value);
        }
        document
    }
}
