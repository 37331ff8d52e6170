//! The public API: projects, boards and tasks of the caller's tenant, each tenant in its
//! own database.

pub mod projects;
pub mod tasks;

use axum::Router;
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use common::ApiError;
use common::auth::AuthUser;
use common::events::Envelope;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::pools::Lease;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects",
            post(projects::create).get(projects::list),
        )
        .route(
            "/api/v1/projects/{id}",
            get(projects::get_one).patch(projects::update),
        )
        .route("/api/v1/projects/{id}/board", get(projects::board))
        .route("/api/v1/projects/{id}/tasks", post(tasks::create))
        .route(
            "/api/v1/tasks/{id}",
            get(tasks::get_one).patch(tasks::update),
        )
        .route("/api/v1/tasks/{id}/move", post(tasks::move_task))
}

/// The caller's tenant database. The tenant is the token's (`AuthUser` has checked it
/// against the gateway's `X-Tenant-Id`), so a token can only ever reach its own data.
pub async fn tenant_db(state: &AppState, user: &AuthUser) -> Result<Lease, ApiError> {
    state.pools.lease(user.tenant_id).await
}

/// Records a change in the activity log, in the change's transaction.
pub async fn activity(
    conn: &mut PgConnection,
    user: &AuthUser,
    project: Uuid,
    task: Option<Uuid>,
    action: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), ApiError> {
    sqlx::query(
        "insert into activity (id, project_id, task_id, actor_id, action, before, after)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::now_v7())
    .bind(project)
    .bind(task)
    .bind(user.user_id)
    .bind(action)
    .bind(before)
    .bind(after)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes an event to the tenant's outbox, in the change's transaction.
pub async fn emit(
    conn: &mut PgConnection,
    user: &AuthUser,
    kind: &str,
    data: Value,
) -> Result<(), ApiError> {
    let event = Envelope::new(kind, user.tenant_id, Some(user.user_id), data);
    let request_id = common::telemetry::current_request_id();
    common::events::outbox::enqueue(conn, &event, request_id.as_deref()).await?;
    Ok(())
}

/// The version an `If-Match: "<version>"` expects, if the request sent one.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i32>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest("If-Match must be a version this API gave out, like \"3\".".into())
        })
}
