//! analytics-service: the event store, counters and dashboards, fed from RabbitMQ into
//! MongoDB (see `docs/DESIGN.md`, Analytics).
//!
//! A library (`router`, `run`) with a thin `main.rs`, so tests and `cargo xtask up` can
//! start it in-process or as a process alike. Three parts share one cancellation token:
//! the consumer (`common::events::consumer` into [`store::Store`]), the rollup job (`store::rollup`) and the HTTP API (`routes`).

pub mod config;
pub mod domain;
pub mod routes;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use common::auth::JwtVerifier;
use common::events::Broker;
use common::readiness::Readiness;
use common::server::Service;
use mongodb::options::ClientOptions;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;

use crate::store::Store;
use common::events::consumer::{AfterWrite, Consumer, Status};

pub const NAME: &str = "analytics-service";

#[derive(Clone, FromRef)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub broker: Broker,
    pub verifier: Arc<JwtVerifier>,
    pub consumer: Status,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "analytics-service",
        description = "Event store, counters and dashboards."
    ),
    paths(
        routes::reports::overview,
        routes::reports::link,
        routes::reports::tasks,
        routes::dashboard::page,
    )
)]
struct ApiDoc;

/// Ready when MongoDB and the broker answer and the consumer is subscribed.
pub fn router(state: AppState) -> Router {
    let config = Arc::clone(&state.config);
    let consumer = state.consumer.clone();
    let service = Service {
        name: NAME,
        readiness: Readiness::new()
            .mongodb(state.store.db.clone())
            .rabbitmq(state.broker.clone())
            .with("consumer", move || {
                let consuming = consumer.consuming();
                async move {
                    anyhow::ensure!(consuming, "not subscribed to the events queue");
                    Ok(())
                }
            }),
        openapi: ApiDoc::openapi(),
    };
    common::server::app(service, routes::router().with_state(state), &config.server)
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
    run_with(config, listener, shutdown, None).await
}

/// The MongoDB database of `config`. The driver connects lazily, so the service starts
/// while MongoDB is still coming up and `/readyz` says so.
pub async fn database(config: &Config) -> anyhow::Result<mongodb::Database> {
    let mut options = ClientOptions::parse(config.mongodb_url.expose_secret())
        .await
        .context("parsing MONGODB_URL")?;
    options.app_name = Some(NAME.to_owned());
    options.server_selection_timeout = Some(Duration::from_secs(2));
    Ok(mongodb::Client::with_options(options)
        .context("creating MongoDB client")?
        .database(&config.mongodb_database))
}

/// [`run_until`] with an optional hook between each batch's write and its ack (tests).
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    after_write: Option<AfterWrite>,
) -> anyhow::Result<()> {
    let server = config.server.clone();
    let store = Store::new(database(&config).await?);
    let broker = Broker::new(
        config.amqp.amqp_url.clone(),
        &config.amqp.events_exchange,
        NAME,
    );
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    let status = Status::default();
    let workers = tokio::spawn(background(
        config.clone(),
        store.clone(),
        Consumer {
            broker: broker.clone(),
            settings: config.consumer_settings(),
            sink: store.clone(),
            status: status.clone(),
            after_write,
            service: NAME,
        },
        shutdown.clone(),
    ));
    let state = AppState {
        verifier: Arc::new(JwtVerifier::remote(http, config.auth.jwks_url.clone())),
        config: Arc::new(config),
        store,
        broker,
        consumer: status,
    };
    let served = common::server::serve(listener, router(state), shutdown, &server).await;
    workers.await.ok();
    served
}

/// Creates the indexes (retrying until MongoDB answers), then runs the consumer and the
/// rollup job until `shutdown`.
async fn background(
    config: Config,
    store: Store,
    consumer: Consumer<Store>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    while let Err(err) = store.ensure_indexes(config.retention_days).await {
        tracing::warn!(
            error = format!("{err:#}"),
            "creating MongoDB indexes failed; retrying"
        );
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    let rollups = tokio::spawn(store::rollup::run(
        store,
        config.rollup_interval(),
        shutdown.clone(),
    ));
    consumer.run(shutdown).await;
    rollups.await.ok();
}
