//! `/api/v1/links`: create, list, read, change, disable and delete share links. Every
//! query is scoped by the token's tenant: another tenant's code is simply not found.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::Problem;
use common::events::{Envelope, keys};
use common::extract::{Query, ValidJson, if_match};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::idempotency;
use crate::db::links::{self as db, Changes, LinkRow, NewLink};
use crate::domain::{Code, CreateLink, Target, UpdateLink};
use crate::{AppState, targets};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/links", post(create).get(list))
        .route(
            "/api/v1/links/{code}",
            get(get_one).patch(update).delete(remove),
        )
        .route("/api/v1/links/{code}/disable", post(disable))
}

/// A share link as the API shows it (never its password or hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Link {
    pub code: String,
    pub short_url: String,
    pub target: Target,
    pub protected: bool,
    pub expires_at: DateTime<Utc>,
    pub max_visits: Option<i64>,
    /// Successful opens (including ones not yet written to the database).
    pub visits: i64,
    pub disabled: bool,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Raised by every change; send it back as `If-Match: "<version>"` to make a change
    /// conditional.
    pub version: i32,
}

impl Link {
    fn from_row(state: &AppState, row: &LinkRow) -> Self {
        Self {
            code: row.code.clone(),
            short_url: state.config.short_url(&row.code),
            target: row.target(),
            protected: row.password_hash.is_some(),
            expires_at: row.expires_at,
            max_visits: row.max_visits,
            visits: state
                .cache
                .visits(&row.code)
                .map_or(row.visits, |v| v.max(row.visits)),
            disabled: row.disabled,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            version: row.version,
        }
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("No link with this code.".into())
}

fn stale() -> ApiError {
    ApiError::PreconditionFailed("The link changed since you read it; read it again.".into())
}

/// Tries this many codes before giving up (a collision among 62^8 is already rare).
const CODE_ATTEMPTS: usize = 5;

/// Create a share link to a task or project of the caller's tenant. With an
/// `Idempotency-Key`, a retry answers the first answer again and creates nothing.
#[utoipa::path(post, path = "/api/v1/links", tag = "links", request_body = CreateLink,
    responses((status = 201, body = Link), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 422, body = Problem),
              (status = 503, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %user.tenant_id), err)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ValidJson(body): ValidJson<CreateLink>,
) -> Result<Response, ApiError> {
    user.require(Perm::LinksCreate)?;
    let idempotency_key = idempotency::key(&headers)?;
    if let Some(key) = &idempotency_key
        && let Some((status, body)) = idempotency::replay(&state.pool, &user, key).await?
    {
        return Ok(created(status, body));
    }
    targets::check_exists(
        &state.http,
        state.config.project_service(),
        &headers,
        body.target,
    )
    .await?;
    let password_hash = match body.password.clone() {
        Some(p) => Some(state.hasher.hash(&p).await?),
        None => None,
    };
    let expires_at = body.expiry(Utc::now());
    let mut tx = state.pool.begin().await?;
    let mut row = None;
    for _ in 0..CODE_ATTEMPTS {
        let code = Code::generate(user.tenant_id, body.target);
        let new = NewLink {
            code: code.as_str(),
            tenant_id: user.tenant_id,
            tenant_slug: &user.tenant_slug,
            created_by: user.user_id,
            target: body.target,
            password_hash: password_hash.as_deref(),
            expires_at,
            max_visits: body.max_visits,
        };
        row = db::insert(&mut tx, &new).await?;
        if row.is_some() {
            break;
        }
        tracing::warn!("link code collision; drawing another");
    }
    let row = row.ok_or_else(|| anyhow::anyhow!("no free code in {CODE_ATTEMPTS} attempts"))?;
    let event = Envelope::new(
        keys::URL_CREATED,
        user.tenant_id,
        Some(user.user_id),
        serde_json::json!({
            "code": row.code,
            "target": row.target(),
            "expires_at": row.expires_at,
            "protected": row.password_hash.is_some(),
            "max_visits": row.max_visits,
        }),
    );
    common::events::outbox::enqueue(
        &mut *tx,
        &event,
        common::telemetry::current_request_id().as_deref(),
    )
    .await?;
    let body = serde_json::to_value(Link::from_row(&state, &row)).map_err(anyhow::Error::from)?;
    if let Some(key) = &idempotency_key {
        idempotency::remember(&mut tx, &user, key, StatusCode::CREATED, &body).await?;
    }
    tx.commit().await?;
    Ok(created(StatusCode::CREATED, body))
}

/// A create's answer (first or replayed), with the link's address in `Location`.
fn created(status: StatusCode, body: serde_json::Value) -> Response {
    let location = body["code"]
        .as_str()
        .and_then(|code| HeaderValue::from_str(&format!("/api/v1/links/{code}")).ok());
    let mut response = (status, Json(body)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The caller's own links.
    #[default]
    Mine,
    /// Every link of the tenant (`links.manage`).
    All,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `mine` (default) or `all`.
    #[param(inline)]
    pub scope: Option<Scope>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkList {
    pub items: Vec<Link>,
    pub next_cursor: Option<String>,
}

fn encode_cursor(row: &LinkRow) -> String {
    format!("{}.{}", row.created_at.timestamp_micros(), row.code)
}

fn decode_cursor(cursor: &str) -> Result<db::Cursor, ApiError> {
    let bad = || ApiError::BadRequest("`cursor` is not one this API handed out.".into());
    let (micros, code) = cursor.split_once('.').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    let code = Code::parse(code).ok_or_else(bad)?;
    Ok((at, code.as_str().to_owned()))
}

/// List the caller's links, or all of the tenant's with `scope=all` (`links.manage`),
/// newest first.
#[utoipa::path(get, path = "/api/v1/links", tag = "links", params(ListParams),
    responses((status = 200, body = LinkList), (status = 400, body = Problem),
              (status = 403, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %user.tenant_id), err)]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(params): Query<ListParams>,
) -> Result<Json<LinkList>, ApiError> {
    let creator = match params.scope.unwrap_or_default() {
        Scope::Mine => {
            user.require(Perm::LinksCreate)?;
            Some(user.user_id)
        }
        Scope::All => {
            user.require(Perm::LinksManage)?;
            None
        }
    };
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 200"));
    }
    let cursor = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let rows = db::list(
        &state.pool,
        user.tenant_id,
        creator,
        cursor.as_ref(),
        limit + 1,
    )
    .await?;
    let (rows, next_cursor) = common::paging::page(rows, limit, encode_cursor);
    Ok(Json(LinkList {
        items: rows.iter().map(|r| Link::from_row(&state, r)).collect(),
        next_cursor,
    }))
}

/// The caller's link (any link of the tenant with `links.manage`), or 404.
pub(crate) async fn visible(
    state: &AppState,
    user: &AuthUser,
    code: &str,
) -> Result<LinkRow, ApiError> {
    if !user.has(Perm::LinksManage) {
        user.require(Perm::LinksCreate)?;
    }
    let code = Code::parse(code).ok_or_else(not_found)?;
    let row = db::of_tenant(&state.pool, user.tenant_id, code.as_str())
        .await?
        .ok_or_else(not_found)?;
    if row.created_by == user.user_id || user.has(Perm::LinksManage) {
        Ok(row)
    } else {
        Err(not_found())
    }
}

/// One link: the creator's own, or any of the tenant's with `links.manage`.
#[utoipa::path(get, path = "/api/v1/links/{code}", tag = "links",
    params(("code" = String, Path, description = "The link's code")),
    responses((status = 200, body = Link), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %user.tenant_id), err)]
pub async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(code): Path<String>,
) -> Result<Json<Link>, ApiError> {
    let row = visible(&state, &user, &code).await?;
    Ok(Json(Link::from_row(&state, &row)))
}

/// Change a link's expiry, password (`null` removes it), visit limit (`null` removes it)
/// or `disabled`. The redirect sees the change at once. `If-Match: "<version>"` makes the
/// change conditional (412 when the link changed since).
#[utoipa::path(patch, path = "/api/v1/links/{code}", tag = "links", request_body = UpdateLink,
    params(("code" = String, Path, description = "The link's code"),
           ("If-Match" = Option<String>, Header, description = "The version the change expects, like \"3\"")),
    responses((status = 200, body = Link), (status = 400, body = Problem),
              (status = 404, body = Problem), (status = 412, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %user.tenant_id), err)]
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path(code): Path<String>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<UpdateLink>,
) -> Result<Json<Link>, ApiError> {
    let expected = if_match(&headers)?;
    let row = visible(&state, &user, &code).await?;
    // Checked before the password is hashed, so a stale change costs no argon2 time; the
    // write itself checks again, for a change that lands in between.
    if expected.is_some_and(|v| v != row.version) {
        return Err(stale());
    }
    let password_hash = match body.password.clone() {
        Some(Some(p)) => Some(Some(state.hasher.hash(&p).await?)),
        Some(None) => Some(None),
        None => None,
    };
    let changes = Changes {
        expires_at: body.expiry(Utc::now()),
        password_hash,
        max_visits: body.max_visits,
        disabled: body.disabled,
    };
    apply(&state, &user, &row.code, &changes, expected).await
}

/// Switch a link off: it answers 410 from now on (undo with `PATCH {"disabled": false}`).
#[utoipa::path(post, path = "/api/v1/links/{code}/disable", tag = "links",
    params(("code" = String, Path, description = "The link's code")),
    responses((status = 200, body = Link), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %user.tenant_id), err)]
pub async fn disable(
    State(state): State<AppState>,
    user: AuthUser,
    Path(code): Path<String>,
) -> Result<Json<Link>, ApiError> {
    let row = visible(&state, &user, &code).await?;
    let changes = Changes {
        disabled: Some(true),
        ..Changes::default()
    };
    apply(&state, &user, &row.code, &changes, None).await
}

async fn apply(
    state: &AppState,
    user: &AuthUser,
    code: &str,
    changes: &Changes,
    expected: Option<i32>,
) -> Result<Json<Link>, ApiError> {
    let Some(row) = db::update(&state.pool, user.tenant_id, code, changes, expected).await? else {
        // Changed between the read and the write (a conditional change), or deleted.
        return Err(
            if expected.is_some()
                && db::of_tenant(&state.pool, user.tenant_id, code)
                    .await?
                    .is_some()
            {
                stale()
            } else {
                not_found()
            },
        );
    };
    state.cache.put(&row, &state.config);
    Ok(Json(Link::from_row(state, &row)))
}

/// Delete a link: its code answers 404 from now on and hands out no more grants.
#[utoipa::path(delete, path = "/api/v1/links/{code}", tag = "links",
    params(("code" = String, Path, description = "The link's code")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %user.tenant_id), err)]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(code): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = visible(&state, &user, &code).await?;
    if !db::delete(&state.pool, user.tenant_id, &row.code).await? {
        return Err(not_found());
    }
    state.cache.remove(&row.code);
    Ok(StatusCode::NO_CONTENT)
}
