//! Time tracking: work logs on tasks (with the date worked), one running timer per user,
//! totals that roll subtasks up into their parents and the project, and a CSV export.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, NaiveDate, Utc};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::{FieldError, Problem};
use common::events::keys;
use common::extract::{FieldErrors, Json, Query, ValidJson, Validate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::project_of;
use crate::AppState;
use crate::db;
use crate::domain::activity::Change;
use crate::domain::project::Project;
use crate::tenant::{Tenant, TenantTx};

/// This resource's routes, under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks/{id}/worklogs", post(create).get(list))
        .route("/tasks/{id}/worklogs/{log_id}", delete(remove))
        .route("/tasks/{id}/timer/start", post(start))
        .route("/tasks/{id}/timer/stop", post(stop))
        .route("/tasks/{id}/time", get(task_time))
        .route("/projects/{id}/time", get(project_time))
        .route("/projects/{id}/worklogs.csv", get(export))
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WorkLog {
    pub id: Uuid,
    pub task_id: Uuid,
    pub project_id: Uuid,
    pub user_id: Uuid,
    pub minutes: i32,
    /// The day the work was done (not when it was logged).
    pub worked_on: NaiveDate,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

const LOG: &str =
    "select id, task_id, project_id, user_id, minutes, worked_on, note, created_at from work_logs";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkLog {
    /// 1 to 1440.
    pub minutes: i32,
    /// Default: today (UTC).
    pub worked_on: Option<NaiveDate>,
    #[serde(default)]
    pub note: String,
}

impl Validate for NewWorkLog {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors.check(
            (1..=1440).contains(&self.minutes),
            "minutes",
            "must be 1 to 1440",
        );
        errors.check(
            self.note.chars().count() <= 2000,
            "note",
            "must be at most 2000 characters",
        );
        errors.finish()
    }
}

/// Writes a work log with its activity row and `task.time_logged` event.
async fn log_time(
    tx: &mut TenantTx<'_>,
    user: &AuthUser,
    task: Uuid,
    project: Uuid,
    minutes: i32,
    worked_on: NaiveDate,
    note: &str,
) -> Result<WorkLog, ApiError> {
    let log: WorkLog = sqlx::query_as(
        "insert into work_logs (id, task_id, project_id, user_id, minutes, worked_on, note)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning id, task_id, project_id, user_id, minutes, worked_on, note, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(task)
    .bind(project)
    .bind(user.user_id)
    .bind(minutes)
    .bind(worked_on)
    .bind(note)
    .fetch_one(&mut **tx)
    .await?;
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
    let project = project_of(&mut tx, task).await?;
    let worked_on = req.worked_on.unwrap_or_else(|| Utc::now().date_naive());
    let log = log_time(
        &mut tx,
        &user,
        task,
        project,
        req.minutes,
        worked_on,
        &req.note,
    )
    .await?;
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
    project_of(&mut conn, task).await?;
    let logs = sqlx::query_as(&format!(
        "{LOG} where task_id = $1 order by id desc limit 1000"
    ))
    .bind(task)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(logs))
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
    let log: WorkLog = sqlx::query_as(&format!("{LOG} where id = $1 and task_id = $2 for update"))
        .bind(id)
        .bind(task)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::NotFound("There is no such work log.".into()))?;
    if log.user_id != user.user_id {
        user.require(Perm::TasksManage)?;
    }
    sqlx::query("delete from work_logs where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.record(Change::task(log.project_id, task, "time.deleted").before(&log))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Timer {
    pub task_id: Uuid,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimerStarted {
    pub timer: Timer,
    /// The work log of the timer this start stopped, if one was running.
    pub stopped: Option<WorkLog>,
}

/// Stops the caller's running timer, if any, logging its time (whole minutes, at least
/// one) on the day it started.
async fn stop_running(tx: &mut TenantTx<'_>, user: &AuthUser) -> Result<Option<WorkLog>, ApiError> {
    let running: Option<(Uuid, DateTime<Utc>)> =
        sqlx::query_as("delete from timers where user_id = $1 returning task_id, started_at")
            .bind(user.user_id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((task, started_at)) = running else {
        return Ok(None);
    };
    let project = project_of(tx, task).await?;
    let elapsed = (Utc::now() - started_at).num_seconds().max(0);
    let minutes = i32::try_from((elapsed + 30) / 60)
        .unwrap_or(1440)
        .clamp(1, 1440);
    let log = log_time(
        tx,
        user,
        task,
        project,
        minutes,
        started_at.date_naive(),
        "timer",
    )
    .await?;
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
    project_of(&mut tx, task).await?;
    // One start or stop at a time per user.
    sqlx::query("select pg_advisory_xact_lock(hashtext($1::text))")
        .bind(user.user_id)
        .execute(&mut *tx)
        .await?;
    let stopped = stop_running(&mut tx, &user).await?;
    let timer: Timer = sqlx::query_as(
        "insert into timers (user_id, task_id) values ($1, $2) returning task_id, started_at",
    )
    .bind(user.user_id)
    .bind(task)
    .fetch_one(&mut *tx)
    .await?;
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
    sqlx::query("select pg_advisory_xact_lock(hashtext($1::text))")
        .bind(user.user_id)
        .execute(&mut *tx)
        .await?;
    let on_this: bool = sqlx::query_scalar(
        "select exists(select 1 from timers where user_id = $1 and task_id = $2)",
    )
    .bind(user.user_id)
    .bind(task)
    .fetch_one(&mut *tx)
    .await?;
    if !on_this {
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskTime {
    /// Logged on the task itself.
    pub minutes: i64,
    /// The task and all its subtasks.
    pub total_minutes: i64,
}

/// Time on a task, with its subtasks rolled up.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/time", tag = "time",
    responses((status = 200, body = TaskTime), (status = 404, body = Problem)))]
pub async fn task_time(
    State(state): State<AppState>,
    user: AuthUser,
    Path(task): Path<Uuid>,
) -> Result<Json<TaskTime>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::TasksRead).await?;
    project_of(&mut conn, task).await?;
    let (minutes, total_minutes): (i64, i64) = sqlx::query_as(
        "with recursive tree as (select id from tasks where id = $1
             union all select t.id from tasks t join tree on t.parent_id = tree.id)
         select coalesce(sum(w.minutes) filter (where w.task_id = $1), 0)::bigint,
                coalesce(sum(w.minutes), 0)::bigint
         from work_logs w join tree on tree.id = w.task_id",
    )
    .bind(task)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Json(TaskTime {
        minutes,
        total_minutes,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// First day, inclusive.
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    pub to: Option<NaiveDate>,
    pub user_id: Option<Uuid>,
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Minutes {
    pub id: Uuid,
    pub minutes: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectTime {
    pub total_minutes: i64,
    /// Per user (`id` is the user).
    pub by_user: Vec<Minutes>,
    /// Per task (`id` is the task), its own logs only.
    pub by_task: Vec<Minutes>,
}

/// The filter of [`Range`] on work logs aliased `w`, bound as $1 project, $2 from,
/// $3 to, $4 user.
const RANGE: &str = "w.project_id = $1 and ($2::date is null or w.worked_on >= $2)
     and ($3::date is null or w.worked_on <= $3) and ($4::uuid is null or w.user_id = $4)";

/// Time on a project over a date range, in all and per user and task.
#[utoipa::path(get, path = "/api/v1/projects/{id}/time", tag = "time", params(Range),
    responses((status = 200, body = ProjectTime), (status = 404, body = Problem)))]
pub async fn project_time(
    State(state): State<AppState>,
    user: AuthUser,
    Path(project): Path<Uuid>,
    Query(range): Query<Range>,
) -> Result<Json<ProjectTime>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::ProjectsRead).await?;
    db::projects::find(&mut conn, project)
        .await?
        .ok_or_else(Project::missing)?;
    let grouped = |by: &str| {
        format!(
            "select w.{by} as id, sum(w.minutes)::bigint as minutes from work_logs w
             where {RANGE} group by w.{by} order by minutes desc, w.{by}"
        )
    };
    let by_user: Vec<Minutes> = sqlx::query_as(&grouped("user_id"))
        .bind(project)
        .bind(range.from)
        .bind(range.to)
        .bind(range.user_id)
        .fetch_all(&mut *conn)
        .await?;
    let by_task: Vec<Minutes> = sqlx::query_as(&grouped("task_id"))
        .bind(project)
        .bind(range.from)
        .bind(range.to)
        .bind(range.user_id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(Json(ProjectTime {
        total_minutes: by_user.iter().map(|m| m.minutes).sum(),
        by_user,
        by_task,
    }))
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
    db::projects::find(&mut conn, project)
        .await?
        .ok_or_else(Project::missing)?;
    let rows: Vec<(NaiveDate, String, Uuid, i32, String, DateTime<Utc>)> =
        sqlx::query_as(&format!(
        "select w.worked_on, p.key || '-' || t.number, w.user_id, w.minutes, w.note, w.created_at
         from work_logs w join tasks t on t.id = w.task_id join projects p on p.id = w.project_id
         where {RANGE} order by w.worked_on, w.id"
    ))
        .bind(project)
        .bind(range.from)
        .bind(range.to)
        .bind(range.user_id)
        .fetch_all(&mut *conn)
        .await?;
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
    for (worked_on, task, user_id, minutes, note, logged_at) in rows {
        // A leading = + - @ would be a formula to a spreadsheet: quote it as text.
        let note = if note.starts_with(['=', '+', '-', '@']) {
            format!("'{note}")
        } else {
            note
        };
        write(
            &mut csv,
            &[
                worked_on.to_string(),
                task,
                user_id.to_string(),
                minutes.to_string(),
                note,
                logged_at.to_rfc3339(),
            ],
        )?;
    }
    let body = csv
        .into_inner()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"worklogs.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}
