//! notification-service: each member's inbox of what happened to the tasks they follow
//! (see `docs/DESIGN.md`, Notifications).
//!
//! A library (`router`, `run`) with a thin `main.rs`, so tests and `cargo xtask up` can
//! start it in-process or as a process alike. Two parts share one cancellation token:
//! the events consumer (`common::events::consumer` into [`inbox::Inbox`], which writes
//! each tenant's notifications to that tenant's database) and the HTTP API (`routes`).

pub mod config;
pub mod db;
pub mod domain;
pub mod inbox;
pub mod live;
pub mod mailer;
pub mod routes;
pub mod schedule;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use common::auth::JwtVerifier;
use common::auth::revocations::{self, Revocations};
use common::db::directory::TenantDirectory;
use common::events::Broker;
use common::events::consumer::{AfterWrite, Consumer, Status};
use common::grant::GrantKey;
use common::internal::InternalToken;
use common::readiness::Readiness;
use common::server::Service;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;
use live::Hub;
use mailer::Mailer;
use webhooks::Dispatcher;

pub const NAME: &str = "notification-service";

#[derive(Clone, FromRef)]
pub struct AppState {
    pub config: Arc<Config>,
    pub http: reqwest::Client,
    pub broker: Broker,
    pub verifier: Arc<JwtVerifier>,
    pub databases: Arc<TenantDirectory>,
    pub mailer: Arc<Mailer>,
    pub webhooks: Arc<Dispatcher>,
    pub consumer: Status,
    pub hub: Arc<Hub>,
    pub revocations: Arc<Revocations>,
    pub grants: GrantKey,
    /// Cancelled when the service stops: open streams end.
    pub shutdown: CancellationToken,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "notification-service",
        description = "Each member's inbox of what happened to the tasks they follow."
    ),
    paths(
        routes::inbox::list,
        routes::inbox::unread_count,
        routes::inbox::read_all,
        routes::inbox::read,
        routes::inbox::unread,
        routes::inbox::archive,
        routes::inbox::snooze,
        routes::preferences::show,
        routes::preferences::change,
        routes::subscriptions::watch,
        routes::subscriptions::unwatch,
        routes::unsubscribe::confirm,
        routes::unsubscribe::unsubscribe,
        routes::stream::ticket,
        routes::stream::open,
        routes::stream::shared,
        routes::webhooks::create,
        routes::webhooks::list,
        routes::webhooks::show,
        routes::webhooks::change,
        routes::webhooks::remove,
        routes::webhooks::rotate_secret,
        routes::webhooks::test,
        routes::webhooks::deliveries,
        routes::webhooks::retry,
        routes::webhooks::recover,
    )
)]
struct ApiDoc;

/// The tenants' databases and the two workers that send what the inbox stores (mail
/// and webhook deliveries), made as the service makes them (benchmarks make them too).
pub struct Workers {
    pub databases: Arc<TenantDirectory>,
    pub mailer: Arc<Mailer>,
    pub webhooks: Arc<Dispatcher>,
}

impl Workers {
    /// `application` names the database connections.
    pub fn new(
        config: &Config,
        application: &str,
        http: reqwest::Client,
        internal: InternalToken,
    ) -> anyhow::Result<Self> {
        let databases = Arc::new(TenantDirectory::new(
            application,
            http.clone(),
            &config.tenant_db.tenant_resolver_url,
            internal.clone(),
            config.tenant_db.limits(),
        ));
        let mailer = Arc::new(Mailer::new(
            &config.mail,
            Arc::clone(&databases),
            http.clone(),
            internal.clone(),
        )?);
        let webhooks = Arc::new(Dispatcher::new(
            config,
            Arc::clone(&databases),
            Arc::clone(&mailer),
            http,
            internal,
        )?);
        Ok(Self {
            databases,
            mailer,
            webhooks,
        })
    }
}

/// Ready when tenant-resolver and the broker answer and the consumer is subscribed.
pub fn router(state: AppState) -> Router {
    let config = Arc::clone(&state.config);
    let consumer = state.consumer.clone();
    let hub = Arc::clone(&state.hub);
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
            .rabbitmq(state.broker.clone())
            .with("consumer", move || {
                let consuming = consumer.consuming();
                async move {
                    anyhow::ensure!(consuming, "not subscribed to the events queue");
                    Ok(())
                }
            })
            .with("stream", move || {
                let listening = hub.listening();
                async move {
                    anyhow::ensure!(listening, "not subscribed to the stream fanout");
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

/// [`run_until`] with an optional hook between each batch's write and its ack (tests).
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    after_write: Option<AfterWrite>,
) -> anyhow::Result<()> {
    config.internal.warn_if_default();
    let server = config.server.clone();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    let broker = Broker::new(
        config.amqp.amqp_url.clone(),
        &config.amqp.events_exchange,
        NAME,
    );
    let internal = InternalToken::new(config.internal.internal_token.clone());
    let Workers {
        databases,
        mailer,
        webhooks: dispatcher,
    } = Workers::new(&config, NAME, http.clone(), internal.clone())?;
    let mailing = tokio::spawn(Arc::clone(&mailer).run(shutdown.clone()));
    let dispatching = tokio::spawn(Arc::clone(&dispatcher).run(shutdown.clone()));
    let sweeping = tokio::spawn({
        let (mailer, dispatcher) = (Arc::clone(&mailer), Arc::clone(&dispatcher));
        schedule::sweep(
            http.clone(),
            config.tenant_db.tenant_resolver_url.clone(),
            internal.clone(),
            move |tenant| {
                mailer.touch(tenant, true);
                dispatcher.touch(tenant, true);
            },
            shutdown.clone(),
        )
    });
    let hub = Arc::new(Hub::new(
        broker.clone(),
        Duration::from_secs(config.stream.stream_retention_secs),
    ));
    let listening = tokio::spawn(Arc::clone(&hub).run(shutdown.clone()));
    let revocations = Arc::new(Revocations::default());
    let following = tokio::spawn({
        let (revocations, http, token, stop) = (
            Arc::clone(&revocations),
            http.clone(),
            internal.clone(),
            shutdown.clone(),
        );
        let base = config.mail.user_service_url.clone();
        let every = Duration::from_millis(config.stream.revocation_poll_ms);
        async move {
            let fetch = |cursor| {
                let request = revocations::request(&http, &base, &token, cursor);
                async move { Ok(request.send().await?.error_for_status()?.json().await?) }
            };
            revocations.follow(fetch, every, stop).await;
        }
    });
    let status = Status::default();
    let consumer = tokio::spawn(
        Consumer {
            broker: broker.clone(),
            settings: config.consumer_settings(),
            sink: inbox::Inbox {
                directory: Arc::clone(&databases),
                mailer: Arc::clone(&mailer),
                webhooks: Arc::clone(&dispatcher),
                digest_secs: config.mail.digest_interval_secs as f64,
                hub: Arc::clone(&hub),
                retention_secs: config.stream.stream_retention_secs as f64,
            },
            status: status.clone(),
            after_write,
            service: NAME,
        }
        .run(shutdown.clone()),
    );
    let connections = Arc::clone(databases.connections());
    let reaper = tokio::spawn(Arc::clone(&connections).run_reaper(shutdown.clone()));
    let state = AppState {
        grants: config.grant.key(),
        hub,
        revocations,
        shutdown: shutdown.clone(),
        verifier: Arc::new(JwtVerifier::remote(
            http.clone(),
            config.auth.jwks_url.clone(),
        )),
        config: Arc::new(config),
        http,
        broker,
        databases,
        mailer,
        webhooks: dispatcher,
        consumer: status,
    };
    let served = common::server::serve(listener, router(state), shutdown, &server).await;
    consumer.await.ok();
    mailing.await.ok();
    dispatching.await.ok();
    sweeping.await.ok();
    listening.await.ok();
    following.await.ok();
    reaper.await.ok();
    connections.close().await;
    served
}
