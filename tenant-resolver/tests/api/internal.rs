//! Internal lookups and the tenant lifecycle: suspend, resume, delete.

use common::testkit::expect_problem;
use reqwest::Method;

use crate::helpers::spawn_app;

#[tokio::test]
async fn internal_endpoints_need_the_internal_token() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let url = app.server.url("/internal/tenants/by-slug/acme");
    expect_problem(app.server.client.get(&url).send().await.unwrap(), 401).await;
    let wrong = app
        .server
        .client
        .get(&url)
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    expect_problem(wrong, 401).await;
}

#[tokio::test]
async fn lookups_resolve_active_tenants_and_refuse_unknown_and_suspended_ones() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let id = tenant["id"].as_str().unwrap();

    let found = app
        .internal(Method::GET, "/internal/tenants/by-slug/acme")
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), 200);
    assert!(
        found.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let body: serde_json::Value = found.json().await.unwrap();
    assert_eq!(body["id"], id);
    assert_eq!(body["status"], "active");

    let unknown = app
        .internal(Method::GET, "/internal/tenants/by-slug/nobody")
        .send()
        .await
        .unwrap();
    expect_problem(unknown, 404).await;

    let suspended = app
        .internal(Method::POST, &format!("/internal/tenants/{id}/suspend"))
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status(), 200);
    let lookup = app
        .internal(Method::GET, "/internal/tenants/by-slug/acme")
        .send()
        .await
        .unwrap();
    let body = expect_problem(lookup, 423).await;
    assert_eq!(body["type"], "/docs/problems#tenant-suspended");
    let db = app
        .internal(Method::GET, &format!("/internal/tenants/{id}/database"))
        .send()
        .await
        .unwrap();
    expect_problem(db, 423).await;

    let resumed = app
        .internal(Method::POST, &format!("/internal/tenants/{id}/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let lookup = app
        .internal(Method::GET, "/internal/tenants/by-slug/acme")
        .send()
        .await
        .unwrap();
    assert_eq!(lookup.status(), 200);
}

#[tokio::test]
async fn active_tenants_are_listed_page_by_page() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for slug in ["acme", "globex", "initech"] {
        let tenant = app.create_tenant(slug).await;
        ids.push(tenant["id"].as_str().unwrap().to_owned());
    }
    let suspended = ids.pop().unwrap();
    let resp = app
        .internal(
            Method::POST,
            &format!("/internal/tenants/{suspended}/suspend"),
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    ids.sort();
    let first: serde_json::Value = app
        .internal(Method::GET, "/internal/tenants?limit=1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["items"], serde_json::json!([ids[0]]));
    assert_eq!(first["next"], serde_json::json!(ids[0]));
    let rest: serde_json::Value = app
        .internal(
            Method::GET,
            &format!("/internal/tenants?after={}&limit=5", ids[0]),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rest["items"],
        serde_json::json!([ids[1]]),
        "not the suspended one"
    );
    assert!(rest["next"].is_null());
    let bad = app
        .internal(Method::GET, "/internal/tenants?limit=0")
        .send()
        .await
        .unwrap();
    expect_problem(bad, 400).await;
}

#[tokio::test]
async fn an_immediate_delete_drops_the_database_and_role() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let id = tenant["id"].as_str().unwrap();

    let resp = app
        .internal(
            Method::DELETE,
            &format!("/internal/tenants/{id}?immediate=true"),
        )
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 204);
    assert!(app.databases().await.is_empty());
    assert!(app.roles().await.is_empty());
    assert_eq!(app.registry_count().await, 0);
    let lookup = app
        .internal(Method::GET, "/internal/tenants/by-slug/acme")
        .send()
        .await
        .unwrap();
    expect_problem(lookup, 404).await;
}

#[tokio::test]
async fn a_delete_with_grace_stops_resolving_at_once_and_keeps_the_data_until_due() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let id = tenant["id"].as_str().unwrap();

    let resp = app
        .internal(Method::DELETE, &format!("/internal/tenants/{id}"))
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 202);
    let lookup = app
        .internal(Method::GET, "/internal/tenants/by-slug/acme")
        .send()
        .await
        .unwrap();
    expect_problem(lookup, 404).await;
    let state = app.state().await;
    assert_eq!(
        tenant_resolver::lifecycle::sweep(&state).await.unwrap(),
        0,
        "not due yet"
    );
    assert_eq!(
        app.databases().await.len(),
        1,
        "kept during the grace period"
    );

    sqlx::query!("update tenants set delete_after = now() - interval '1 second'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(tenant_resolver::lifecycle::sweep(&state).await.unwrap(), 1);
    assert!(app.databases().await.is_empty());
    assert!(app.roles().await.is_empty());
}

#[tokio::test]
async fn signups_abandoned_mid_way_are_swept() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    sqlx::query!(
        "update tenants set status = 'provisioning', created_at = now() - interval '1 hour'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let state = app.state().await;
    assert_eq!(tenant_resolver::lifecycle::sweep(&state).await.unwrap(), 1);
    assert!(app.databases().await.is_empty());
    assert_eq!(app.registry_count().await, 0);
}
