//! The `comments` table.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::comment::Comment;

/// Whether `id` is a top-level comment of `task` (what a reply may answer).
pub async fn is_top_level(conn: &mut PgConnection, id: Uuid, task: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists(
               select 1 from comments where id = $1 and task_id = $2 and parent_id is null
           ) as "exists!""#,
        id,
        task,
    )
    .fetch_one(conn)
    .await
}

/// What a new comment is made of.
#[derive(Debug, Clone, Copy)]
pub struct NewRow<'a> {
    pub task: Uuid,
    pub project: Uuid,
    pub author: Uuid,
    pub parent: Option<Uuid>,
    pub body: &'a str,
    pub mentions: &'a [Uuid],
}

pub async fn insert(conn: &mut PgConnection, new: NewRow<'_>) -> sqlx::Result<Comment> {
    sqlx::query_as!(
        Comment,
        "insert into comments (id, task_id, project_id, author_id, parent_id, body, mentions)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning id, task_id, author_id, parent_id, body, mentions, created_at, updated_at,
                   edited",
        Uuid::now_v7(),
        new.task,
        new.project,
        new.author,
        new.parent,
        new.body,
        new.mentions,
    )
    .fetch_one(conn)
    .await
}

/// A task's comments, oldest first (at most 1000).
pub async fn of_task(conn: &mut PgConnection, task: Uuid) -> sqlx::Result<Vec<Comment>> {
    sqlx::query_as!(
        Comment,
        "select id, task_id, author_id, parent_id, body, mentions, created_at, updated_at, edited
         from comments where task_id = $1 order by id limit 1000",
        task,
    )
    .fetch_all(conn)
    .await
}

/// A comment of `task`, locked for the rest of the transaction.
pub async fn lock(conn: &mut PgConnection, task: Uuid, id: Uuid) -> sqlx::Result<Option<Comment>> {
    sqlx::query_as!(
        Comment,
        "select id, task_id, author_id, parent_id, body, mentions, created_at, updated_at, edited
         from comments where id = $1 and task_id = $2 for update",
        id,
        task,
    )
    .fetch_optional(conn)
    .await
}

/// Replaces a comment's body and mentions and marks it edited.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    body: &str,
    mentions: &[Uuid],
) -> sqlx::Result<Comment> {
    sqlx::query_as!(
        Comment,
        "update comments set body = $2, mentions = $3, edited = true, updated_at = now()
         where id = $1
         returning id, task_id, author_id, parent_id, body, mentions, created_at, updated_at,
                   edited",
        id,
        body,
        mentions,
    )
    .fetch_one(conn)
    .await
}

/// Deletes a comment; its replies go with it.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("delete from comments where id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}
