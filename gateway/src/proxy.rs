//! Every request that is not the gateway's own: route → host check → tenant → token →
//! rate limit → circuit breaker → streamed to the upstream and back.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::ApiError;
use common::auth::bearer_token;
use common::telemetry::{self, REQUEST_ID_HEADER};
use futures::StreamExt;
use http_body_util::BodyExt;

use crate::AppState;
use crate::limits::{RateLimit, Subject};
use crate::routes::{self, AuthMode, HostKind};
use crate::streams::{Full, STREAM_USER_HEADER, Slot};
use crate::tenants::{Host, Tenant};
use crate::upstreams::{Instance, Unreachable};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
pub(crate) const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether a (lower-case) header name is one of [`HOP_BY_HOP`].
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// Headers only the gateway may set: client-sent ones are dropped. `name` is lower-case.
pub(crate) fn is_reserved(name: &str) -> bool {
    name.starts_with("x-tenant-")
        || name.starts_with("x-user-")
        || name.starts_with("x-forwarded-")
        || name == "forwarded"
}

/// The proxy's outer shell: request id (a valid incoming one is kept), access log and
/// metrics around [`forward`]. Proxied requests skip the shared layer stack of the
/// gateway's own routes. Most requests never get here: the fast lane (`crate::fast`)
/// serves them and hands over only what it does not do itself.
pub async fn proxy(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
) -> Response {
    let started = Instant::now();
    let request_id = telemetry::request_id_of(req.headers());
    req.headers_mut()
        .insert(REQUEST_ID_HEADER, request_id.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut seen = Seen::default();
    let id = request_id.to_str().unwrap_or_default().to_owned();
    let mut response = telemetry::with_request_id(id, async {
        forward(&state, peer, req, &mut seen)
            .await
            .unwrap_or_else(|refused| refused)
    })
    .await;
    response
        .headers_mut()
        .insert(REQUEST_ID_HEADER, request_id.clone());
    seen.record(
        method.as_str(),
        &path,
        response.status(),
        &request_id,
        started,
        "general",
    );
    response
}

/// Attachment uploads (`/api/v1/tasks/{id}/attachments`) may carry up to
/// `UPLOAD_LIMIT_BYTES`; everything else `BODY_LIMIT_BYTES`.
fn is_upload(path: &str) -> bool {
    path.strip_prefix("/api/v1/tasks/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(_, tail)| tail == "attachments")
}

/// What a request was admitted by, for the access log and metrics.
#[derive(Default)]
pub(crate) struct Seen {
    route: Option<&'static routes::Route>,
    tenant: Option<Arc<Tenant>>,
}

impl Seen {
    /// The access log line and the per-route metrics of one finished request; `lane` is
    /// `fast` or `general` (which path served it, see `crate::fast`).
    pub(crate) fn record(
        &self,
        method: &str,
        path: &str,
        status: StatusCode,
        request_id: &HeaderValue,
        started: Instant,
        lane: &'static str,
    ) {
        let (route, upstream) = self
            .route
            .map_or(("unmatched", "none"), |r| (r.prefix, r.upstream.name()));
        let elapsed = started.elapsed();
        crate::meter::count(
            "gateway_requests_total",
            "gateway_request_duration_seconds",
            &[
                ("route", route),
                ("upstream", upstream),
                ("status", common::metrics::status_label(status)),
                ("lane", lane),
            ],
            2,
            elapsed.as_secs_f64(),
        );
        tracing::info!(
            target: "gateway::access",
            request_id = request_id.to_str().unwrap_or_default(),
            tenant = self.tenant.as_deref().map(|t| t.slug.as_str()),
            method,
            path,
            status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    }
}

/// What the edge checks look at in a request, however it was read.
pub(crate) struct Ask<'a> {
    pub path: &'a str,
    pub host: &'a str,
    pub authorization: Option<&'a str>,
    pub declared_length: Option<usize>,
    /// The client's address (`common::client`): the per-address rate limit's key.
    pub client: IpAddr,
}

/// A request the edge let through: where it goes and what it carries there and back.
pub(crate) struct Admitted<'s> {
    pub tenant: Option<Arc<Tenant>>,
    pub instance: &'s Instance,
    /// The subject's budget, for the `RateLimit-*` fields of the answer.
    pub rate: Option<RateLimit>,
    /// An event stream's place in the open-stream limits, held until its body ends.
    pub stream: Option<Slot>,
}

/// The edge checks of a routed request, in order: body limit, host kind, tenant, token,
/// rate limit, circuit breaker. A refusal is the answer to send.
pub(crate) async fn admit<'s>(
    state: &'s AppState,
    route: &'static routes::Route,
    ask: &Ask<'_>,
    seen: &mut Seen,
) -> Result<Admitted<'s>, Response> {
    seen.route = Some(route);
    let limit = if is_upload(ask.path) {
        state.config.upload_limit_bytes
    } else {
        state.config.server.body_limit_bytes
    };
    if ask.declared_length.is_some_and(|len| len > limit) {
        return Err(ApiError::Custom {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "too-large",
            title: "Request body too large",
            detail: format!("This request may carry at most {limit} bytes."),
        }
        .into_response());
    }
    let host = crate::tenants::classify(ask.host, &state.config.base_domain);
    let tenant: Option<Arc<Tenant>> = match (&host, route.host) {
        (Host::Tenant(slug), HostKind::Tenant | HostKind::Any) => Some(
            state
                .tenants
                .resolve(slug)
                .await
                .map_err(IntoResponse::into_response)?,
        ),
        (Host::Apex, HostKind::Apex | HostKind::Any) | (Host::Foreign, HostKind::Any) => None,
        (Host::Tenant(_), HostKind::Apex) => {
            return Err(ApiError::NotFound(
                "This is served on the main domain, not an organisation's.".into(),
            )
            .into_response());
        }
        (Host::Apex, HostKind::Tenant) => {
            return Err(ApiError::NotFound(
                "This is served on an organisation's own address (https://<slug>.<domain>).".into(),
            )
            .into_response());
        }
        (Host::Foreign, HostKind::Apex | HostKind::Tenant) => {
            return Err(ApiError::NotFound("Unknown host.".into()).into_response());
        }
    };
    seen.tenant.clone_from(&tenant);

    let bearer = ask.authorization.and_then(bearer_token);
    let subject = match route.auth {
        AuthMode::Jwt | AuthMode::Ticket if route.auth == AuthMode::Jwt || bearer.is_some() => {
            let token = bearer.ok_or_else(|| {
                ApiError::Unauthorized("A bearer access token is required.".into()).into_response()
            })?;
            let claims = state
                .tokens
                .verify(token)
                .await
                .map_err(IntoResponse::into_response)?;
            let tenant = tenant.as_ref().expect("JWT routes are tenant routes");
            if claims.tid != tenant.id {
                return Err(ApiError::Forbidden(
                    "This token belongs to another organisation.".into(),
                )
                .into_response());
            }
            Some(Subject::User {
                tenant: claims.tid,
                user: claims.sub,
            })
        }
        AuthMode::Public | AuthMode::Ticket if route.limit_by_ip => {
            Some(Subject::Address(ask.client))
        }
        AuthMode::Public | AuthMode::Ticket | AuthMode::Grant | AuthMode::Jwt => None,
    };
    let rate = match subject {
        Some(subject) => Some(state.limits.check(subject).map_err(|limited| {
            let mut response = ApiError::TooManyRequests {
                retry_after: limited.rate.reset,
                detail: "Too many requests; slow down.".into(),
            }
            .into_response();
            response.headers_mut().extend(limited.rate.headers());
            response
        })?),
        None => None,
    };
    let stream = match (route.stream, &tenant) {
        (true, Some(tenant)) => {
            let user = match subject {
                Some(Subject::User { user, .. }) => Some(user),
                _ => None,
            };
            Some(
                state
                    .streams
                    .admit(tenant.id, user)
                    .map_err(|full| too_many_streams(full).into_response())?,
            )
        }
        _ => None,
    };
    let instance = state
        .upstreams
        .pick(route.upstream)
        .map_err(|e| unreachable(route.upstream.name(), e).into_response())?;
    Ok(Admitted {
        tenant,
        instance,
        rate,
        stream,
    })
}

/// The general path: admitted, then streamed to the upstream over hyper's client.
async fn forward(
    state: &AppState,
    peer: SocketAddr,
    req: Request,
    seen: &mut Seen,
) -> Result<Response, Response> {
    let route = routes::find(req.uri().path())
        .ok_or_else(|| ApiError::NotFound("No resource at this path.".into()).into_response())?;
    let client = (state.config.server.trusted_proxies).client_of(peer.ip(), req.headers());
    let host_header = req
        .headers()
        .get(header::HOST)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(""));
    let ask = Ask {
        path: req.uri().path(),
        host: host_header.to_str().unwrap_or_default(),
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        declared_length: req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok()),
        client,
    };
    let Admitted {
        tenant,
        instance,
        rate,
        stream,
    } = admit(state, route, &ask, seen).await?;

    let (mut parts, body) = req.into_parts();
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 6);
    // `drain` names a header once and yields its further values with `None`.
    let mut current: Option<HeaderName> = None;
    for (name, value) in parts.headers.drain() {
        if let Some(name) = name {
            current = Some(name);
        }
        let Some(name) = &current else { continue };
        if !is_hop_by_hop(name.as_str()) && name != header::HOST && !is_reserved(name.as_str()) {
            headers.append(name, value);
        }
    }
    if let Some(tenant) = &tenant {
        headers.insert("x-tenant-id", tenant.id_header.clone());
        headers.insert("x-tenant-slug", tenant.slug_header.clone());
    }
    // The client alone: the services trust the gateway and need no chain to walk.
    headers.insert("x-forwarded-for", ip_header(client));
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    headers.insert("x-forwarded-host", host_header);
    parts.headers = headers;

    let upstream = state
        .upstreams
        .forward(route.upstream, instance, Request::from_parts(parts, body))
        .await
        .map_err(|e| unreachable(route.upstream.name(), e).into_response())?;
    let (mut parts, body) = upstream.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    if let Some(rate) = rate {
        parts.headers.extend(rate.headers());
    }
    let Some(mut slot) = stream else {
        return Ok(Response::from_parts(parts, Body::new(body)));
    };
    if let Some(user) = parts.headers.remove(STREAM_USER_HEADER)
        && let Some(user) = user.to_str().ok().and_then(|u| u.parse().ok())
    {
        slot.name_user(user)
            .map_err(|full| too_many_streams(full).into_response())?;
    }
    // The slot goes with the body: the stream's place is freed when either side ends it.
    let body = body.into_data_stream().map(move |frame| {
        let _held = &slot;
        frame
    });
    Ok(Response::from_parts(parts, Body::from_stream(body)))
}

/// The 429 of a stream past a limit of [`crate::streams`].
fn too_many_streams(full: Full) -> ApiError {
    let detail = match full {
        Full::Tenant(n) => format!("This organisation has {n} live streams open; close one first."),
        Full::User(n) => format!("You have {n} live streams open; close one first."),
    };
    ApiError::TooManyRequests {
        retry_after: 5,
        detail,
    }
}

/// The client address as a header value (written without allocating a `String`).
pub(crate) fn ip_header(ip: IpAddr) -> HeaderValue {
    use std::io::Write;
    let mut buf = [0u8; 45];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "{ip}").expect("an address fits in 45 bytes");
    let len = usize::try_from(cursor.position()).expect("small");
    HeaderValue::from_bytes(&buf[..len]).expect("an address is a header value")
}

pub(crate) fn unreachable(upstream: &str, why: Unreachable) -> ApiError {
    match why {
        Unreachable::Open(retry_after) => ApiError::Unavailable {
            retry_after,
            detail: format!("{upstream} is failing; requests are paused briefly."),
        },
        Unreachable::Timeout => ApiError::Custom {
            status: StatusCode::GATEWAY_TIMEOUT,
            kind: "upstream-timeout",
            title: "Gateway Timeout",
            detail: format!("{upstream} did not answer in time."),
        },
        Unreachable::Failed(cause) => {
            tracing::warn!(upstream, cause, "upstream unreachable");
            ApiError::Custom {
                status: StatusCode::BAD_GATEWAY,
                kind: "upstream-unreachable",
                title: "Bad Gateway",
                detail: format!("{upstream} could not be reached."),
            }
        }
    }
}
