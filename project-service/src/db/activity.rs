//! The `activity` table: the log of every change to a project.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::activity::Change;

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
