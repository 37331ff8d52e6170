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
    common::internal::members(
        &state.http,
        &state.config.user_service_url,
        &state.internal,
        tenant,
        ids,
    )
    .await
    .map_err(|e| unavailable(&e, what))
}

/// A failed internal call as the client sees it: a 503 saying that `what` cannot be
/// checked right now (the cause goes to the log).
fn unavailable(e: &reqwest::Error, what: &str) -> ApiError {
    tracing::warn!(error = %e, what, "internal call failed");
    ApiError::Unavailable {
        retry_after: 5,
        detail: format!("{what} cannot be checked right now."),
    }
}

/// GETs another service's internal endpoint as JSON; any failure is [`unavailable`].
async fn internal_get<T: DeserializeOwned>(
    state: &AppState,
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<T, ApiError> {
    let unavailable = |e: reqwest::Error| unavailable(&e, what);
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
