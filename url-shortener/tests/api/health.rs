//! The service boots, migrates its database, and reports its dependencies truthfully.

use common::testkit::{
    TestDb, assert_not_ready_because, assert_ops_routes, assert_stops_cleanly_on_sigterm,
    assert_tables_exist,
};

use crate::helpers::{spawn_app, spawn_app_with, test_args};

#[tokio::test]
async fn serves_health_readiness_metrics_and_openapi() {
    let app = spawn_app().await;
    assert_ops_routes(&app.server, url_shortener::NAME, &["postgres", "rabbitmq"]).await;
}

#[tokio::test]
async fn applies_its_migrations_at_start() {
    let app = spawn_app().await;
    assert_tables_exist(&app.db.pool, &["outbox", "links", "idempotency_keys"]).await;
}

#[tokio::test]
async fn is_not_ready_while_rabbitmq_is_unreachable() {
    let app = spawn_app_with(&[("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")]).await;
    assert_not_ready_because(&app.server, "rabbitmq").await;
}

#[tokio::test]
async fn is_not_ready_while_postgres_is_unreachable() {
    let app = spawn_app().await;
    app.db.cut_off().await;
    assert_not_ready_because(&app.server, "postgres").await;
}

#[test]
fn stops_cleanly_on_sigterm() {
    let db = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(TestDb::create());
    assert_stops_cleanly_on_sigterm(env!("CARGO_BIN_EXE_url-shortener"), &test_args(&db));
}
