//! gateway: the single entry point. It resolves the tenant from the Host, checks tokens,
//! rate-limits, guards each upstream with a circuit breaker and streams requests to the
//! services (see `docs/DESIGN.md`, Gateway).
//!
//! A library (`router`, `run`) with a thin `main.rs`, so tests and `cargo xtask up` can
//! start it in-process or as a process alike.

pub mod breaker;
pub mod config;
pub mod docs;
mod fast;
pub mod limits;
mod meter;
mod proxy;
mod recent;
pub mod routes;
pub mod streams;
pub mod tenants;
pub mod tokens;
pub mod upstreams;

/// The fast lane's request-head reader, for `fuzz/` (not an API).
#[doc(hidden)]
pub use fast::fuzz_head;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use common::auth::JwtVerifier;
use common::auth::revocations::{self, Revocations};
use common::internal::InternalToken;
use common::readiness::Readiness;
use common::server::Service;
use routes::Upstream;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::compression::predicate::Predicate;
use utoipa::OpenApi;

pub use config::Config;

pub const NAME: &str = "gateway";

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub upstreams: Arc<upstreams::Upstreams>,
    pub tenants: Arc<tenants::TenantCache>,
    pub tokens: Arc<tokens::TokenCache>,
    pub revocations: Arc<Revocations>,
    pub internal: InternalToken,
    pub limits: Arc<limits::Limits>,
    pub streams: Arc<streams::Streams>,
    pub docs: docs::DocsCache,
}

impl AppState {
    pub fn new(config: Config) -> anyhow::Result<Self> {
        config.internal.warn_if_default();
        let upstreams = Arc::new(upstreams::Upstreams::new(&config)?);
        let token = InternalToken::new(config.internal.internal_token.clone());
        let verifier = JwtVerifier::remote(upstreams.client.clone(), config.auth.jwks_url.clone());
        let revocations = Arc::new(Revocations::default());
        Ok(Self {
            tenants: Arc::new(tenants::TenantCache::new(
                Duration::from_secs(config.tenant_cache_ttl_secs),
                Arc::clone(&upstreams),
                token.clone(),
            )),
            tokens: Arc::new(tokens::TokenCache::new(
                Arc::new(verifier),
                Arc::clone(&revocations),
            )),
            revocations,
            internal: token,
            docs: docs::cache(),
            limits: Arc::new(limits::Limits::new(
                config.rate_limit_user_per_min,
                config.rate_limit_ip_per_min,
            )),
            streams: Arc::new(streams::Streams::new(
                config.streams_per_user,
                config.streams_per_tenant,
            )),
            upstreams,
            config: Arc::new(config),
        })
    }
}

#[derive(OpenApi)]
#[openapi(info(title = "gateway", description = "The Nexus API gateway."))]
pub(crate) struct ApiDoc;

fn first(urls: &str) -> String {
    urls.split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .trim_end_matches('/')
        .to_owned()
}

/// The gateway is ready when the services it needs for every tenant request answer:
/// tenant-resolver (tenant lookup) and user-service (token keys).
pub fn router(state: AppState) -> Router {
    router_of(Arc::new(state))
}

fn router_of(state: Arc<AppState>) -> Router {
    let config = Arc::clone(&state.config);
    let http = state.upstreams.client.clone();
    let service = Service {
        name: NAME,
        readiness: Readiness::new()
            .http(
                "tenant-resolver",
                http.clone(),
                format!("{}/healthz", first(&config.tenant_resolver_url)),
            )
            .http(
                "user-service",
                http,
                format!("{}/healthz", first(&config.user_service_url)),
            ),
        openapi: ApiDoc::openapi(),
    };
    let docs = axum::routing::get(docs::merged).with_state(Arc::clone(&state));
    // The gateway's own routes get the shared layer stack; everything else is proxied
    // through a lean one of its own (see `proxy::proxy`).
    let proxied = axum::routing::any(proxy::proxy).with_state(state).layer(
        tower::ServiceBuilder::new()
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                |_: Box<dyn std::any::Any + Send>| {
                    common::ApiError::Internal(anyhow::anyhow!("proxy panicked")).into_response()
                },
            ))
            // The larger of the two limits bounds every body, streamed or not; `forward`
            // refuses a declared length over the route's own limit up front.
            .layer(tower_http::limit::RequestBodyLimitLayer::new(
                config
                    .server
                    .body_limit_bytes
                    .max(config.upload_limit_bytes),
            )),
    );
    let app = common::server::app_with_docs(service, docs::viewer(), &config.server, docs)
        .fallback_service(proxied);
    let app = app.layer(compression());
    match cors(&config.cors_allowed_origins) {
        Some(layer) => app.layer(layer),
        None => app,
    }
}

/// Answers smaller than this are not worth compressing (both paths).
const COMPRESS_MIN_BYTES: u16 = 256;

/// Whether a `Content-Type` is JSON or text, the answers worth compressing (binary
/// downloads such as attachments pass as they are, and event streams, which an encoder
/// would hold back until its buffer fills). Both paths ask this.
fn is_compressible_type(content_type: &[u8]) -> bool {
    let value = content_type.trim_ascii_start();
    let stream = b"text/event-stream";
    if value
        .get(..stream.len())
        .is_some_and(|v| v.eq_ignore_ascii_case(stream))
    {
        return false;
    }
    [
        &b"application/json"[..],
        b"application/problem+json",
        b"text/",
    ]
    .iter()
    .any(|t| {
        value
            .get(..t.len())
            .is_some_and(|v| v.eq_ignore_ascii_case(t))
    })
}

/// gzip or brotli, as the client accepts, for answers [`is_compressible_type`] of at
/// least [`COMPRESS_MIN_BYTES`].
fn compression() -> tower_http::compression::CompressionLayer<impl Predicate> {
    use axum::http::{Extensions, HeaderMap, StatusCode, Version, header};
    let json_or_text = |_: StatusCode, _: Version, headers: &HeaderMap, _: &Extensions| {
        headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|ct| is_compressible_type(ct.as_bytes()))
    };
    tower_http::compression::CompressionLayer::new().compress_when(LargeEnough.and(json_or_text))
}

/// At least [`COMPRESS_MIN_BYTES`] by the answer's `Content-Length`, else by its body's
/// known size (unknown: large enough). The length comes first so that a HEAD answer
/// (an empty body, the GET's length) is said to be compressed exactly when its GET is.
#[derive(Clone, Copy)]
struct LargeEnough;

impl Predicate for LargeEnough {
    fn should_compress<B: axum::body::HttpBody>(&self, response: &axum::http::Response<B>) -> bool {
        let declared = response
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        declared
            .or_else(|| response.body().size_hint().exact())
            .is_none_or(|size| size >= u64::from(COMPRESS_MIN_BYTES))
    }
}

/// CORS for the configured origins (outermost, so preflights never reach an upstream).
fn cors(origins: &str) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    let origins: Vec<HeaderValue> = origins
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([
                header::ETAG,
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Runs until SIGTERM or Ctrl-C on `workers` threads (0: one per available core), each
/// with its own single-threaded runtime accepting from the shared listening socket, as
/// nginx's worker processes do: a connection stays on one thread, and no work moves
/// between threads. Caches, rate limits and breakers are shared by all workers.
pub fn run(config: Config, listener: std::net::TcpListener, workers: usize) -> anyhow::Result<()> {
    let workers = match workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    listener.set_nonblocking(true)?;
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let server = config.server.clone();
    let shutdown = CancellationToken::new();
    let state = Arc::new(AppState::new(config)?);
    let app = router_of(Arc::clone(&state));
    // Signals are watched before any worker says it is listening.
    let main_runtime = runtime()?;
    let signal = {
        let _entered = main_runtime.enter();
        common::shutdown::on_signal()
    };
    let others = (1..workers)
        .map(|i| {
            let (listener, app, shutdown) = (listener.try_clone()?, app.clone(), shutdown.clone());
            let server = server.clone();
            let state = Arc::clone(&state);
            let runtime = runtime()?;
            std::thread::Builder::new()
                .name(format!("gateway-worker-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        let listener = TcpListener::from_std(listener)?;
                        common::lane::serve(
                            listener,
                            app,
                            state,
                            shutdown,
                            &server,
                            fast::connection,
                        )
                        .await
                    })
                })
                .map_err(anyhow::Error::from)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let main = main_runtime.block_on(async move {
        let stop = shutdown.clone();
        tokio::spawn(async move {
            signal.cancelled().await;
            stop.cancel();
        });
        background(&state, &shutdown);
        let listener = TcpListener::from_std(listener)?;
        common::lane::serve(listener, app, state, shutdown, &server, fast::connection).await
    });
    for worker in others {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("a gateway worker panicked"))??;
    }
    main
}

/// Periodic upkeep: forget rate-limit keys that are back to full capacity.
fn background(state: &AppState, shutdown: &CancellationToken) {
    let (revocations, upstreams, token) = (
        Arc::clone(&state.revocations),
        Arc::clone(&state.upstreams),
        state.internal.clone(),
    );
    let every = Duration::from_millis(state.config.revocation_poll_ms);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let fetch = |cursor| {
            let (upstreams, token) = (Arc::clone(&upstreams), token.clone());
            async move {
                let page = upstreams
                    .send(Upstream::UserService, |client, base| {
                        revocations::request(client, base, &token, cursor)
                    })
                    .await
                    .map_err(|err| anyhow::anyhow!("user-service: {err:?}"))?
                    .error_for_status()?;
                Ok(page.json::<revocations::Page>().await?)
            }
        };
        revocations.follow(fetch, every, stop).await;
    });
    let limits = Arc::clone(&state.limits);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(60)) => limits.shrink(),
            }
        }
    });
}

/// Serves on the caller's runtime until `shutdown` is cancelled (tests, embedding).
pub async fn run_until(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let server = config.server.clone();
    let state = Arc::new(AppState::new(config)?);
    background(&state, &shutdown);
    let app = router_of(Arc::clone(&state));
    common::lane::serve(listener, app, state, shutdown, &server, fast::connection).await
}
