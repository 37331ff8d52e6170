//! When each tenant next has work due, kept in memory by the two workers that send
//! what the inbox stored (the mailer and the webhook dispatcher).
//!
//! The inbox touches a tenant when its batch stored work, and every tenant the first time
//! this process writes to it (work left from before a restart is found then); a worker
//! puts a tenant back at the time its database says the next item is due. Nothing is
//! lost if this is: the rows are the truth, claimed with a lease.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::ApiError;
use common::db::directory::TenantDirectory;
use common::db::tenants::TenantConnection;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Default)]
struct Due {
    /// When each tenant next has work due.
    at: HashMap<Uuid, Instant>,
    /// Tenants looked at since the process started.
    seen: HashSet<Uuid>,
}

#[derive(Default)]
pub struct TenantSchedule {
    due: Mutex<Due>,
    wake: Notify,
}

impl TenantSchedule {
    /// `tenant` has work due now if `now` holds, or if it was never looked at.
    pub fn touch(&self, tenant: Uuid, now: bool) {
        let mut due = self.due.lock().expect("schedule lock");
        if due.seen.insert(tenant) || now {
            due.at.insert(tenant, Instant::now());
            drop(due);
            self.wake.notify_one();
        }
    }

    /// `tenant` has work due at `when` (or earlier, if it is already due earlier).
    pub fn at(&self, tenant: Uuid, when: Instant) {
        let mut due = self.due.lock().expect("schedule lock");
        let at = due.at.entry(tenant).or_insert(when);
        *at = (*at).min(when);
    }

    /// `tenant`'s next item is due at `next` (its database's word), if one is waiting.
    pub fn after(&self, tenant: Uuid, next: Option<DateTime<Utc>>) {
        if let Some(next) = next {
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            self.at(tenant, Instant::now() + wait);
        }
    }

    /// The tenants due now, taken off the schedule; or, when none is, waits until one is,
    /// or the schedule is touched (an empty list), or `shutdown` (`None`).
    pub async fn next(&self, shutdown: &CancellationToken) -> Option<Vec<Uuid>> {
        let (due, next) = {
            let now = Instant::now();
            let mut due = self.due.lock().expect("schedule lock");
            let ready: Vec<Uuid> = due
                .at
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(tenant, _)| *tenant)
                .collect();
            for tenant in &ready {
                due.at.remove(tenant);
            }
            (ready, due.at.values().min().copied())
        };
        if shutdown.is_cancelled() {
            return None;
        }
        if !due.is_empty() {
            return Some(due);
        }
        let sleep = next.map_or(Duration::from_secs(3600), |at| {
            at.saturating_duration_since(Instant::now())
        });
        tokio::select! {
            () = shutdown.cancelled() => None,
            () = self.wake.notified() => Some(Vec::new()),
            () = tokio::time::sleep(sleep) => Some(Vec::new()),
        }
    }
}

/// A connection to `tenant`'s database for a worker; `None` when the tenant is gone (it
/// has nothing left to send).
pub async fn connect(
    directory: &TenantDirectory,
    tenant: Uuid,
) -> anyhow::Result<Option<TenantConnection>> {
    match directory.connect(tenant).await {
        Ok(conn) => Ok(Some(conn)),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(err) => anyhow::bail!("tenant {tenant}'s database: {err}"),
    }
}

/// Once after a start: every active tenant (tenant-resolver's list) is handed to `touch`,
/// so mail and deliveries left from before the start are found even for a tenant with
/// no new event. Retried until tenant-resolver answers, or `shutdown`.
pub async fn sweep(
    http: reqwest::Client,
    tenant_resolver_url: String,
    token: common::internal::InternalToken,
    touch: impl Fn(Uuid),
    shutdown: CancellationToken,
) {
    loop {
        match common::internal::active_tenants(&http, &tenant_resolver_url, &token).await {
            Ok(tenants) => {
                tracing::info!(
                    tenants = tenants.len(),
                    "looking at every tenant's waiting mail and deliveries"
                );
                for tenant in tenants {
                    touch(tenant);
                }
                return;
            }
            Err(err) => {
                tracing::debug!(error = %err, "the tenants' list: will retry");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
}
