//! `refresh_tokens`: stored as SHA-256 hashes, rotated within a family on every use.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// A new refresh token of `family`.
pub struct NewRefresh<'a> {
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub token_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
}

/// What a presented refresh token is, now.
pub struct StoredRefresh {
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub expired: bool,
    pub rotated: bool,
    pub revoked: bool,
}

pub async fn insert(db: impl PgExecutor<'_>, token: &NewRefresh<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into refresh_tokens (id, family_id, user_id, tenant_id, token_hash, expires_at)
         values ($1, $2, $3, $4, $5, $6)",
        Uuid::now_v7(),
        token.family_id,
        token.user_id,
        token.tenant_id,
        token.token_hash,
        token.expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The token with this hash, locked until the caller's transaction ends (so a refresh
/// and its retry are decided one after the other).
pub async fn lock(db: impl PgExecutor<'_>, hash: &[u8]) -> sqlx::Result<Option<StoredRefresh>> {
    sqlx::query_as!(
        StoredRefresh,
        r#"select family_id, user_id, tenant_id, expires_at <= now() as "expired!",
                  rotated_at is not null as "rotated!", revoked_at is not null as "revoked!"
           from refresh_tokens where token_hash = $1 for update"#,
        hash,
    )
    .fetch_optional(db)
    .await
}

/// The family of the token with this hash, if there is one.
pub async fn family_of(db: impl PgExecutor<'_>, hash: &[u8]) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "select family_id from refresh_tokens where token_hash = $1",
        hash,
    )
    .fetch_optional(db)
    .await
}

/// Marks the token used: presenting it again is a reuse.
pub async fn mark_rotated(db: impl PgExecutor<'_>, hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query!(
        "update refresh_tokens set rotated_at = now() where token_hash = $1",
        hash,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn revoke_family(conn: &mut PgConnection, family: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "update refresh_tokens set revoked_at = now() where family_id = $1 and revoked_at is null",
        family,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes every refresh token of a user (in one tenant, or everywhere).
pub async fn revoke_user(
    conn: &mut PgConnection,
    user: Uuid,
    tenant: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update refresh_tokens set revoked_at = now()
         where user_id = $1 and ($2::uuid is null or tenant_id = $2) and revoked_at is null",
        user,
        tenant,
    )
    .execute(conn)
    .await?;
    Ok(())
}
