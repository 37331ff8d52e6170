//! The `attachments` table: files' metadata (the bytes are on disk, see
//! [`crate::routes::attachments`]).

use sqlx::PgConnection;
use uuid::Uuid;

/// The content hashes of a project's attachments, to hand to `forget_unreferenced` once
/// they are deleted with it.
pub async fn hashes_of_project(
    conn: &mut PgConnection,
    project: Uuid,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "select distinct sha256 from attachments where project_id = $1",
        project,
    )
    .fetch_all(conn)
    .await
}

/// The content hashes of the attachments of `tasks`, as [`hashes_of_project`].
pub async fn hashes_of_tasks(conn: &mut PgConnection, tasks: &[Uuid]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "select distinct sha256 from attachments where task_id = any($1)",
        tasks,
    )
    .fetch_all(conn)
    .await
}
