//! Projects: create (with a default board), list, read, update, delete; the board view
//! and the activity log.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::db::ConstraintExt;
use common::error::Problem;
use common::events::keys;
use common::extract::{Json, Query, ValidJson, if_match};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::access;
use crate::db::{self, idempotency, locks};
use crate::domain::activity::{ActivityFilter, ActivityPage, Change};
use crate::domain::board::{Board, BoardColumn};
use crate::domain::project::{NewProject, Project, ProjectChanges};
use crate::tenant::Tenant;

/// This resource's routes, under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects", post(create).get(list))
        .route("/projects/{id}", get(get_one).patch(update).delete(remove))
        .route("/projects/{id}/board", get(board))
        .route("/projects/{id}/activity", get(activity_log))
}

/// Creates a project with a default board (To do, In progress with a WIP limit of 5,
/// Done) and makes the creator its lead.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = NewProject,
    responses((status = 201, body = Project), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ValidJson(req): ValidJson<NewProject>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = Tenant::allow(&state, &user, Perm::ProjectsCreate)?;
    let key = idempotency::key(&headers)?;
    let limit = crate::upstream::plan_limits(&state, &user.tenant_slug)
        .await?
        .projects;
    let mut tx = tenant.begin().await?;
    if let Some(key) = &key
        && let Some((status, body)) = idempotency::replay(&mut tx, &user, key).await?
    {
        return Ok((status, Json(body)));
    }
    if let Some(limit) = limit {
        // Creates take turns while they count, so two cannot both take the last one.
        locks::take(&mut tx, locks::Lock::ProjectCreates).await?;
        if db::projects::count_active(&mut tx).await? >= limit {
            return Err(ApiError::plan_limit(format!(
                "The plan allows {limit} active projects; archive one or upgrade to create more."
            )));
        }
    }
    let project = db::projects::insert(&mut tx, &req, user.user_id)
        .await
        .on_constraint("projects_key_key", || {
            ApiError::Conflict(format!(
                "A project with the key {} exists already.",
                req.key
            ))
        })?;
    db::columns::insert_default_board(&mut tx, project.id).await?;
    db::members::put(&mut tx, project.id, user.user_id, "lead").await?;
    tx.record(Change::project(project.id, "project.created").after(&project))
        .await?;
    tx.emit(
        keys::PROJECT_CREATED,
        json!({"project_id": project.id, "key": project.key, "name": project.name,
               "visibility": project.visibility}),
    )
    .await?;
    let body = json!(project);
    if let Some(key) = &key {
        idempotency::remember(&mut tx, &user, key, StatusCode::CREATED, &body).await?;
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// The organisation's projects the caller reads, newest first (archived ones too).
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, body = Vec<Project>)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<Project>>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::ProjectsRead).await?;
    let (as_member, as_other) = (access::visible(&user, true), access::visible(&user, false));
    let projects =
        db::projects::list_readable(&mut conn, user.user_id, &as_member, &as_other).await?;
    Ok(Json(projects))
}

/// One project.
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects",
    responses((status = 200, body = Project), (status = 404, body = Problem)))]
pub async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Project>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::ProjectsRead).await?;
    access::readable(&mut conn, &user, id, Project::missing).await?;
    let project = db::projects::find(&mut conn, id).await?;
    Ok(Json(project.ok_or_else(Project::missing)?))
}

/// Renames, describes, archives or restores a project, or changes who reads it.
/// `If-Match: "<version>"` makes the write conditional (412 when stale).
#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects", request_body = ProjectChanges,
    responses((status = 200, body = Project), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    ValidJson(req): ValidJson<ProjectChanges>,
) -> Result<Json<Project>, ApiError> {
    let tenant = Tenant::allow(&state, &user, Perm::ProjectsManage)?;
    let expected = if_match(&headers)?;
    let mut tx = tenant.begin().await?;
    access::readable(&mut tx, &user, id, Project::missing).await?;
    let before = db::projects::lock(&mut tx, id)
        .await?
        .ok_or_else(Project::missing)?;
    if expected.is_some_and(|v| v != before.version) {
        return Err(ApiError::PreconditionFailed(
            "The project changed since you read it; read it again.".into(),
        ));
    }
    let after = db::projects::update(&mut tx, id, &req).await?;
    tx.record(
        Change::project(id, "project.updated")
            .before(&before)
            .after(&after),
    )
    .await?;
    let mut data = json!({"project_id": id, "name": req.name, "description": req.description,
                          "archived": req.archived});
    if after.visibility != before.visibility {
        data["visibility"] = json!(after.visibility);
    }
    tx.emit(keys::PROJECT_UPDATED, data).await?;
    tx.commit().await?;
    Ok(Json(after))
}

/// Deletes a project with its board, tasks and activity (archive it to keep them).
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects",
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::ProjectsManage).await?;
    access::readable(&mut tx, &user, id, Project::missing).await?;
    let project = db::projects::lock(&mut tx, id)
        .await?
        .ok_or_else(Project::missing)?;
    let files = db::attachments::hashes_of_project(&mut tx, id).await?;
    db::projects::delete(&mut tx, id).await?;
    crate::storage::forget_unreferenced(&state, user.tenant_id, &mut tx, &files).await?;
    tx.emit(
        keys::PROJECT_UPDATED,
        json!({"project_id": id, "key": project.key, "deleted": true}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The board in one call: the columns in order, each with its tasks in order.
#[utoipa::path(get, path = "/api/v1/projects/{id}/board", tag = "projects",
    responses((status = 200, body = Board), (status = 404, body = Problem)))]
pub async fn board(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Board>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::TasksRead).await?;
    access::readable(&mut conn, &user, id, Project::missing).await?;
    let project = db::projects::find(&mut conn, id)
        .await?
        .ok_or_else(Project::missing)?;
    let columns = db::columns::of_project(&mut conn, id).await?;
    let mut tasks = db::tasks::of_project(&mut conn, id)
        .await?
        .into_iter()
        .peekable();
    let columns = columns
        .into_iter()
        .map(|column| {
            let mut mine = Vec::new();
            while let Some(task) = tasks.next_if(|t| t.column_id == column.id) {
                mine.push(task);
            }
            BoardColumn {
                column,
                tasks: mine,
            }
        })
        .collect();
    Ok(Json(Board { project, columns }))
}

/// The project's activity log (or one task's), newest first, in pages.
#[utoipa::path(get, path = "/api/v1/projects/{id}/activity", tag = "projects", params(ActivityFilter),
    responses((status = 200, body = ActivityPage), (status = 404, body = Problem)))]
pub async fn activity_log(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Query(filter): Query<ActivityFilter>,
) -> Result<Json<ActivityPage>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::ProjectsRead).await?;
    let limit = filter.limit.unwrap_or(50).clamp(1, 200);
    access::readable(&mut conn, &user, id, Project::missing).await?;
    let items = db::activity::page(&mut conn, id, filter.task_id, filter.cursor, limit + 1).await?;
    let (items, next_cursor) = common::paging::page(items, limit, |a| a.id);
    Ok(Json(ActivityPage { items, next_cursor }))
}
