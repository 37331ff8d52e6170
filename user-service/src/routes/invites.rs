//! `/api/v1/invites`: invite people to the tenant, within the plan's user limit.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use common::auth::{AuthUser, Perm, Role};
use common::error::Problem;
use common::extract::{FieldErrors, ValidJson, Validate};
use common::{ApiError, FieldError};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::db::members;
use crate::tokens::hash_token;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/invites", get(list).post(create))
        .route("/api/v1/invites/{id}", delete(revoke))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvite {
    pub email: String,
    pub role: Role,
}

impl Validate for NewInvite {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let email_ok = self.email.len() <= 254
            && self
                .email
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'))
            && !self.email.chars().any(char::is_whitespace);
        errors
            .check(email_ok, "email", "must be an email address")
            .check(
                self.role != Role::Owner,
                "role",
                "owners are made by changing a member's role",
            );
        errors.finish()
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Invite {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedInvite {
    #[serde(flatten)]
    pub invite: Invite,
    /// Shown once: the invitee accepts with it at `/api/v1/auth/accept-invite`.
    pub token: String,
}

#[derive(Deserialize)]
struct Lookup {
    limits: Limits,
}

#[derive(Deserialize)]
struct Limits {
    users: Option<i64>,
}

/// The plan's user limit, from tenant-resolver.
async fn user_limit(state: &AppState, slug: &str) -> Result<Option<i64>, ApiError> {
    let url = format!(
        "{}/internal/tenants/by-slug/{slug}",
        state.config.tenant_resolver_url.trim_end_matches('/')
    );
    let unavailable = |e: String| {
        tracing::warn!(error = e, "cannot read the plan's limits");
        ApiError::Unavailable {
            retry_after: 5,
            detail: "The organisation's plan cannot be checked right now.".into(),
        }
    };
    let response = state
        .http
        .get(url)
        .header(reqwest::header::AUTHORIZATION, state.internal.bearer())
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .error_for_status()
        .map_err(|e| unavailable(e.to_string()))?;
    let lookup: Lookup = response
        .json()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(lookup.limits.users)
}

/// Invite someone (`users.invite`; not above your own role; within the plan's users).
#[utoipa::path(post, path = "/api/v1/invites", tag = "invites", request_body = NewInvite,
    responses((status = 201, body = CreatedInvite), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ValidJson(req): ValidJson<NewInvite>,
) -> Result<(StatusCode, Json<CreatedInvite>), ApiError> {
    user.require(Perm::UsersInvite)?;
    if req.role.rank() > user.role.rank() {
        return Err(ApiError::Forbidden(
            "Nobody can invite with a role above their own.".into(),
        ));
    }
    let limit = user_limit(&state, &user.tenant_slug).await?;
    let mut tx = state.pool.begin().await?;
    // One invite at a time per tenant, so two cannot both take the last seat.
    sqlx::query("select pg_advisory_xact_lock(hashtext($1::text))")
        .bind(user.tenant_id)
        .execute(&mut *tx)
        .await?;
    if let Some(limit) = limit
        && members::seats_used(&mut *tx, user.tenant_id).await? >= limit
    {
        return Err(ApiError::plan_limit(format!(
            "The plan allows {limit} users (members and pending invites); upgrade to invite more."
        )));
    }
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let invite: Invite = sqlx::query_as(
        "insert into invites (id, tenant_id, tenant_slug, email, role, token_hash, invited_by, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning id, email, role, expires_at, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(user.tenant_id)
    .bind(&user.tenant_slug)
    .bind(req.email.trim())
    .bind(req.role.as_str())
    .bind(hash_token(&token))
    .bind(user.user_id)
    .bind(Utc::now() + Duration::hours(i64::from(state.config.invite_ttl_hours)))
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match e.as_database_error().and_then(|d| d.constraint()) {
        Some("invites_pending_key") => ApiError::Conflict("This address already has a pending invite.".into()),
        _ => e.into(),
    })?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedInvite { invite, token })))
}

/// Pending invites of this organisation.
#[utoipa::path(get, path = "/api/v1/invites", tag = "invites", responses((status = 200, body = [Invite])))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<Invite>>, ApiError> {
    user.require(Perm::UsersInvite)?;
    let invites = sqlx::query_as(
        "select id, email, role, expires_at, created_at from invites
         where tenant_id = $1 and accepted_at is null and revoked_at is null and expires_at > now()
         order by created_at",
    )
    .bind(user.tenant_id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(invites))
}

/// Withdraw a pending invite.
#[utoipa::path(delete, path = "/api/v1/invites/{id}", tag = "invites", responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    user.require(Perm::UsersInvite)?;
    let done = sqlx::query(
        "update invites set revoked_at = now()
         where id = $1 and tenant_id = $2 and accepted_at is null and revoked_at is null",
    )
    .bind(id)
    .bind(user.tenant_id)
    .execute(&state.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("No such pending invite.".into()));
    }
    Ok(StatusCode::NO_CONTENT)
}
