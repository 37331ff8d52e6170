//! Logging set-up and the request id that ties a response to its log lines.
//!
//! Logs are JSON when stdout is not a terminal (containers, CI) and human-readable in a
//! terminal. Every request runs inside a span carrying `request_id`, `method`, `route` and
//! `tenant_id` (from the gateway's `X-Tenant-Id`), so every line inside it carries them too.

use std::io::IsTerminal;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const TENANT_ID_HEADER: &str = "x-tenant-id";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, text otherwise.
    #[default]
    Auto,
    Json,
    Text,
}

/// Installs the global subscriber. Safe to call twice (the second call does nothing), so
/// tests that start several services in one process can all call it.
pub fn init(service: &'static str, filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_target(false),
            )
            .try_init()
    };
    if result.is_ok() {
        tracing::info!(service, "telemetry initialised");
    }
}

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `work` with `id` as the task's request id (see [`current_request_id`]).
pub async fn with_request_id<F: std::future::Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// A new request id: a UUIDv7 (time-ordered, so ids sort like the logs).
pub fn new_request_id() -> HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(id).expect("a uuid is a header value")
}

/// The request's `X-Request-Id` if [`is_valid_request_id`], else a new one.
pub fn request_id_of(headers: &axum::http::HeaderMap) -> HeaderValue {
    request_id_or_new(headers.get(REQUEST_ID_HEADER).map(HeaderValue::as_bytes))
}

/// `incoming` (a request's `X-Request-Id`, however it was read) if
/// [`is_valid_request_id`], else a new one.
pub fn request_id_or_new(incoming: Option<&[u8]>) -> HeaderValue {
    incoming
        .filter(|id| is_valid_request_id(id))
        .and_then(|id| HeaderValue::from_bytes(id).ok())
        .unwrap_or_else(new_request_id)
}

/// Makes UUIDv7 request ids (time-ordered, so they sort like the logs).
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeRequestUuidV7;

impl MakeRequestId for MakeRequestUuidV7 {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        Some(RequestId::new(new_request_id()))
    }
}

/// A client-sent request id is kept only if it is short and plain; anything else is
/// replaced, so ids cannot smuggle text into logs or headers.
pub fn is_valid_request_id(value: &[u8]) -> bool {
    (1..=128).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Drops an incoming `X-Request-Id` that is not [`is_valid_request_id`].
pub async fn sanitize_request_id(mut req: Request, next: Next) -> Response {
    if let Some(value) = req.headers().get(REQUEST_ID_HEADER)
        && !is_valid_request_id(value.as_bytes())
    {
        req.headers_mut().remove(REQUEST_ID_HEADER);
    }
    next.run(req).await
}

/// Makes the request id available to [`current_request_id`] while the handler runs.
pub async fn scope_request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    REQUEST_ID.scope(id, next.run(req)).await
}

/// The span every request runs in.
pub fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let tenant_id = header(TENANT_ID_HEADER);
    tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        request_id = header(REQUEST_ID_HEADER),
        tenant_id = if tenant_id.is_empty() { None } else { Some(tenant_id) },
    )
}
