//! What notification-service reads of project-service's tables (read-only), and the
//! explicit watches it keeps itself (`task_watchers`).

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::fanout::TaskFacts;

/// The task `task` and its project, or `None` when it is gone.
pub struct TaskRow {
    pub project_id: Uuid,
    pub key: String,
    pub title: String,
    pub reporter_id: Uuid,
    pub assignee_id: Option<Uuid>,
}

pub async fn find(conn: &mut PgConnection, task: Uuid) -> sqlx::Result<Option<TaskRow>> {
    sqlx::query_as!(
        TaskRow,
        r#"select t.project_id, p.key || '-' || t.number as "key!", t.title, t.reporter_id,
                  t.assignee_id
             from tasks t join projects p on p.id = t.project_id
            where t.id = $1"#,
        task,
    )
    .fetch_optional(conn)
    .await
}

/// What one event asks about its task: the task, the column a status change moved it
/// into, the comment a `task.comment_added` is about.
#[derive(Debug, Clone, Copy)]
pub struct FactsQuery {
    pub task: Uuid,
    pub column: Option<Uuid>,
    pub comment: Option<Uuid>,
}

/// Everything the fan-out needs about each asked task, in one statement for all of them:
/// `(project, facts)` in the order asked, `None` for a task that is gone.
pub async fn facts(
    conn: &mut PgConnection,
    asked: &[FactsQuery],
) -> sqlx::Result<Vec<Option<(Uuid, TaskFacts)>>> {
    let tasks: Vec<Uuid> = asked.iter().map(|q| q.task).collect();
    let columns: Vec<Option<Uuid>> = asked.iter().map(|q| q.column).collect();
    let comments: Vec<Option<Uuid>> = asked.iter().map(|q| q.comment).collect();
    let rows = sqlx::query!(
        r#"select u.ord as "ord!", t.project_id, p.key || '-' || t.number as "key!", t.title,
                  t.reporter_id, t.assignee_id,
                  array(select distinct author_id from comments where task_id = t.id)
                      as "commenters!",
                  array(select user_id from task_watchers where task_id = t.id and watching)
                      as "watchers!",
                  array(select user_id from task_watchers where task_id = t.id and not watching)
                      as "unwatchers!",
                  (select name from board_columns where id = u.col) as "column_name?",
                  (select left(body, 280) from comments where id = u.com) as "comment?"
             from unnest($1::uuid[], $2::uuid[], $3::uuid[]) with ordinality
                  as u(task, col, com, ord)
             join tasks t on t.id = u.task
             join projects p on p.id = t.project_id"#,
        &tasks,
        &columns as &[Option<Uuid>],
        &comments as &[Option<Uuid>],
    )
    .fetch_all(conn)
    .await?;
    let mut found: Vec<Option<(Uuid, TaskFacts)>> = vec![None; asked.len()];
    for row in rows {
        let watches = (row.watchers.iter().map(|&u| (u, true)))
            .chain(row.unwatchers.iter().map(|&u| (u, false)))
            .collect();
        let Some(slot) = usize::try_from(row.ord - 1)
            .ok()
            .and_then(|i| found.get_mut(i))
        else {
            continue;
        };
        *slot = Some((
            row.project_id,
            TaskFacts {
                key: row.key,
                title: row.title,
                reporter: Some(row.reporter_id),
                assignee: row.assignee_id,
                commenters: row.commenters,
                watches,
                column: row.column_name,
                comment: row.comment,
            },
        ));
    }
    Ok(found)
}

/// Sets `user`'s explicit watch of `task` (`watching` false: told nothing of it even as
/// reporter, assignee or commenter).
pub async fn set_watch(
    conn: &mut PgConnection,
    task: Uuid,
    user: Uuid,
    watching: bool,
    set_by: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into task_watchers (task_id, user_id, watching, set_by) values ($1, $2, $3, $4)
         on conflict (task_id, user_id)
         do update set watching = excluded.watching, set_by = excluded.set_by, updated_at = now()",
        task,
        user,
        watching,
        set_by,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The name and key of `project`, or `None` when it is gone.
pub async fn project(
    conn: &mut PgConnection,
    project: Uuid,
) -> sqlx::Result<Option<(String, String)>> {
    let row = sqlx::query!("select name, key from projects where id = $1", project)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| (r.name, r.key)))
}
