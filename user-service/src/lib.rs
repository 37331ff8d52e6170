//! user-service: users, argon2 credentials, EdDSA access tokens with a JWKS, rotating
//! refresh tokens, roles and invites. It is the only holder of the signing keys.
//!
//! A library (`router`, `run`) with a thin `main.rs`, so tests and `cargo xtask up` can
//! start it in-process or as a process alike.

pub mod config;
pub mod db;
pub mod keys;
pub mod password;
mod routes;
pub mod throttle;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use common::auth::JwtVerifier;
use common::client::TrustedProxies;
use common::events::{Broker, Envelope, outbox::Relay};
use common::internal::InternalToken;
use common::password::Hasher;
use common::readiness::Readiness;
use common::server::Service;
use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::{PgConnection, PgPool};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use uuid::Uuid;

pub use config::Config;

pub const NAME: &str = "user-service";

/// The schema of `nexus_users`, applied at start-up.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/users");

/// Handlers extract the parts they need (`State<PgPool>`, the internal token, the
/// verifier) through the derived `FromRef`.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub broker: Broker,
    pub keys: Arc<keys::KeyRing>,
    /// Verifies this service's own tokens against its own key ring.
    pub verifier: Arc<JwtVerifier>,
    pub throttle: Arc<throttle::LoginThrottle>,
    /// Whose `X-Forwarded-For` names the client (the login throttle's address).
    pub trusted_proxies: TrustedProxies,
    /// Hashes and checks passwords on a bounded set of workers.
    pub hasher: Hasher,
    /// Successors handed out for a refresh token, kept for the grace window so a retried
    /// request gets the same pair instead of tripping reuse detection.
    pub recent_refreshes: moka::sync::Cache<Vec<u8>, tokens::TokenPair>,
    pub internal: InternalToken,
    pub http: reqwest::Client,
}

impl AppState {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.internal.warn_if_default();
        let pool = common::db::connect_and_migrate(
            config.database_url.expose_secret(),
            &config.db,
            &MIGRATOR,
        )
        .await?;
        let keys = keys::KeyRing::load(&config.signing_keys_dir, config.generate_signing_key)?;
        let verifier = JwtVerifier::from_jwks(&keys.jwks()?)?;
        let throttle = throttle::LoginThrottle::new(
            Duration::from_secs(config.login_throttle_window_secs),
            throttle::Limits {
                per_pair: config.login_max_failures_per_address,
                per_account: config.login_max_failures_per_account,
                per_ip: config.login_max_failures_per_ip,
            },
        );
        Ok(Self {
            broker: Broker::new(
                config.amqp.amqp_url.clone(),
                &config.amqp.events_exchange,
                NAME,
            ),
            pool,
            keys: Arc::new(keys),
            verifier: Arc::new(verifier),
            throttle: Arc::new(throttle),
            trusted_proxies: config.server.trusted_proxies.clone(),
            hasher: Hasher::from_args(&config.password),
            recent_refreshes: moka::sync::Cache::builder()
                .time_to_live(Duration::from_secs(config.refresh_grace_secs))
                .max_capacity(100_000)
                .build(),
            internal: InternalToken::new(config.internal.internal_token.clone()),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .build()?,
            config: Arc::new(config),
        })
    }
}

/// Records an event in the outbox, inside the caller's transaction.
pub async fn emit(
    conn: &mut PgConnection,
    kind: &str,
    tenant: Uuid,
    actor: Option<Uuid>,
    data: serde_json::Value,
) -> sqlx::Result<()> {
    let event = Envelope::new(kind, tenant, actor, data);
    common::events::outbox::enqueue(
        conn,
        &event,
        common::telemetry::current_request_id().as_deref(),
    )
    .await
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "user-service",
        description = "Users, credentials, tokens, roles and invites."
    ),
    paths(
        routes::auth::login,
        routes::auth::refresh,
        routes::auth::logout,
        routes::auth::accept_invite,
        routes::jwks::jwks,
        routes::users::me,
        routes::users::update_me,
        routes::users::change_password,
        routes::users::list,
        routes::users::get_one,
        routes::users::change_role,
        routes::users::remove,
        routes::invites::create,
        routes::invites::list,
        routes::invites::revoke,
        routes::internal::create_owner,
        routes::internal::remove_owner,
        routes::internal::summaries,
        routes::internal::revocations,
        routes::internal::holders
    )
)]
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
    common::server::app(service, routes::router().with_state(state), &config.server)
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    run_until(config, listener, common::shutdown::on_signal()).await
}

/// Connects, migrates, loads the keys, starts the outbox relay and serves until
/// `shutdown` is cancelled.
pub async fn run_until(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let server = config.server.clone();
    let state = AppState::build(config).await?;
    let relay =
        tokio::spawn(Relay::new(state.pool.clone(), state.broker.clone()).run(shutdown.clone()));
    common::server::serve(listener, router(state), shutdown, &server).await?;
    relay.await?;
    Ok(())
}
