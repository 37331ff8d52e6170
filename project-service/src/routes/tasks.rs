//! Tasks: create (numbered per project, `WEB-42`), read, update, and move between
//! columns under WIP limits.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use chrono::NaiveDate;
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

use crate::AppState;
use crate::db::{self, idempotency};
use crate::domain::activity::Change;
use crate::domain::project::Project;
pub use crate::domain::task::Task;
use crate::tenant::Tenant;
use common::extract::if_match;

/// This resource's routes, under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/tasks", post(create).get(list))
        .route("/tasks/{id}", get(get_one).patch(update).delete(remove))
        .route("/tasks/{id}/move", post(move_task))
        .route("/tasks/{id}/progress", get(progress))
}

const PRIORITIES: [&str; 4] = ["low", "medium", "high", "urgent"];

const TASK: &str = "select t.id, t.project_id, t.number, p.key || '-' || t.number as key, \
    t.title, t.description, t.column_id, t.position, t.priority, t.assignee_id, \
    t.reporter_id, t.labels, t.due_date, t.estimate_minutes, t.parent_id, t.created_at, \
    t.updated_at, t.version from tasks t join projects p on p.id = t.project_id";

/// A project's tasks in board order (column position, then position in the column).
pub async fn of_project(conn: &mut PgConnection, project: Uuid) -> Result<Vec<Task>, ApiError> {
    Ok(sqlx::query_as(&format!(
        "{TASK} join board_columns c on c.id = t.column_id
         where t.project_id = $1 order by c.position, t.position"
    ))
    .bind(project)
    .fetch_all(conn)
    .await?)
}

async fn find(conn: &mut PgConnection, id: Uuid, lock: bool) -> Result<Task, ApiError> {
    let lock = if lock { " for update of t" } else { "" };
    sqlx::query_as(&format!("{TASK} where t.id = $1{lock}"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::NotFound("There is no such task.".into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub priority: Option<String>,
    pub assignee_id: Option<Uuid>,
    #[serde(default)]
    pub labels: Vec<String>,
    pub due_date: Option<NaiveDate>,
    pub estimate_minutes: Option<i32>,
    pub parent_id: Option<Uuid>,
    /// The column to start in (default: the board's first).
    pub column_id: Option<Uuid>,
}

fn check_fields(
    errors: &mut FieldErrors,
    title: Option<&str>,
    priority: Option<&str>,
    labels: Option<&[String]>,
    estimate: Option<i32>,
) {
    if let Some(title) = title {
        errors.check(
            (1..=500).contains(&title.trim().chars().count()),
            "title",
            "must be 1 to 500 characters",
        );
    }
    if let Some(priority) = priority {
        errors.check(
            PRIORITIES.contains(&priority),
            "priority",
            "must be one of low, medium, high, urgent",
        );
    }
    if let Some(labels) = labels {
        errors.check(
            labels.len() <= 20 && labels.iter().all(|l| (1..=50).contains(&l.chars().count())),
            "labels",
            "at most 20 labels of 1 to 50 characters",
        );
    }
    if let Some(estimate) = estimate {
        errors.check(estimate >= 0, "estimate_minutes", "must not be negative");
    }
}

impl Validate for NewTask {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        check_fields(
            &mut errors,
            Some(&self.title),
            self.priority.as_deref(),
            Some(&self.labels),
            self.estimate_minutes,
        );
        errors.check(
            self.description.chars().count() <= 50_000,
            "description",
            "must be at most 50000 characters",
        );
        errors.finish()
    }
}

/// A column of `project`, locked for the rest of the transaction (moves and creates
/// into one column are serialised, so WIP limits and positions hold under concurrency).
async fn lock_column(
    conn: &mut PgConnection,
    project: Uuid,
    column: Option<Uuid>,
) -> Result<(Uuid, Option<i32>, bool), ApiError> {
    let found: Option<(Uuid, Option<i32>, bool)> = match column {
        Some(id) => {
            sqlx::query_as(
                "select id, wip_limit, done from board_columns
                 where id = $1 and project_id = $2 for update",
            )
            .bind(id)
            .bind(project)
            .fetch_optional(&mut *conn)
            .await?
        }
        None => {
            sqlx::query_as(
                "select id, wip_limit, done from board_columns
                 where project_id = $1 order by position limit 1 for update",
            )
            .bind(project)
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    found.ok_or_else(|| ApiError::validation("column_id", "is not a column of this project"))
}

async fn tasks_in(conn: &mut PgConnection, column: Uuid) -> Result<i32, ApiError> {
    let count: i64 = sqlx::query_scalar("select count(*) from tasks where column_id = $1")
        .bind(column)
        .fetch_one(conn)
        .await?;
    Ok(i32::try_from(count).unwrap_or(i32::MAX))
}

fn wip_full(limit: i32) -> ApiError {
    ApiError::Custom {
        status: StatusCode::CONFLICT,
        kind: "wip-limit",
        title: "Column Full",
        detail: format!("The column holds its WIP limit of {limit} tasks already."),
    }
}

/// Creates a task at the end of its column.
#[utoipa::path(post, path = "/api/v1/projects/{id}/tasks", tag = "tasks", request_body = NewTask,
    responses((status = 201, body = Task), (status = 400, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Path(project_id): Path<Uuid>,
    headers: HeaderMap,
    ValidJson(req): ValidJson<NewTask>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = Tenant::allow(&state, &user, Perm::TasksWrite)?;
    let key = idempotency::key(&headers)?;
    let mut tx = tenant.begin().await?;
    if let Some(key) = &key
        && let Some((status, body)) = idempotency::replay(&mut tx, &user, key).await?
    {
        return Ok((status, Json(body)));
    }
    let number: Option<i32> = sqlx::query_scalar(
        "update projects set next_task_number = next_task_number + 1
         where id = $1 and not archived returning next_task_number - 1",
    )
    .bind(project_id)
    .fetch_optional(&mut *tx)
    .await?;
    let number = number.ok_or_else(|| {
        ApiError::NotFound("There is no such project (or it is archived).".into())
    })?;
    if let Some(parent) = req.parent_id {
        let same_project: bool = sqlx::query_scalar(
            "select exists(select 1 from tasks where id = $1 and project_id = $2)",
        )
        .bind(parent)
        .bind(project_id)
        .fetch_one(&mut *tx)
        .await?;
        if !same_project {
            return Err(ApiError::validation(
                "parent_id",
                "is not a task of this project",
            ));
        }
    }
    let (column, wip_limit, _) = lock_column(&mut tx, project_id, req.column_id).await?;
    let position = tasks_in(&mut tx, column).await?;
    if let Some(limit) = wip_limit.filter(|l| position >= *l) {
        return Err(wip_full(limit));
    }
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into tasks (id, project_id, number, title, description, column_id, position,
             priority, assignee_id, reporter_id, labels, due_date, estimate_minutes, parent_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(id)
    .bind(project_id)
    .bind(number)
    .bind(req.title.trim())
    .bind(&req.description)
    .bind(column)
    .bind(position)
    .bind(req.priority.as_deref().unwrap_or("medium"))
    .bind(req.assignee_id)
    .bind(user.user_id)
    .bind(&req.labels)
    .bind(req.due_date)
    .bind(req.estimate_minutes)
    .bind(req.parent_id)
    .execute(&mut *tx)
    .await?;
    let task = find(&mut tx, id, false).await?;
    tx.record(Change::task(project_id, id, "task.created").after(&task))
        .await?;
    tx.emit(
        keys::TASK_CREATED,
        json!({
            "project_id": project_id, "task_id": id, "number": number, "key": task.key,
            "status": column, "priority": task.priority, "assignee_id": task.assignee_id,
            "parent_id": task.parent_id,
        }),
    )
    .await?;
    let body = json!(task);
    if let Some(key) = &key {
        idempotency::remember(&mut tx, &user, key, StatusCode::CREATED, &body).await?;
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// One task.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks",
    responses((status = 200, body = Task), (status = 404, body = Problem)))]
pub async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Task>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::TasksRead).await?;
    Ok(Json(find(&mut conn, id, false).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<String>,
    /// A user id, or `null` to unassign.
    #[serde(default, with = "serde_with_none")]
    pub assignee_id: Option<Option<Uuid>>,
    pub labels: Option<Vec<String>>,
    pub due_date: Option<NaiveDate>,
    pub estimate_minutes: Option<i32>,
}

/// `Option<Option<T>>` for PATCH: absent → `None`, `null` → `Some(None)`.
mod serde_with_none {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

impl Validate for TaskChanges {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        check_fields(
            &mut errors,
            self.title.as_deref(),
            self.priority.as_deref(),
            self.labels.as_deref(),
            self.estimate_minutes,
        );
        errors.finish()
    }
}

/// Changes a task's fields. `If-Match: "<version>"` makes the write conditional (412
/// when stale). A new assignee emits `task.assigned`.
#[utoipa::path(patch, path = "/api/v1/tasks/{id}", tag = "tasks", request_body = TaskChanges,
    responses((status = 200, body = Task), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    ValidJson(req): ValidJson<TaskChanges>,
) -> Result<Json<Task>, ApiError> {
    let tenant = Tenant::allow(&state, &user, Perm::TasksWrite)?;
    let expected = if_match(&headers)?;
    let mut tx = tenant.begin().await?;
    let before = find(&mut tx, id, true).await?;
    if expected.is_some_and(|v| v != before.version) {
        return Err(ApiError::PreconditionFailed(
            "The task changed since you read it; read it again.".into(),
        ));
    }
    let assignee = req.assignee_id.unwrap_or(before.assignee_id);
    sqlx::query(
        "update tasks set title = coalesce($2, title), description = coalesce($3, description),
             priority = coalesce($4, priority), assignee_id = $5, labels = coalesce($6, labels),
             due_date = coalesce($7, due_date), estimate_minutes = coalesce($8, estimate_minutes),
             updated_at = now(), version = version + 1
         where id = $1",
    )
    .bind(id)
    .bind(req.title.as_deref().map(str::trim))
    .bind(&req.description)
    .bind(&req.priority)
    .bind(assignee)
    .bind(&req.labels)
    .bind(req.due_date)
    .bind(req.estimate_minutes)
    .execute(&mut *tx)
    .await?;
    let after = find(&mut tx, id, false).await?;
    tx.record(
        Change::task(after.project_id, id, "task.updated")
            .before(&before)
            .after(&after),
    )
    .await?;
    if assignee != before.assignee_id {
        tx.emit(
            keys::TASK_ASSIGNED,
            json!({"task_id": id, "project_id": after.project_id, "from": before.assignee_id, "to": assignee}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(after))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Move {
    pub column_id: Uuid,
    /// 0-based; past the end means last.
    pub position: i32,
}

impl Validate for Move {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors.check(self.position >= 0, "position", "must not be negative");
        errors.finish()
    }
}

/// Moves a task to a column and position, atomically: positions in both columns stay
/// dense, and a full column (WIP limit) refuses with 409 `wip-limit`. A change of
/// column emits `task.status_changed`.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/move", tag = "tasks", request_body = Move,
    responses((status = 200, body = Task), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn move_task(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    ValidJson(req): ValidJson<Move>,
) -> Result<Json<Task>, ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::TasksWrite).await?;
    // Lock order: the columns (by id), then the task, so concurrent moves cannot deadlock.
    let current: Option<(Uuid, Uuid)> =
        sqlx::query_as("select project_id, column_id from tasks where id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let (project_id, from_column) =
        current.ok_or_else(|| ApiError::NotFound("There is no such task.".into()))?;
    let mut columns = [from_column, req.column_id];
    columns.sort();
    let mut target = None;
    let mut source_done = false;
    for column in columns {
        let locked = lock_column(&mut tx, project_id, Some(column)).await?;
        if column == req.column_id {
            target = Some(locked);
        }
        if column == from_column {
            source_done = locked.2;
        }
    }
    let (to_column, wip_limit, to_done) = target.expect("the target was locked");
    let before = find(&mut tx, id, true).await?;
    if before.column_id != from_column {
        // Moved by someone else between the first read and the locks: start over.
        return Err(ApiError::Conflict(
            "The task moved meanwhile; try again.".into(),
        ));
    }
    let same = to_column == from_column;
    let others = tasks_in(&mut tx, to_column).await? - i32::from(same);
    if !same && let Some(limit) = wip_limit.filter(|l| others >= *l) {
        return Err(wip_full(limit));
    }
    let position = req.position.min(others);
    // Close the task's gap, then open one at the new place (the unique positions are
    // checked at commit, so the steps may overlap in between).
    sqlx::query(
        "update tasks set position = position - 1
         where column_id = $1 and position > $2 and id <> $3",
    )
    .bind(from_column)
    .bind(before.position)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update tasks set position = position + 1
         where column_id = $1 and position >= $2 and id <> $3",
    )
    .bind(to_column)
    .bind(position)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update tasks set column_id = $2, position = $3, updated_at = now(), version = version + 1
         where id = $1",
    )
    .bind(id)
    .bind(to_column)
    .bind(position)
    .execute(&mut *tx)
    .await?;
    let after = find(&mut tx, id, false).await?;
    tx.record(
        Change::task(project_id, id, "task.moved")
            .before(json!({"column_id": from_column, "position": before.position}))
            .after(json!({"column_id": to_column, "position": position})),
    )
    .await?;
    if !same {
        tx.emit(
            keys::TASK_STATUS_CHANGED,
            json!({"task_id": id, "project_id": project_id, "from": from_column, "to": to_column,
                   "done": to_done, "was_done": source_done}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(after))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TaskFilter {
    pub column_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    pub label: Option<String>,
    pub priority: Option<String>,
    pub parent_id: Option<Uuid>,
    pub due_before: Option<NaiveDate>,
    pub due_after: Option<NaiveDate>,
    /// Words to find in the title or description.
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskPage {
    pub items: Vec<Task>,
    pub next_cursor: Option<String>,
}

/// A project's tasks, filtered, oldest first, in pages (`limit` ≤ 200, opaque
/// `cursor`). `q` searches title and description (full text).
#[utoipa::path(get, path = "/api/v1/projects/{id}/tasks", tag = "tasks", params(TaskFilter),
    responses((status = 200, body = TaskPage), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Path(project_id): Path<Uuid>,
    common::extract::Query(filter): common::extract::Query<TaskFilter>,
) -> Result<Json<TaskPage>, ApiError> {
    let tenant = Tenant::allow(&state, &user, Perm::TasksRead)?;
    if let Some(priority) = &filter.priority
        && !PRIORITIES.contains(&priority.as_str())
    {
        return Err(ApiError::validation(
            "priority",
            "must be one of low, medium, high, urgent",
        ));
    }
    let limit = filter.limit.unwrap_or(50).clamp(1, 200);
    let after = filter
        .cursor
        .as_deref()
        .map(|c| {
            Uuid::parse_str(c)
                .map_err(|_| ApiError::validation("cursor", "is not a cursor this API gave out"))
        })
        .transpose()?;
    let mut conn = tenant.connect().await?;
    db::projects::find(&mut conn, project_id)
        .await?
        .ok_or_else(Project::missing)?;
    let mut query = sqlx::QueryBuilder::new(TASK);
    query.push(" where t.project_id = ").push_bind(project_id);
    if let Some(v) = filter.column_id {
        query.push(" and t.column_id = ").push_bind(v);
    }
    if let Some(v) = filter.assignee_id {
        query.push(" and t.assignee_id = ").push_bind(v);
    }
    if let Some(v) = filter.label {
        query.push(" and ").push_bind(v).push(" = any(t.labels)");
    }
    if let Some(v) = filter.priority {
        query.push(" and t.priority = ").push_bind(v);
    }
    if let Some(v) = filter.parent_id {
        query.push(" and t.parent_id = ").push_bind(v);
    }
    if let Some(v) = filter.due_before {
        query.push(" and t.due_date < ").push_bind(v);
    }
    if let Some(v) = filter.due_after {
        query.push(" and t.due_date > ").push_bind(v);
    }
    if let Some(q) = filter.q.filter(|q| !q.trim().is_empty()) {
        query
            .push(" and t.search @@ websearch_to_tsquery('simple', ")
            .push_bind(q)
            .push(")");
    }
    if let Some(after) = after {
        query.push(" and t.id > ").push_bind(after);
    }
    query.push(" order by t.id limit ").push_bind(limit + 1);
    let mut items: Vec<Task> = query.build_query_as().fetch_all(&mut *conn).await?;
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(usize::try_from(limit).unwrap_or(200));
        items.last().map(|t| t.id.to_string())
    });
    Ok(Json(TaskPage {
        items,
        next_cursor: next_cursor.flatten(),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub total: i64,
    pub done: i64,
}

/// A parent's progress: how many of its subtasks sit in a `done` column.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/progress", tag = "tasks",
    responses((status = 200, body = Progress), (status = 404, body = Problem)))]
pub async fn progress(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Progress>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::TasksRead).await?;
    find(&mut conn, id, false).await?;
    let (total, done): (i64, i64) = sqlx::query_as(
        "select count(*), count(*) filter (where c.done) from tasks t
         join board_columns c on c.id = t.column_id where t.parent_id = $1",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Json(Progress { total, done }))
}

/// Deletes a task and its subtasks; the positions left behind close up.
#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "tasks",
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::TasksManage).await?;
    let current: Option<(Uuid, Uuid)> =
        sqlx::query_as("select project_id, column_id from tasks where id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let (project_id, column) =
        current.ok_or_else(|| ApiError::NotFound("There is no such task.".into()))?;
    // Subtasks go too: lock every column they sit in, in id order, then close the gaps.
    let doomed: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "with recursive tree as (select id, column_id from tasks where id = $1
             union all select t.id, t.column_id from tasks t join tree on t.parent_id = tree.id)
         select id, column_id from tree",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let mut columns: Vec<Uuid> = doomed.iter().map(|(_, c)| *c).chain([column]).collect();
    columns.sort();
    columns.dedup();
    for column in &columns {
        lock_column(&mut tx, project_id, Some(*column)).await?;
    }
    let before = find(&mut tx, id, true).await?;
    let doomed_ids: Vec<Uuid> = doomed.iter().map(|(task, _)| *task).collect();
    let files = super::attachments::hashes_of(&mut tx, &doomed_ids).await?;
    sqlx::query("delete from tasks where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    super::attachments::forget_unreferenced(&state, user.tenant_id, &mut tx, &files).await?;
    for column in &columns {
        sqlx::query(
            "update tasks t set position = r.n - 1 from (
                 select id, row_number() over (order by position) as n from tasks where column_id = $1
             ) r where t.id = r.id and t.position <> r.n - 1",
        )
        .bind(column)
        .execute(&mut *tx)
        .await?;
    }
    tx.record(Change::project(project_id, "task.deleted").before(&before))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
