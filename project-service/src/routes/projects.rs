//! Projects: create (with a default board), list, read, update, and the board view.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::FieldError;
use common::error::Problem;
use common::events::keys;
use common::extract::{FieldErrors, Json, ValidJson, Validate};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::tasks::{self, Task};
use crate::AppState;
use crate::db::idempotency;
use crate::domain::activity::Change;
use crate::tenant::Tenant;
use common::extract::if_match;

/// This resource's routes, under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects", post(create).get(list))
        .route("/projects/{id}", get(get_one).patch(update).delete(remove))
        .route("/projects/{id}/board", get(board))
        .route("/projects/{id}/activity", get(activity_log))
}

/// The columns every new project's board starts with: (name, WIP limit, done).
const DEFAULT_COLUMNS: [(&str, Option<i32>, bool); 3] = [
    ("To do", None, false),
    ("In progress", Some(5), false),
    ("Done", None, true),
];

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub key: String,
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

const PROJECT: &str = "select id, key, name, description, archived, created_by, created_at, \
                       updated_at, version from projects";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// 2–10 characters, A–Z and 0–9, starting with a letter (task keys read `KEY-42`).
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

fn check_name(errors: &mut FieldErrors, name: &str) {
    errors.check(
        (1..=200).contains(&name.trim().chars().count()),
        "name",
        "must be 1 to 200 characters",
    );
}

impl Validate for NewProject {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let key = self.key.as_bytes();
        errors.check(
            (2..=10).contains(&key.len())
                && key[0].is_ascii_uppercase()
                && key
                    .iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
            "key",
            "must be 2 to 10 characters of A-Z and 0-9, starting with a letter",
        );
        check_name(&mut errors, &self.name);
        errors.check(
            self.description.chars().count() <= 10_000,
            "description",
            "must be at most 10000 characters",
        );
        errors.finish()
    }
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
    // One project create at a time per tenant, so two cannot both take the last one.
    sqlx::query("select pg_advisory_xact_lock(42)")
        .execute(&mut *tx)
        .await?;
    let active: i64 = sqlx::query_scalar("select count(*) from projects where not archived")
        .fetch_one(&mut *tx)
        .await?;
    if let Some(limit) = limit.filter(|l| active >= *l) {
        return Err(ApiError::plan_limit(format!(
            "The plan allows {limit} active projects; archive one or upgrade to create more."
        )));
    }
    let taken: bool = sqlx::query_scalar("select exists(select 1 from projects where key = $1)")
        .bind(&req.key)
        .fetch_one(&mut *tx)
        .await?;
    if taken {
        return Err(ApiError::Conflict(format!(
            "A project with the key {} exists already.",
            req.key
        )));
    }
    let project: Project = sqlx::query_as(
        "insert into projects (id, key, name, description, created_by) values ($1, $2, $3, $4, $5)
         returning id, key, name, description, archived, created_by, created_at, updated_at, version",
    )
    .bind(Uuid::now_v7())
    .bind(&req.key)
    .bind(req.name.trim())
    .bind(&req.description)
    .bind(user.user_id)
    .fetch_one(&mut *tx)
    .await?;
    for (position, (name, wip_limit, done)) in DEFAULT_COLUMNS.iter().enumerate() {
        sqlx::query(
            "insert into board_columns (id, project_id, name, position, wip_limit, done)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Uuid::now_v7())
        .bind(project.id)
        .bind(name)
        .bind(i32::try_from(position).expect("three columns"))
        .bind(wip_limit)
        .bind(done)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("insert into project_members (project_id, user_id, role) values ($1, $2, 'lead')")
        .bind(project.id)
        .bind(user.user_id)
        .execute(&mut *tx)
        .await?;
    tx.record(Change::project(project.id, "project.created").after(&project))
        .await?;
    tx.emit(
        keys::PROJECT_CREATED,
        json!({"project_id": project.id, "key": project.key, "name": project.name}),
    )
    .await?;
    let body = json!(project);
    if let Some(key) = &key {
        idempotency::remember(&mut tx, &user, key, StatusCode::CREATED, &body).await?;
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// The organisation's projects, newest first (archived ones too).
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, body = Vec<Project>)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<Project>>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::ProjectsRead).await?;
    let projects = sqlx::query_as(&format!("{PROJECT} order by id desc limit 500"))
        .fetch_all(&mut *conn)
        .await?;
    Ok(Json(projects))
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Project, ApiError> {
    sqlx::query_as(&format!("{PROJECT} where id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::NotFound("There is no such project.".into()))
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
    Ok(Json(find(&mut conn, id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub archived: Option<bool>,
}

impl Validate for ProjectChanges {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        if let Some(name) = &self.name {
            check_name(&mut errors, name);
        }
        errors.finish()
    }
}

/// Renames, describes, archives or restores a project. `If-Match: "<version>"` makes
/// the write conditional (412 when stale).
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
    let before: Project = sqlx::query_as(&format!("{PROJECT} where id = $1 for update"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::NotFound("There is no such project.".into()))?;
    if expected.is_some_and(|v| v != before.version) {
        return Err(ApiError::PreconditionFailed(
            "The project changed since you read it; read it again.".into(),
        ));
    }
    let after: Project = sqlx::query_as(
        "update projects set name = coalesce($2, name), description = coalesce($3, description),
             archived = coalesce($4, archived), updated_at = now(), version = version + 1
         where id = $1
         returning id, key, name, description, archived, created_by, created_at, updated_at, version",
    )
    .bind(id)
    .bind(req.name.as_deref().map(str::trim))
    .bind(&req.description)
    .bind(req.archived)
    .fetch_one(&mut *tx)
    .await?;
    tx.record(
        Change::project(id, "project.updated")
            .before(&before)
            .after(&after),
    )
    .await?;
    tx.emit(
        keys::PROJECT_UPDATED,
        json!({"project_id": id, "name": req.name, "description": req.description, "archived": req.archived}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Column {
    pub id: Uuid,
    pub name: String,
    pub position: i32,
    pub wip_limit: Option<i32>,
    pub done: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BoardColumn {
    #[serde(flatten)]
    pub column: Column,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Board {
    pub project: Project,
    pub columns: Vec<BoardColumn>,
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
    let project = find(&mut conn, id).await?;
    let columns: Vec<Column> = sqlx::query_as(
        "select id, name, position, wip_limit, done from board_columns
         where project_id = $1 order by position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut tasks = tasks::of_project(&mut conn, id)
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

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Activity {
    pub id: Uuid,
    pub task_id: Option<Uuid>,
    pub actor_id: Uuid,
    pub action: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ActivityFilter {
    /// Only this task's changes.
    pub task_id: Option<Uuid>,
    pub limit: Option<i64>,
    pub cursor: Option<Uuid>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityPage {
    pub items: Vec<Activity>,
    pub next_cursor: Option<Uuid>,
}

/// The project's activity log (or one task's), newest first, in pages.
#[utoipa::path(get, path = "/api/v1/projects/{id}/activity", tag = "projects", params(ActivityFilter),
    responses((status = 200, body = ActivityPage), (status = 404, body = Problem)))]
pub async fn activity_log(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    common::extract::Query(filter): common::extract::Query<ActivityFilter>,
) -> Result<Json<ActivityPage>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::ProjectsRead).await?;
    let limit = filter.limit.unwrap_or(50).clamp(1, 200);
    find(&mut conn, id).await?;
    let mut items: Vec<Activity> = sqlx::query_as(
        "select id, task_id, actor_id, action, before, after, occurred_at from activity
         where project_id = $1 and ($2::uuid is null or task_id = $2)
           and ($3::uuid is null or id < $3)
         order by id desc limit $4",
    )
    .bind(id)
    .bind(filter.task_id)
    .bind(filter.cursor)
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?;
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(usize::try_from(limit).unwrap_or(200));
        items.last().map(|a| a.id)
    });
    Ok(Json(ActivityPage {
        items,
        next_cursor: next_cursor.flatten(),
    }))
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
    let project = sqlx::query_as::<_, Project>(&format!("{PROJECT} where id = $1 for update"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::NotFound("There is no such project.".into()))?;
    // Subtasks reference their parents in the same table: drop them with the project.
    let files: Vec<String> =
        sqlx::query_scalar("select distinct sha256 from attachments where project_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
    sqlx::query("delete from projects where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    super::attachments::forget_unreferenced(&state, user.tenant_id, &mut tx, &files).await?;
    tx.emit(
        keys::PROJECT_UPDATED,
        json!({"project_id": id, "key": project.key, "deleted": true}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
