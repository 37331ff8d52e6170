//! One running timer per user (`time.write`): starting one stops (and logs) the one
//! running elsewhere; stopping logs the elapsed whole minutes on the day it started.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use chrono::Utc;
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::Problem;
use common::extract::Json;
use uuid::Uuid;

use crate::AppState;
use crate::access;
use crate::db::{self, locks};
use crate::domain::task::Task;
use crate::domain::time::{TimerStarted, WorkLog};
use crate::tenant::{Tenant, TenantTx};

/// This resource's routes, under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks/{id}/timer/start", post(start))
        .route("/tasks/{id}/timer/stop", post(stop))
}

/// Stops the caller's running timer, if any, logging its time (whole minutes, at least
/// one) on the day it started.
async fn stop_running(tx: &mut TenantTx<'_>, user: &AuthUser) -> Result<Option<WorkLog>, ApiError> {
    let Some(timer) = db::timers::take(tx, user.user_id).await? else {
        return Ok(None);
    };
    let minutes = timer.minutes(Utc::now());
    let worked_on = timer.started_at.date_naive();
    let log = super::worklogs::log(tx, user, timer.task_id, minutes, worked_on, "timer").await?;
    Ok(Some(log))
}

/// Starts the caller's timer on this task; a timer running elsewhere is stopped first.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/timer/start", tag = "time",
    responses((status = 201, body = TimerStarted), (status = 404, body = Problem)))]
pub async fn start(
    State(state): State<AppState>,
    user: AuthUser,
    Path(task): Path<Uuid>,
) -> Result<(StatusCode, Json<TimerStarted>), ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::TimeWrite).await?;
    let project = db::tasks::project_of(&mut tx, task)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut tx, &user, project, Task::missing).await?;
    locks::take(&mut tx, locks::Lock::Timer(user.user_id)).await?;
    let stopped = stop_running(&mut tx, &user).await?;
    let timer = db::timers::start(&mut tx, user.user_id, task).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(TimerStarted { timer, stopped })))
}

/// Stops the caller's timer on this task and logs the elapsed time.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/timer/stop", tag = "time",
    responses((status = 200, body = WorkLog), (status = 409, body = Problem)))]
pub async fn stop(
    State(state): State<AppState>,
    user: AuthUser,
    Path(task): Path<Uuid>,
) -> Result<Json<WorkLog>, ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::TimeWrite).await?;
    locks::take(&mut tx, locks::Lock::Timer(user.user_id)).await?;
    if !db::timers::runs_on(&mut tx, user.user_id, task).await? {
        return Err(ApiError::Conflict(
            "You have no timer running on this task.".into(),
        ));
    }
    let log = stop_running(&mut tx, &user)
        .await?
        .expect("a timer was running");
    tx.commit().await?;
    Ok(Json(log))
}
