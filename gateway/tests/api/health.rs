//! The gateway boots and is ready only while it can resolve tenants and verify tokens.

use common::testkit::{
    assert_not_ready_because, assert_ops_routes, assert_stops_cleanly_on_sigterm, expect_problem,
};

use crate::helpers::{Fleet, spawn_app, spawn_app_with, test_args};

#[tokio::test]
async fn serves_health_readiness_metrics_and_openapi() {
    let app = spawn_app().await;
    assert_ops_routes(
        &app.server,
        gateway::NAME,
        &["tenant-resolver", "user-service"],
    )
    .await;
}

#[tokio::test]
async fn is_not_ready_while_tenant_resolver_is_down() {
    let app = spawn_app_with(&[("TENANT_RESOLVER_URL", "http://127.0.0.1:1")]).await;
    assert_not_ready_because(&app.server, "tenant-resolver").await;
}

#[tokio::test]
async fn is_not_ready_while_user_service_is_down() {
    let app = spawn_app_with(&[("USER_SERVICE_URL", "http://127.0.0.1:1")]).await;
    assert_not_ready_because(&app.server, "user-service").await;
}

#[tokio::test]
async fn unknown_routes_are_problems() {
    let app = spawn_app().await;
    let resp = app
        .server
        .client
        .get(app.server.url("/api/v1/nothing"))
        .send()
        .await
        .unwrap();
    expect_problem(resp, 404).await;
}

#[tokio::test]
async fn stops_cleanly_on_sigterm() {
    let fleet = Fleet::start().await;
    let env = test_args(&fleet);
    tokio::task::spawn_blocking(move || {
        assert_stops_cleanly_on_sigterm(env!("CARGO_BIN_EXE_gateway"), &env);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_openapi_document_merges_the_public_api_of_the_services() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app
        .server
        .client
        .get(app.server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["info"]["description"]
            .as_str()
            .unwrap()
            .contains("merged")
    );
    assert!(
        doc["paths"]["/api/v1/projects"].is_object(),
        "a service's path"
    );
    assert!(doc["paths"]["/readyz"].is_object(), "the gateway's own");
    assert!(
        doc["paths"]["/internal/secret"].is_null(),
        "internal paths stay out"
    );
    assert_eq!(
        doc["paths"]["/healthz"]["get"]["responses"]["200"]["description"], "The process is alive",
        "ops are the gateway's"
    );
    assert!(doc["components"]["schemas"]["Project"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}
