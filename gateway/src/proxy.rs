//! Every request that is not the gateway's own: route → host check → tenant → token →
//! rate limit → circuit breaker → streamed to the upstream and back.

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::ApiError;

use crate::AppState;
use crate::limits::Subject;
use crate::routes::{self, AuthMode, HostKind};
use crate::tenants::{Host, Tenant};
use crate::upstreams::Unreachable;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers only the gateway may set: client-sent ones are dropped.
fn is_reserved(name: &HeaderName) -> bool {
    let name = name.as_str();
    name.starts_with("x-tenant-")
        || name.starts_with("x-user-")
        || name.starts_with("x-forwarded-")
        || name == "forwarded"
}

pub async fn proxy(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    match forward(&state, peer, req).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn forward(state: &AppState, peer: SocketAddr, req: Request) -> Result<Response, ApiError> {
    let path = req.uri().path().to_owned();
    let route = routes::find(&path)
        .ok_or_else(|| ApiError::NotFound("No resource at this path.".into()))?;
    let host_header = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let host = crate::tenants::classify(&host_header, &state.config.base_domain);
    let tenant: Option<Tenant> = match (&host, route.host) {
        (Host::Tenant(slug), HostKind::Tenant | HostKind::Any) => {
            Some(state.tenants.resolve(slug).await?)
        }
        (Host::Apex, HostKind::Apex | HostKind::Any) | (Host::Foreign, HostKind::Any) => None,
        (Host::Tenant(_), HostKind::Apex) => {
            return Err(ApiError::NotFound(
                "This is served on the main domain, not an organisation's.".into(),
            ));
        }
        (Host::Apex, HostKind::Tenant) => {
            return Err(ApiError::NotFound(
                "This is served on an organisation's own address (https://<slug>.<domain>).".into(),
            ));
        }
        (Host::Foreign, HostKind::Apex | HostKind::Tenant) => {
            return Err(ApiError::NotFound("Unknown host.".into()));
        }
    };

    let subject = match route.auth {
        AuthMode::Jwt => {
            let token = bearer(req.headers()).ok_or_else(|| {
                ApiError::Unauthorized("A bearer access token is required.".into())
            })?;
            let claims = state.tokens.verify(token).await?;
            let tenant = tenant.as_ref().expect("JWT routes are tenant routes");
            if claims.tid != tenant.id {
                return Err(ApiError::Forbidden(
                    "This token belongs to another organisation.".into(),
                ));
            }
            Some(Subject::User {
                tenant: claims.tid,
                user: claims.sub,
            })
        }
        AuthMode::Public if route.limit_by_ip => Some(Subject::Address(peer.ip())),
        AuthMode::Public | AuthMode::Grant => None,
    };
    let limit_headers = match subject {
        Some(subject) => match state.limits.check(subject) {
            Ok(headers) => headers,
            Err(limited) => {
                let mut response = ApiError::TooManyRequests {
                    retry_after: limited.retry_after,
                    detail: "Too many requests; slow down.".into(),
                }
                .into_response();
                response.headers_mut().extend(limited.headers);
                return Ok(response);
            }
        },
        None => HeaderMap::new(),
    };

    let instance = state
        .upstreams
        .pick(route.upstream)
        .map_err(|e| unreachable(route.upstream.name(), e))?;
    let upstream_url = format!(
        "{}{}",
        instance.base,
        req.uri().path_and_query().map_or("/", |pq| pq.as_str())
    );
    let (parts, body) = req.into_parts();
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 6);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != header::HOST && !is_reserved(name) {
            headers.append(name, value.clone());
        }
    }
    if let Some(tenant) = &tenant {
        headers.insert(
            "x-tenant-id",
            HeaderValue::from_str(&tenant.id.to_string()).expect("uuid"),
        );
        headers.insert(
            "x-tenant-slug",
            HeaderValue::from_str(&tenant.slug)
                .map_err(|_| anyhow::anyhow!("tenant slug is not a header"))?,
        );
    }
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_str(&peer.ip().to_string()).expect("ip"),
    );
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Ok(value) = HeaderValue::from_str(&host_header) {
        headers.insert("x-forwarded-host", value);
    }

    // A request without a body is sent without one (not as an empty chunked stream).
    let has_body = parts.headers.contains_key(header::TRANSFER_ENCODING)
        || parts
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let mut upstream_request = state
        .upstreams
        .client
        .request(parts.method, upstream_url)
        .headers(headers)
        .timeout(state.upstreams.timeout);
    if has_body {
        upstream_request =
            upstream_request.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    let started = Instant::now();
    let result = upstream_request.send().await;
    let upstream = state
        .upstreams
        .settle(route.upstream, instance, started, result)
        .map_err(|e| unreachable(route.upstream.name(), e))?;

    let mut response = Response::builder().status(upstream.status());
    let out = response.headers_mut().expect("fresh builder");
    for (name, value) in upstream.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out.append(name, value.clone());
        }
    }
    out.extend(limit_headers);
    response
        .body(Body::from_stream(upstream.bytes_stream()))
        .map_err(|e| ApiError::Internal(e.into()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

fn unreachable(upstream: &str, why: Unreachable) -> ApiError {
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
