//! The `activity` table: the log of every change to a project.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::activity::{Activity, Change};

/// Appends `change` by `actor`.
pub async fn insert(conn: &mut PgConnection, actor: Uuid, change: &Change<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into activity (id, project_id, task_id, actor_id, action, before, after)
         values ($1, $2, $3, $4, $5, $6, $7)",
        Uuid::now_v7(),
        change.project,
        change.task,
        actor,
        change.action,
        change.before,
        change.after,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Up to `limit` entries of the project's log (only `task`'s when given), newest first,
/// older than the entry `before` when given.
pub async fn page(
    conn: &mut PgConnection,
    project: Uuid,
    task: Option<Uuid>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Activity>> {
    sqlx::query_as!(
        Activity,
        "select id, task_id, actor_id, action, before, after, occurred_at from activity
         where project_id = $1 and ($2::uuid is null or task_id = $2)
           and ($3::uuid is null or id < $3)
         order by id desc limit $4",
        project,
        task,
        before,
        limit,
    )
    .fetch_all(conn)
    .await
}
