//! What project-service asks the other services: the tenant's plan limits
//! (tenant-resolver) and which users are members of the tenant, with their names
//! (user-service). Every call is to an internal endpoint with the internal token.

use common::ApiError;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::AppState;

/// The limits of a tenant's plan (`None`: unlimited).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct PlanLimits {
    pub projects: Option<i64>,
    pub storage_bytes: Option<i64>,
}

#[derive(Deserialize)]
struct Lookup {
    limits: PlanLimits,
}

/// The plan limits of the tenant `slug`, from tenant-resolver.
pub async fn plan_limits(state: &AppState, slug: &str) -> Result<PlanLimits, ApiError> {
    let url = format!(
        "{}/internal/tenants/by-slug/{slug}",
        state
            .config
            .tenant_db
            .tenant_resolver_url
            .trim_end_matches('/')
    );
    let lookup: Lookup =
        internal_get(state, state.http.get(url), "The organisation's plan").await?;
    Ok(lookup.limits)
}

/// A member of a tenant, as user-service names them.
#[derive(Debug, Deserialize)]
pub struct Member {
    pub id: Uuid,
    #[serde(default)]
    pub name: String,
}

/// Which of `ids` are active members of `tenant`, with their names (user-service
/// decides). `what` names the lookup in the 503 when user-service cannot answer.
pub async fn members(
    state: &AppState,
    tenant: Uuid,
    ids: &[Uuid],
    what: &str,
) -> Result<Vec<Member>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = ids
        .iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let url = format!(
        "{}/internal/users",
        state.config.user_service_url.trim_end_matches('/')
    );
    let request = state
        .http
        .get(url)
        .query(&[("ids", list), ("tenant_id", tenant.to_string())]);
    internal_get(state, request, what).await
}

/// GETs another service's internal endpoint as JSON. Any failure is a 503 saying that
/// `what` cannot be checked right now (the cause goes to the log).
async fn internal_get<T: DeserializeOwned>(
    state: &AppState,
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<T, ApiError> {
    let unavailable = |e: reqwest::Error| {
        tracing::warn!(error = %e, what, "internal call failed");
        ApiError::Unavailable {
            retry_after: 5,
            detail: format!("{what} cannot be checked right now."),
        }
    };
    request
        .header(reqwest::header::AUTHORIZATION, state.internal.bearer())
        .send()
        .await
        .map_err(unavailable)?
        .error_for_status()
        .map_err(unavailable)?
        .json()
        .await
        .map_err(unavailable)
}
