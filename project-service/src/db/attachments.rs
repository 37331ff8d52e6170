//! The `attachments` table: the files' metadata (the bytes are on disk, see
//! [`crate::storage`]). Writes of a tenant's attachments take turns under
//! [`super::locks::Lock::Attachments`].

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::attachment::Attachment;

/// What a new attachment row is made of.
#[derive(Debug, Clone, Copy)]
pub struct NewRow<'a> {
    pub task: Uuid,
    pub project: Uuid,
    pub uploader: Uuid,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub size_bytes: i64,
    pub sha256: &'a str,
}

pub async fn insert(conn: &mut PgConnection, new: NewRow<'_>) -> sqlx::Result<Attachment> {
    sqlx::query_as!(
        Attachment,
        "insert into attachments (id, task_id, project_id, uploader_id, file_name, content_type,
                                  size_bytes, sha256)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning id, task_id, uploader_id, file_name, content_type, size_bytes, sha256,
                   created_at",
        Uuid::now_v7(),
        new.task,
        new.project,
        new.uploader,
        new.file_name,
        new.content_type,
        new.size_bytes,
        new.sha256,
    )
    .fetch_one(conn)
    .await
}

/// A task's attachments, oldest first (at most 1000).
pub async fn of_task(conn: &mut PgConnection, task: Uuid) -> sqlx::Result<Vec<Attachment>> {
    sqlx::query_as!(
        Attachment,
        "select id, task_id, uploader_id, file_name, content_type, size_bytes, sha256, created_at
         from attachments where task_id = $1 order by id limit 1000",
        task,
    )
    .fetch_all(conn)
    .await
}

/// An attachment of `task`.
pub async fn find(
    conn: &mut PgConnection,
    task: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Attachment>> {
    sqlx::query_as!(
        Attachment,
        "select id, task_id, uploader_id, file_name, content_type, size_bytes, sha256, created_at
         from attachments where id = $1 and task_id = $2",
        id,
        task,
    )
    .fetch_optional(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("delete from attachments where id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether the tenant stores a file with this content already.
pub async fn has_content(conn: &mut PgConnection, sha256: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from attachments where sha256 = $1) as "exists!""#,
        sha256,
    )
    .fetch_one(conn)
    .await
}

/// Bytes of attachment content the tenant stores (each distinct file once).
pub async fn stored_bytes(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select coalesce(sum(size_bytes), 0)::bigint as "bytes!" from
               (select distinct on (sha256) size_bytes from attachments) files"#
    )
    .fetch_one(conn)
    .await
}

/// The content hashes of a project's attachments, to hand to
/// [`crate::storage::forget_unreferenced`] once they are deleted with it.
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

/// Which of `hashes` some attachment still refers to.
pub async fn still_used(conn: &mut PgConnection, hashes: &[String]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "select distinct sha256 from attachments where sha256 = any($1)",
        hashes,
    )
    .fetch_all(conn)
    .await
}
