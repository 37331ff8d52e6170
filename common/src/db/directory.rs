//! Where each tenant's database is (tenant-resolver's
//! `GET /internal/tenants/{id}/database`, cached for five minutes) and connections to it
//! under a cap per PostgreSQL cluster ([`super::tenants`]: a tenant holds the
//! connections its requests use, an idle tenant none). Every service that keeps tenant
//! data (project-service, notification-service) reaches it through this.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::tenants::{Limits, Location, TenantConnection, TenantConnections};
use crate::ApiError;
use crate::internal::InternalToken;

/// The tenant databases of one service: located through tenant-resolver, connected under
/// the cluster caps of [`TenantConnections`].
pub struct TenantDirectory {
    http: reqwest::Client,
    resolver_url: String,
    token: InternalToken,
    locations: moka::future::Cache<Uuid, Location>,
    connections: Arc<TenantConnections>,
}

impl TenantDirectory {
    /// `application` names the service's connections (`application_name`).
    pub fn new(
        application: &str,
        http: reqwest::Client,
        resolver_url: &str,
        token: InternalToken,
        limits: Limits,
    ) -> Self {
        Self {
            http,
            resolver_url: resolver_url.trim_end_matches('/').to_owned(),
            token,
            locations: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            connections: TenantConnections::new(application, limits),
        }
    }

    /// A connection to `tenant`'s database.
    pub async fn connect(&self, tenant: Uuid) -> Result<TenantConnection, ApiError> {
        let location = self.locate(tenant).await?;
        self.connections.acquire(tenant, &location).await
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
