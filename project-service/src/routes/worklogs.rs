//! Work logs on tasks (`time.write` to log, `tasks.read` / `projects.read` to read), and
//! a project's logs as a CSV download.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{NaiveDate, Utc};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::Problem;
use common::events::keys;
use common::extract::{Json, Query, ValidJson};
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::access;
use crate::db;
use crate::domain::activity::Change;
use crate::domain::project::Project;
use crate::domain::task::Task;
use crate::domain::time::{ExportRow, NewWorkLog, Range, WorkLog};
use crate::tenant::{Tenant, TenantTx};

/// This resource's routes, under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks/{id}/worklogs", post(create).get(list))
        .route("/tasks/{id}/worklogs/{log_id}", delete(remove))
        .route("/projects/{id}/worklogs.csv", get(export))
}

/// Writes the caller's work log on `task` with its activity row and `task.time_logged`
/// event (a logged time, and a stopped timer).
pub(super) async fn log(
    tx: &mut TenantTx<'_>,
    user: &AuthUser,
    task: Uuid,
    minutes: i32,
    worked_on: NaiveDate,
    note: &str,
) -> Result<WorkLog, ApiError> {
    let project = db::tasks::project_of(tx, task)
        .await?
        .ok_or_else(Task::missing)?;
    let new = db::worklogs::NewRow {
        task,
        project,
        user: user.user_id,
        minutes,
        worked_on,
        note,
    };
    let log = db::worklogs::insert(tx, new).await?;
    tx.record(Change::task(project, task, "time.logged").after(&log))
        .await?;
    tx.emit(
        keys::TASK_TIME_LOGGED,
        json!({"task_id": task, "project_id": project, "user_id": user.user_id,
               "minutes": minutes, "worked_on": worked_on, "work_log_id": log.id}),
    )
    .await?;
    Ok(log)
}

/// Logs time on a task.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/worklogs", tag = "time", request_body = NewWorkLog,
    responses((status = 201, body = WorkLog), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Path(task): Path<Uuid>,
    ValidJson(req): ValidJson<NewWorkLog>,
) -> Result<(StatusCode, Json<WorkLog>), ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::TimeWrite).await?;
    let project = db::tasks::project_of(&mut tx, task)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut tx, &user, project, Task::missing).await?;
    let worked_on = req.worked_on.unwrap_or_else(|| Utc::now().date_naive());
    let log = log(&mut tx, &user, task, req.minutes, worked_on, &req.note).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(log)))
}

/// A task's work logs, newest first.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/worklogs", tag = "time",
    responses((status = 200, body = Vec<WorkLog>), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Path(task): Path<Uuid>,
) -> Result<Json<Vec<WorkLog>>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::TasksRead).await?;
    let project = db::tasks::project_of(&mut conn, task)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut conn, &user, project, Task::missing).await?;
    Ok(Json(db::worklogs::of_task(&mut conn, task).await?))
}

/// Deletes a work log: your own, or anyone's with `tasks.manage`.
#[utoipa::path(delete, path = "/api/v1/tasks/{id}/worklogs/{log_id}", tag = "time",
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path((task, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::TimeWrite).await?;
    let log = db::worklogs::lock(&mut tx, task, id)
        .await?
        .ok_or_else(WorkLog::missing)?;
    access::readable(&mut tx, &user, log.project_id, WorkLog::missing).await?;
    if log.user_id != user.user_id {
        user.require(Perm::TasksManage)?;
    }
    db::worklogs::delete(&mut tx, id).await?;
    tx.record(Change::task(log.project_id, task, "time.deleted").before(&log))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The project's work logs over a date range as CSV (a download).
#[utoipa::path(get, path = "/api/v1/projects/{id}/worklogs.csv", tag = "time", params(Range),
    responses((status = 200, description = "CSV: worked_on, task, user_id, minutes, note, logged_at", content_type = "text/csv")))]
pub async fn export(
    State(state): State<AppState>,
    user: AuthUser,
    Path(project): Path<Uuid>,
    Query(range): Query<Range>,
) -> Result<Response, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::ProjectsRead).await?;
    access::readable(&mut conn, &user, project, Project::missing).await?;
    let rows = db::worklogs::export(&mut conn, &range, project).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"worklogs.csv\"",
            ),
        ],
        csv(rows)?,
    )
        .into_response())
}

/// The export's CSV. A note starting with `= + - @` would be a formula to a spreadsheet:
/// it is quoted as text with a leading `'`.
fn csv(rows: Vec<ExportRow>) -> Result<Vec<u8>, ApiError> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    let write = |csv: &mut csv::Writer<Vec<u8>>, record: &[String]| {
        csv.write_record(record)
            .map_err(|e| ApiError::Internal(e.into()))
    };
    write(
        &mut csv,
        &[
            "worked_on",
            "task",
            "user_id",
            "minutes",
            "note",
            "logged_at",
        ]
        .map(String::from),
    )?;
    for row in rows {
        let note = if row.note.starts_with(['=', '+', '-', '@']) {
            format!("'{}", row.note)
        } else {
            row.note
        };
        write(
            &mut csv,
            &[
                row.worked_on.to_string(),
                row.task,
                row.user_id.to_string(),
                row.minutes.to_string(),
                note,
                row.logged_at.to_rfc3339(),
            ],
        )?;
    }
    csv.into_inner()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))
}
