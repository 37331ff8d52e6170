//! `/api/v1/invites`: invite people to the tenant, within the plan's user limit.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use common::auth::{AuthUser, Perm, Role};
use common::db::ConstraintExt;
use common::error::Problem;
use common::extract::{FieldErrors, ValidJson, Validate};
use common::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::db::invites::{self, Invite};
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
    invites::lock_seats(&mut *tx, user.tenant_id).await?;
    if let Some(limit) = limit
        && members::seats_used(&mut *tx, user.tenant_id).await? >= limit
    {
        return Err(ApiError::plan_limit(format!(
            "The plan allows {limit} users (members and pending invites); upgrade to invite more."
        )));
    }
    let token = common::opaque::token();
    let new = invites::NewInvite {
        tenant_id: user.tenant_id,
        tenant_slug: &user.tenant_slug,
        email: req.email.trim(),
        role: req.role.as_str(),
        token_hash: &hash_token(&token),
        invited_by: user.user_id,
        expires_at: Utc::now() + Duration::hours(i64::from(state.config.invite_ttl_hours)),
    };
    let invite = invites::insert(&mut *tx, &new)
        .await
        .on_constraint(invites::PENDING_KEY, || {
            ApiError::Conflict("This address already has a pending invite.".into())
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
    Ok(Json(invites::pending(&state.pool, user.tenant_id).await?))
}

/// Withdraw a pending invite.
#[utoipa::path(delete, path = "/api/v1/invites/{id}", tag = "invites", responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    user.require(Perm::UsersInvite)?;
    if !invites::revoke(&state.pool, user.tenant_id, id).await? {
        return Err(ApiError::NotFound("No such pending invite.".into()));
    }
    Ok(StatusCode::NO_CONTENT)
}
