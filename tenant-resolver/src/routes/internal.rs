//! `/internal/...`: lookups for the gateway and project-service, lifecycle and
//! migrations for operators. All need the internal token; the gateway never routes here.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use common::ApiError;
use common::error::Problem;
use common::extract::Query;
use common::internal::InternalCaller;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::AppState;
use crate::db::tenants::{self, Tenant};
use crate::domain::{Limits, Plan};
use crate::lifecycle;
use crate::migrate::{self, Summary};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/internal/tenants", get(active))
        .route("/internal/tenants/by-slug/{slug}", get(lookup))
        .route("/internal/tenants/{id}/database", get(database))
        .route("/internal/tenants/{id}/suspend", post(suspend))
        .route("/internal/tenants/{id}/resume", post(resume))
        .route("/internal/tenants/{id}", delete(delete_tenant))
        .route(
            "/internal/migrations",
            post(start_migration).get(migration_status),
        )
}

/// What the gateway needs to route a tenant host.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LookupView {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub plan: Plan,
    pub limits: Limits,
    pub status: String,
}

impl From<&Tenant> for LookupView {
    fn from(t: &Tenant) -> Self {
        let plan: Plan = t.plan.parse().unwrap_or_default();
        Self {
            id: t.id,
            slug: t.slug.clone(),
            name: t.name.clone(),
            plan,
            limits: plan.limits(),
            status: t.status.clone(),
        }
    }
}

fn no_tenant() -> ApiError {
    ApiError::NotFound("No such organisation.".into())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Page {
    /// The `next` of the previous page.
    after: Option<Uuid>,
    /// 1 to 1000 (default 500).
    limit: Option<i64>,
}

/// A page of active tenants' ids.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantIds {
    pub items: Vec<Uuid>,
    /// Pass as `after` for the next page; none on the last.
    pub next: Option<Uuid>,
}

/// The active tenants, in id order: for workers that look at every tenant once after a
/// start (work left from before it).
#[utoipa::path(get, path = "/internal/tenants", tag = "internal", params(Page),
    responses((status = 200, body = TenantIds), (status = 400, body = Problem)))]
pub async fn active(
    _: InternalCaller,
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<TenantIds>, ApiError> {
    let limit = page.limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit", "from 1 to 1000"));
    }
    let items = tenants::active_ids(&state.pool, page.after, limit).await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().copied())
        .flatten();
    Ok(Json(TenantIds { items, next }))
}

/// Resolve a host's slug: 200 for active tenants, 423 for suspended ones, 404 otherwise.
#[utoipa::path(get, path = "/internal/tenants/by-slug/{slug}", tag = "internal",
    responses((status = 200, body = LookupView), (status = 404, body = Problem), (status = 423, body = Problem)))]
pub async fn lookup(
    _: InternalCaller,
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = tenants::find_by_slug(&state.pool, &slug)
        .await?
        .ok_or_else(no_tenant)?;
    match tenant.status.as_str() {
        "active" => Ok((
            [(header::CACHE_CONTROL, "private, max-age=30")],
            Json(LookupView::from(&tenant)),
        )),
        "suspended" => Err(ApiError::tenant_suspended()),
        _ => Err(no_tenant()),
    }
}

/// How project-service connects to a tenant's database.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DatabaseView {
    pub tenant_id: Uuid,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub username: String,
    pub password: String,
    pub schema_version: i64,
}

/// Connection details of an active tenant's database.
#[utoipa::path(get, path = "/internal/tenants/{id}/database", tag = "internal",
    responses((status = 200, body = DatabaseView), (status = 404, body = Problem), (status = 423, body = Problem)))]
pub async fn database(
    _: InternalCaller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = tenants::find(&state.pool, id)
        .await?
        .ok_or_else(no_tenant)?;
    match tenant.status.as_str() {
        "active" => {}
        "suspended" => return Err(ApiError::tenant_suspended()),
        _ => return Err(no_tenant()),
    }
    let cluster = state
        .clusters
        .get(&tenant.cluster)
        .ok_or_else(|| anyhow::anyhow!("cluster {} is not configured", tenant.cluster))?;
    let password = state.secret.decrypt(&tenant.role_password)?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(DatabaseView {
            tenant_id: tenant.id,
            host: cluster.host.clone(),
            port: cluster.port,
            database: tenant.database_name,
            username: tenant.role_name,
            password,
            schema_version: tenant.schema_version,
        }),
    ))
}

/// Suspend an active tenant: it stops resolving (423) until resumed.
#[utoipa::path(post, path = "/internal/tenants/{id}/suspend", tag = "internal",
    responses((status = 200, body = LookupView), (status = 404, body = Problem)))]
pub async fn suspend(
    _: InternalCaller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<LookupView>, ApiError> {
    let tenant = tenants::set_suspended(&state.pool, id, true)
        .await?
        .ok_or_else(no_tenant)?;
    Ok(Json(LookupView::from(&tenant)))
}

/// Resume a suspended tenant.
#[utoipa::path(post, path = "/internal/tenants/{id}/resume", tag = "internal",
    responses((status = 200, body = LookupView), (status = 404, body = Problem)))]
pub async fn resume(
    _: InternalCaller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<LookupView>, ApiError> {
    let tenant = tenants::set_suspended(&state.pool, id, false)
        .await?
        .ok_or_else(no_tenant)?;
    Ok(Json(LookupView::from(&tenant)))
}

#[derive(Debug, Deserialize)]
pub struct DeleteParams {
    /// Drop the database now instead of after the grace period.
    #[serde(default)]
    immediate: bool,
}

/// Delete a tenant: it stops resolving at once; its database and role are dropped after
/// `TENANT_DELETE_GRACE_HOURS`, or now with `?immediate=true`.
#[utoipa::path(delete, path = "/internal/tenants/{id}", tag = "internal",
    params(("immediate" = Option<bool>, Query, description = "Drop the database now")),
    responses((status = 202, description = "Scheduled"), (status = 204, description = "Dropped"), (status = 404, body = Problem)))]
pub async fn delete_tenant(
    _: InternalCaller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(params): Query<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    let grace = if params.immediate {
        chrono::Duration::zero()
    } else {
        chrono::Duration::hours(i64::from(state.config.tenant_delete_grace_hours))
    };
    let tenant = tenants::mark_deleting(&state.pool, id, chrono::Utc::now() + grace)
        .await?
        .ok_or_else(no_tenant)?;
    if params.immediate {
        lifecycle::remove(&state, &tenant).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Ok(StatusCode::ACCEPTED)
    }
}

/// The fleet migration job: at most one runs at a time per instance.
#[derive(Default)]
pub struct MigrationJob {
    running: bool,
    last: Option<Summary>,
    last_error: Option<String>,
}

pub type SharedJob = Arc<Mutex<MigrationJob>>;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MigrationStatus {
    pub running: bool,
    pub last: Option<Summary>,
    pub last_error: Option<String>,
}

/// Start migrating the template and every tenant database in the background.
#[utoipa::path(post, path = "/internal/migrations", tag = "internal",
    responses((status = 202, body = MigrationStatus), (status = 409, body = Problem)))]
pub async fn start_migration(
    _: InternalCaller,
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<MigrationStatus>), ApiError> {
    let mut job = state.migration_job.lock().await;
    if job.running {
        return Err(ApiError::Conflict("A migration is already running.".into()));
    }
    job.running = true;
    let status = MigrationStatus {
        running: true,
        last: job.last.clone(),
        last_error: None,
    };
    drop(job);
    let worker = state.clone();
    tokio::spawn(async move {
        let result = migrate::migrate_all(&worker, &worker.migrator, &|_, _| {}).await;
        let mut job = worker.migration_job.lock().await;
        job.running = false;
        match result {
            Ok(summary) => {
                job.last = Some(summary);
                job.last_error = None;
            }
            Err(err) => job.last_error = Some(format!("{err:#}")),
        }
    });
    Ok((StatusCode::ACCEPTED, Json(status)))
}

/// Whether a migration runs, and the summary of the last one.
#[utoipa::path(get, path = "/internal/migrations", tag = "internal", responses((status = 200, body = MigrationStatus)))]
pub async fn migration_status(
    _: InternalCaller,
    State(state): State<AppState>,
) -> Json<MigrationStatus> {
    let job = state.migration_job.lock().await;
    Json(MigrationStatus {
        running: job.running,
        last: job.last.clone(),
        last_error: job.last_error.clone(),
    })
}
