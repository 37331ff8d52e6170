//! analytics-service: the event store, counters and dashboards, fed from RabbitMQ into
//! MongoDB (see `docs/DESIGN.md`, Analytics).
//!
//! A library (`router`, `run`) with a thin `main.rs`, so tests and `cargo xtask up` can
//! start it in-process or as a process alike.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use common::events::Broker;
use common::readiness::Readiness;
use common::server::Service;
use mongodb::options::ClientOptions;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;

pub const NAME: &str = "analytics-service";

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub mongo: mongodb::Database,
    pub broker: Broker,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "analytics-service",
    description = "Event store, counters and dashboards."
))]
struct ApiDoc;

/// Ready when MongoDB and the broker answer.
pub fn router(state: AppState) -> Router {
    let config = Arc::clone(&state.config);
    let service = Service {
        name: NAME,
        readiness: Readiness::new()
            .mongodb(state.mongo.clone())
            .rabbitmq(state.broker.clone()),
        openapi: ApiDoc::openapi(),
    };
    common::server::app(service, Router::new().with_state(state), &config.server)
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    run_until(config, listener, common::shutdown::on_signal()).await
}

/// Serves until `shutdown` is cancelled. MongoDB is connected lazily by the driver, so
/// the service starts while MongoDB is still coming up and `/readyz` says so.
pub async fn run_until(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let grace = config.server.shutdown_grace();
    let mut options = ClientOptions::parse(config.mongodb_url.expose_secret())
        .await
        .context("parsing MONGODB_URL")?;
    options.app_name = Some(NAME.to_owned());
    options.server_selection_timeout = Some(Duration::from_secs(2));
    let mongo = mongodb::Client::with_options(options)
        .context("creating MongoDB client")?
        .database(&config.mongodb_database);
    let broker = Broker::new(
        config.amqp.amqp_url.clone(),
        &config.amqp.events_exchange,
        NAME,
    );
    let state = AppState {
        config: Arc::new(config),
        mongo,
        broker,
    };
    common::server::serve(listener, router(state), shutdown, grace).await
}
