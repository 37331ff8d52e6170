//! The tenants' databases: where each one is (tenant-resolver, cached) and connections to
//! it under a cap per PostgreSQL cluster (`common::db::tenants`: a tenant holds the
//! connections its requests use, an idle tenant none).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ApiError;
use common::db::tenants::{Limits, Location, TenantConnection, TenantConnections};
use common::internal::InternalToken;
use uuid::Uuid;

use crate::relay::Outboxes;

pub struct TenantDatabases {
    http: reqwest::Client,
    resolver_url: String,
    token: InternalToken,
    locations: moka::future::Cache<Uuid, Location>,
    connections: Arc<TenantConnections>,
    outboxes: Arc<Outboxes>,
    /// Tenants this process has connected to.
    seen: Mutex<HashSet<Uuid>>,
}

impl TenantDatabases {
    pub fn new(
        http: reqwest::Client,
        resolver_url: &str,
        token: InternalToken,
        limits: Limits,
        outboxes: Arc<Outboxes>,
    ) -> Self {
        Self {
            http,
            resolver_url: resolver_url.trim_end_matches('/').to_owned(),
            token,
            locations: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            connections: TenantConnections::new(crate::NAME, limits),
            outboxes,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// A connection to `tenant`'s database.
    pub async fn connect(&self, tenant: Uuid) -> Result<TenantConnection, ApiError> {
        let location = self.locate(tenant).await?;
        let conn = self.connections.acquire(tenant, &location).await?;
        if self.seen.lock().expect("seen lock").insert(tenant) {
            // Events a previous run left unpublished go out now.
            self.outboxes.mark(tenant);
        }
        Ok(conn)
    }

    /// The connection manager (its reaper, counts and shutdown).
    pub fn connections(&self) -> &Arc<TenantConnections> {
        &self.connections
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
}

/// Why tenant-resolver gave no database location.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Unknown,
    Suspended,
    Unavailable,
}
