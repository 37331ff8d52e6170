//! `/api/v1/webhooks`: the tenant's outgoing webhook endpoints, their delivery log, and
//! the hand tools (a test message, a retry, a replay of what failed). Permission
//! `webhooks.manage` (owner, admin) for every route; the tenant is always the token's.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::egress::Refusal;
use common::error::Problem;
use common::extract::{Json, Query, ValidJson};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::db;
use crate::db::webhooks::{Change, Endpoint, NewDelivery};
use crate::domain::webhook::{self, EndpointChange, Format, NewEndpoint};

/// This resource's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks", post(create).get(list))
        .route(
            "/api/v1/webhooks/{id}",
            get(show).patch(change).delete(remove),
        )
        .route("/api/v1/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/api/v1/webhooks/{id}/test", post(test))
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries))
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
            post(retry),
        )
        .route("/api/v1/webhooks/{id}/recover", post(recover))
}

/// An endpoint (its secret is shown only when it is made or rotated).
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub format: Format,
    pub enabled: bool,
    /// `gone` (the receiver answered 410), `failing` (no success for
    /// `WEBHOOK_DISABLE_AFTER_HOURS`) or `manual`.
    pub disabled_reason: Option<String>,
    /// The first failure since the last success.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Endpoint> for Webhook {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            events: e.events,
            description: e.description,
            format: Format::parse(&e.format),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since,
            created_by: e.created_by,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// A new endpoint, with its secret (`whsec_…`): shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub secret: String,
}

/// The new secret; the previous one keeps signing beside it until `previous_valid_until`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rotated {
    pub secret: String,
    pub previous_valid_until: DateTime<Utc>,
}

/// A delivery queued by hand.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    pub delivery_id: Uuid,
}

/// Deliveries made due again by `recover`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recovered {
    pub requeued: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// Failed deliveries made at or after this time are sent again.
    pub since: DateTime<Utc>,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// None when no answer came (refused, timed out, no connection): see `error`.
    pub status_code: Option<i32>,
    pub duration_ms: i32,
    /// The answer's first KiB.
    pub response: String,
    pub error: Option<String>,
}

/// A delivery: one event to this endpoint, the same `webhook-id` on every attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    /// The `webhook-id` header of its attempts.
    pub webhook_id: String,
    pub event_id: Uuid,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub attempt_log: Vec<AttemptView>,
}

/// A page of the delivery log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryView>,
    /// Pass as `before` for the next page; none on the last.
    pub next_cursor: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveryQuery {
    /// `pending`, `succeeded` or `failed`.
    status: Option<String>,
    /// The `next_cursor` of the previous page.
    before: Option<Uuid>,
    /// 1 to 100 (default 50).
    limit: Option<i64>,
}

fn not_found() -> ApiError {
    ApiError::NotFound("There is no such webhook.".into())
}

/// 422: the receiver's URL is refused by the SSRF guard.
fn refused(refusal: &Refusal) -> ApiError {
    ApiError::Custom {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        kind: "webhook-url-refused",
        title: "Webhook URL Refused",
        detail: format!(
            "{refusal}. Receivers must be public http(s) addresses (an operator can allow \
             networks with WEBHOOK_ALLOWED_NETWORKS)."
        ),
    }
}

/// The endpoint `id`, which must be on: 404 when there is none, 409 when it is off.
async fn enabled_endpoint(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Endpoint, ApiError> {
    let endpoint = db::webhooks::find(conn, id).await?.ok_or_else(not_found)?;
    if !endpoint.enabled {
        return Err(ApiError::Conflict(
            "The webhook is disabled; turn it on (enabled: true) first.".into(),
        ));
    }
    Ok(endpoint)
}

async fn checked_url(state: &AppState, url: &str) -> Result<String, ApiError> {
    let url = state
        .webhooks
        .egress()
        .check(url.trim())
        .await
        .map_err(|r| refused(&r))?;
    Ok(url.to_string())
}

/// Adds an endpoint; answers its secret, shown this once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = NewEndpoint,
    responses((status = 201, body = CreatedWebhook), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ValidJson(req): ValidJson<NewEndpoint>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    user.require(Perm::WebhooksManage)?;
    let url = checked_url(&state, &req.url).await?;
    let secret = webhook::new_secret();
    let mut conn = state.databases.connect(user.tenant_id).await?;
    let endpoint = db::webhooks::insert(
        &mut conn,
        &db::webhooks::NewEndpoint {
            id: Uuid::now_v7(),
            url: &url,
            events: &req.events,
            description: req.description.trim(),
            format: req.format.as_str(),
            secret: &secret,
            created_by: user.user_id,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            webhook: endpoint.into(),
            secret,
        }),
    ))
}

/// The tenant's endpoints, oldest first.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = [Webhook]), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<Webhook>>, ApiError> {
    user.require(Perm::WebhooksManage)?;
    let mut conn = state.databases.connect(user.tenant_id).await?;
    let endpoints = db::webhooks::list(&mut conn).await?;
    Ok(Json(endpoints.into_iter().map(Webhook::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    responses((status = 200, body = Webhook), (status = 404, body = Problem)))]
pub async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Webhook>, ApiError> {
    user.require(Perm::WebhooksManage)?;
    let mut conn = state.databases.connect(user.tenant_id).await?;
    let endpoint = db::webhooks::find(&mut conn, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(endpoint.into()))
}

/// Changes an endpoint; `enabled: true` turns a disabled one back on.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    request_body = EndpointChange,
    responses((status = 200, body = Webhook), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn change(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    ValidJson(req): ValidJson<EndpointChange>,
) -> Result<Json<Webhook>, ApiError> {
    user.require(Perm::WebhooksManage)?;
    let url = match &req.url {
        Some(url) => Some(checked_url(&state, url).await?),
        None => None,
    };
    let mut conn = state.databases.connect(user.tenant_id).await?;
    let endpoint = db::webhooks::update(
        &mut conn,
        id,
        &Change {
            url: url.as_deref(),
            events: req.events.as_deref(),
            description: req.description.as_deref().map(str::trim),
            format: req.format.map(Format::as_str),
            enabled: req.enabled,
        },
    )
    .await?
    .ok_or_else(not_found)?;
    if req.enabled == Some(true) {
        state.webhooks.touch(user.tenant_id, true);
    }
    Ok(Json(endpoint.into()))
}

/// Removes an endpoint and its delivery log.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    user.require(Perm::WebhooksManage)?;
    let mut conn = state.databases.connect(user.tenant_id).await?;
    if !db::webhooks::delete(&mut conn, id).await? {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret; the old one keeps signing beside it for 24 hours, so a receiver can
/// switch without losing a message.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    responses((status = 200, body = Rotated), (status = 404, body = Problem)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Rotated>, ApiError> {
    user.require(Perm::WebhooksManage)?;
    let secret = webhook::new_secret();
    let overlap = webhook::ROTATION_OVERLAP;
    let mut conn = state.databases.connect(user.tenant_id).await?;
    if !db::webhooks::rotate(&mut conn, id, &secret, overlap.as_secs_f64()).await? {
        return Err(not_found());
    }
    let overlap = chrono::Duration::from_std(overlap).map_err(anyhow::Error::from)?;
    Ok(Json(Rotated {
        secret,
        previous_valid_until: Utc::now() + overlap,
    }))
}

/// Sends the endpoint a `ping` (whatever events it asked for), through the same queue,
/// signature and retries as any delivery.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks",
    responses((status = 202, body = Queued), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn test(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    user.require(Perm::WebhooksManage)?;
    let mut conn = state.databases.connect(user.tenant_id).await?;
    let endpoint = enabled_endpoint(&mut conn, id).await?;
    let now = Utc::now();
    let delivery = NewDelivery {
        id: Uuid::now_v7(),
        endpoint_id: id,
        event_id: Uuid::now_v7(),
        event_type: webhook::PING.to_owned(),
        body: webhook::body(
            Format::parse(&endpoint.format),
            webhook::PING,
            now,
            Some(user.user_id),
            &serde_json::json!({"webhook_id": id}),
        ),
        occurred_at: now,
    };
    db::webhooks::enqueue(&mut conn, std::slice::from_ref(&delivery)).await?;
    state.webhooks.touch(user.tenant_id, true);
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            delivery_id: delivery.id,
        }),
    ))
}

/// The endpoint's deliveries, newest first, each with its attempts.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(DeliveryQuery),
    responses((status = 200, body = DeliveryPage), (status = 400, body = Problem),
        (status = 404, body = Problem)))]
pub async fn deliveries(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    user.require(Perm::WebhooksManage)?;
    if let Some(status) = &q.status
        && !matches!(status.as_str(), "pending" | "succeeded" | "failed")
    {
        return Err(ApiError::validation(
            "status",
            "one of `pending`, `succeeded`, `failed`",
        ));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation("limit", "from 1 to 100"));
    }
    let mut conn = state.databases.connect(user.tenant_id).await?;
    db::webhooks::find(&mut conn, id)
        .await?
        .ok_or_else(not_found)?;
    let rows =
        db::webhooks::deliveries(&mut conn, id, q.before, q.status.as_deref(), limit).await?;
    let ids: Vec<Uuid> = rows.iter().map(|d| d.id).collect();
    let mut attempts = db::webhooks::attempts(&mut conn, &ids).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|d| d.id))
        .flatten();
    let items = rows
        .into_iter()
        .map(|d| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                attempts.drain(..).partition(|a| a.delivery_id == d.id);
            attempts = rest;
            DeliveryView {
                webhook_id: webhook::message_id(d.id),
                id: d.id,
                event_id: d.event_id,
                event_type: d.event_type,
                status: d.status,
                attempts: d.attempts,
                next_attempt_at: d.next_attempt_at,
                created_at: d.created_at,
                attempt_log: mine
                    .into_iter()
                    .map(|a| AttemptView {
                        attempt: a.attempt,
                        at: a.at,
                        status_code: a.status_code,
                        duration_ms: a.duration_ms,
                        response: a.response,
                        error: a.error,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Json(DeliveryPage { items, next_cursor }))
}

/// Sends one delivery again now (same `webhook-id`), whatever became of it.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
    tag = "webhooks",
    responses((status = 202, body = Queued), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn retry(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, delivery)): Path<(Uuid, Uuid)>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    user.require(Perm::WebhooksManage)?;
    let mut conn = state.databases.connect(user.tenant_id).await?;
    enabled_endpoint(&mut conn, id).await?;
    if !db::webhooks::retry(&mut conn, id, delivery).await? {
        return Err(ApiError::NotFound("There is no such delivery.".into()));
    }
    state.webhooks.touch(user.tenant_id, true);
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            delivery_id: delivery,
        }),
    ))
}

/// Sends again every failed delivery made since `since` (after an outage of the
/// receiver), each with its own `webhook-id`.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/recover", tag = "webhooks",
    request_body = Recover,
    responses((status = 202, body = Recovered), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn recover(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Json(req): Json<Recover>,
) -> Result<(StatusCode, Json<Recovered>), ApiError> {
    user.require(Perm::WebhooksManage)?;
    let mut conn = state.databases.connect(user.tenant_id).await?;
    enabled_endpoint(&mut conn, id).await?;
    let requeued = db::webhooks::recover(&mut conn, id, req.since).await?;
    state.webhooks.touch(user.tenant_id, true);
    Ok((StatusCode::ACCEPTED, Json(Recovered { requeued })))
}
