//! One small connection pool per tenant database, under a global cap on connections.
//!
//! Connection details come from tenant-resolver (cached). Pools live in an LRU: when a
//! new tenant's pool would take the total past `DB_MAX_CONNECTIONS`, the least recently
//! used pools that no request is using are closed to make room, so tenant number 1,001
//! is served, not refused. A pool in use is never closed under a request: requests hold
//! a [`Lease`]. When every pool is busy, a request waits (up to the acquire timeout) for
//! one to be released.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::ApiError;
use common::internal::InternalToken;
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::relay::Outboxes;

/// tenant-resolver's `GET /internal/tenants/{id}/database`.
#[derive(Clone, Deserialize)]
struct Location {
    host: String,
    port: u16,
    database: String,
    username: String,
    password: String,
}

struct Entry {
    pool: PgPool,
    /// One clone per lease: a count of 1 means no request is using the pool.
    users: Arc<()>,
    last_used: Instant,
}

/// A tenant's pool, kept open while this lives.
pub struct Lease {
    pub pool: PgPool,
    _user: Arc<()>,
    released: Arc<Notify>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.released.notify_waiters();
    }
}

pub struct TenantPools {
    http: reqwest::Client,
    resolver_url: String,
    token: InternalToken,
    per_tenant: u32,
    cap: u32,
    acquire_timeout: Duration,
    locations: moka::future::Cache<Uuid, Location>,
    pools: Mutex<HashMap<Uuid, Entry>>,
    released: Arc<Notify>,
    outboxes: Arc<Outboxes>,
    /// Tenants this process has opened a pool for.
    seen: Mutex<HashSet<Uuid>>,
}

pub struct Limits {
    /// Most connections open across all tenants.
    pub cap: u32,
    /// Most connections of one tenant's pool.
    pub per_tenant: u32,
    pub acquire_timeout: Duration,
}

impl TenantPools {
    pub fn new(
        http: reqwest::Client,
        resolver_url: &str,
        token: InternalToken,
        limits: &Limits,
        outboxes: Arc<Outboxes>,
    ) -> Self {
        Self {
            http,
            resolver_url: resolver_url.trim_end_matches('/').to_owned(),
            token,
            cap: limits.cap.max(1),
            per_tenant: limits.per_tenant.clamp(1, limits.cap.max(1)),
            acquire_timeout: limits.acquire_timeout,
            locations: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            pools: Mutex::new(HashMap::new()),
            released: Arc::new(Notify::new()),
            outboxes,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// The tenant's pool, opening it (and closing idle ones) as needed.
    pub async fn lease(&self, tenant: Uuid) -> Result<Lease, ApiError> {
        let deadline = Instant::now() + self.acquire_timeout;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(lease) = self.try_lease(tenant).await? {
                return Ok(lease);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, released).await.is_err() {
                metrics::counter!("tenant_pool_waits_timed_out_total").increment(1);
                return Err(ApiError::Unavailable {
                    retry_after: 1,
                    detail: "Every database connection is busy; try again shortly.".into(),
                });
            }
        }
    }

    async fn try_lease(&self, tenant: Uuid) -> Result<Option<Lease>, ApiError> {
        if let Some(lease) = self.existing(tenant) {
            return Ok(Some(lease));
        }
        let location = self.locate(tenant).await?;
        let mut closing = Vec::new();
        let lease = {
            let mut pools = self.pools.lock().expect("pools lock");
            if let Some(entry) = pools.get_mut(&tenant) {
                // Another request opened it meanwhile.
                entry.last_used = Instant::now();
                Some(self.lease_of(entry))
            } else if make_room(&mut pools, self.cap, self.per_tenant, &mut closing) {
                let entry = pools.entry(tenant).or_insert_with(|| Entry {
                    pool: self.open(&location),
                    users: Arc::new(()),
                    last_used: Instant::now(),
                });
                Some(self.lease_of(entry))
            } else {
                None
            }
        };
        if lease.is_some() && self.seen.lock().expect("seen lock").insert(tenant) {
            // Events a previous run left unpublished go out now.
            self.outboxes.mark(tenant);
        }
        for pool in closing {
            metrics::counter!("tenant_pool_evictions_total").increment(1);
            tokio::spawn(async move { pool.close().await });
        }
        self.record();
        Ok(lease)
    }

    fn existing(&self, tenant: Uuid) -> Option<Lease> {
        let mut pools = self.pools.lock().expect("pools lock");
        let entry = pools.get_mut(&tenant)?;
        entry.last_used = Instant::now();
        Some(self.lease_of(entry))
    }

    fn lease_of(&self, entry: &Entry) -> Lease {
        Lease {
            pool: entry.pool.clone(),
            _user: Arc::clone(&entry.users),
            released: Arc::clone(&self.released),
        }
    }

    fn open(&self, location: &Location) -> PgPool {
        let options = PgConnectOptions::new()
            .host(&location.host)
            .port(location.port)
            .database(&location.database)
            .username(&location.username)
            .password(&location.password)
            .application_name("project-service");
        PgPoolOptions::new()
            .max_connections(self.per_tenant)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(60))
            .acquire_timeout(self.acquire_timeout)
            .connect_lazy_with(options)
    }

    async fn locate(&self, tenant: Uuid) -> Result<Location, ApiError> {
        let fetch = async {
            let response = self
                .http
                .get(format!(
                    "{}/internal/tenants/{tenant}/database",
                    self.resolver_url
                ))
                .header(reqwest::header::AUTHORIZATION, self.token.bearer())
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .map_err(|err| {
                    tracing::warn!(%err, "tenant-resolver unreachable");
                    Refusal::Unavailable
                })?;
            match response.status().as_u16() {
                200 => response
                    .json::<Location>()
                    .await
                    .map_err(|_| Refusal::Unavailable),
                404 => Err(Refusal::Unknown),
                423 => Err(Refusal::Suspended),
                _ => Err(Refusal::Unavailable),
            }
        };
        self.locations
            .try_get_with(tenant, fetch)
            .await
            .map_err(|refusal: Arc<Refusal>| match *refusal {
                Refusal::Unknown => {
                    ApiError::NotFound("There is no organisation at this address.".into())
                }
                Refusal::Suspended => ApiError::tenant_suspended(),
                Refusal::Unavailable => ApiError::Unavailable {
                    retry_after: 5,
                    detail: "The organisation's database cannot be located right now.".into(),
                },
            })
    }

    /// Closes every pool (shutdown).
    pub async fn close(&self) {
        let pools: Vec<PgPool> = {
            let mut pools = self.pools.lock().expect("pools lock");
            pools.drain().map(|(_, e)| e.pool).collect()
        };
        for pool in pools {
            pool.close().await;
        }
        self.record();
    }

    /// Tenants whose pool is open now.
    pub fn open_tenants(&self) -> Vec<Uuid> {
        self.pools
            .lock()
            .expect("pools lock")
            .keys()
            .copied()
            .collect()
    }

    fn record(&self) {
        let pools = self.pools.lock().expect("pools lock");
        let connections: u32 = pools.values().map(|e| e.pool.size()).sum();
        metrics::gauge!("tenant_pools_open").set(pools.len() as f64);
        metrics::gauge!("tenant_pool_connections").set(f64::from(connections));
    }
}

/// Closes least recently used idle pools until one more pool of `per_tenant` fits
/// under `cap`; `false` when it cannot (every pool is in use).
fn make_room(
    pools: &mut HashMap<Uuid, Entry>,
    cap: u32,
    per_tenant: u32,
    closing: &mut Vec<PgPool>,
) -> bool {
    loop {
        let committed = u32::try_from(pools.len()).unwrap_or(u32::MAX) * per_tenant;
        if committed + per_tenant <= cap {
            return true;
        }
        let idle = pools
            .iter()
            .filter(|(_, e)| Arc::strong_count(&e.users) == 1)
            .min_by_key(|(_, e)| e.last_used)
            .map(|(id, _)| *id);
        match idle {
            Some(id) => closing.push(pools.remove(&id).expect("just found").pool),
            None => return false,
        }
    }
}

/// Why tenant-resolver gave no database location.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Unknown,
    Suspended,
    Unavailable,
}
