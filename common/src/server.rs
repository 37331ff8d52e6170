//! The HTTP shell every service shares: operational routes, the standard layer stack,
//! and a server that drains in-flight requests on shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::config::ServerArgs;
use crate::error::{ApiError, PROBLEM_JSON, Problem, problem_response, problem_type};
use crate::readiness::{Readiness, ReadinessReport};
use crate::telemetry::{self, MakeRequestUuidV7, REQUEST_ID_HEADER};

/// What the shared shell needs to know about a service.
pub struct Service {
    pub name: &'static str,
    pub readiness: Readiness,
    pub openapi: utoipa::openapi::OpenApi,
}

/// Wraps a service's API router with `/healthz`, `/readyz`, `/metrics`, `/openapi.json`
/// and the layers every request passes: request id → trace → metrics → timeout → body
/// limit → panic catcher → problem+json for anything that is not already.
///
/// The body limit is axum's `DefaultBodyLimit`, which every body extractor (JSON, bytes,
/// multipart) honours, so a route can raise it for itself (attachment uploads) with its
/// own `DefaultBodyLimit` layer.
pub fn app(service: Service, api: Router, args: &ServerArgs) -> Router {
    let mut openapi = service.openapi.clone();
    openapi.merge(ops_doc());
    let openapi = Arc::new(openapi);
    let docs = get(move || {
        let openapi = Arc::clone(&openapi);
        async move { axum::Json(openapi.as_ref().clone()) }
    });
    app_with_docs(service, api, args, docs)
}

/// The operational routes' own OpenAPI document (`/healthz`, `/readyz`, …).
pub fn ops_doc() -> utoipa::openapi::OpenApi {
    OpsDoc::openapi()
}

/// [`app`] with another handler for `/openapi.json` (the gateway serves a merged one).
pub fn app_with_docs(
    service: Service,
    api: Router,
    args: &ServerArgs,
    docs: axum::routing::MethodRouter,
) -> Router {
    let name = service.name;
    let readiness = Arc::new(service.readiness);
    let metrics = crate::metrics::handle();

    let ops = Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/readyz",
            get(move || {
                let readiness = Arc::clone(&readiness);
                async move { readyz(&readiness).await }
            }),
        )
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/openapi.json", docs);

    let request_id = axum::http::HeaderName::from_static(REQUEST_ID_HEADER);
    api.merge(ops).layer(
        ServiceBuilder::new()
            .layer(middleware::from_fn(telemetry::sanitize_request_id))
            .layer(SetRequestIdLayer::new(
                request_id.clone(),
                MakeRequestUuidV7,
            ))
            .layer(TraceLayer::new_for_http().make_span_with(telemetry::request_span))
            .layer(PropagateRequestIdLayer::new(request_id))
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                crate::metrics::track_http(name, req, next)
            }))
            .layer(middleware::from_fn(telemetry::scope_request_id))
            .layer(middleware::from_fn(problem_for_bare_errors))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                Duration::from_secs(args.request_timeout_secs),
            ))
            .layer(CatchPanicLayer::custom(
                |_: Box<dyn std::any::Any + Send>| {
                    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
                },
            ))
            .layer(DefaultBodyLimit::max(args.body_limit_bytes)),
    )
}

/// Serves until `shutdown` is cancelled, then stops accepting and drains in-flight
/// requests for at most the shutdown grace. hyper (HTTP/1.1 or h2c) serves each
/// connection as on the lanes' general path ([`crate::lane::hand_over`]), with the edge
/// rules of [`crate::edge`] (Host, head size, head time). Idle keep-alive connections are
/// not cut: the gateway pools them.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    args: &ServerArgs,
) -> anyhow::Result<()> {
    let edge = args.edge();
    let stop = shutdown.clone();
    crate::lane::serve_connections(
        listener,
        stop,
        args.shutdown_grace(),
        move |stream, peer| {
            let _ = stream.set_nodelay(true);
            let accepted = crate::lane::Accepted {
                peer,
                app: app.clone(),
                shutdown: shutdown.clone(),
                edge,
            };
            crate::lane::hand_over(stream, bytes::BytesMut::new(), None, accepted)
        },
    )
    .await
}

/// Binds `addr`, naming it in the error (an address in use is a common start-up failure).
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}

#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "The process is alive")))]
async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Every dependency answers", body = ReadinessReport),
    (status = 503, description = "A dependency is down", body = ReadinessReport)))]
async fn readyz(readiness: &Readiness) -> Response {
    let report = readiness.report().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
#[allow(dead_code)]
async fn metrics_doc() {}

#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "This service's OpenAPI document")))]
#[allow(dead_code)]
async fn openapi_doc() {}

#[derive(OpenApi)]
#[openapi(
    paths(healthz, readyz, metrics_doc, openapi_doc),
    components(schemas(Problem, crate::error::FieldError, ReadinessReport))
)]
struct OpsDoc;

/// Error responses made outside our handlers (unknown route, wrong method, extractor
/// rejections, body limit, timeout) come as empty or plain-text bodies; turn them into
/// problem+json so clients see one error format. HTML and JSON bodies are left alone.
async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !(content_type.is_empty() || content_type.starts_with("text/plain")) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let detail = if text.is_empty() || status.is_server_error() {
        default_detail(status).to_owned()
    } else {
        text
    };
    let kind = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "-");
    let problem = Problem {
        type_: problem_type(&kind),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        request_id: crate::telemetry::current_request_id(),
        errors: vec![],
    };
    let mut fixed = problem_response(&problem);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().append(name, value.clone());
        }
    }
    fixed
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    fixed
}

fn default_detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "No resource at this path.",
        StatusCode::METHOD_NOT_ALLOWED => "This path does not accept that method.",
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is larger than allowed.",
        StatusCode::SERVICE_UNAVAILABLE => {
            "The request took too long or a dependency is down; try again."
        }
        _ => "The request could not be handled.",
    }
}
