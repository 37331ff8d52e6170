//! `/internal/...`: the owner of a new tenant (tenant-resolver's signup, and its undo)
//! and user summaries for other services. Internal token required.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use common::auth::{Perm, Role};
use common::db::ConstraintExt;
use common::error::Problem;
use common::events::keys;
use common::extract::{FieldErrors, Query, ValidJson, Validate};
use common::internal::InternalCaller;
use common::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::members;
use crate::db::revocations::{self, Revocation};
use crate::db::users::{self, Summary};
use crate::routes::users::name_ok;
use crate::{AppState, emit, password};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/internal/tenants/{tenant_id}/owner", post(create_owner))
        .route(
            "/internal/tenants/{tenant_id}/owner/{user_id}",
            delete(remove_owner),
        )
        .route("/internal/users", get(summaries))
        .route("/internal/tenants/{tenant_id}/users", get(holders))
        .route("/internal/revocations", get(revocations))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct After {
    /// The `cursor` of the previous answer; without it, the revocations of the last 20
    /// minutes (longer than any access token lives).
    after: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Revocations {
    pub items: Vec<Revocation>,
    /// Pass as `after` next time.
    pub cursor: i64,
}

/// Members whose access tokens must stop working before they expire (removed, or their
/// role changed), for the gateway to poll.
#[utoipa::path(get, path = "/internal/revocations", tag = "internal", params(After),
    responses((status = 200, body = Revocations)))]
pub async fn revocations(
    _: InternalCaller,
    State(state): State<AppState>,
    Query(query): Query<After>,
) -> Result<Json<Revocations>, ApiError> {
    let rows = revocations::after(&state.pool, query.after).await?;
    let cursor = match (rows.last(), query.after) {
        (Some((seq, _)), _) => *seq,
        (None, Some(after)) => after,
        (None, None) => revocations::latest_cursor(&state.pool).await?,
    };
    Ok(Json(Revocations {
        items: rows.into_iter().map(|(_, revocation)| revocation).collect(),
        cursor,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewOwner {
    pub tenant_slug: String,
    pub email: String,
    pub password: String,
    pub name: String,
}

impl Validate for NewOwner {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors
            .check(
                !self.tenant_slug.is_empty() && self.tenant_slug.len() <= 32,
                "tenant_slug",
                "must be a slug",
            )
            .check(
                self.email.contains('@') && self.email.len() <= 254,
                "email",
                "must be an email address",
            )
            .check(
                password::acceptable(&self.password),
                "password",
                "must be 8 to 128 characters",
            )
            .check(name_ok(&self.name), "name", "must be 1 to 100 characters");
        errors.finish()
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OwnerCreated {
    pub user_id: Uuid,
}

/// Make the owner of a new tenant: a new account, or an existing one proven by its
/// password (one person, several organisations).
#[utoipa::path(post, path = "/internal/tenants/{tenant_id}/owner", tag = "internal", request_body = NewOwner,
    responses((status = 201, body = OwnerCreated), (status = 400, body = Problem)))]
pub async fn create_owner(
    _: InternalCaller,
    State(state): State<AppState>,
    Path(tenant_id): Path<Uuid>,
    ValidJson(req): ValidJson<NewOwner>,
) -> Result<(StatusCode, Json<OwnerCreated>), ApiError> {
    let existing = users::find_by_email(&state.pool, &req.email).await?;
    let new_hash = match &existing {
        Some(user) => {
            if !state
                .hasher
                .verify(&req.password, Some(&user.password_hash))
                .await?
            {
                return Err(ApiError::validation(
                    "email",
                    "is already registered; use that account's password to add an organisation to it",
                ));
            }
            None
        }
        None => Some(state.hasher.hash(&req.password).await?),
    };
    let mut tx = state.pool.begin().await?;
    let user_id = match (&existing, new_hash) {
        (Some(user), _) => user.id,
        (None, Some(hash)) => {
            let id = Uuid::now_v7();
            users::insert(&mut *tx, id, req.email.trim(), req.name.trim(), &hash)
                .await
                .on_constraint(users::EMAIL_KEY, || {
                    ApiError::validation("email", "is already registered")
                })?;
            id
        }
        (None, None) => unreachable!("a hash is made whenever there is no user"),
    };
    members::upsert(&mut *tx, tenant_id, &req.tenant_slug, user_id, Role::Owner).await?;
    emit(
        &mut tx,
        keys::USER_CREATED,
        tenant_id,
        Some(user_id),
        serde_json::json!({ "user_id": user_id, "role": Role::Owner }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(OwnerCreated { user_id })))
}

/// Undoes [`create_owner`] for a signup that failed after it (tenant-resolver makes the
/// owner while the tenant's database is copied): the membership goes, and the account
/// too when it was made for this signup (nothing else refers to it). An account that
/// joined with its own password keeps its other organisations. 204; 404 when there is no
/// such membership (already undone).
#[utoipa::path(delete, path = "/internal/tenants/{tenant_id}/owner/{user_id}", tag = "internal",
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove_owner(
    _: InternalCaller,
    State(state): State<AppState>,
    Path((tenant_id, user_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    if !members::delete(&mut *tx, tenant_id, user_id).await? {
        return Err(ApiError::NotFound(
            "No such owner of that organisation.".into(),
        ));
    }
    let account_removed = users::delete_if_unused(&mut *tx, user_id).await?;
    tx.commit().await?;
    tracing::info!(%tenant_id, %user_id, account_removed, "a failed signup's owner undone");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct Ids {
    /// Comma-separated user ids (at most 200).
    ids: String,
    /// Only active members of this tenant.
    tenant_id: Option<Uuid>,
}

/// Names of users by id, for other services (mentions, assignees).
#[utoipa::path(get, path = "/internal/users", tag = "internal",
    params(("ids" = String, Query), ("tenant_id" = Option<Uuid>, Query)),
    responses((status = 200, body = [Summary]), (status = 400, body = Problem)))]
pub async fn summaries(
    _: InternalCaller,
    State(state): State<AppState>,
    Query(q): Query<Ids>,
) -> Result<Json<Vec<Summary>>, ApiError> {
    let ids: Vec<Uuid> = q
        .ids
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| ApiError::validation("ids", format!("`{s}` is not a user id")))
        })
        .collect::<Result<_, _>>()?;
    if ids.len() > 200 {
        return Err(ApiError::validation("ids", "at most 200 ids"));
    }
    Ok(Json(
        users::summaries(&state.pool, &ids, q.tenant_id).await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct Holding {
    /// A permission (`webhooks.manage`).
    permission: String,
}

/// The tenant's active members whose role grants `permission` (whom to tell of
/// something only they can act on, such as a disabled webhook).
#[utoipa::path(get, path = "/internal/tenants/{tenant_id}/users", tag = "internal",
    params(("tenant_id" = Uuid, Path), Holding),
    responses((status = 200, body = [Summary]), (status = 400, body = Problem)))]
pub async fn holders(
    _: InternalCaller,
    State(state): State<AppState>,
    Path(tenant_id): Path<Uuid>,
    Query(q): Query<Holding>,
) -> Result<Json<Vec<Summary>>, ApiError> {
    let perm = Perm::ALL
        .into_iter()
        .find(|p| p.as_str() == q.permission)
        .ok_or_else(|| {
            ApiError::validation(
                "permission",
                format!("`{}` is not a permission", q.permission),
            )
        })?;
    let roles: Vec<String> = Role::ALL
        .into_iter()
        .filter(|r| r.permissions().contains(&perm))
        .map(|r| r.as_str().to_owned())
        .collect();
    Ok(Json(
        users::with_roles(&state.pool, tenant_id, &roles).await?,
    ))
}
