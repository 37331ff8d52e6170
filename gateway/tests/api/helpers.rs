//! Starts the gateway in-process on port 0 in front of a small fake upstream that plays
//! tenant-resolver and user-service.

use axum::Router;
use axum::routing::get;
use common::testkit::{TestServer, parse_config};
use gateway::{Config, NAME};

pub struct TestApp {
    pub server: TestServer,
    pub upstream: TestServer,
}

pub async fn fake_upstream() -> TestServer {
    TestServer::router(Router::new().route("/healthz", get(|| async { "ok" }))).await
}

pub fn test_args(upstream: &TestServer) -> Vec<(&'static str, String)> {
    vec![
        ("TENANT_RESOLVER_URL", upstream.base_url.clone()),
        ("USER_SERVICE_URL", upstream.base_url.clone()),
    ]
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&'static str, &str)]) -> TestApp {
    let upstream = fake_upstream().await;
    let config: Config = parse_config(NAME, &test_args(&upstream), overrides);
    let server =
        TestServer::start(|listener, shutdown| gateway::run_until(config, listener, shutdown))
            .await;
    TestApp { server, upstream }
}
