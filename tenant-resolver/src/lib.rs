//! tenant-resolver: the life of a tenant. Signup provisions a role and a database per
//! tenant (copied from a migrated template), lookups tell the gateway and project-service
//! where a tenant lives, and `migrate` brings every tenant database to the latest schema.
//!
//! A library (`router`, `run`) with a thin `main.rs`, so tests and `cargo xtask up` can
//! start it in-process or as a process alike.

pub mod clusters;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod lifecycle;
pub mod migrate;
pub mod owner;
pub mod provision;
pub mod routes;
pub mod signup;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use common::auth::JwtVerifier;
use common::events::{Broker, outbox::Relay};
use common::internal::InternalToken;
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
/// The schema of every tenant database.
pub static TENANT_MIGRATOR: Migrator = sqlx::migrate!("../migrations/tenant");

/// Handlers extract the parts they need (`State<PgPool>`, the internal token, the
/// verifier) through the derived `FromRef`.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub broker: Broker,
    pub clusters: Arc<clusters::Clusters>,
    pub secret: Arc<crypto::SecretKey>,
    pub migrator: Arc<Migrator>,
    pub users: owner::UserService,
    pub internal: InternalToken,
    pub verifier: Arc<JwtVerifier>,
    pub migration_job: routes::SharedJobHandle,
}

impl AppState {
    /// Connects to the registry (migrating it) and the clusters, and makes sure every
    /// cluster's tenant template exists and is current.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        provision::validate_prefix(&config.tenant_db_prefix)?;
        let secret = crypto::SecretKey::from_base64(config.tenant_secret_key.expose_secret())?;
        if config.tenant_secret_key.expose_secret() == crypto::DEV_SECRET_KEY {
            tracing::warn!(
                "TENANT_SECRET_KEY is the development default; set a secret one in production"
            );
        }
        config.internal.warn_if_default();
        let pool = common::db::connect_and_migrate(
            config.database_url.expose_secret(),
            &config.db,
            &MIGRATOR,
        )
        .await?;
        let clusters = clusters::Clusters::from_spec(&config.tenant_clusters)?;
        clusters.register(&pool).await?;
        for cluster in clusters.iter() {
            provision::ensure_template(cluster, &config.tenant_db_prefix)
                .await
                .with_context(|| {
                    format!("preparing the tenant template on cluster {}", cluster.name)
                })?;
            migrate::migrate_template(cluster, &config.tenant_db_prefix, &TENANT_MIGRATOR)
                .await
                .with_context(|| {
                    format!("migrating the tenant template on cluster {}", cluster.name)
                })?;
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        let internal = InternalToken::new(config.internal.internal_token.clone());
        let broker = Broker::new(
            config.amqp.amqp_url.clone(),
            &config.amqp.events_exchange,
            NAME,
        );
        Ok(Self {
            users: owner::UserService::new(
                http.clone(),
                &config.user_service_url,
                internal.clone(),
            ),
            verifier: Arc::new(JwtVerifier::remote(http, config.auth.jwks_url.clone())),
            internal,
            pool,
            broker,
            clusters: Arc::new(clusters),
            secret: Arc::new(secret),
            migrator: Arc::new(sqlx::migrate!("../migrations/tenant")),
            migration_job: routes::SharedJobHandle::default(),
            config: Arc::new(config),
        })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tenant-resolver",
        description = "Tenants, their databases and the migrations across them."
    ),
    paths(
        routes::signup,
        routes::current,
        routes::active,
        routes::lookup,
        routes::database,
        routes::suspend,
        routes::resume,
        routes::delete_tenant,
        routes::start_migration,
        routes::migration_status
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

/// Connects, migrates, starts the outbox relay and the sweeper, and serves until
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
    let sweeper = tokio::spawn(lifecycle::run_sweeper(state.clone(), shutdown.clone()));
    common::server::serve(listener, router(state), shutdown, &server).await?;
    relay.await?;
    sweeper.await?;
    Ok(())
}

/// `tenant-resolver migrate`: migrates the fleet with a progress bar on a terminal and
/// prints the summary. Fails when any tenant failed.
pub async fn migrate_command(config: Config) -> anyhow::Result<()> {
    let state = AppState::build(config).await?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} tenants  {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let summary = migrate::migrate_all(&state, &state.migrator, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "{} tenants: {} migrated, {} already current, {} failed ({:.1}s)",
        summary.total,
        summary.migrated,
        summary.already_current,
        summary.failed.len(),
        summary.seconds
    );
    for failure in &summary.failed {
        println!(
            "  ✗ {} ({}): {}",
            failure.slug, failure.tenant_id, failure.error
        );
    }
    if summary.failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} tenants failed to migrate; re-run `tenant-resolver migrate` once fixed",
            summary.failed.len()
        )
    }
}
