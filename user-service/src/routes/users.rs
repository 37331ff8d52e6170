//! `/api/v1/users/...`: the caller's own account, and the members of the tenant.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, put};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::auth::{AuthUser, Perm, Role};
use common::error::Problem;
use common::events::keys;
use common::extract::{FieldErrors, Json, Query, ValidJson, Validate};
use common::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::members::{self, Member};
use crate::db::{refresh_tokens, revocations, users};
use crate::{AppState, emit, password};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users/me", get(me).patch(update_me))
        .route("/api/v1/users/me/password", put(change_password))
        .route("/api/v1/users", get(list))
        .route("/api/v1/users/{id}", get(get_one).delete(remove))
        .route("/api/v1/users/{id}/role", patch(change_role))
}

pub fn name_ok(name: &str) -> bool {
    let trimmed = name.trim();
    !trimmed.is_empty() && trimmed.chars().count() <= 100 && !trimmed.chars().any(char::is_control)
}

fn not_a_member() -> ApiError {
    ApiError::NotFound("No such member in this organisation.".into())
}

/// The caller as a member of the current tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    #[serde(flatten)]
    pub member: Member,
    pub tenant_id: Uuid,
    pub tenant_slug: String,
    pub permissions: Vec<String>,
}

/// Your account in this organisation.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", responses((status = 200, body = Me), (status = 401, body = Problem)))]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<Me>, ApiError> {
    let member = members::find(&state.pool, user.tenant_id, user.user_id)
        .await?
        .ok_or_else(not_a_member)?;
    Ok(Json(Me {
        member,
        tenant_id: user.tenant_id,
        tenant_slug: user.tenant_slug.clone(),
        permissions: user.claims.perms.clone(),
    }))
}

/// What a user may change about themselves: the name. Other fields are refused.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    pub name: String,
}

impl Validate for UpdateMe {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors.check(name_ok(&self.name), "name", "must be 1 to 100 characters");
        errors.finish()
    }
}

/// Change your name (email, role and tenant are not yours to change here).
#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", request_body = UpdateMe,
    responses((status = 200, body = Me), (status = 400, body = Problem)))]
pub async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    ValidJson(req): ValidJson<UpdateMe>,
) -> Result<Json<Me>, ApiError> {
    let mut tx = state.pool.begin().await?;
    users::set_name(&mut *tx, user.user_id, req.name.trim()).await?;
    emit(
        &mut tx,
        keys::USER_UPDATED,
        user.tenant_id,
        Some(user.user_id),
        serde_json::json!({ "user_id": user.user_id, "changed": ["name"] }),
    )
    .await?;
    tx.commit().await?;
    me(State(state), user).await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

impl Validate for ChangePassword {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors
            .check(
                self.current_password.len() <= 1024,
                "current_password",
                "is too long",
            )
            .check(
                password::acceptable(&self.new_password),
                "new_password",
                "must be 8 to 128 characters",
            );
        errors.finish()
    }
}

/// Change your password; every other session (refresh token) ends.
#[utoipa::path(put, path = "/api/v1/users/me/password", tag = "users", request_body = ChangePassword,
    responses((status = 204), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    ValidJson(req): ValidJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    let stored = users::find(&state.pool, user.user_id)
        .await?
        .ok_or_else(not_a_member)?;
    if !state
        .hasher
        .verify(&req.current_password, Some(&stored.password_hash))
        .await?
    {
        return Err(ApiError::Forbidden("The current password is wrong.".into()));
    }
    let hash = state.hasher.hash(&req.new_password).await?;
    let mut tx = state.pool.begin().await?;
    users::set_password(&mut *tx, user.user_id, &hash).await?;
    refresh_tokens::revoke_user(&mut tx, user.user_id, None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct Page {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberPage {
    pub items: Vec<Member>,
    pub next_cursor: Option<String>,
}

/// The members of this organisation, in pages (`limit` ≤ 200, opaque `cursor`).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = MemberPage), (status = 400, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(page): Query<Page>,
) -> Result<Json<MemberPage>, ApiError> {
    user.require(Perm::UsersRead)?;
    let limit = page.limit.unwrap_or(50).clamp(1, 200);
    let after = page
        .cursor
        .as_deref()
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| Uuid::from_slice(&b).ok())
                .ok_or_else(|| ApiError::validation("cursor", "is not a cursor this API gave out"))
        })
        .transpose()?;
    let items = members::page(&state.pool, user.tenant_id, after, limit + 1).await?;
    let (items, next_cursor) =
        common::paging::page(items, limit, |m| URL_SAFE_NO_PAD.encode(m.id.as_bytes()));
    Ok(Json(MemberPage { items, next_cursor }))
}

/// One member of this organisation.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", responses((status = 200, body = Member), (status = 404, body = Problem)))]
pub async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Member>, ApiError> {
    user.require(Perm::UsersRead)?;
    Ok(Json(
        members::find(&state.pool, user.tenant_id, id)
            .await?
            .ok_or_else(not_a_member)?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    pub role: Role,
}

/// Checks that `actor` may act on `target`'s membership, and that the tenant keeps an
/// owner. Runs inside the transaction that makes the change.
async fn guard_change(
    tx: &mut sqlx::PgConnection,
    actor: &AuthUser,
    target: Uuid,
    new_role: Option<Role>,
) -> Result<Role, ApiError> {
    actor.require(Perm::UsersManage)?;
    let owners = members::lock_owners(&mut *tx, actor.tenant_id).await?;
    let current = members::role(&mut *tx, actor.tenant_id, target)
        .await?
        .ok_or_else(not_a_member)?;
    if current.rank() > actor.role.rank() || new_role.is_some_and(|r| r.rank() > actor.role.rank())
    {
        return Err(ApiError::Forbidden(
            "Nobody can grant or change a role above their own.".into(),
        ));
    }
    let stays_owner = new_role == Some(Role::Owner);
    if current == Role::Owner && !stays_owner && owners.len() <= 1 {
        return Err(ApiError::Conflict(
            "The last owner cannot be demoted or removed; make someone else owner first.".into(),
        ));
    }
    Ok(current)
}

/// Change a member's role (`users.manage`; never above your own; the last owner stays).
#[utoipa::path(patch, path = "/api/v1/users/{id}/role", tag = "users", request_body = ChangeRole,
    responses((status = 200, body = Member), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn change_role(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Json(req): Json<ChangeRole>,
) -> Result<Json<Member>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let old = guard_change(&mut tx, &user, id, Some(req.role)).await?;
    if old != req.role {
        members::set_role(&mut *tx, user.tenant_id, id, req.role).await?;
        revocations::record(&mut tx, id, user.tenant_id).await?;
        emit(
            &mut tx,
            keys::USER_PERMISSION_CHANGED,
            user.tenant_id,
            Some(user.user_id),
            serde_json::json!({ "user_id": id, "old_role": old, "new_role": req.role }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(
        members::find(&state.pool, user.tenant_id, id)
            .await?
            .ok_or_else(not_a_member)?,
    ))
}

/// Remove a member from this organisation; their sessions here end.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    responses((status = 204), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    guard_change(&mut tx, &user, id, None).await?;
    members::remove(&mut *tx, user.tenant_id, id).await?;
    refresh_tokens::revoke_user(&mut tx, id, Some(user.tenant_id)).await?;
    revocations::record(&mut tx, id, user.tenant_id).await?;
    emit(
        &mut tx,
        keys::USER_UPDATED,
        user.tenant_id,
        Some(user.user_id),
        serde_json::json!({ "user_id": id, "changed": ["membership"], "removed": true }),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
