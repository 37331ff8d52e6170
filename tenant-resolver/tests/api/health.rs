//! The service boots, migrates its registry, and reports its dependencies truthfully.

use common::testkit::{
    TestDb, assert_not_ready_because, assert_ops_routes, assert_stops_cleanly_on_sigterm,
    assert_tables_exist, drop_databases_and_roles, unique,
};

use crate::helpers::{FakeUsers, spawn_app, spawn_app_with, test_args, unique_prefix};

#[tokio::test]
async fn serves_health_readiness_metrics_and_openapi() {
    let app = spawn_app().await;
    assert_ops_routes(
        &app.server,
        tenant_resolver::NAME,
        &["postgres", "rabbitmq"],
    )
    .await;
}

#[tokio::test]
async fn applies_its_migrations_at_start() {
    let app = spawn_app().await;
    assert_tables_exist(&app.db.pool, &["outbox", "tenants", "clusters"]).await;
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

#[tokio::test]
async fn stops_cleanly_on_sigterm() {
    let db = TestDb::create().await;
    let users = FakeUsers::start().await;
    let prefix = unique_prefix();
    let env = test_args(&db, &users, &prefix, &unique("test.events"));
    tokio::task::spawn_blocking(move || {
        assert_stops_cleanly_on_sigterm(env!("CARGO_BIN_EXE_tenant-resolver"), &env);
    })
    .await
    .unwrap();
    drop_databases_and_roles(&prefix);
}
