//! gateway: the single entry point. It resolves the tenant from the Host, checks tokens,
//! rate-limits and routes to the services (see `docs/DESIGN.md`, Gateway).
//!
//! A library (`router`, `run`) with a thin `main.rs`, so tests and `cargo xtask up` can
//! start it in-process or as a process alike.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use common::readiness::Readiness;
use common::server::Service;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;

pub const NAME: &str = "gateway";

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// Pooled keep-alive client for everything the gateway calls.
    pub http: reqwest::Client,
}

impl AppState {
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self {
            config: Arc::new(config),
            http,
        })
    }
}

#[derive(OpenApi)]
#[openapi(info(title = "gateway", description = "The Nexus API gateway."))]
struct ApiDoc;

/// The gateway is ready when the services it needs for every tenant request answer:
/// tenant-resolver (tenant lookup) and user-service (token keys).
pub fn router(state: AppState) -> Router {
    let config = Arc::clone(&state.config);
    let service = Service {
        name: NAME,
        readiness: Readiness::new()
            .http(
                "tenant-resolver",
                state.http.clone(),
                format!(
                    "{}/healthz",
                    config.tenant_resolver_url.trim_end_matches('/')
                ),
            )
            .http(
                "user-service",
                state.http.clone(),
                format!("{}/healthz", config.user_service_url.trim_end_matches('/')),
            ),
        openapi: ApiDoc::openapi(),
    };
    common::server::app(service, Router::new().with_state(state), &config.server)
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    run_until(config, listener, common::shutdown::on_signal()).await
}

/// Serves until `shutdown` is cancelled.
pub async fn run_until(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let grace = config.server.shutdown_grace();
    let state = AppState::new(config)?;
    common::server::serve(listener, router(state), shutdown, grace).await
}
