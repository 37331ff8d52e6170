//! `invites`: pending invitations to a tenant, stored by the hash of their token.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// The unique index a second pending invite of one address to one tenant violates.
pub const PENDING_KEY: &str = "invites_pending_key";

/// An invite as the invites API shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Invite {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

pub struct NewInvite<'a> {
    pub tenant_id: Uuid,
    pub tenant_slug: &'a str,
    pub email: &'a str,
    pub role: &'a str,
    pub token_hash: &'a [u8],
    pub invited_by: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// A pending invite, as accepting it needs it.
pub struct PendingInvite {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub tenant_slug: String,
}

/// Serialises invites within a tenant until the caller's transaction ends.
///
/// The plan's user limit counts active members and pending invites, two tables, which
/// no constraint can hold to a number; an invite takes this lock before it counts, so
/// two cannot both take the last seat.
pub async fn lock_seats(db: impl PgExecutor<'_>, tenant: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "select from pg_advisory_xact_lock(hashtext($1::uuid::text))",
        tenant,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Adds an invite; a pending one for the same address violates [`PENDING_KEY`].
pub async fn insert(db: impl PgExecutor<'_>, invite: &NewInvite<'_>) -> sqlx::Result<Invite> {
    sqlx::query_as!(
        Invite,
        "insert into invites (id, tenant_id, tenant_slug, email, role, token_hash, invited_by, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning id, email, role, expires_at, created_at",
        Uuid::now_v7(),
        invite.tenant_id,
        invite.tenant_slug,
        invite.email,
        invite.role,
        invite.token_hash,
        invite.invited_by,
        invite.expires_at,
    )
    .fetch_one(db)
    .await
}

/// The tenant's pending invites, oldest first.
pub async fn pending(db: impl PgExecutor<'_>, tenant: Uuid) -> sqlx::Result<Vec<Invite>> {
    sqlx::query_as!(
        Invite,
        "select id, email, role, expires_at, created_at from invites
         where tenant_id = $1 and accepted_at is null and revoked_at is null and expires_at > now()
         order by created_at",
        tenant,
    )
    .fetch_all(db)
    .await
}

/// Withdraws a pending invite; false when the tenant has no such pending invite.
pub async fn revoke(db: impl PgExecutor<'_>, tenant: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update invites set revoked_at = now()
         where id = $1 and tenant_id = $2 and accepted_at is null and revoked_at is null",
        id,
        tenant,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The tenant's pending, unexpired invite with this token hash, locked until the
/// caller's transaction ends (so it is accepted once).
pub async fn lock_pending(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    token_hash: &[u8],
) -> sqlx::Result<Option<PendingInvite>> {
    sqlx::query_as!(
        PendingInvite,
        "select id, email, role, tenant_slug from invites
         where token_hash = $1 and tenant_id = $2 and accepted_at is null and revoked_at is null
           and expires_at > now()
         for update",
        token_hash,
        tenant,
    )
    .fetch_optional(db)
    .await
}

pub async fn mark_accepted(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("update invites set accepted_at = now() where id = $1", id)
        .execute(db)
        .await?;
    Ok(())
}
