//! Comments on tasks: markdown kept as written and rendered to sanitised HTML when
//! shown, replies one level deep, and `@<user id>` mentions resolved to the tenant's
//! members through user-service (`task.comment_added` carries them).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{patch, post};
use chrono::{DateTime, Utc};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::{FieldError, Problem};
use common::events::keys;
use common::extract::{FieldErrors, Json, ValidJson, Validate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::project_of;
use crate::AppState;
use crate::domain::activity::Change;
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

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Comment {
    pub id: Uuid,
    pub task_id: Uuid,
    pub author_id: Uuid,
    /// The comment this one answers (replies are one level deep).
    pub parent_id: Option<Uuid>,
    /// Markdown, as written.
    pub body: String,
    /// Members mentioned as `@<user id>`.
    pub mentions: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub edited: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Shown {
    #[serde(flatten)]
    pub comment: Comment,
    /// `body` rendered to HTML with anything unsafe removed (no scripts, no handlers).
    pub html: String,
}

const COMMENT: &str = "select id, task_id, author_id, parent_id, body, mentions, created_at, \
                       updated_at, edited from comments";

/// Markdown to HTML that is safe to put in a page: raw HTML in the text is escaped,
/// and the result goes through ammonia's allow-list.
pub fn render(markdown: &str) -> String {
    let mut options = pulldown_cmark::Options::empty();
    options.insert(pulldown_cmark::Options::ENABLE_STRIKETHROUGH);
    options.insert(pulldown_cmark::Options::ENABLE_TABLES);
    let events = pulldown_cmark::Parser::new_ext(markdown, options).map(|event| match event {
        pulldown_cmark::Event::Html(html) | pulldown_cmark::Event::InlineHtml(html) => {
            pulldown_cmark::Event::Text(html)
        }
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&html)
        .to_string()
}

fn shown(comment: Comment) -> Shown {
    let html = render(&comment.body);
    Shown { comment, html }
}

/// The user ids written as `@<uuid>` in `body`.
fn mentioned(body: &str) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = body
        .split('@')
        .skip(1)
        .filter_map(|rest| rest.get(..36).and_then(|s| Uuid::parse_str(s).ok()))
        .collect();
    ids.sort();
    ids.dedup();
    ids.truncate(50);
    ids
}

/// Which of `ids` are members of the caller's tenant (user-service decides).
async fn members(state: &AppState, user: &AuthUser, ids: &[Uuid]) -> Result<Vec<Uuid>, ApiError> {
    let found = crate::upstream::members(state, user.tenant_id, ids, "Mentions").await?;
    Ok(found.into_iter().map(|m| m.id).collect())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    /// Markdown; mention a member with `@<their user id>`.
    pub body: String,
    /// Answer this comment (a top-level comment of the same task).
    pub parent_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentChanges {
    pub body: String,
}

fn check_body(body: &str) -> Result<(), Vec<FieldError>> {
    let mut errors = FieldErrors::new();
    errors.check(
        (1..=20_000).contains(&body.trim().chars().count()),
        "body",
        "must be 1 to 20000 characters",
    );
    errors.finish()
}

impl Validate for NewComment {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        check_body(&self.body)
    }
}

impl Validate for CommentChanges {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        check_body(&self.body)
    }
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
    let mentions = members(&state, &user, &mentioned(&req.body)).await?;
    let mut tx = tenant.begin().await?;
    let project = project_of(&mut tx, task).await?;
    if let Some(parent) = req.parent_id {
        let top_level_here: bool = sqlx::query_scalar(
            "select exists(select 1 from comments where id = $1 and task_id = $2 and parent_id is null)",
        )
        .bind(parent)
        .bind(task)
        .fetch_one(&mut *tx)
        .await?;
        if !top_level_here {
            return Err(ApiError::validation(
                "parent_id",
                "is not a top-level comment of this task",
            ));
        }
    }
    let comment: Comment = sqlx::query_as(
        "insert into comments (id, task_id, project_id, author_id, parent_id, body, mentions)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning id, task_id, author_id, parent_id, body, mentions, created_at, updated_at, edited",
    )
    .bind(Uuid::now_v7())
    .bind(task)
    .bind(project)
    .bind(user.user_id)
    .bind(req.parent_id)
    .bind(&req.body)
    .bind(&mentions)
    .fetch_one(&mut *tx)
    .await?;
    tx.record(Change::task(project, task, "comment.added").after(&comment))
        .await?;
    tx.emit(
        keys::TASK_COMMENT_ADDED,
        json!({"task_id": task, "project_id": project, "comment_id": comment.id,
               "mentions": mentions, "parent_id": comment.parent_id}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(shown(comment))))
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
    project_of(&mut conn, task).await?;
    let comments: Vec<Comment> = of_task(&mut conn, task).await?;
    Ok(Json(comments.into_iter().map(shown).collect()))
}

/// A task's comments, oldest first.
pub async fn of_task(conn: &mut PgConnection, task: Uuid) -> Result<Vec<Comment>, ApiError> {
    Ok(sqlx::query_as(&format!(
        "{COMMENT} where task_id = $1 order by id limit 1000"
    ))
    .bind(task)
    .fetch_all(conn)
    .await?)
}

async fn own_or_manage(
    conn: &mut PgConnection,
    user: &AuthUser,
    task: Uuid,
    id: Uuid,
    manage_allowed: bool,
) -> Result<Comment, ApiError> {
    let comment: Comment = sqlx::query_as(&format!(
        "{COMMENT} where id = $1 and task_id = $2 for update"
    ))
    .bind(id)
    .bind(task)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::NotFound("There is no such comment.".into()))?;
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
    let mentions = members(&state, &user, &mentioned(&req.body)).await?;
    let mut tx = tenant.begin().await?;
    let project = project_of(&mut tx, task).await?;
    let before = own_or_manage(&mut tx, &user, task, id, false).await?;
    let after: Comment = sqlx::query_as(
        "update comments set body = $2, mentions = $3, edited = true, updated_at = now()
         where id = $1
         returning id, task_id, author_id, parent_id, body, mentions, created_at, updated_at, edited",
    )
    .bind(id)
    .bind(&req.body)
    .bind(&mentions)
    .fetch_one(&mut *tx)
    .await?;
    tx.record(
        Change::task(project, task, "comment.edited")
            .before(&before)
            .after(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(shown(after)))
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
    let project = project_of(&mut tx, task).await?;
    let before = own_or_manage(&mut tx, &user, task, id, true).await?;
    sqlx::query("delete from comments where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.record(Change::task(project, task, "comment.deleted").before(&before))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::{mentioned, render};

    #[test]
    fn rendering_escapes_scripts_and_keeps_markdown() {
        let html = render(
            "**hi** <script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>",
        );
        assert!(html.contains("<strong>hi</strong>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "shown as text: {html}");
    }

    #[test]
    fn mentions_are_user_ids_after_an_at_sign() {
        let a = uuid::Uuid::now_v7();
        let b = uuid::Uuid::now_v7();
        let found = mentioned(&format!(
            "ping @{a} and @{b}, again @{a}; mail me@example.com @nobody"
        ));
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(found, want);
    }
}
