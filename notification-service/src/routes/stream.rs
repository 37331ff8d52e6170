//! The live stream (`docs/DESIGN.md`, Live stream): `GET /api/v1/stream` for a member
//! (a bearer token, or a ticket from `POST /api/v1/stream/tickets`, since a browser's
//! EventSource cannot send headers), and `GET /api/v1/stream/shared` for a share page
//! (its grant). A stream replays what a `Last-Event-ID` missed from the tenant's window,
//! then follows this instance's hub; it ends when its token or grant lapses, when the
//! token is revoked or the member leaves, and when the service stops.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use common::ApiError;
use common::auth::{AuthUser, Perm, Role};
use common::error::Problem;
use common::extract::Json;
use common::tenant::TenantCtx;
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::db;
use crate::db::stream::Ticket;
use crate::domain::stream::{Audience, Batch, Item, RESET, StreamEvent};

/// What a client is told to wait before it reconnects (`retry:`).
const RETRY: Duration = Duration::from_secs(3);
/// The comment sent on a quiet stream, so proxies keep it and dead clients are found.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Most events a `Last-Event-ID` replays; further behind, the client gets `reset`.
const REPLAY_MAX: i64 = 10_000;
/// The header naming a stream's member, for the gateway's per-user limit.
const STREAM_USER_HEADER: &str = "x-stream-user";
/// Query parameters that would carry a credential in the URL.
const CREDENTIAL_PARAMS: [&str; 5] = ["access_token", "token", "jwt", "authorization", "bearer"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/stream", get(open))
        .route("/api/v1/stream/tickets", post(ticket))
        .route("/api/v1/stream/shared", get(shared))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamTicket {
    /// Put it in `GET /api/v1/stream?ticket=…` within `expires_in` seconds; it opens one
    /// stream.
    pub ticket: String,
    pub expires_in: u64,
}

/// A single-use ticket that opens the caller's stream from a browser.
#[utoipa::path(post, path = "/api/v1/stream/tickets", tag = "stream",
    responses((status = 201, body = StreamTicket), (status = 401, body = Problem)))]
pub async fn ticket(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<(StatusCode, Json<StreamTicket>), ApiError> {
    user.require(Perm::TasksRead)?;
    let ttl = state.config.stream.stream_ticket_ttl_secs;
    let ticket = common::opaque::token();
    let mut conn = state.databases.connect(user.tenant_id).await?;
    db::stream::issue_ticket(
        &mut conn,
        &common::opaque::hash(&ticket),
        &Ticket {
            user_id: user.user_id,
            role: user.role.as_str().to_owned(),
            issued_at: user.claims.iat,
            token_expires_at: user.claims.exp,
        },
        ttl as f64,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(StreamTicket {
            ticket,
            expires_in: ttl,
        }),
    ))
}

/// The caller's live events: `text/event-stream` of the tenant's task events in projects
/// they may read and their own `notification.created`; `Last-Event-ID` resumes.
#[utoipa::path(get, path = "/api/v1/stream", tag = "stream",
    params(("ticket" = Option<String>, Query, description = "from POST /api/v1/stream/tickets, when no bearer token is sent"),
           ("Last-Event-ID" = Option<String>, Header, description = "the last event's id, to get what was missed")),
    responses((status = 200, description = "text/event-stream"), (status = 401, body = Problem)))]
pub async fn open(
    State(state): State<AppState>,
    mut parts: Parts,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = params(query.as_deref())?;
    let (tenant, ticket) = if parts.headers.contains_key(header::AUTHORIZATION) {
        let user = AuthUser::from_request_parts(&mut parts, &state).await?;
        user.require(Perm::TasksRead)?;
        let ticket = Ticket {
            user_id: user.user_id,
            role: user.role.as_str().to_owned(),
            issued_at: user.claims.iat,
            token_expires_at: user.claims.exp,
        };
        (user.tenant_id, ticket)
    } else {
        let refused = || {
            ApiError::Unauthorized(
                "A bearer access token, or a ticket from POST /api/v1/stream/tickets, is required."
                    .into(),
            )
        };
        let tenant = TenantCtx::from_request_parts(&mut parts, &state)
            .await
            .map_err(|_| refused())?;
        let given = param(&params, "ticket").ok_or_else(refused)?;
        let mut conn = state.databases.connect(tenant.id).await?;
        let ticket = db::stream::redeem_ticket(&mut conn, &common::opaque::hash(given))
            .await?
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "This ticket is unknown, used or expired; ask for a new one.".into(),
                )
            })?;
        (tenant.id, ticket)
    };
    let role: Role = ticket
        .role
        .parse()
        .map_err(|_| ApiError::Unauthorized("This ticket's role is unknown.".into()))?;
    let user = ticket.user_id;
    if state.revocations.revoked(tenant, user, ticket.issued_at) {
        return Err(ApiError::Unauthorized(
            "This access token was revoked; sign in again.".into(),
        ));
    }
    let audience = Audience::Member {
        user,
        role,
        closed: HashSet::new(),
    };
    let until = ticket.token_expires_at;
    let watch = Some((user, ticket.issued_at));
    let mut response = start(&state, tenant, audience, until, watch, &parts.headers).await?;
    if let Ok(value) = HeaderValue::from_str(&user.to_string()) {
        response.headers_mut().insert(STREAM_USER_HEADER, value);
    }
    Ok(response)
}

/// A share page's live events: what happens to the task (or project) its grant names,
/// without their content (the page reads it again through the grant).
#[utoipa::path(get, path = "/api/v1/stream/shared", tag = "stream",
    params(("grant" = String, Query, description = "the share page's grant")),
    responses((status = 200, description = "text/event-stream"), (status = 403, body = Problem)))]
pub async fn shared(
    State(state): State<AppState>,
    tenant: Option<TenantCtx>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = params(query.as_deref())?;
    let refused = || ApiError::Forbidden("This share link's grant is not valid here.".into());
    let grant = state
        .grants
        .verify(
            param(&params, "grant").unwrap_or_default(),
            Utc::now().timestamp(),
        )
        .map_err(|_| refused())?;
    if tenant.is_some_and(|t| t.id != grant.tenant_id) {
        return Err(refused());
    }
    let audience = Audience::Share(grant.target);
    start(
        &state,
        grant.tenant_id,
        audience,
        grant.expires_at,
        None,
        &headers,
    )
    .await
}

/// The query's parameters; a credential in them is refused (a URL ends up in logs and
/// histories): an access token goes in the `Authorization` header, a browser uses a ticket.
fn params(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|_| ApiError::BadRequest("The query string is not well formed.".into()))?;
    let credential = params.iter().any(|(name, value)| {
        CREDENTIAL_PARAMS.contains(&name.to_ascii_lowercase().as_str()) || looks_like_jwt(value)
    });
    if credential {
        return Err(ApiError::Unauthorized(
            "An access token is never accepted in the URL: send it in the Authorization \
             header, or open the stream with a ticket from POST /api/v1/stream/tickets."
                .into(),
        ));
    }
    Ok(params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Three base64url parts joined by dots: a JWT (tickets and grants have no such shape).
fn looks_like_jwt(value: &str) -> bool {
    let parts: Vec<&str> = value.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
        })
}

/// Opens a stream of `tenant` for `audience` until `until` (Unix seconds): what the
/// request's `Last-Event-ID` missed first, then what happens.
async fn start(
    state: &AppState,
    tenant: Uuid,
    mut audience: Audience,
    until: i64,
    watch: Option<(Uuid, i64)>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let resume = match headers.get("last-event-id").map(HeaderValue::to_str) {
        None => None,
        Some(Ok(id)) if id.trim().is_empty() => None,
        Some(Ok(id)) => Some(id.trim().parse::<i64>().map_err(|_| {
            ApiError::BadRequest("Last-Event-ID must be an id this stream sent.".into())
        })?),
        Some(Err(_)) => {
            return Err(ApiError::BadRequest(
                "Last-Event-ID must be an id this stream sent.".into(),
            ));
        }
    };
    // Subscribed before the window is read: nothing falls between the two.
    let live = state.hub.subscribe(tenant);
    let mut conn = state.databases.connect(tenant).await?;
    audience.refresh(&mut conn).await?;
    let mut queue = VecDeque::from([sse::Event::default().retry(RETRY).comment("open")]);
    let last = match resume {
        Some(seen) if db::stream::holds(&mut conn, seen).await? => {
            let missed = db::stream::after(&mut conn, seen, REPLAY_MAX + 1).await?;
            if missed.len() as i64 > REPLAY_MAX {
                queue.push_back(reset());
                db::stream::last(&mut conn).await?
            } else {
                let last = missed.last().map_or(seen, |e| e.seq);
                queue.extend(
                    missed
                        .iter()
                        .filter(|e| audience.sees(e))
                        .map(|e| audience.frame(e)),
                );
                last
            }
        }
        Some(_) => {
            queue.push_back(reset());
            db::stream::last(&mut conn).await?
        }
        None => db::stream::last(&mut conn).await?,
    };
    drop(conn);
    metrics::gauge!("notification_streams_open").increment(1.0);
    let session = Session {
        state: state.clone(),
        tenant,
        audience,
        watch,
        until: tokio::time::Instant::now()
            + Duration::from_secs(u64::try_from(until - Utc::now().timestamp()).unwrap_or(0)),
        live,
        last,
        queue,
        done: false,
        poll: tokio::time::interval(Duration::from_millis(
            state.config.stream.revocation_poll_ms.max(50),
        )),
        shutdown: state.shutdown.clone(),
    };
    let events = futures::stream::unfold(session, |mut session| async move {
        let event = session.next().await?;
        Some((Ok::<_, Infallible>(event), session))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEPALIVE))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Reverse proxies (nginx) pass it on as it comes.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn reset() -> sse::Event {
    sse::Event::default().event(RESET).data("{}")
}

impl Audience {
    /// Reads again which projects a member may not read.
    async fn refresh(&mut self, conn: &mut sqlx::PgConnection) -> Result<(), ApiError> {
        if let Self::Member {
            user, role, closed, ..
        } = self
        {
            *closed = if Self::sees_every_project(*role) {
                HashSet::new()
            } else {
                db::stream::closed_projects(conn, *user)
                    .await?
                    .into_iter()
                    .collect()
            };
        }
        Ok(())
    }
}

/// One open stream.
struct Session {
    state: AppState,
    tenant: Uuid,
    audience: Audience,
    /// The member and their token's `iat`, checked against revocations.
    watch: Option<(Uuid, i64)>,
    until: tokio::time::Instant,
    live: broadcast::Receiver<Arc<Batch>>,
    /// The last `seq` this stream has accounted for (sent or not meant for it).
    last: i64,
    queue: VecDeque<sse::Event>,
    done: bool,
    poll: tokio::time::Interval,
    shutdown: CancellationToken,
}

impl Drop for Session {
    fn drop(&mut self) {
        metrics::gauge!("notification_streams_open").decrement(1.0);
    }
}

impl Session {
    /// The next frame to send, or `None` when the stream ends.
    async fn next(&mut self) -> Option<sse::Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            tokio::select! {
                () = self.shutdown.cancelled() => self.done = true,
                () = tokio::time::sleep_until(self.until) => self.done = true,
                _ = self.poll.tick() => {
                    if let Some((user, iat)) = self.watch {
                        self.done = self.state.revocations.revoked(self.tenant, user, iat);
                    }
                }
                got = self.live.recv() => {
                    let taken = match got {
                        Ok(batch) => self.take(&batch).await,
                        Err(RecvError::Lagged(_)) => self.catch_up().await,
                        Err(RecvError::Closed) => {
                            self.done = true;
                            Ok(())
                        }
                    };
                    if let Err(err) = taken {
                        tracing::warn!(tenant = %self.tenant, error = %err, "a stream ends: its window cannot be read");
                        self.done = true;
                    }
                }
            }
        }
    }

    /// A batch from the hub, in order; a gap before an event is read from the window.
    async fn take(&mut self, batch: &Batch) -> Result<(), ApiError> {
        for item in &batch.items {
            match item {
                Item::Access => {
                    let mut conn = self.state.databases.connect(self.tenant).await?;
                    self.audience.refresh(&mut conn).await?;
                }
                Item::Removed { user } => {
                    if self.watch.is_some_and(|(watched, _)| watched == *user) {
                        self.done = true;
                        return Ok(());
                    }
                }
                Item::Event(event) => {
                    if event.seq <= self.last {
                        continue;
                    }
                    if event.seq > self.last + 1 {
                        let mut conn = self.state.databases.connect(self.tenant).await?;
                        let missed = db::stream::between(&mut conn, self.last, event.seq).await?;
                        drop(conn);
                        for missed in &missed {
                            self.send(missed);
                        }
                    }
                    self.send(event);
                }
            }
        }
        Ok(())
    }

    /// Fell behind the hub: what the window holds after the last one accounted for.
    async fn catch_up(&mut self) -> Result<(), ApiError> {
        let mut conn = self.state.databases.connect(self.tenant).await?;
        self.audience.refresh(&mut conn).await?;
        let missed = db::stream::after(&mut conn, self.last, REPLAY_MAX).await?;
        for missed in &missed {
            self.send(missed);
        }
        Ok(())
    }

    fn send(&mut self, event: &StreamEvent) {
        if self.audience.sees(event) {
            self.queue.push_back(self.audience.frame(event));
        }
        self.last = self.last.max(event.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_in_the_query_is_refused_and_a_ticket_is_not() {
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        for query in [
            format!("ticket={jwt}"),
            "access_token=abc".to_owned(),
            "TOKEN=abc".to_owned(),
            format!("other={jwt}"),
        ] {
            assert!(
                matches!(params(Some(&query)), Err(ApiError::Unauthorized(_))),
                "{query}"
            );
        }
        let ticket = common::opaque::token();
        let params = params(Some(&format!("ticket={ticket}"))).unwrap();
        assert_eq!(param(&params, "ticket"), Some(ticket.as_str()));
    }
}
