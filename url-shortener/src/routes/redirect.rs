//! `GET /s/{code}` and `POST /s/{code}` (public, any host): open a share link.
//!
//! A cached link is answered from memory: the checks are against the clock and the
//! in-memory visit count, the grant is an HMAC (made once a second per link), and the
//! visit goes onto a channel for the flusher. Browsers get HTML pages; clients asking
//! for JSON get problem+json.
//!
//! Like the gateway's proxy, these routes sit outside the shared layer stack (span,
//! timer, histogram, timeout), which costs more than the redirect itself; [`lean`] keeps
//! what matters of it: the request id and a counter of answers by status.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use chrono::Utc;
use common::ApiError;
use common::error::Problem;
use common::events::{Envelope, keys};
use common::telemetry::{REQUEST_ID_HEADER, request_id_of, with_request_id};
use serde::Deserialize;

use crate::cache::{CachedLink, Gone};
use crate::domain::Code;
use crate::visits::Visit;
use crate::{AppState, db, pages};

/// The redirect routes share the state behind one `Arc`: extracting `State` then costs
/// one reference count, not a clone of every handle in [`AppState`].
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/s/{code}", get(open).post(unlock))
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(middleware::from_fn(lean))
}

/// The request id (the gateway's, or a new one) in scope for logs and problems and on the
/// answer, and `redirect_responses_total{status}`.
async fn lean(request: Request, next: Next) -> Response {
    let id = request_id_of(request.headers());
    let scoped = id.to_str().unwrap_or_default().to_owned();
    let mut response = with_request_id(scoped, next.run(request)).await;
    let status = match response.status().as_u16() {
        302 => "302",
        303 => "303",
        200 => "200",
        401 => "401",
        404 => "404",
        410 => "410",
        429 => "429",
        _ => "other",
    };
    responses(status, By::Router).increment(1);
    response.headers_mut().insert(REQUEST_ID_HEADER, id);
    response
}

/// The status labels of `redirect_responses_total`.
const STATUSES: [&str; 8] = ["302", "303", "200", "401", "404", "410", "429", "other"];

/// Who answered: the redirect lane (`crate::lane`) or the router.
#[derive(Clone, Copy)]
pub(crate) enum By {
    Lane,
    Router,
}

/// `redirect_responses_total{status, lane}`, its handles made once (a `counter!` per
/// request builds and hashes the label set to find the same handle again).
pub(crate) fn responses(status: &'static str, by: By) -> &'static metrics::Counter {
    static HANDLES: std::sync::OnceLock<Vec<metrics::Counter>> = std::sync::OnceLock::new();
    let handles = HANDLES.get_or_init(|| {
        ["fast", "router"]
            .iter()
            .flat_map(|&lane| {
                STATUSES.iter().map(move |&s| {
                    metrics::counter!("redirect_responses_total", "status" => s, "lane" => lane)
                })
            })
            .collect()
    });
    let at = STATUSES
        .iter()
        .position(|&s| s == status)
        .unwrap_or(STATUSES.len() - 1);
    &handles[at + matches!(by, By::Router) as usize * STATUSES.len()]
}

/// `Accept` asks for JSON rather than a page.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("json") && !accept.contains("text/html"))
}

/// Either an HTML page or the problem saying the same, by `Accept`.
fn answer(
    json: bool,
    page: impl FnOnce() -> Response,
    problem: impl FnOnce() -> ApiError,
) -> Response {
    if json {
        problem().into_response()
    } else {
        page()
    }
}

fn not_found(json: bool) -> Response {
    answer(json, pages::not_found, || {
        ApiError::NotFound("There is no share link with this code.".into())
    })
}

fn gone(json: bool) -> Response {
    answer(json, pages::gone, || ApiError::Custom {
        status: StatusCode::GONE,
        kind: "link-gone",
        title: "Link Gone",
        detail: "This link has expired, been disabled or used up its visits.".into(),
    })
}

/// The link by code: from the cache, else from the database (and then cached).
pub(crate) async fn lookup(
    state: &AppState,
    code: &str,
) -> Result<Option<Arc<CachedLink>>, ApiError> {
    // Checked by shape, not parsed: a hit on the redirect path allocates nothing.
    if !Code::is_valid(code) {
        return Ok(None);
    }
    if let Some(link) = state.cache.get(code) {
        return Ok(Some(link));
    }
    let row = db::links::by_code(&state.pool, code).await?;
    Ok(row.map(|row| state.cache.put(&row, &state.config)))
}

/// The 410 answer; records the link's one `url.expired` event off the request path.
fn refuse(state: &AppState, link: &CachedLink, why: Gone, json: bool) -> Response {
    if !link
        .expiry_reported
        .swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        let pool = state.pool.clone();
        let code = link.code.to_string();
        let tenant = link.tenant_id;
        let request_id = common::telemetry::current_request_id();
        tokio::spawn(async move {
            if let Err(err) = record_expiry(&pool, &code, tenant, why, request_id).await {
                tracing::warn!(error = %err, code, "recording url.expired failed");
            }
        });
    }
    gone(json)
}

async fn record_expiry(
    pool: &sqlx::PgPool,
    code: &str,
    tenant: uuid::Uuid,
    why: Gone,
    request_id: Option<String>,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    if db::links::mark_expired_event(&mut tx, code).await? {
        let event = Envelope::new(
            keys::URL_EXPIRED,
            tenant,
            None,
            serde_json::json!({ "code": code, "reason": why.as_str() }),
        );
        common::events::outbox::enqueue(&mut *tx, &event, request_id.as_deref()).await?;
    }
    tx.commit().await
}

/// Counts the visit and answers the redirect (`status`: 302 for GET, 303 after the form).
fn redirect(
    state: &AppState,
    link: &CachedLink,
    headers: &HeaderMap,
    peer: SocketAddr,
    status: StatusCode,
    json: bool,
) -> Response {
    let now = Utc::now().timestamp();
    let Some(location) = link.location(&state.grant_key, state.grant_ttl_secs, now) else {
        return ApiError::Internal(anyhow::anyhow!("redirect location is not a header value"))
            .into_response();
    };
    if let Err(why) = link.take_visit() {
        return refuse(state, link, why, json);
    }
    state.visits.record(Visit::new(
        Arc::clone(&link.code),
        link.tenant_id,
        peer.ip(),
        headers,
    ));
    (
        status,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
    )
        .into_response()
}

/// Open a share link: 302 to the shared page with a short-lived grant; a password form
/// (401 problem for JSON clients) when it is protected; 404 unknown; 410 expired,
/// disabled or used up.
#[utoipa::path(get, path = "/s/{code}", tag = "redirect",
    params(("code" = String, Path, description = "The link's code")),
    responses((status = 302, description = "To the shared page, `?grant=` attached"),
              (status = 200, description = "Password form (HTML)", content_type = "text/html"),
              (status = 401, body = Problem), (status = 404, body = Problem),
              (status = 410, body = Problem)))]
pub async fn open(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let headers = request.headers();
    let json = wants_json(headers);
    let link = match lookup(&state, &code).await {
        Ok(Some(link)) => link,
        Ok(None) => return not_found(json),
        Err(err) => return err.into_response(),
    };
    if let Some(why) = link.gone(Utc::now().timestamp()) {
        return refuse(&state, &link, why, json);
    }
    if link.password_hash.is_some() {
        return answer(
            json,
            || pages::password_form(&link.code, false, link.location_prefix()),
            || {
                ApiError::Unauthorized(
                    "This link is protected: POST its password to this address.".into(),
                )
            },
        );
    }
    redirect(&state, &link, headers, peer, StatusCode::FOUND, json)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Unlock {
    pub password: String,
}

/// Open a protected link with its password (a form post, or JSON): 303 to the shared
/// page when it is right, the form again (401) when not, 429 after too many attempts.
#[utoipa::path(post, path = "/s/{code}", tag = "redirect",
    params(("code" = String, Path, description = "The link's code")),
    request_body(content = Unlock, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "To the shared page, `?grant=` attached"),
              (status = 401, body = Problem), (status = 404, body = Problem),
              (status = 410, body = Problem), (status = 429, body = Problem)))]
pub async fn unlock(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let headers = request.headers().clone();
    let json = wants_json(&headers);
    let link = match lookup(&state, &code).await {
        Ok(Some(link)) => link,
        Ok(None) => return not_found(json),
        Err(err) => return err.into_response(),
    };
    if let Some(why) = link.gone(Utc::now().timestamp()) {
        return refuse(&state, &link, why, json);
    }
    let Some(stored) = link.password_hash.clone() else {
        return redirect(&state, &link, &headers, peer, StatusCode::SEE_OTHER, json);
    };
    let client = (state.config.server.trusted_proxies).client_of(peer.ip(), &headers);
    if let Err(retry_after) = state.throttle.charge(&client.to_string(), &link.code) {
        return answer(
            json,
            || pages::too_many(retry_after),
            || ApiError::TooManyRequests {
                retry_after,
                detail: "Too many password attempts for this link; try again later.".into(),
            },
        );
    }
    let offered = match read_password(&state, request).await {
        Ok(p) => p,
        Err(err) => {
            return answer(
                json,
                || pages::password_form(&link.code, true, link.location_prefix()),
                || err,
            );
        }
    };
    match state.hasher.verify(&offered, Some(&stored)).await {
        Ok(true) => redirect(&state, &link, &headers, peer, StatusCode::SEE_OTHER, json),
        Ok(false) => answer(
            json,
            || pages::password_form(&link.code, true, link.location_prefix()),
            || ApiError::Unauthorized("That password is not right.".into()),
        ),
        Err(err @ ApiError::Unavailable { retry_after, .. }) => {
            answer(json, || pages::busy(retry_after), || err)
        }
        Err(err) => err.into_response(),
    }
}

/// The password from a form body or a JSON one; at most 1 KiB of it, so a huge
/// "password" cannot make argon2 work for nothing.
async fn read_password(state: &AppState, request: Request) -> Result<String, ApiError> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let unlock: Unlock = if is_json {
        let common::extract::Json(body) =
            common::extract::Json::<Unlock>::from_request(request, state).await?;
        body
    } else {
        let Form(body) = Form::<Unlock>::from_request(request, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        body
    };
    if unlock.password.len() > 1024 {
        return Err(ApiError::validation("password", "is too long"));
    }
    Ok(unlock.password)
}
