//! Comments on tasks (`comments.write` to write, `tasks.read` to read): replies one
//! level deep, and `@<user id>` mentions resolved to the tenant's members through
//! user-service (`task.comment_added` carries them).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{patch, post};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::Problem;
use common::events::keys;
use common::extract::{Json, ValidJson};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::access;
use crate::db;
use crate::domain::activity::Change;
use crate::domain::comment::{Comment, CommentChanges, NewComment, Shown, mentioned};
use crate::domain::task::Task;
use crate::tenant::Tenant;

/// This resource's routes, under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks/{id}/comments", post(create).get(list))
        .route(
            "/tasks/{id}/comments/{comment_id}",
            patch(update).delete(remove),
        )
}

/// The members of the caller's tenant that `body` mentions (user-service decides).
async fn mentions(state: &AppState, user: &AuthUser, body: &str) -> Result<Vec<Uuid>, ApiError> {
    let found =
        crate::upstream::members(state, user.tenant_id, &mentioned(body), "Mentions").await?;
    Ok(found.into_iter().map(|m| m.id).collect())
}

/// Comments a task (`comments.write`); mentions of members go out with the event.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/comments", tag = "comments", request_body = NewComment,
    responses((status = 201, body = Shown), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Path(task): Path<Uuid>,
    ValidJson(req): ValidJson<NewComment>,
) -> Result<(StatusCode, Json<Shown>), ApiError> {
    let tenant = Tenant::allow(&state, &user, Perm::CommentsWrite)?;
    let mentions = mentions(&state, &user, &req.body).await?;
    let mut tx = tenant.begin().await?;
    let project = db::tasks::project_of(&mut tx, task)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut tx, &user, project, Task::missing).await?;
    if let Some(parent) = req.parent_id
        && !db::comments::is_top_level(&mut tx, parent, task).await?
    {
        return Err(ApiError::validation(
            "parent_id",
            "is not a top-level comment of this task",
        ));
    }
    let new = db::comments::NewRow {
        task,
        project,
        author: user.user_id,
        parent: req.parent_id,
        body: &req.body,
        mentions: &mentions,
    };
    let comment = db::comments::insert(&mut tx, new).await?;
    tx.record(Change::task(project, task, "comment.added").after(&comment))
        .await?;
    tx.emit(
        keys::TASK_COMMENT_ADDED,
        json!({"task_id": task, "project_id": project, "comment_id": comment.id,
               "mentions": mentions, "parent_id": comment.parent_id}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(comment.into())))
}

/// A task's comments, oldest first (replies after their parents' siblings; use
/// `parent_id` to thread them).
#[utoipa::path(get, path = "/api/v1/tasks/{id}/comments", tag = "comments",
    responses((status = 200, body = Vec<Shown>), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Path(task): Path<Uuid>,
) -> Result<Json<Vec<Shown>>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::TasksRead).await?;
    let project = db::tasks::project_of(&mut conn, task)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut conn, &user, project, Task::missing).await?;
    let comments = db::comments::of_task(&mut conn, task).await?;
    Ok(Json(comments.into_iter().map(Shown::from).collect()))
}

/// The comment, locked, if the caller may change it: its author may; others may delete
/// (not edit) it with `tasks.manage`.
async fn own_or_manage(
    conn: &mut PgConnection,
    user: &AuthUser,
    task: Uuid,
    id: Uuid,
    manage_allowed: bool,
) -> Result<Comment, ApiError> {
    let comment = db::comments::lock(conn, task, id)
        .await?
        .ok_or_else(Comment::missing)?;
    if comment.author_id != user.user_id {
        if !manage_allowed {
            return Err(ApiError::Forbidden(
                "Only its author edits a comment.".into(),
            ));
        }
        user.require(Perm::TasksManage)?;
    }
    Ok(comment)
}

/// Edits your own comment.
#[utoipa::path(patch, path = "/api/v1/tasks/{id}/comments/{comment_id}", tag = "comments",
    request_body = CommentChanges,
    responses((status = 200, body = Shown), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path((task, id)): Path<(Uuid, Uuid)>,
    ValidJson(req): ValidJson<CommentChanges>,
) -> Result<Json<Shown>, ApiError> {
    let tenant = Tenant::allow(&state, &user, Perm::CommentsWrite)?;
    let mentions = mentions(&state, &user, &req.body).await?;
    let mut tx = tenant.begin().await?;
    let project = db::tasks::project_of(&mut tx, task)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut tx, &user, project, Task::missing).await?;
    let before = own_or_manage(&mut tx, &user, task, id, false).await?;
    let after = db::comments::update(&mut tx, id, &req.body, &mentions).await?;
    tx.record(
        Change::task(project, task, "comment.edited")
            .before(&before)
            .after(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after.into()))
}

/// Deletes a comment (and its replies): your own, or any with `tasks.manage`.
#[utoipa::path(delete, path = "/api/v1/tasks/{id}/comments/{comment_id}", tag = "comments",
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path((task, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::CommentsWrite).await?;
    let project = db::tasks::project_of(&mut tx, task)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut tx, &user, project, Task::missing).await?;
    let before = own_or_manage(&mut tx, &user, task, id, true).await?;
    db::comments::delete(&mut tx, id).await?;
    tx.record(Change::task(project, task, "comment.deleted").before(&before))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
