//! Access tokens (EdDSA JWTs, 15 minutes) and refresh tokens (opaque, stored hashed,
//! rotated on every use; reuse of a rotated one revokes its family, RFC 9700).

use chrono::{Duration, Utc};
use common::ApiError;
use common::auth::{ACCESS_TOKEN_TTL_SECS, Claims, Role};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::db::{refresh_tokens, revocations};

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

pub use common::opaque::hash as hash_token;
use common::opaque::token as new_refresh_token;

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
    let revoked_until =
        revocations::recent_until(&mut *conn, grant.tenant_id, grant.user_id).await?;
    if let Some(until) = revoked_until.filter(|until| *until > claims.iat) {
        claims.exp += until - claims.iat;
        claims.iat = until;
    }
    let access_token = state.keys.signing().sign(&claims)?;
    let refresh_token = new_refresh_token();
    refresh_tokens::insert(
        &mut *conn,
        &refresh_tokens::NewRefresh {
            family_id: family.unwrap_or_else(Uuid::now_v7),
            user_id: grant.user_id,
            tenant_id: grant.tenant_id,
            token_hash: &hash_token(&refresh_token),
            expires_at: Utc::now() + Duration::days(i64::from(state.config.refresh_token_ttl_days)),
        },
    )
    .await?;
    Ok(TokenPair {
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_TTL_SECS,
    })
}
