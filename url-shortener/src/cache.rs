//! The redirect path's in-memory view of links. A hit answers a redirect without the
//! database: expiry is checked against the clock, and visits are counted here (seeded
//! from the database) so `max_visits` holds although the database count is written in
//! batches. An entry lives at most `LINK_CACHE_TTL_SECS`, so a change made through
//! another instance shows here within that time; changes through this instance replace
//! the entry at once.
//!
//! Counters outlive entries: a reloaded link keeps counting from
//! `max(in-memory, database)`, so visits not yet flushed are not forgotten. Across several
//! instances each counts its own visits plus what the database had when it looked, so
//! `max_visits` can be overshot by at most the unflushed visits of the other instances
//! (one flush interval's worth each).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::HeaderValue;
use common::grant::{GrantKey, ShareGrant, SharedTarget};
use moka::sync::Cache;
use uuid::Uuid;

use crate::config::Config;
use crate::db::links::LinkRow;

/// Why a link no longer opens (the `reason` of `url.expired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    Expired,
    Disabled,
    VisitsUsedUp,
}

impl Gone {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Disabled => "disabled",
            Self::VisitsUsedUp => "max_visits",
        }
    }
}

/// What a redirect needs to know about a link.
pub struct CachedLink {
    pub code: Arc<str>,
    pub tenant_id: Uuid,
    pub target: SharedTarget,
    pub password_hash: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
    pub max_visits: Option<i64>,
    pub disabled: bool,
    /// `https://<slug>.<domain>/shared/tasks/{id}?grant=`: the redirect minus its grant.
    location_prefix: String,
    visits: Arc<AtomicI64>,
    /// Set once this entry has asked for its `url.expired` event to be recorded.
    pub expiry_reported: AtomicBool,
    /// The last `Location` handed out and the second it was made in: a grant depends on
    /// the link and its expiry second only, so within a second it is the same grant.
    last_location: Mutex<(i64, Option<HeaderValue>)>,
}

impl CachedLink {
    /// Where the link leads, up to its grant: `<tenant URL><share path>?grant=`.
    pub fn location_prefix(&self) -> &str {
        &self.location_prefix
    }

    /// Why the link does not open now, if it does not; `max_visits` included.
    pub fn gone(&self, now: i64) -> Option<Gone> {
        if self.disabled {
            Some(Gone::Disabled)
        } else if self.expires_at <= now {
            Some(Gone::Expired)
        } else if self
            .max_visits
            .is_some_and(|max| self.visits.load(Ordering::Relaxed) >= max)
        {
            Some(Gone::VisitsUsedUp)
        } else {
            None
        }
    }

    /// Counts a visit if one is left; `Err` when `max_visits` is reached (atomically, so
    /// concurrent opens never overshoot on this instance).
    pub fn take_visit(&self) -> Result<(), Gone> {
        match self.max_visits {
            None => {
                self.visits.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Some(max) => self
                .visits
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                    (v < max).then_some(v + 1)
                })
                .map(drop)
                .map_err(|_| Gone::VisitsUsedUp),
        }
    }

    pub fn visits(&self) -> i64 {
        self.visits.load(Ordering::Relaxed)
    }

    /// The redirect's `Location`, with a grant of `ttl_secs` from `now` (Unix seconds) for
    /// the target.
    pub fn location(&self, key: &GrantKey, ttl_secs: i64, now: i64) -> Option<HeaderValue> {
        let mut last = self
            .last_location
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.0 == now
            && let Some(location) = &last.1
        {
            return Some(location.clone());
        }
        let grant = key.sign(&ShareGrant {
            tenant_id: self.tenant_id,
            target: self.target,
            expires_at: now + ttl_secs,
        });
        let mut location = String::with_capacity(self.location_prefix.len() + grant.len());
        location.push_str(&self.location_prefix);
        location.push_str(&grant);
        let location = HeaderValue::try_from(location).ok()?;
        *last = (now, Some(location.clone()));
        Some(location)
    }
}

pub struct LinkCache {
    links: Cache<String, Arc<CachedLink>>,
    counters: Cache<String, Arc<AtomicI64>>,
}

impl LinkCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            links: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            counters: Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(Duration::from_secs(3600).max(ttl * 4))
                .build(),
        }
    }

    pub fn get(&self, code: &str) -> Option<Arc<CachedLink>> {
        self.links.get(code)
    }

    /// Caches `row` (replacing any entry for its code) and returns the entry.
    pub fn put(&self, row: &LinkRow, config: &Config) -> Arc<CachedLink> {
        let visits = self
            .counters
            .get_with(row.code.clone(), || Arc::new(AtomicI64::new(row.visits)));
        visits.fetch_max(row.visits, Ordering::AcqRel);
        let target = row.target().shared();
        let entry = Arc::new(CachedLink {
            code: Arc::from(row.code.as_str()),
            tenant_id: row.tenant_id,
            target,
            password_hash: row.password_hash.clone(),
            expires_at: row.expires_at.timestamp(),
            max_visits: row.max_visits,
            disabled: row.disabled,
            location_prefix: format!(
                "{}{}?grant=",
                config.tenant_url(&row.tenant_slug).trim_end_matches('/'),
                target.path()
            ),
            visits,
            expiry_reported: AtomicBool::new(false),
            last_location: Mutex::new((0, None)),
        });
        self.links.insert(row.code.clone(), Arc::clone(&entry));
        entry
    }

    /// The link's visits as counted here (unflushed ones included), if it is known here.
    pub fn visits(&self, code: &str) -> Option<i64> {
        self.counters.get(code).map(|c| c.load(Ordering::Relaxed))
    }

    /// Forgets a deleted link, counter and all.
    pub fn remove(&self, code: &str) {
        self.links.invalidate(code);
        self.counters.invalidate(code);
    }
}
