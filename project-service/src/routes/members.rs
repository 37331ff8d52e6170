//! A project's members and their project role (`lead`, `member`, `viewer`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{self, get};
use chrono::{DateTime, Utc};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::{FieldError, Problem};
use common::events::keys;
use common::extract::{FieldErrors, Json, ValidJson, Validate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::domain::activity::Change;
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

const ROLES: [&str; 3] = ["lead", "member", "viewer"];

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub role: String,
    pub added_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRole {
    /// `lead`, `member` or `viewer`.
    pub role: String,
}

impl Validate for MemberRole {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors.check(
            ROLES.contains(&self.role.as_str()),
            "role",
            "must be one of lead, member, viewer",
        );
        errors.finish()
    }
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
    super::projects::find(&mut conn, project).await?;
    let members = sqlx::query_as(
        "select user_id, role, added_at from project_members where project_id = $1 order by added_at",
    )
    .bind(project)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(members))
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
    super::projects::find(&mut tx, project).await?;
    let before: Option<String> = sqlx::query_scalar(
        "select role from project_members where project_id = $1 and user_id = $2 for update",
    )
    .bind(project)
    .bind(member)
    .fetch_optional(&mut *tx)
    .await?;
    let saved: Member = sqlx::query_as(
        "insert into project_members (project_id, user_id, role) values ($1, $2, $3)
         on conflict (project_id, user_id) do update set role = excluded.role
         returning user_id, role, added_at",
    )
    .bind(project)
    .bind(member)
    .bind(&req.role)
    .fetch_one(&mut *tx)
    .await?;
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

/// Removes a member from the project.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/members/{user_id}", tag = "projects",
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path((project, member)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::ProjectsManage).await?;
    let removed: Option<String> = sqlx::query_scalar(
        "delete from project_members where project_id = $1 and user_id = $2 returning role",
    )
    .bind(project)
    .bind(member)
    .fetch_optional(&mut *tx)
    .await?;
    let role =
        removed.ok_or_else(|| ApiError::NotFound("No such member of this project.".into()))?;
    tx.record(
        Change::project(project, "project.member_removed")
            .before(json!({"user_id": member, "role": role})),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
