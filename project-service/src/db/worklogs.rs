//! The `work_logs` table. The project reports take a [`Range`]: the project, and
//! optionally the first and last day worked and the user.

use chrono::NaiveDate;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::time::{ExportRow, Minutes, Range, WorkLog};

/// What a new work log is made of.
#[derive(Debug, Clone, Copy)]
pub struct NewRow<'a> {
    pub task: Uuid,
    pub project: Uuid,
    pub user: Uuid,
    pub minutes: i32,
    pub worked_on: NaiveDate,
    pub note: &'a str,
}

pub async fn insert(conn: &mut PgConnection, new: NewRow<'_>) -> sqlx::Result<WorkLog> {
    sqlx::query_as!(
        WorkLog,
        "insert into work_logs (id, task_id, project_id, user_id, minutes, worked_on, note)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning id, task_id, project_id, user_id, minutes, worked_on, note, created_at",
        Uuid::now_v7(),
        new.task,
        new.project,
        new.user,
        new.minutes,
        new.worked_on,
        new.note,
    )
    .fetch_one(conn)
    .await
}

/// A task's work logs, newest first (at most 1000).
pub async fn of_task(conn: &mut PgConnection, task: Uuid) -> sqlx::Result<Vec<WorkLog>> {
    sqlx::query_as!(
        WorkLog,
        "select id, task_id, project_id, user_id, minutes, worked_on, note, created_at
         from work_logs where task_id = $1 order by id desc limit 1000",
        task,
    )
    .fetch_all(conn)
    .await
}

/// A work log of `task`, locked for the rest of the transaction.
pub async fn lock(conn: &mut PgConnection, task: Uuid, id: Uuid) -> sqlx::Result<Option<WorkLog>> {
    sqlx::query_as!(
        WorkLog,
        "select id, task_id, project_id, user_id, minutes, worked_on, note, created_at
         from work_logs where id = $1 and task_id = $2 for update",
        id,
        task,
    )
    .fetch_optional(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("delete from work_logs where id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Minutes logged on the task itself, and on it and all its subtasks.
pub async fn task_minutes(conn: &mut PgConnection, task: Uuid) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"with recursive tree as (select id from tasks where id = $1
               union all select t.id from tasks t join tree on t.parent_id = tree.id)
           select coalesce(sum(w.minutes) filter (where w.task_id = $1), 0)::bigint as "own!",
                  coalesce(sum(w.minutes), 0)::bigint as "total!"
           from work_logs w join tree on tree.id = w.task_id"#,
        task,
    )
    .fetch_one(conn)
    .await?;
    Ok((row.own, row.total))
}

/// Minutes per user over the range, most first.
pub async fn by_user(
    conn: &mut PgConnection,
    range: &Range,
    project: Uuid,
) -> sqlx::Result<Vec<Minutes>> {
    sqlx::query_as!(
        Minutes,
        r#"select w.user_id as id, sum(w.minutes)::bigint as "minutes!" from work_logs w
           where w.project_id = $1 and ($2::date is null or w.worked_on >= $2)
             and ($3::date is null or w.worked_on <= $3) and ($4::uuid is null or w.user_id = $4)
           group by w.user_id order by sum(w.minutes) desc, w.user_id"#,
        project,
        range.from,
        range.to,
        range.user_id,
    )
    .fetch_all(conn)
    .await
}

/// Minutes per task (its own logs) over the range, most first.
pub async fn by_task(
    conn: &mut PgConnection,
    range: &Range,
    project: Uuid,
) -> sqlx::Result<Vec<Minutes>> {
    sqlx::query_as!(
        Minutes,
        r#"select w.task_id as id, sum(w.minutes)::bigint as "minutes!" from work_logs w
           where w.project_id = $1 and ($2::date is null or w.worked_on >= $2)
             and ($3::date is null or w.worked_on <= $3) and ($4::uuid is null or w.user_id = $4)
           group by w.task_id order by sum(w.minutes) desc, w.task_id"#,
        project,
        range.from,
        range.to,
        range.user_id,
    )
    .fetch_all(conn)
    .await
}

/// The range's work logs in the order they were worked, for the CSV export.
pub async fn export(
    conn: &mut PgConnection,
    range: &Range,
    project: Uuid,
) -> sqlx::Result<Vec<ExportRow>> {
    sqlx::query_as!(
        ExportRow,
        r#"select w.worked_on, p.key || '-' || t.number as "task!", w.user_id, w.minutes, w.note,
                  w.created_at as logged_at
           from work_logs w join tasks t on t.id = w.task_id join projects p on p.id = w.project_id
           where w.project_id = $1 and ($2::date is null or w.worked_on >= $2)
             and ($3::date is null or w.worked_on <= $3) and ($4::uuid is null or w.user_id = $4)
           order by w.worked_on, w.id"#,
        project,
        range.from,
        range.to,
        range.user_id,
    )
    .fetch_all(conn)
    .await
}
