//! The public API: projects, boards and tasks of the caller's tenant, each tenant in its
//! own database.

pub mod attachments;
pub mod columns;
pub mod comments;
pub mod members;
pub mod projects;
pub mod shared;
pub mod tasks;
pub mod time;

use axum::Router;
use axum::routing::{get, post};
use common::ApiError;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects",
            post(projects::create).get(projects::list),
        )
        .route(
            "/api/v1/projects/{id}",
            get(projects::get_one)
                .patch(projects::update)
                .delete(projects::remove),
        )
        .route("/api/v1/projects/{id}/board", get(projects::board))
        .route(
            "/api/v1/projects/{id}/activity",
            get(projects::activity_log),
        )
        .route("/api/v1/projects/{id}/members", get(members::list))
        .route(
            "/api/v1/projects/{id}/members/{user_id}",
            axum::routing::put(members::put).delete(members::remove),
        )
        .route("/api/v1/projects/{id}/columns", post(columns::create))
        .route(
            "/api/v1/projects/{id}/columns/{column_id}",
            axum::routing::patch(columns::update).delete(columns::remove),
        )
        .route(
            "/api/v1/projects/{id}/tasks",
            post(tasks::create).get(tasks::list),
        )
        .route("/api/v1/tasks/{id}/progress", get(tasks::progress))
        .route(
            "/api/v1/tasks/{id}/worklogs",
            post(time::create).get(time::list),
        )
        .route(
            "/api/v1/tasks/{id}/worklogs/{log_id}",
            axum::routing::delete(time::remove),
        )
        .route(
            "/api/v1/tasks/{id}/comments",
            post(comments::create).get(comments::list),
        )
        .route(
            "/api/v1/tasks/{id}/comments/{comment_id}",
            axum::routing::patch(comments::update).delete(comments::remove),
        )
        .route(
            "/api/v1/tasks/{id}/attachments",
            post(attachments::upload)
                .get(attachments::list)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/tasks/{id}/attachments/{attachment_id}",
            get(attachments::download).delete(attachments::remove),
        )
        .route("/shared/tasks/{id}", get(shared::task))
        .route("/shared/projects/{id}", get(shared::project))
        .route("/api/v1/tasks/{id}/timer/start", post(time::start))
        .route("/api/v1/tasks/{id}/timer/stop", post(time::stop))
        .route("/api/v1/tasks/{id}/time", get(time::task_time))
        .route("/api/v1/projects/{id}/time", get(time::project_time))
        .route("/api/v1/projects/{id}/worklogs.csv", get(time::export))
        .route(
            "/api/v1/tasks/{id}",
            get(tasks::get_one)
                .patch(tasks::update)
                .delete(tasks::remove),
        )
        .route("/api/v1/tasks/{id}/move", post(tasks::move_task))
}

/// The project of a task, or 404.
pub async fn project_of(conn: &mut PgConnection, task: Uuid) -> Result<Uuid, ApiError> {
    sqlx::query_scalar("select project_id from tasks where id = $1")
        .bind(task)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::NotFound("There is no such task.".into()))
}
