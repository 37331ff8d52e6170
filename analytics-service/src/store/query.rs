//! Reads behind the API, always filtered by the caller's tenant first (every index starts
//! with `tenant_id`).

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use common::events::keys;
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use uuid::Uuid;

use super::rollup::Raw;
use super::{Store, bson_time, day_key};
use crate::domain::event::Metric;
use crate::domain::range::Range;

/// One day's counter values, in [`Metric::ALL`] order.
pub type DayCounts = [i64; 4];

/// What the rollups of a range add up to.
#[derive(Debug, Default)]
pub struct Rolled {
    pub links: BTreeMap<String, i64>,
    pub referrers: BTreeMap<String, i64>,
    pub cycle_minutes_total: i64,
    pub cycle_samples: i64,
}

impl Store {
    /// Counter values per day of `range` (days without counters are absent).
    pub async fn counters_in(
        &self,
        tenant: Uuid,
        range: &Range,
    ) -> anyhow::Result<BTreeMap<NaiveDate, DayCounts>> {
        let docs: Vec<Document> = self
            .counters
            .find(doc! {
                "tenant_id": tenant.to_string(),
                "day": { "$gte": day_key(range.from), "$lte": day_key(range.to) },
            })
            .await?
            .try_collect()
            .await
            .context("reading counters")?;
        let mut days: BTreeMap<NaiveDate, DayCounts> = BTreeMap::new();
        for d in docs {
            let (Ok(day), Ok(metric)) = (d.get_str("day"), d.get_str("metric")) else {
                continue;
            };
            let (Ok(day), Some(slot)) = (
                day.parse::<NaiveDate>(),
                Metric::ALL.iter().position(|m| m.as_str() == metric),
            ) else {
                continue;
            };
            let value = d
                .get_i64("value")
                .or_else(|_| d.get_i32("value").map(i64::from));
            days.entry(day).or_default()[slot] += value.unwrap_or(0);
        }
        Ok(days)
    }

    /// The rollups of `range`, added up.
    pub async fn rolled_up(&self, tenant: Uuid, range: &Range) -> anyhow::Result<Rolled> {
        let docs: Vec<Document> = self
            .rollups
            .find(doc! {
                "tenant_id": tenant.to_string(),
                "day": { "$gte": day_key(range.from), "$lte": day_key(range.to) },
            })
            .await?
            .try_collect()
            .await
            .context("reading rollups")?;
        let mut rolled = Rolled::default();
        for d in &docs {
            add_list(d, "links", "code", &mut rolled.links);
            add_list(d, "referrers", "host", &mut rolled.referrers);
            rolled.cycle_minutes_total += int(d, "cycle_minutes_total");
            rolled.cycle_samples += int(d, "cycle_samples");
        }
        Ok(rolled)
    }

    /// Task events of `kinds` that happened before the end of `range` (and, with
    /// `since_start`, not before its start), each handed to `each`, in stored order.
    pub async fn task_events(
        &self,
        tenant: Uuid,
        kinds: &[&str],
        range: &Range,
        since_start: bool,
        each: impl FnMut(Raw),
    ) -> anyhow::Result<()> {
        let mut when = doc! { "$lt": bson_time(range.end()) };
        if since_start {
            when.insert("$gte", bson_time(range.start()));
        }
        let filter =
            doc! { "tenant_id": tenant.to_string(), "type": { "$in": kinds }, "occurred_at": when };
        self.each_raw(filter, each).await
    }

    /// The `url.accessed` events of link `code` in `range`, each handed to `each`.
    pub async fn clicks(
        &self,
        tenant: Uuid,
        code: &str,
        range: &Range,
        each: impl FnMut(Raw),
    ) -> anyhow::Result<()> {
        let filter = doc! {
            "tenant_id": tenant.to_string(), "data.code": code, "type": keys::URL_ACCESSED,
            "occurred_at": { "$gte": bson_time(range.start()), "$lt": bson_time(range.end()) },
        };
        self.each_raw(filter, each).await
    }

    /// Whether the tenant has ever had an event about link `code`.
    pub async fn link_known(&self, tenant: Uuid, code: &str) -> anyhow::Result<bool> {
        let found = self
            .events
            .find_one(doc! {
                "tenant_id": tenant.to_string(), "data.code": code,
                "type": { "$in": [keys::URL_CREATED, keys::URL_ACCESSED, keys::URL_EXPIRED] },
            })
            .await
            .context("looking a link up")?;
        Ok(found.is_some())
    }
}

fn int(d: &Document, key: &str) -> i64 {
    d.get_i64(key)
        .or_else(|_| d.get_i32(key).map(i64::from))
        .unwrap_or(0)
}

fn add_list(d: &Document, list: &str, key: &str, into: &mut BTreeMap<String, i64>) {
    for item in d.get_array(list).into_iter().flatten() {
        if let Some(item) = item.as_document()
            && let Ok(name) = item.get_str(key)
        {
            *into.entry(name.to_owned()).or_default() += int(item, "clicks");
        }
    }
}

/// UTC midnight starting `day`.
pub fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}
