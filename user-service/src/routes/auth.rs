//! `POST /api/v1/auth/{login,refresh,logout,accept-invite}` on a tenant host.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use common::auth::Role;
use common::client::ClientAddr;
use common::error::Problem;
use common::events::keys;
use common::extract::{FieldErrors, ValidJson, Validate};
use common::tenant::TenantCtx;
use common::{ApiError, FieldError};
use serde::Deserialize;
use uuid::Uuid;

use crate::db::{invites, members, refresh_tokens, users};
use crate::tokens::{self, Grant, TokenPair, hash_token};
use crate::{AppState, emit, password};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/accept-invite", post(accept_invite))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

impl Validate for LoginRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors
            .check(
                !self.email.is_empty() && self.email.len() <= 254,
                "email",
                "must be an email address",
            )
            // Bounded so a huge "password" cannot make argon2 work for nothing.
            .check(self.password.len() <= 1024, "password", "is too long");
        errors.finish()
    }
}

fn bad_credentials() -> ApiError {
    ApiError::Unauthorized("Invalid email or password.".into())
}

/// Log in to the host's tenant. Unknown email, wrong password and "not a member here"
/// are one answer, and take the same time.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = Problem), (status = 429, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant = %tenant.slug))]
pub async fn login(
    State(state): State<AppState>,
    tenant: TenantCtx,
    ClientAddr(client): ClientAddr,
    ValidJson(req): ValidJson<LoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let ip = client.to_string();
    state
        .throttle
        .check(&req.email, &ip)
        .map_err(|retry_after| ApiError::TooManyRequests {
            retry_after,
            detail: "Too many failed logins; try again later.".into(),
        })?;
    let user = users::find_by_email(&state.pool, &req.email).await?;
    let role = match &user {
        Some(u) => members::role(&state.pool, tenant.id, u.id).await?,
        None => None,
    };
    let stored = user.as_ref().map(|u| u.password_hash.as_str());
    let verified = state.hasher.verify(&req.password, stored).await?;
    let (Some(user), Some(role), true) = (user, role, verified) else {
        state.throttle.record_failure(&req.email, &ip);
        return Err(bad_credentials());
    };
    state.throttle.record_success(&req.email, &ip);
    let grant = Grant {
        user_id: user.id,
        tenant_id: tenant.id,
        tenant_slug: tenant.slug,
        role,
    };
    let mut tx = state.pool.begin().await?;
    let pair = tokens::issue(&state, &mut tx, &grant, None).await?;
    tx.commit().await?;
    Ok(Json(pair))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

impl Validate for RefreshRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors.check(
            !self.refresh_token.is_empty() && self.refresh_token.len() <= 256,
            "refresh_token",
            "must be a refresh token",
        );
        errors.finish()
    }
}

fn invalid_refresh() -> ApiError {
    ApiError::Unauthorized("The refresh token is invalid or expired; log in again.".into())
}

/// Exchange a refresh token for a new pair. Each token works once; presenting a used one
/// again (outside the short retry grace) revokes every token of its family.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    tenant: Option<TenantCtx>,
    ValidJson(req): ValidJson<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let hash = hash_token(&req.refresh_token);
    let mut tx = state.pool.begin().await?;
    let stored = refresh_tokens::lock(&mut *tx, &hash)
        .await?
        .ok_or_else(invalid_refresh)?;
    if tenant.as_ref().is_some_and(|t| t.id != stored.tenant_id) {
        return Err(ApiError::Forbidden(
            "This token belongs to another organisation.".into(),
        ));
    }
    if stored.revoked || stored.expired {
        return Err(invalid_refresh());
    }
    if stored.rotated {
        if let Some(successor) = state.recent_refreshes.get(&hash) {
            return Ok(Json(successor));
        }
        refresh_tokens::revoke_family(&mut tx, stored.family_id).await?;
        tx.commit().await?;
        tracing::warn!(user = %stored.user_id, family = %stored.family_id, "refresh token reuse; family revoked");
        return Err(invalid_refresh());
    }
    let Some((role, slug)) = members::active(&mut *tx, stored.tenant_id, stored.user_id).await?
    else {
        refresh_tokens::revoke_family(&mut tx, stored.family_id).await?;
        tx.commit().await?;
        return Err(invalid_refresh());
    };
    refresh_tokens::mark_rotated(&mut *tx, &hash).await?;
    let grant = Grant {
        user_id: stored.user_id,
        tenant_id: stored.tenant_id,
        tenant_slug: slug,
        role,
    };
    let pair = tokens::issue(&state, &mut tx, &grant, Some(stored.family_id)).await?;
    tx.commit().await?;
    state.recent_refreshes.insert(hash, pair.clone());
    Ok(Json(pair))
}

/// End the session: the refresh token's whole family stops working.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204), (status = 400, body = Problem)))]
pub async fn logout(
    State(state): State<AppState>,
    ValidJson(req): ValidJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    let family = refresh_tokens::family_of(&mut *tx, &hash_token(&req.refresh_token)).await?;
    if let Some(family) = family {
        refresh_tokens::revoke_family(&mut tx, family).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AcceptInvite {
    pub token: String,
    /// Required for people without an account yet.
    pub name: Option<String>,
    /// Required for people without an account yet: 8 to 128 characters.
    pub password: Option<String>,
}

impl Validate for AcceptInvite {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors.check(
            !self.token.is_empty() && self.token.len() <= 256,
            "token",
            "must be an invite token",
        );
        if let Some(name) = &self.name {
            errors.check(
                crate::routes::users::name_ok(name),
                "name",
                "must be 1 to 100 characters",
            );
        }
        if let Some(password) = &self.password {
            errors.check(
                password::acceptable(password),
                "password",
                "must be 8 to 128 characters",
            );
        }
        errors.finish()
    }
}

/// Join the host's tenant with an invite: new people set a name and password, people
/// with an account just join. Answers a token pair, like login.
#[utoipa::path(post, path = "/api/v1/auth/accept-invite", tag = "auth", request_body = AcceptInvite,
    responses((status = 200, body = TokenPair), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn accept_invite(
    State(state): State<AppState>,
    tenant: TenantCtx,
    ValidJson(req): ValidJson<AcceptInvite>,
) -> Result<Json<TokenPair>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let invite = invites::lock_pending(&mut *tx, tenant.id, &hash_token(&req.token))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound("This invite does not exist, was used, or has expired.".into())
        })?;
    let role: Role = invite.role.parse().map_err(anyhow::Error::msg)?;
    let user_id = match users::find_by_email(&mut *tx, &invite.email).await? {
        Some(user) => user.id,
        None => {
            let (Some(name), Some(password)) = (&req.name, &req.password) else {
                return Err(ApiError::Validation(vec![
                    FieldError::new("name", "is required to create your account"),
                    FieldError::new("password", "is required to create your account"),
                ]));
            };
            let id = Uuid::now_v7();
            let hash = state.hasher.hash(password).await?;
            users::insert(&mut *tx, id, &invite.email, name.trim(), &hash).await?;
            id
        }
    };
    members::upsert(&mut *tx, tenant.id, &invite.tenant_slug, user_id, role).await?;
    invites::mark_accepted(&mut *tx, invite.id).await?;
    emit(
        &mut tx,
        keys::USER_CREATED,
        tenant.id,
        Some(user_id),
        serde_json::json!({ "user_id": user_id, "role": role }),
    )
    .await?;
    let grant = Grant {
        user_id,
        tenant_id: tenant.id,
        tenant_slug: invite.tenant_slug,
        role,
    };
    let pair = tokens::issue(&state, &mut tx, &grant, None).await?;
    tx.commit().await?;
    Ok(Json(pair))
}
