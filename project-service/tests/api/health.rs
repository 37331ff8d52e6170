//! project-service boots and is ready only while tenant-resolver and the broker answer.

use common::testkit::{
    assert_not_ready_because, assert_ops_routes, assert_stops_cleanly_on_sigterm,
};

use crate::helpers::{fake_resolver, spawn_app, spawn_app_with, test_args};

#[tokio::test]
async fn serves_health_readiness_metrics_and_openapi() {
    let app = spawn_app().await;
    assert_ops_routes(
        &app.server,
        project_service::NAME,
        &["tenant-resolver", "rabbitmq"],
    )
    .await;
}

#[tokio::test]
async fn is_not_ready_while_tenant_resolver_is_down() {
    let app = spawn_app().await;
    app.resolver.server.stop();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_not_ready_because(&app.server, "tenant-resolver").await;
}

#[tokio::test]
async fn is_not_ready_while_rabbitmq_is_unreachable() {
    let app = spawn_app_with(&[("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")]).await;
    assert_not_ready_because(&app.server, "rabbitmq").await;
}

#[tokio::test]
async fn stops_cleanly_on_sigterm() {
    let resolver = fake_resolver().await;
    let env = test_args(&resolver);
    tokio::task::spawn_blocking(move || {
        assert_stops_cleanly_on_sigterm(env!("CARGO_BIN_EXE_project-service"), &env);
    })
    .await
    .unwrap();
}
