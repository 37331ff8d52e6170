//! Tasks: create (numbered per project, `WEB-42`), read, list, update, move between
//! columns under WIP limits, and delete with their subtasks; each change emits its event
//! (`task.created`, `task.updated`, `task.moved`, `task.deleted`, and `task.assigned` /
//! `task.status_changed` when it is one).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::Problem;
use common::events::keys;
use common::extract::{Json, Query, ValidJson, if_match};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::access;
use crate::db::{self, idempotency};
use crate::domain::activity::Change;
use crate::domain::column::Column;
use crate::domain::project::Project;
use crate::domain::task::{
    Move, NewTask, Progress, Task, TaskChanges, TaskFilter, TaskPage, changed_fields, column_full,
};
use crate::tenant::Tenant;

/// This resource's routes, under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/tasks", post(create).get(list))
        .route("/tasks/{id}", get(get_one).patch(update).delete(remove))
        .route("/tasks/{id}/move", post(move_task))
        .route("/tasks/{id}/progress", get(progress))
}

/// A column of `project` (the board's first when `None`), locked for the rest of the
/// transaction: moves and creates into one column take turns, so WIP limits and
/// positions hold under concurrency.
async fn lock_column(
    conn: &mut PgConnection,
    project: Uuid,
    column: Option<Uuid>,
) -> Result<Column, ApiError> {
    let found = match column {
        Some(id) => db::columns::lock(conn, project, id).await?,
        None => db::columns::lock_first(conn, project).await?,
    };
    found.ok_or_else(|| ApiError::validation("column_id", "is not a column of this project"))
}

/// The answer to a create in a project that is not there (or that the caller does not
/// read) or is archived.
fn no_open_project() -> ApiError {
    ApiError::NotFound("There is no such project (or it is archived).".into())
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
    access::readable(&mut tx, &user, project_id, no_open_project).await?;
    let number = db::projects::take_task_number(&mut tx, project_id)
        .await?
        .ok_or_else(no_open_project)?;
    if let Some(parent) = req.parent_id
        && !db::tasks::is_in_project(&mut tx, parent, project_id).await?
    {
        return Err(ApiError::validation(
            "parent_id",
            "is not a task of this project",
        ));
    }
    let column = lock_column(&mut tx, project_id, req.column_id).await?;
    let position = db::tasks::count_in(&mut tx, column.id).await?;
    if let Some(limit) = column.wip_limit.filter(|l| position >= *l) {
        return Err(column_full(limit));
    }
    let slot = db::tasks::Slot {
        project: project_id,
        number,
        column: column.id,
        position,
    };
    let id = db::tasks::insert(&mut tx, slot, &req, user.user_id).await?;
    let task = db::tasks::find(&mut tx, id)
        .await?
        .ok_or_else(Task::missing)?;
    tx.record(Change::task(project_id, id, "task.created").after(&task))
        .await?;
    tx.emit(
        keys::TASK_CREATED,
        json!({
            "project_id": project_id, "task_id": id, "number": number, "key": task.key,
            "status": column.id, "priority": task.priority, "assignee_id": task.assignee_id,
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
    let task = db::tasks::find(&mut conn, id)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut conn, &user, task.project_id, Task::missing).await?;
    Ok(Json(task))
}

/// Changes a task's fields. `If-Match: "<version>"` makes the write conditional (412
/// when stale). A change emits `task.updated` naming the fields changed, a new assignee
/// also `task.assigned`.
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
    let before = db::tasks::lock(&mut tx, id)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut tx, &user, before.project_id, Task::missing).await?;
    if expected.is_some_and(|v| v != before.version) {
        return Err(ApiError::PreconditionFailed(
            "The task changed since you read it; read it again.".into(),
        ));
    }
    let assignee = req.assignee_id.unwrap_or(before.assignee_id);
    db::tasks::update(&mut tx, id, &req, assignee).await?;
    let after = db::tasks::find(&mut tx, id)
        .await?
        .ok_or_else(Task::missing)?;
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
    let fields = changed_fields(&before, &after);
    if !fields.is_empty() {
        tx.emit(
            keys::TASK_UPDATED,
            json!({"task_id": id, "project_id": after.project_id, "fields": fields}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(after))
}

/// Moves a task to a column and position, atomically: positions in both columns stay
/// dense, and a full column (WIP limit) refuses with 409 `wip-limit`. Every move emits
/// `task.moved`, a change of column also `task.status_changed`.
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
    let (project_id, from_column) = db::tasks::placement(&mut tx, id)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut tx, &user, project_id, Task::missing).await?;
    let mut columns = [from_column, req.column_id];
    columns.sort();
    let mut target = None;
    let mut source_done = false;
    for column in columns {
        let locked = lock_column(&mut tx, project_id, Some(column)).await?;
        if column == from_column {
            source_done = locked.done;
        }
        if column == req.column_id {
            target = Some(locked);
        }
    }
    let target = target.expect("the target was locked");
    let before = db::tasks::lock(&mut tx, id)
        .await?
        .ok_or_else(Task::missing)?;
    if before.column_id != from_column {
        // Moved by someone else between the first read and the locks: start over.
        return Err(ApiError::Conflict(
            "The task moved meanwhile; try again.".into(),
        ));
    }
    let same = target.id == from_column;
    let others = db::tasks::count_in(&mut tx, target.id).await? - i32::from(same);
    if !same && let Some(limit) = target.wip_limit.filter(|l| others >= *l) {
        return Err(column_full(limit));
    }
    let position = req.position.min(others);
    db::tasks::move_to(
        &mut tx,
        id,
        (from_column, before.position),
        (target.id, position),
    )
    .await?;
    let after = db::tasks::find(&mut tx, id)
        .await?
        .ok_or_else(Task::missing)?;
    tx.record(
        Change::task(project_id, id, "task.moved")
            .before(json!({"column_id": from_column, "position": before.position}))
            .after(json!({"column_id": target.id, "position": position})),
    )
    .await?;
    if !same {
        tx.emit(
            keys::TASK_STATUS_CHANGED,
            json!({"task_id": id, "project_id": project_id, "from": from_column, "to": target.id,
                   "done": target.done, "was_done": source_done}),
        )
        .await?;
    }
    tx.emit(
        keys::TASK_MOVED,
        json!({"task_id": id, "project_id": project_id, "from": from_column, "to": target.id,
               "position": position}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

/// A project's tasks, filtered, oldest first, in pages (`limit` ≤ 200, opaque
/// `cursor`). `q` searches title and description (full text).
#[utoipa::path(get, path = "/api/v1/projects/{id}/tasks", tag = "tasks", params(TaskFilter),
    responses((status = 200, body = TaskPage), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Path(project_id): Path<Uuid>,
    Query(filter): Query<TaskFilter>,
) -> Result<Json<TaskPage>, ApiError> {
    let tenant = Tenant::allow(&state, &user, Perm::TasksRead)?;
    filter.check()?;
    let limit = filter.limit.unwrap_or(50).clamp(1, 200);
    let after = filter.after()?;
    let mut conn = tenant.connect().await?;
    access::readable(&mut conn, &user, project_id, Project::missing).await?;
    let items = db::tasks::list(&mut conn, project_id, &filter, after, limit + 1).await?;
    let (items, next_cursor) = common::paging::page(items, limit, |t| t.id.to_string());
    Ok(Json(TaskPage { items, next_cursor }))
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
    let project = db::tasks::project_of(&mut conn, id)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut conn, &user, project, Task::missing).await?;
    let (total, done) = db::tasks::progress(&mut conn, id).await?;
    Ok(Json(Progress { total, done }))
}

/// Deletes a task and its subtasks; the positions left behind close up. Emits
/// `task.deleted` for each task deleted.
#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "tasks",
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::TasksManage).await?;
    let (project_id, column) = db::tasks::placement(&mut tx, id)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut tx, &user, project_id, Task::missing).await?;
    // Subtasks go too: lock every column they sit in, in id order, then close the gaps.
    let doomed = db::tasks::subtree(&mut tx, id).await?;
    let mut columns: Vec<Uuid> = doomed.iter().map(|(_, c)| *c).chain([column]).collect();
    columns.sort();
    columns.dedup();
    for column in &columns {
        lock_column(&mut tx, project_id, Some(*column)).await?;
    }
    let before = db::tasks::lock(&mut tx, id)
        .await?
        .ok_or_else(Task::missing)?;
    let doomed_ids: Vec<Uuid> = doomed.iter().map(|(task, _)| *task).collect();
    let files = db::attachments::hashes_of_tasks(&mut tx, &doomed_ids).await?;
    db::tasks::delete(&mut tx, id).await?;
    crate::storage::forget_unreferenced(&state, user.tenant_id, &mut tx, &files).await?;
    for column in &columns {
        db::tasks::close_gaps(&mut tx, *column).await?;
    }
    tx.record(Change::project(project_id, "task.deleted").before(&before))
        .await?;
    for task in doomed_ids {
        tx.emit(
            keys::TASK_DELETED,
            json!({"task_id": task, "project_id": project_id}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
