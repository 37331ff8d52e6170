//! `POST /api/v1/tenants` (signup, on the apex host) and `GET /api/v1/tenant`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::Problem;
use common::extract::ValidJson;
use serde::Serialize;

use crate::AppState;
use crate::db::{catalog, tenants};
use crate::domain::SignupRequest;
use crate::signup::{TenantView, signup as create};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants", post(signup))
        .route("/api/v1/tenant", get(current))
}

/// Sign up a new organisation and its owner.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = SignupRequest,
    responses(
        (status = 201, description = "Created", body = TenantView),
        (status = 400, description = "Invalid request", body = Problem),
        (status = 409, description = "The slug is taken", body = Problem),
        (status = 503, description = "A dependency is down; nothing was kept", body = Problem)))]
#[tracing::instrument(skip_all, fields(slug = %req.slug), err(Display))]
pub async fn signup(
    State(state): State<AppState>,
    headers: HeaderMap,
    ValidJson(req): ValidJson<SignupRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let request_id = headers
        .get(common::telemetry::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok());
    let tenant = create(&state, &req, request_id).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, tenant.url.clone())],
        Json(tenant),
    ))
}

/// The current tenant with its usage.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CurrentTenant {
    #[serde(flatten)]
    pub tenant: TenantView,
    pub usage: Usage,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Usage {
    /// Size of the tenant's database.
    pub storage_bytes: i64,
}

/// The caller's organisation: plan, limits and usage.
#[utoipa::path(get, path = "/api/v1/tenant", tag = "tenants", security(("bearer" = [])),
    responses(
        (status = 200, body = CurrentTenant),
        (status = 401, body = Problem),
        (status = 403, body = Problem)))]
pub async fn current(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<CurrentTenant>, ApiError> {
    user.require(Perm::TenantRead)?;
    let tenant = tenants::find(&state.pool, user.tenant_id)
        .await?
        .filter(|t| t.status == "active")
        .ok_or_else(|| {
            ApiError::NotFound("This organisation does not exist or is not active.".into())
        })?;
    let cluster = state
        .clusters
        .get(&tenant.cluster)
        .ok_or_else(|| anyhow::anyhow!("cluster {} is not configured", tenant.cluster))?;
    let storage_bytes = catalog::database_size(&cluster.admin, &tenant.database_name).await?;
    Ok(Json(CurrentTenant {
        tenant: TenantView::new(&tenant, &state.config.tenant_url_template),
        usage: Usage { storage_bytes },
    }))
}
