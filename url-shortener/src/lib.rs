//! url-shortener: expiring, password-protected share links and their redirects.
//!
//! A library (`router`, `run`) with a thin `main.rs`, so tests and `cargo xtask up` can
//! start it in-process or as a process alike.

pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
mod lane;
mod pages;
pub mod routes;
pub mod targets;
pub mod throttle;
pub mod visits;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use common::auth::JwtVerifier;
use common::events::{Broker, outbox::Relay};
use common::grant::GrantKey;
use common::password::Hasher;
use common::readiness::Readiness;
use common::server::Service;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;

pub const NAME: &str = "url-shortener";

/// The schema of `nexus_shortener`, applied at start-up.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/shortener");

#[derive(Clone, FromRef)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub broker: Broker,
    pub verifier: Arc<JwtVerifier>,
    pub http: reqwest::Client,
    pub grant_key: GrantKey,
    pub grant_ttl_secs: i64,
    pub cache: Arc<cache::LinkCache>,
    pub throttle: Arc<throttle::PasswordThrottle>,
    pub visits: visits::VisitSink,
    /// Hashes and checks link passwords on a bounded set of workers.
    pub hasher: Hasher,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "url-shortener",
        description = "Expiring, password-protected share links and their redirects."
    ),
    paths(
        routes::links::create,
        routes::links::list,
        routes::links::get_one,
        routes::links::update,
        routes::links::disable,
        routes::links::remove,
        routes::qr::svg,
        routes::qr::png,
        routes::redirect::open,
        routes::redirect::unlock,
    )
)]
struct ApiDoc;

/// The service's HTTP API with the shared operational routes and layers.
pub fn router(state: AppState) -> Router {
    app(Arc::new(state))
}

fn app(state: Arc<AppState>) -> Router {
    let service = Service {
        name: NAME,
        readiness: Readiness::new()
            .postgres("postgres", state.pool.clone())
            .rabbitmq(state.broker.clone()),
        openapi: ApiDoc::openapi(),
    };
    let config = Arc::clone(&state.config);
    let api = common::server::app(
        service,
        routes::router().with_state(AppState::clone(&state)),
        &config.server,
    );
    // Everything but `/s/{code}` goes through the shared stack, its 404s included.
    routes::redirect::router()
        .with_state(state)
        .fallback_service(api)
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    run_until(config, listener, common::shutdown::on_signal()).await
}

/// Connects, migrates, starts the outbox relay and the visit flusher, and serves until
/// `shutdown` is cancelled; then writes the visits still pending before it returns.
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
    // The relay and the visit flusher each write through connections of their own (the
    // relay's notification listener holds one of its two).
    let relay = Relay::new(common::db::dedicated(&pool, 2), broker.clone());
    let relay = tokio::spawn(relay.run(shutdown.clone()));
    let (sink, flusher) = visits::channel(common::db::dedicated(&pool, 1), broker.clone(), &config);
    let flusher = tokio::spawn(flusher.run(shutdown.clone()));
    let throttle = Arc::new(throttle::PasswordThrottle::new(
        config.password_attempts_per_address,
        config.password_attempts_per_link,
        Duration::from_secs(config.password_throttle_window_secs.max(1)),
    ));
    let shrink = tokio::spawn(shrink_periodically(Arc::clone(&throttle), shutdown.clone()));
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    let grace = config.server.shutdown_grace();
    let server = config.server.clone();
    let state = AppState {
        verifier: Arc::new(JwtVerifier::remote(
            http.clone(),
            config.auth.jwks_url.clone(),
        )),
        http,
        grant_key: config.grant.key(),
        grant_ttl_secs: i64::try_from(config.grant_ttl_secs).unwrap_or(300),
        cache: Arc::new(cache::LinkCache::new(
            config.link_cache_size,
            Duration::from_secs(config.link_cache_ttl_secs.max(1)),
        )),
        throttle,
        visits: sink,
        hasher: Hasher::from_args(&config.password),
        config: Arc::new(config),
        pool,
        broker,
    };
    // The redirect lane serves plain cached redirects itself, hyper and the router
    // everything else; without it, hyper and the router serve everything.
    let state = Arc::new(state);
    let app = app(Arc::clone(&state));
    if state.config.redirect_lane {
        common::lane::serve(listener, app, state, shutdown, &server, lane::connection).await?;
    } else {
        drop(state);
        common::server::serve(listener, app, shutdown, &server).await?;
    }
    // The router, and with it every sink, is gone once the server has drained: the
    // flusher writes what is left and stops.
    if tokio::time::timeout(grace, flusher).await.is_err() {
        tracing::error!("pending visits could not be written before the grace period ended");
    }
    relay.await?;
    shrink.await?;
    Ok(())
}

async fn shrink_periodically(
    throttle: Arc<throttle::PasswordThrottle>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => throttle.shrink(),
        }
    }
}
