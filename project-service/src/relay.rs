//! Publishes the tenants' outboxes. Each tenant database has its own `outbox`; a write
//! that enqueued events marks its tenant dirty, and this worker drains dirty tenants
//! only (never polling idle ones). A tenant whose drain fails (broker down) stays dirty
//! and is retried with backoff until its events are confirmed. Events left from before a
//! restart are drained the first time this process connects to the tenant's database.
//! The relay holds no connection between drains: a drain takes one of the tenant's
//! connections like a request does, and gives it back.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::events::Broker;
use common::events::outbox;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::databases::TenantDatabases;

#[derive(Default)]
pub struct Outboxes {
    dirty: Mutex<HashSet<Uuid>>,
    wake: Notify,
}

impl Outboxes {
    /// `tenant` has events to publish.
    pub fn mark(&self, tenant: Uuid) {
        self.dirty.lock().expect("dirty lock").insert(tenant);
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<Uuid> {
        self.dirty.lock().expect("dirty lock").drain().collect()
    }

    /// Drains dirty tenants until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        databases: Arc<TenantDatabases>,
        broker: Broker,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Duration::from_millis(250);
        loop {
            let mut failed = false;
            for tenant in self.take() {
                if let Err(err) = drain(&databases, &broker, tenant).await {
                    tracing::warn!(%tenant, error = format!("{err:#}"), "outbox: will retry");
                    self.dirty.lock().expect("dirty lock").insert(tenant);
                    failed = true;
                }
            }
            let pause = if failed {
                backoff = (backoff * 2).min(Duration::from_secs(5));
                backoff
            } else {
                backoff = Duration::from_millis(250);
                Duration::from_secs(3600)
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {},
                () = tokio::time::sleep(pause) => {},
            }
        }
    }
}

async fn drain(databases: &TenantDatabases, broker: &Broker, tenant: Uuid) -> anyhow::Result<()> {
    let mut conn = databases
        .connect(tenant)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let published = outbox::drain_on(&mut conn, broker, outbox::BATCH_SIZE).await?;
    if published > 0 {
        tracing::debug!(%tenant, published, "outbox drained");
    }
    Ok(())
}
