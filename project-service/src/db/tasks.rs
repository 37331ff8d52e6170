//! The `tasks` table. A task's `key` (`WEB-42`) is its project's key and its number.
//! Positions stay dense (0, 1, 2, …) within a column: the functions that move or delete
//! tasks close and open gaps in the same transaction (the unique position is checked at
//! commit).
//!
//! [`list`] is a documented list builder: its filters are optional clauses, pushed with
//! bound values by `sqlx::QueryBuilder`, so it is the one query here built at run time.

use sqlx::{PgConnection, QueryBuilder};
use uuid::Uuid;

use crate::domain::task::{NewTask, Task, TaskChanges, TaskFilter};

/// A task by id.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Task>> {
    sqlx::query_as!(
        Task,
        r#"select t.id, t.project_id, t.number, p.key || '-' || t.number as "key!", t.title,
                  t.description, t.column_id, t.position, t.priority, t.assignee_id,
                  t.reporter_id, t.labels, t.due_date, t.estimate_minutes, t.parent_id,
                  t.created_at, t.updated_at, t.version
           from tasks t join projects p on p.id = t.project_id
           where t.id = $1"#,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// A task by id, locked for the rest of the transaction.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Task>> {
    sqlx::query_as!(
        Task,
        r#"select t.id, t.project_id, t.number, p.key || '-' || t.number as "key!", t.title,
                  t.description, t.column_id, t.position, t.priority, t.assignee_id,
                  t.reporter_id, t.labels, t.due_date, t.estimate_minutes, t.parent_id,
                  t.created_at, t.updated_at, t.version
           from tasks t join projects p on p.id = t.project_id
           where t.id = $1 for update of t"#,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// A project's tasks in board order (column position, then position in the column).
pub async fn of_project(conn: &mut PgConnection, project: Uuid) -> sqlx::Result<Vec<Task>> {
    sqlx::query_as!(
        Task,
        r#"select t.id, t.project_id, t.number, p.key || '-' || t.number as "key!", t.title,
                  t.description, t.column_id, t.position, t.priority, t.assignee_id,
                  t.reporter_id, t.labels, t.due_date, t.estimate_minutes, t.parent_id,
                  t.created_at, t.updated_at, t.version
           from tasks t join projects p on p.id = t.project_id
                join board_columns c on c.id = t.column_id
           where t.project_id = $1 order by c.position, t.position"#,
        project,
    )
    .fetch_all(conn)
    .await
}

/// The project a task belongs to.
pub async fn project_of(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!("select project_id from tasks where id = $1", id)
        .fetch_optional(conn)
        .await
}

/// Where a task is: its project and column.
pub async fn placement(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<(Uuid, Uuid)>> {
    let found = sqlx::query!("select project_id, column_id from tasks where id = $1", id)
        .fetch_optional(conn)
        .await?;
    Ok(found.map(|t| (t.project_id, t.column_id)))
}

/// Whether `task` is a task of `project`.
pub async fn is_in_project(
    conn: &mut PgConnection,
    task: Uuid,
    project: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from tasks where id = $1 and project_id = $2) as "exists!""#,
        task,
        project,
    )
    .fetch_one(conn)
    .await
}

/// How many tasks a column holds.
pub async fn count_in(conn: &mut PgConnection, column: Uuid) -> sqlx::Result<i32> {
    let count = sqlx::query_scalar!(
        r#"select count(*) as "count!" from tasks where column_id = $1"#,
        column,
    )
    .fetch_one(conn)
    .await?;
    Ok(i32::try_from(count).unwrap_or(i32::MAX))
}

/// Where a new task goes: its project, its number there, its column and position.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub project: Uuid,
    pub number: i32,
    pub column: Uuid,
    pub position: i32,
}

/// Inserts a task (its title trimmed, priority `medium` unless given) reported by
/// `reporter`, and answers its id.
pub async fn insert(
    conn: &mut PgConnection,
    slot: Slot,
    new: &NewTask,
    reporter: Uuid,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "insert into tasks (id, project_id, number, title, description, column_id, position,
             priority, assignee_id, reporter_id, labels, due_date, estimate_minutes, parent_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        id,
        slot.project,
        slot.number,
        new.title.trim(),
        new.description,
        slot.column,
        slot.position,
        new.priority.as_deref().unwrap_or("medium"),
        new.assignee_id,
        reporter,
        &new.labels,
        new.due_date,
        new.estimate_minutes,
        new.parent_id,
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// Applies the fields `changes` carries (the title trimmed), sets the assignee to
/// `assignee`, and counts a new version.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    changes: &TaskChanges,
    assignee: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update tasks set title = coalesce($2, title), description = coalesce($3, description),
             priority = coalesce($4, priority), assignee_id = $5, labels = coalesce($6, labels),
             due_date = coalesce($7, due_date), estimate_minutes = coalesce($8, estimate_minutes),
             updated_at = now(), version = version + 1
         where id = $1",
        id,
        changes.title.as_deref().map(str::trim),
        changes.description,
        changes.priority,
        assignee,
        changes.labels.as_deref(),
        changes.due_date,
        changes.estimate_minutes,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves `task`, at `from` (column, position), to `to`: closes its gap in the old column,
/// opens one at the new place, and counts a new version.
pub async fn move_to(
    conn: &mut PgConnection,
    task: Uuid,
    from: (Uuid, i32),
    to: (Uuid, i32),
) -> sqlx::Result<()> {
    sqlx::query!(
        "update tasks set position = position - 1
         where column_id = $1 and position > $2 and id <> $3",
        from.0,
        from.1,
        task,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "update tasks set position = position + 1
         where column_id = $1 and position >= $2 and id <> $3",
        to.0,
        to.1,
        task,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "update tasks set column_id = $2, position = $3, updated_at = now(), version = version + 1
         where id = $1",
        task,
        to.0,
        to.1,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A task and all its subtasks, each with its column.
pub async fn subtree(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    let rows = sqlx::query!(
        r#"with recursive tree as (select id, column_id from tasks where id = $1
               union all select t.id, t.column_id from tasks t join tree on t.parent_id = tree.id)
           select id as "id!", column_id as "column_id!" from tree"#,
        id,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.column_id)).collect())
}

/// Deletes a task; its subtasks, comments, time and attachment rows go with it.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("delete from tasks where id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Numbers a column's tasks 0, 1, 2, … again in their order (after deletes).
pub async fn close_gaps(conn: &mut PgConnection, column: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "update tasks t set position = r.n - 1 from (
             select id, row_number() over (order by position) as n from tasks where column_id = $1
         ) r where t.id = r.id and t.position <> r.n - 1",
        column,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// How many subtasks a task has, and how many of them sit in a `done` column.
pub async fn progress(conn: &mut PgConnection, parent: Uuid) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"select count(*) as "total!", count(*) filter (where c.done) as "done!" from tasks t
           join board_columns c on c.id = t.column_id where t.parent_id = $1"#,
        parent,
    )
    .fetch_one(conn)
    .await?;
    Ok((row.total, row.done))
}

/// A page of a project's tasks matching `filter`: up to `limit`, oldest first, after the
/// task `after` when given. The documented list builder of this module: each filter
/// that is set adds its clause, its value bound.
pub async fn list(
    conn: &mut PgConnection,
    project: Uuid,
    filter: &TaskFilter,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Task>> {
    let mut query = QueryBuilder::new(
        "select t.id, t.project_id, t.number, p.key || '-' || t.number as key, t.title,
                t.description, t.column_id, t.position, t.priority, t.assignee_id,
                t.reporter_id, t.labels, t.due_date, t.estimate_minutes, t.parent_id,
                t.created_at, t.updated_at, t.version
         from tasks t join projects p on p.id = t.project_id
         where t.project_id = ",
    );
    query.push_bind(project);
    if let Some(v) = filter.column_id {
        query.push(" and t.column_id = ").push_bind(v);
    }
    if let Some(v) = filter.assignee_id {
        query.push(" and t.assignee_id = ").push_bind(v);
    }
    if let Some(v) = &filter.label {
        query.push(" and ").push_bind(v).push(" = any(t.labels)");
    }
    if let Some(v) = &filter.priority {
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
    if let Some(q) = filter.q.as_deref().filter(|q| !q.trim().is_empty()) {
        query
            .push(" and t.search @@ websearch_to_tsquery('simple', ")
            .push_bind(q)
            .push(")");
    }
    if let Some(after) = after {
        query.push(" and t.id > ").push_bind(after);
    }
    query.push(" order by t.id limit ").push_bind(limit);
    query.build_query_as().fetch_all(conn).await
}
