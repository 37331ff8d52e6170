//! The `users` table: one row per person, across tenants.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// The unique index a second account with an email (in any letter case) violates.
pub const EMAIL_KEY: &str = "users_email_key";

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// A user as other services see them (mentions, assignees).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub id: Uuid,
    pub name: String,
    pub email: String,
}

pub async fn find_by_email(db: impl PgExecutor<'_>, email: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        "select id, email, name, password_hash, created_at from users where lower(email) = lower($1)",
        email,
    )
    .fetch_optional(db)
    .await
}

pub async fn find(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        "select id, email, name, password_hash, created_at from users where id = $1",
        id,
    )
    .fetch_optional(db)
    .await
}

/// Adds a user; a taken email violates [`EMAIL_KEY`].
pub async fn insert(
    db: impl PgExecutor<'_>,
    id: Uuid,
    email: &str,
    name: &str,
    password_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into users (id, email, name, password_hash) values ($1, $2, $3, $4)",
        id,
        email,
        name,
        password_hash,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_name(db: impl PgExecutor<'_>, id: Uuid, name: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update users set name = $2, updated_at = now() where id = $1",
        id,
        name,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_password(
    db: impl PgExecutor<'_>,
    id: Uuid,
    password_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update users set password_hash = $2, updated_at = now() where id = $1",
        id,
        password_hash,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The users among `ids` (only active members of `tenant`, when given), by id.
pub async fn summaries(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
    tenant: Option<Uuid>,
) -> sqlx::Result<Vec<Summary>> {
    sqlx::query_as!(
        Summary,
        "select u.id, u.name, u.email from users u
         where u.id = any($1) and ($2::uuid is null or exists(
             select 1 from memberships m
             where m.user_id = u.id and m.tenant_id = $2 and m.status = 'active'))
         order by u.id",
        ids,
        tenant,
    )
    .fetch_all(db)
    .await
}

/// The tenant's active members holding one of `roles`.
pub async fn with_roles(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    roles: &[String],
) -> sqlx::Result<Vec<Summary>> {
    sqlx::query_as!(
        Summary,
        "select u.id, u.name, u.email from users u
           join memberships m on m.user_id = u.id
          where m.tenant_id = $1 and m.status = 'active' and m.role = any($2)
          order by u.id",
        tenant,
        roles,
    )
    .fetch_all(db)
    .await
}

/// Deletes `user` if nothing refers to it any more (no membership, active or removed; no
/// session; no invite sent): an account made for a signup that was undone. Whether it was.
pub async fn delete_if_unused(db: impl PgExecutor<'_>, user: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query!(
        "delete from users u where u.id = $1
            and not exists (select 1 from memberships m where m.user_id = u.id)
            and not exists (select 1 from refresh_tokens r where r.user_id = u.id)
            and not exists (select 1 from invites i where i.invited_by = u.id)",
        user,
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected() > 0)
}
