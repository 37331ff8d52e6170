//! project-service: projects, boards, tasks, comments and time, each tenant in its own
//! database (connection details from tenant-resolver; see `docs/DESIGN.md`, Tenancy).
//!
//! A library (`router`, `run`) with a thin `main.rs`, so tests and `cargo xtask up` can
//! start it in-process or as a process alike.

pub mod access;
pub mod config;
pub mod databases;
pub mod db;
pub mod domain;
pub mod events;
pub mod relay;
pub mod routes;
pub mod storage;
pub mod tenant;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use common::auth::JwtVerifier;
use common::events::Broker;
use common::internal::InternalToken;
use common::readiness::Readiness;
use common::server::Service;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;

pub const NAME: &str = "project-service";

#[derive(Clone, FromRef)]
pub struct AppState {
    pub config: Arc<Config>,
    pub http: reqwest::Client,
    pub broker: Broker,
    pub verifier: Arc<JwtVerifier>,
    pub databases: Arc<databases::TenantDatabases>,
    pub outboxes: Arc<relay::Outboxes>,
    pub internal: InternalToken,
    /// Verifies the share grants url-shortener signs (share pages).
    pub grants: common::grant::GrantKey,
}

impl AppState {
    pub fn new(config: Config) -> anyhow::Result<Self> {
        config.internal.warn_if_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        let broker = Broker::new(
            config.amqp.amqp_url.clone(),
            &config.amqp.events_exchange,
            NAME,
        );
        let outboxes = Arc::new(relay::Outboxes::default());
        let internal = InternalToken::new(config.internal.internal_token.clone());
        let databases = Arc::new(databases::TenantDatabases::new(
            http.clone(),
            &config.tenant_db.tenant_resolver_url,
            internal.clone(),
            config.tenant_db.limits(),
            Arc::clone(&outboxes),
        ));
        Ok(Self {
            grants: config.grants.key(),
            verifier: Arc::new(JwtVerifier::remote(
                http.clone(),
                config.auth.jwks_url.clone(),
            )),
            config: Arc::new(config),
            http,
            broker,
            databases,
            outboxes,
            internal,
        })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "project-service",
        description = "Projects, boards, tasks, comments, attachments, time and share pages."
    ),
    paths(
        routes::projects::create,
        routes::projects::list,
        routes::projects::get_one,
        routes::projects::update,
        routes::projects::board,
        routes::projects::remove,
        routes::tasks::create,
        routes::tasks::get_one,
        routes::tasks::update,
        routes::tasks::move_task,
        routes::tasks::list,
        routes::tasks::progress,
        routes::tasks::remove,
        routes::projects::activity_log,
        routes::members::list,
        routes::members::put,
        routes::members::remove,
        routes::columns::create,
        routes::columns::update,
        routes::columns::remove,
        routes::worklogs::create,
        routes::worklogs::list,
        routes::worklogs::remove,
        routes::timer::start,
        routes::timer::stop,
        routes::time::task_time,
        routes::time::project_time,
        routes::worklogs::export,
        routes::comments::create,
        routes::comments::list,
        routes::comments::update,
        routes::comments::remove,
        routes::attachments::upload,
        routes::attachments::list,
        routes::attachments::download,
        routes::attachments::remove,
        routes::shared::task,
        routes::shared::project,
    )
)]
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
                    config.tenant_db.tenant_resolver_url.trim_end_matches('/')
                ),
            )
            .rabbitmq(state.broker.clone()),
        openapi: ApiDoc::openapi(),
    };
    common::server::app(service, routes::router().with_state(state), &config.server)
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    run_until(config, listener, common::shutdown::on_signal()).await
}

/// Serves until `shutdown` is cancelled, publishing the tenants' outboxes meanwhile.
pub async fn run_until(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let server = config.server.clone();
    let state = AppState::new(config)?;
    let relay = tokio::spawn(Arc::clone(&state.outboxes).run(
        Arc::clone(&state.databases),
        state.broker.clone(),
        shutdown.clone(),
    ));
    let connections = Arc::clone(state.databases.connections());
    // The reaper closes idle connections as they age; the rest close once the last
    // request and the relay have given theirs back.
    let reaper = tokio::spawn(Arc::clone(&connections).run_reaper(shutdown.clone()));
    let served = common::server::serve(listener, router(state), shutdown, &server).await;
    relay.await.ok();
    reaper.await.ok();
    connections.close().await;
    served
}
