//! tenant-resolver: tenants, their databases and the migrations across them.
//!
//! A library (`router`, `run`) with a thin `main.rs`, so tests and `cargo xtask up` can
//! start it in-process or as a process alike.

pub mod config;

use std::sync::Arc;

use axum::Router;
use common::events::{Broker, outbox::Relay};
use common::readiness::Readiness;
use common::server::Service;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;

pub const NAME: &str = "tenant-resolver";

/// The schema of `nexus_registry`, applied at start-up.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/registry");

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub broker: Broker,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "tenant-resolver",
    description = "Tenants, their databases and the migrations across them."
))]
struct ApiDoc;

/// The service's HTTP API with the shared operational routes and layers.
pub fn router(state: AppState) -> Router {
    let service = Service {
        name: NAME,
        readiness: Readiness::new()
            .postgres("postgres", state.pool.clone())
            .rabbitmq(state.broker.clone()),
        openapi: ApiDoc::openapi(),
    };
    let config = Arc::clone(&state.config);
    common::server::app(service, Router::new().with_state(state), &config.server)
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    run_until(config, listener, common::shutdown::on_signal()).await
}

/// Connects, migrates, starts the outbox relay and serves until `shutdown` is cancelled.
pub async fn run_until(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool =
        common::db::connect_and_migrate(config.database_url.expose_secret(), &config.db, &MIGRATOR)
            .await?;
    let broker = Broker::new(
        config.amqp.amqp_url.clone(),
        &config.amqp.events_exchange,
        NAME,
    );
    let relay = tokio::spawn(Relay::new(pool.clone(), broker.clone()).run(shutdown.clone()));
    let grace = config.server.shutdown_grace();
    let state = AppState {
        config: Arc::new(config),
        pool,
        broker,
    };
    common::server::serve(listener, router(state), shutdown, grace).await?;
    relay.await?;
    Ok(())
}
