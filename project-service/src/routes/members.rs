//! A project's members and their project role (`lead`, `member`, `viewer`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{self, get};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::Problem;
use common::events::keys;
use common::extract::{Json, ValidJson};
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::access;
use crate::db;
use crate::domain::activity::Change;
use crate::domain::member::{Member, MemberRole};
use crate::domain::project::Project;
use crate::tenant::Tenant;

/// This resource's routes, under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/members", get(list))
        .route(
            "/projects/{id}/members/{user_id}",
            routing::put(put).delete(remove),
        )
}

/// The project's members.
#[utoipa::path(get, path = "/api/v1/projects/{id}/members", tag = "projects",
    responses((status = 200, body = Vec<Member>), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Path(project): Path<Uuid>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::ProjectsRead).await?;
    access::readable(&mut conn, &user, project, Project::missing).await?;
    Ok(Json(db::members::of_project(&mut conn, project).await?))
}

/// Adds a member (emits `project.user_added`) or changes a member's role.
#[utoipa::path(put, path = "/api/v1/projects/{id}/members/{user_id}", tag = "projects",
    request_body = MemberRole,
    responses((status = 200, body = Member), (status = 201, body = Member), (status = 404, body = Problem)))]
pub async fn put(
    State(state): State<AppState>,
    user: AuthUser,
    Path((project, member)): Path<(Uuid, Uuid)>,
    ValidJson(req): ValidJson<MemberRole>,
) -> Result<(StatusCode, Json<Member>), ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::ProjectsManage).await?;
    access::readable(&mut tx, &user, project, Project::missing).await?;
    let before = db::members::lock_role(&mut tx, project, member).await?;
    let saved = db::members::put(&mut tx, project, member, &req.role).await?;
    let mut change = Change::project(project, "project.member_set")
        .after(json!({"user_id": member, "role": req.role}));
    if let Some(role) = &before {
        change = change.before(json!({"user_id": member, "role": role}));
    }
    tx.record(change).await?;
    if before.is_none() {
        tx.emit(
            keys::PROJECT_USER_ADDED,
            json!({"project_id": project, "user_id": member, "role": req.role}),
        )
        .await?;
    }
    tx.commit().await?;
    let status = if before.is_none() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(saved)))
}

/// Removes a member from the project (emits `project.user_removed`).
#[utoipa::path(delete, path = "/api/v1/projects/{id}/members/{user_id}", tag = "projects",
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path((project, member)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::ProjectsManage).await?;
    access::readable(&mut tx, &user, project, Project::missing).await?;
    let role = db::members::delete(&mut tx, project, member)
        .await?
        .ok_or_else(|| ApiError::NotFound("No such member of this project.".into()))?;
    tx.record(
        Change::project(project, "project.member_removed")
            .before(json!({"user_id": member, "role": role})),
    )
    .await?;
    tx.emit(
        keys::PROJECT_USER_REMOVED,
        json!({"project_id": project, "user_id": member}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
