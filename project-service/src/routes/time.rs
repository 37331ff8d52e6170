//! Time totals (`tasks.read` / `projects.read`): a task's with its subtasks rolled up,
//! and a project's over a date range, per user and per task.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::Problem;
use common::extract::{Json, Query};
use uuid::Uuid;

use crate::AppState;
use crate::access;
use crate::db;
use crate::domain::project::Project;
use crate::domain::task::Task;
use crate::domain::time::{ProjectTime, Range, TaskTime};
use crate::tenant::Tenant;

/// This resource's routes, under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks/{id}/time", get(task_time))
        .route("/projects/{id}/time", get(project_time))
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
    let project = db::tasks::project_of(&mut conn, task)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut conn, &user, project, Task::missing).await?;
    let (minutes, total_minutes) = db::worklogs::task_minutes(&mut conn, task).await?;
    Ok(Json(TaskTime {
        minutes,
        total_minutes,
    }))
}

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
    access::readable(&mut conn, &user, project, Project::missing).await?;
    let by_user = db::worklogs::by_user(&mut conn, &range, project).await?;
    let by_task = db::worklogs::by_task(&mut conn, &range, project).await?;
    Ok(Json(ProjectTime {
        total_minutes: by_user.iter().map(|m| m.minutes).sum(),
        by_user,
        by_task,
    }))
}
