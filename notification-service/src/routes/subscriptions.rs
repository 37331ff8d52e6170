//! Watching and unwatching a task: a watcher is told of its comments and status changes;
//! unwatching silences even its reporter, assignee and commenters. Anyone who may read
//! tasks sets their own; with `tasks.manage`, someone else's.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::Problem;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::db;

/// This resource's routes, under `/api/v1/notifications`.
pub fn router() -> Router<AppState> {
    Router::new().route("/subscriptions/tasks/{task_id}", put(watch).delete(unwatch))
}

/// Whose watch to set (default: the caller's).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Watcher {
    pub user_id: Option<Uuid>,
}

/// Starts watching the task (the caller, or `user_id` with `tasks.manage`).
#[utoipa::path(put, path = "/api/v1/notifications/subscriptions/tasks/{task_id}",
    tag = "notifications", request_body(content = Option<Watcher>),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn watch(
    State(state): State<AppState>,
    user: AuthUser,
    Path(task): Path<Uuid>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    set(&state, &user, task, &body, true).await
}

/// Stops watching the task, and silences it for the caller (or `user_id` with
/// `tasks.manage`) even as its reporter, assignee or commenter.
#[utoipa::path(delete, path = "/api/v1/notifications/subscriptions/tasks/{task_id}",
    tag = "notifications", request_body(content = Option<Watcher>),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn unwatch(
    State(state): State<AppState>,
    user: AuthUser,
    Path(task): Path<Uuid>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    set(&state, &user, task, &body, false).await
}

async fn set(
    state: &AppState,
    user: &AuthUser,
    task: Uuid,
    body: &[u8],
    watching: bool,
) -> Result<StatusCode, ApiError> {
    user.require(Perm::TasksRead)?;
    let watcher: Watcher = if body.iter().all(u8::is_ascii_whitespace) {
        Watcher::default()
    } else {
        common::extract::parse_json(body)?
    };
    let target = watcher.user_id.unwrap_or(user.user_id);
    if target != user.user_id {
        user.require(Perm::TasksManage)?;
    }
    let conn = state.databases.connect(user.tenant_id).await?;
    let mut tx = conn.begin().await?;
    db::tasks::find(&mut tx, task)
        .await?
        .ok_or_else(|| ApiError::NotFound("There is no such task.".into()))?;
    db::tasks::set_watch(&mut tx, task, target, watching, user.user_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
