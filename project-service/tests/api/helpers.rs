//! Starts project-service in-process on port 0 with a fake tenant-resolver and a unique
//! exchange on the test broker.

use axum::Router;
use axum::routing::get;
use common::testkit::{TestServer, amqp_url, parse_config, unique};
use project_service::{Config, NAME};

pub struct TestApp {
    pub server: TestServer,
    pub resolver: TestServer,
}

pub async fn fake_resolver() -> TestServer {
    TestServer::router(Router::new().route("/healthz", get(|| async { "ok" }))).await
}

pub fn test_args(resolver: &TestServer) -> Vec<(&'static str, String)> {
    vec![
        ("TENANT_RESOLVER_URL", resolver.base_url.clone()),
        ("AMQP_URL", amqp_url()),
        ("EVENTS_EXCHANGE", unique("test.events")),
    ]
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&'static str, &str)]) -> TestApp {
    let resolver = fake_resolver().await;
    let config: Config = parse_config(NAME, &test_args(&resolver), overrides);
    let server = TestServer::start(|listener, shutdown| {
        project_service::run_until(config, listener, shutdown)
    })
    .await;
    TestApp { server, resolver }
}
