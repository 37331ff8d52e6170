//! A board's columns: add, change, reorder and remove, positions kept dense.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{patch, post};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::{FieldError, Problem};
use common::extract::{FieldErrors, Json, ValidJson, Validate};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::projects::Column;
use crate::AppState;
use crate::domain::activity::Change;
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

const COLUMN: &str = "select id, name, position, wip_limit, done from board_columns";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewColumn {
    pub name: String,
    pub wip_limit: Option<i32>,
    #[serde(default)]
    pub done: bool,
    /// 0-based; default and past the end: last.
    pub position: Option<i32>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnChanges {
    pub name: Option<String>,
    /// A limit, or `null` for none.
    #[serde(default, deserialize_with = "some")]
    pub wip_limit: Option<Option<i32>>,
    pub done: Option<bool>,
    /// Moves the column to this 0-based position.
    pub position: Option<i32>,
}

fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i32>>, D::Error> {
    Option::<i32>::deserialize(d).map(Some)
}

fn check(errors: &mut FieldErrors, name: Option<&str>, wip: Option<i32>, position: Option<i32>) {
    if let Some(name) = name {
        errors.check(
            (1..=100).contains(&name.trim().chars().count()),
            "name",
            "must be 1 to 100 characters",
        );
    }
    if let Some(wip) = wip {
        errors.check(wip > 0, "wip_limit", "must be at least 1");
    }
    if let Some(position) = position {
        errors.check(position >= 0, "position", "must not be negative");
    }
}

impl Validate for NewColumn {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        check(&mut errors, Some(&self.name), self.wip_limit, self.position);
        errors.finish()
    }
}

impl Validate for ColumnChanges {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        check(
            &mut errors,
            self.name.as_deref(),
            self.wip_limit.flatten(),
            self.position,
        );
        errors.finish()
    }
}

/// Locks the project's columns (all moves of columns are serialised per project) and
/// counts them.
async fn lock_board(conn: &mut PgConnection, project: Uuid) -> Result<i32, ApiError> {
    super::projects::find(&mut *conn, project).await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "select id from board_columns where project_id = $1 order by id for update",
    )
    .bind(project)
    .fetch_all(&mut *conn)
    .await?;
    Ok(i32::try_from(ids.len()).unwrap_or(i32::MAX))
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
    let count = lock_board(&mut tx, project).await?;
    let position = req.position.unwrap_or(count).min(count);
    sqlx::query(
        "update board_columns set position = position + 1 where project_id = $1 and position >= $2",
    )
    .bind(project)
    .bind(position)
    .execute(&mut *tx)
    .await?;
    let column: Column = sqlx::query_as(
        "insert into board_columns (id, project_id, name, position, wip_limit, done)
         values ($1, $2, $3, $4, $5, $6) returning id, name, position, wip_limit, done",
    )
    .bind(Uuid::now_v7())
    .bind(project)
    .bind(req.name.trim())
    .bind(position)
    .bind(req.wip_limit)
    .bind(req.done)
    .fetch_one(&mut *tx)
    .await?;
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
    let count = lock_board(&mut tx, project).await?;
    let before: Column = sqlx::query_as(&format!("{COLUMN} where id = $1 and project_id = $2"))
        .bind(id)
        .bind(project)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::NotFound("There is no such column in this project.".into()))?;
    let position = req.position.map_or(before.position, |p| p.min(count - 1));
    if position != before.position {
        let (from, to) = (before.position, position);
        sqlx::query(
            "update board_columns set position = case
                 when $3 > $2 and position > $2 and position <= $3 then position - 1
                 when $3 < $2 and position >= $3 and position < $2 then position + 1
                 else position end
             where project_id = $1 and id <> $4",
        )
        .bind(project)
        .bind(from)
        .bind(to)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    let after: Column = sqlx::query_as(
        "update board_columns set name = coalesce($2, name), wip_limit = $3,
             done = coalesce($4, done), position = $5
         where id = $1 returning id, name, position, wip_limit, done",
    )
    .bind(id)
    .bind(req.name.as_deref().map(str::trim))
    .bind(req.wip_limit.unwrap_or(before.wip_limit))
    .bind(req.done)
    .bind(position)
    .fetch_one(&mut *tx)
    .await?;
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
    let count = lock_board(&mut tx, project).await?;
    let column: Column = sqlx::query_as(&format!("{COLUMN} where id = $1 and project_id = $2"))
        .bind(id)
        .bind(project)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::NotFound("There is no such column in this project.".into()))?;
    let holds: bool = sqlx::query_scalar("select exists(select 1 from tasks where column_id = $1)")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if holds || count <= 1 {
        return Err(ApiError::Conflict(
            "Only an empty column, and not a board's last, can be removed; move its tasks first."
                .into(),
        ));
    }
    sqlx::query("delete from board_columns where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "update board_columns set position = position - 1 where project_id = $1 and position > $2",
    )
    .bind(project)
    .bind(column.position)
    .execute(&mut *tx)
    .await?;
    tx.record(Change::project(project, "column.removed").before(&column))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
