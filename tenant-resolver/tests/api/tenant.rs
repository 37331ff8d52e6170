//! `GET /api/v1/tenant`: members see their own organisation, and only it.

use common::auth::Role;
use common::testkit::expect_problem;
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn members_see_their_tenant_with_limits_and_usage() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let id: Uuid = tenant["id"].as_str().unwrap().parse().unwrap();
    let token = app.users.token(id, "acme", Role::Viewer);

    let resp = app
        .server
        .client
        .get(app.server.url("/api/v1/tenant"))
        .bearer_auth(&token)
        .header("x-tenant-id", id.to_string())
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["slug"], "acme");
    assert_eq!(body["limits"]["projects"], 3);
    assert!(
        body["usage"]["storage_bytes"].as_i64().unwrap() > 0,
        "{body}"
    );
}

#[tokio::test]
async fn a_token_of_another_tenant_is_refused_on_this_tenants_host() {
    let app = spawn_app().await;
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let globex_id: Uuid = globex["id"].as_str().unwrap().parse().unwrap();
    let globex_token = app.users.token(globex_id, "globex", Role::Owner);

    let resp = app
        .server
        .client
        .get(app.server.url("/api/v1/tenant"))
        .bearer_auth(&globex_token)
        .header("x-tenant-id", acme["id"].as_str().unwrap())
        .send()
        .await
        .unwrap();

    expect_problem(resp, 403).await;
}

#[tokio::test]
async fn the_tenant_comes_from_the_token_not_from_headers_alone() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let stranger = app.users.token(Uuid::now_v7(), "nobody", Role::Owner);
    let resp = app
        .server
        .client
        .get(app.server.url("/api/v1/tenant"))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    expect_problem(resp, 404).await;
}

#[tokio::test]
async fn the_current_tenant_needs_a_token() {
    let app = spawn_app().await;
    let resp = app
        .server
        .client
        .get(app.server.url("/api/v1/tenant"))
        .send()
        .await
        .unwrap();
    expect_problem(resp, 401).await;
}
