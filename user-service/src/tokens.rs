//! Access tokens (EdDSA JWTs, 15 minutes) and refresh tokens (opaque, stored hashed,
//! rotated on every use; reuse of a rotated one revokes its family, RFC 9700).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use common::ApiError;
use common::auth::{ACCESS_TOKEN_TTL_SECS, Claims, Role};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;

/// The login / refresh response of the contract.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}

/// What a token is issued for.
pub struct Grant {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_slug: String,
    pub role: Role,
}

pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs an access token and stores a new refresh token in `family` (a new family when
/// `None`), inside the caller's transaction.
pub async fn issue(
    state: &AppState,
    conn: &mut PgConnection,
    grant: &Grant,
    family: Option<Uuid>,
) -> Result<TokenPair, ApiError> {
    let mut claims = Claims::new(
        grant.user_id,
        grant.tenant_id,
        &grant.tenant_slug,
        grant.role,
    );
    // A revocation voids tokens issued before its second, rounded up; a token issued in
    // that same second (a demoted member signing straight in again) is dated at its end,
    // or it would stay void for its whole life.
    let revoked_until: Option<i64> = sqlx::query_scalar(
        "select ceil(extract(epoch from max(revoked_before)))::bigint from access_revocations
         where tenant_id = $1 and user_id = $2 and revoked_before > now() - interval '2 seconds'",
    )
    .bind(grant.tenant_id)
    .bind(grant.user_id)
    .fetch_one(&mut *conn)
    .await?;
    if let Some(until) = revoked_until.filter(|until| *until > claims.iat) {
        claims.exp += until - claims.iat;
        claims.iat = until;
    }
    let access_token = state.keys.signing().sign(&claims)?;
    let refresh_token = new_refresh_token();
    sqlx::query(
        "insert into refresh_tokens (id, family_id, user_id, tenant_id, token_hash, expires_at)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(family.unwrap_or_else(Uuid::now_v7))
    .bind(grant.user_id)
    .bind(grant.tenant_id)
    .bind(hash_token(&refresh_token))
    .bind(Utc::now() + Duration::days(i64::from(state.config.refresh_token_ttl_days)))
    .execute(&mut *conn)
    .await?;
    Ok(TokenPair {
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_TTL_SECS,
    })
}

pub async fn revoke_family(conn: &mut PgConnection, family: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "update refresh_tokens set revoked_at = now() where family_id = $1 and revoked_at is null",
    )
    .bind(family)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends a member's access tokens issued until now, in one tenant: the gateway polls
/// these (`/internal/revocations`) and refuses such tokens within a second or so.
pub async fn revoke_access(conn: &mut PgConnection, user: Uuid, tenant: Uuid) -> sqlx::Result<()> {
    sqlx::query("delete from access_revocations where created_at < now() - interval '1 day'")
        .execute(&mut *conn)
        .await?;
    sqlx::query("insert into access_revocations (tenant_id, user_id) values ($1, $2)")
        .bind(tenant)
        .bind(user)
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
    sqlx::query(
        "update refresh_tokens set revoked_at = now()
         where user_id = $1 and ($2::uuid is null or tenant_id = $2) and revoked_at is null",
    )
    .bind(user)
    .bind(tenant)
    .execute(conn)
    .await?;
    Ok(())
}
