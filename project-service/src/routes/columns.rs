//! A board's columns: add, change, reorder and remove, positions kept dense.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{patch, post};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::Problem;
use common::extract::{Json, ValidJson};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::access;
use crate::db;
use crate::domain::activity::Change;
use crate::domain::column::{Column, ColumnChanges, NewColumn};
use crate::domain::project::Project;
use crate::tenant::Tenant;

/// This resource's routes, under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/columns", post(create))
        .route(
            "/projects/{id}/columns/{column_id}",
            patch(update).delete(remove),
        )
}

/// Locks the project's columns (changes to a board's columns take turns) and counts
/// them; 404 for a project that is not there or that `user` does not read.
async fn lock_board(
    conn: &mut PgConnection,
    user: &AuthUser,
    project: Uuid,
) -> Result<i32, ApiError> {
    access::readable(conn, user, project, Project::missing).await?;
    Ok(db::columns::lock_all(conn, project).await?)
}

/// Adds a column at a position (default: last).
#[utoipa::path(post, path = "/api/v1/projects/{id}/columns", tag = "projects", request_body = NewColumn,
    responses((status = 201, body = Column), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Path(project): Path<Uuid>,
    ValidJson(req): ValidJson<NewColumn>,
) -> Result<(StatusCode, Json<Column>), ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::ProjectsManage).await?;
    let count = lock_board(&mut tx, &user, project).await?;
    let position = req.position.unwrap_or(count).min(count);
    let column = db::columns::insert_at(&mut tx, project, &req, position).await?;
    tx.record(Change::project(project, "column.created").after(&column))
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(column)))
}

/// Renames a column, changes its WIP limit or `done` flag, or moves it.
#[utoipa::path(patch, path = "/api/v1/projects/{id}/columns/{column_id}", tag = "projects",
    request_body = ColumnChanges,
    responses((status = 200, body = Column), (status = 404, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path((project, id)): Path<(Uuid, Uuid)>,
    ValidJson(req): ValidJson<ColumnChanges>,
) -> Result<Json<Column>, ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::ProjectsManage).await?;
    let count = lock_board(&mut tx, &user, project).await?;
    let before = db::columns::find(&mut tx, project, id)
        .await?
        .ok_or_else(Column::missing)?;
    let position = req.position.map_or(before.position, |p| p.min(count - 1));
    let after = db::columns::update(&mut tx, project, &before, &req, position).await?;
    tx.record(
        Change::project(project, "column.updated")
            .before(&before)
            .after(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

/// Removes an empty column (409 while it holds tasks; a board keeps at least one).
#[utoipa::path(delete, path = "/api/v1/projects/{id}/columns/{column_id}", tag = "projects",
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path((project, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::ProjectsManage).await?;
    let count = lock_board(&mut tx, &user, project).await?;
    let column = db::columns::find(&mut tx, project, id)
        .await?
        .ok_or_else(Column::missing)?;
    if db::columns::holds_tasks(&mut tx, id).await? || count <= 1 {
        return Err(ApiError::Conflict(
            "Only an empty column, and not a board's last, can be removed; move its tasks first."
                .into(),
        ));
    }
    db::columns::delete(&mut tx, project, &column).await?;
    tx.record(Change::project(project, "column.removed").before(&column))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
