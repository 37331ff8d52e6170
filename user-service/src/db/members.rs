//! Memberships: a user's role in a tenant.

use chrono::{DateTime, Utc};
use common::auth::Role;
use sqlx::PgExecutor;
use uuid::Uuid;

/// A tenant member as the users API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Member {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

/// The active role of `user` in `tenant`.
pub async fn role(db: impl PgExecutor<'_>, tenant: Uuid, user: Uuid) -> sqlx::Result<Option<Role>> {
    Ok(active(db, tenant, user).await?.map(|(role, _)| role))
}

/// The active role of `user` in `tenant`, with the tenant's slug.
pub async fn active(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    user: Uuid,
) -> sqlx::Result<Option<(Role, String)>> {
    let row = sqlx::query!(
        "select role, tenant_slug from memberships where tenant_id = $1 and user_id = $2 and status = 'active'",
        tenant,
        user,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|row| Some((row.role.parse().ok()?, row.tenant_slug))))
}

pub async fn find(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    user: Uuid,
) -> sqlx::Result<Option<Member>> {
    sqlx::query_as!(
        Member,
        "select u.id, u.email, u.name, m.role, m.created_at as joined_at
         from memberships m join users u on u.id = m.user_id
         where m.tenant_id = $1 and m.status = 'active' and u.id = $2",
        tenant,
        user,
    )
    .fetch_optional(db)
    .await
}

/// One page of members, ordered by user id (UUIDv7: by sign-up time).
pub async fn page(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Member>> {
    sqlx::query_as!(
        Member,
        "select u.id, u.email, u.name, m.role, m.created_at as joined_at
         from memberships m join users u on u.id = m.user_id
         where m.tenant_id = $1 and m.status = 'active' and ($2::uuid is null or u.id > $2)
         order by u.id limit $3",
        tenant,
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Adds (or re-activates) a membership.
pub async fn upsert(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    slug: &str,
    user: Uuid,
    role: Role,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into memberships (tenant_id, user_id, tenant_slug, role) values ($1, $2, $3, $4)
         on conflict (tenant_id, user_id) do update
             set role = excluded.role, status = 'active', updated_at = now()",
        tenant,
        user,
        slug,
        role.as_str(),
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_role(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    user: Uuid,
    role: Role,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update memberships set role = $3, updated_at = now() where tenant_id = $1 and user_id = $2",
        tenant,
        user,
        role.as_str(),
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn remove(db: impl PgExecutor<'_>, tenant: Uuid, user: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "update memberships set status = 'removed', updated_at = now() where tenant_id = $1 and user_id = $2",
        tenant,
        user,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Active owners of a tenant, locked so two demotions cannot both pass the last-owner check.
pub async fn lock_owners(db: impl PgExecutor<'_>, tenant: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "select user_id from memberships where tenant_id = $1 and role = 'owner' and status = 'active' for update",
        tenant,
    )
    .fetch_all(db)
    .await
}

/// Active members plus pending invites: what the plan's user limit counts.
pub async fn seats_used(db: impl PgExecutor<'_>, tenant: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select (select count(*) from memberships where tenant_id = $1 and status = 'active')
                + (select count(*) from invites where tenant_id = $1 and accepted_at is null
                      and revoked_at is null and expires_at > now()) as "seats!""#,
        tenant,
    )
    .fetch_one(db)
    .await
}

/// Deletes `user`'s membership of `tenant` outright (a signup's undo: the tenant never
/// existed); whether there was one.
pub async fn delete(db: impl PgExecutor<'_>, tenant: Uuid, user: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query!(
        "delete from memberships where tenant_id = $1 and user_id = $2",
        tenant,
        user,
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected() > 0)
}
