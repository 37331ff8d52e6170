//! Starts the gateway in-process on port 0 in front of a small fake upstream that plays
//! tenant-resolver (`/healthz`) and user-service (`/.well-known/jwks.json`).

use axum::Router;
use axum::routing::get;
use common::auth::SigningKey;
use common::testkit::{TestServer, parse_config};
use gateway::{Config, NAME};

pub struct TestApp {
    pub server: TestServer,
    pub upstream: TestServer,
}

pub async fn fake_upstream() -> TestServer {
    let key = SigningKey::generate("test").expect("key");
    let jwks = SigningKey::jwks([&key]).expect("jwks");
    TestServer::router(
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/.well-known/jwks.json",
                get(move || {
                    let jwks = jwks.clone();
                    async move { axum::Json(jwks) }
                }),
            ),
    )
    .await
}

pub fn test_args(upstream: &TestServer) -> Vec<(&'static str, String)> {
    vec![
        ("TENANT_RESOLVER_URL", upstream.base_url.clone()),
        ("JWKS_URL", upstream.url("/.well-known/jwks.json")),
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
