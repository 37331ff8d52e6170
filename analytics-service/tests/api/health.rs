//! analytics-service boots and is ready only while MongoDB and the broker answer and its
//! consumer is subscribed.

use common::testkit::{
    assert_not_ready_because, assert_ops_routes, assert_stops_cleanly_on_sigterm, unique,
};

use crate::helpers::{spawn_app, spawn_app_with, test_args};

#[tokio::test]
async fn serves_health_readiness_metrics_and_openapi() {
    let app = spawn_app().await;
    assert_ops_routes(
        &app.server,
        analytics_service::NAME,
        &["mongodb", "rabbitmq", "consumer"],
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn is_not_ready_while_mongodb_is_unreachable() {
    let app = spawn_app_with(&[(
        "MONGODB_URL",
        "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500",
    )])
    .await;
    assert_not_ready_because(&app.server, "mongodb").await;
}

#[tokio::test]
async fn is_not_ready_while_rabbitmq_is_unreachable() {
    let app = spawn_app_with(&[("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")]).await;
    assert_not_ready_because(&app.server, "rabbitmq").await;
}

#[test]
fn stops_cleanly_on_sigterm() {
    assert_stops_cleanly_on_sigterm(
        env!("CARGO_BIN_EXE_analytics-service"),
        &test_args(&unique("nexus_test")),
    );
}
