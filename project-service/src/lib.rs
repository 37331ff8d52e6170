//! project-service: projects, boards, tasks, comments and time, each tenant in its own
//! database (connection details from tenant-resolver; see `docs/DESIGN.md`, Tenancy).
//!
//! A library (`router`, `run`) with a thin `main.rs`, so tests and `cargo xtask up` can
//! start it in-process or as a process alike.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use common::events::Broker;
use common::readiness::Readiness;
use common::server::Service;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;

pub const NAME: &str = "project-service";

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub http: reqwest::Client,
    pub broker: Broker,
}

#[derive(OpenApi)]
#[openapi(info(title = "project-service", description = "Projects, boards and tasks."))]
struct ApiDoc;

/// Ready when tenant-resolver (where tenant databases are found) and the broker answer.
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
            .rabbitmq(state.broker.clone()),
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
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    let broker = Broker::new(
        config.amqp.amqp_url.clone(),
        &config.amqp.events_exchange,
        NAME,
    );
    let state = AppState {
        config: Arc::new(config),
        http,
        broker,
    };
    common::server::serve(listener, router(state), shutdown, grace).await
}
