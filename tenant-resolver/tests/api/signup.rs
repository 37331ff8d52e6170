//! Signup provisions an isolated database per tenant, refuses bad input before any SQL,
//! and leaves nothing behind when it fails.

use common::testkit::{EventTap, expect_problem};
use serde_json::json;
use sqlx::{ConnectOptions, Connection};
use tenant_resolver::routes::DatabaseView;

use crate::helpers::{OwnerMode, TestApp, signup_body, spawn_app, spawn_app_with};

/// Databases of this app's tenants (its own prefix: other tests, running beside it,
/// make and drop theirs).
async fn database_count(app: &TestApp) -> i64 {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from pg_database
            where left(datname, length($1)) = $1"#,
        app.prefix
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

async fn credentials(app: &TestApp, tenant_id: &str) -> DatabaseView {
    let resp = app
        .internal(
            reqwest::Method::GET,
            &format!("/internal/tenants/{tenant_id}/database"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn signup_creates_a_database_and_role_owned_by_the_tenant() {
    let app = spawn_app().await;

    let tenant = app.create_tenant("acme").await;

    assert_eq!(tenant["slug"], "acme");
    assert_eq!(tenant["plan"], "free");
    assert_eq!(tenant["status"], "active");
    assert_eq!(tenant["url"], "http://acme.localhost:8080");
    assert_eq!(tenant["limits"]["users"], 5);
    let expected = format!("{}acme", app.prefix);
    assert_eq!(app.databases().await, vec![expected.clone()]);
    assert_eq!(app.roles().await, vec![expected.clone()]);
    let owner = sqlx::query_scalar!(
        r#"select pg_get_userbyid(datdba) as "owner!" from pg_database where datname = $1"#,
        expected,
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(owner, expected, "the tenant role owns its database");
    let owners = app.users.owners();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].0.to_string(), tenant["id"].as_str().unwrap());
    assert_eq!(owners[0].1["email"], "owner@acme.example");
}

#[tokio::test]
async fn a_tenant_role_uses_its_own_database_and_is_denied_another() {
    let app = spawn_app().await;
    let a = app.create_tenant("alpha").await;
    let b = app.create_tenant("bravo").await;
    let a_db = credentials(&app, a["id"].as_str().unwrap()).await;
    let b_db = credentials(&app, b["id"].as_str().unwrap()).await;
    let options = sqlx::postgres::PgConnectOptions::new()
        .host(&a_db.host)
        .port(a_db.port)
        .username(&a_db.username)
        .password(&a_db.password);

    let mut own = options
        .clone()
        .database(&a_db.database)
        .connect()
        .await
        .expect("own database");
    let rows = sqlx::query_scalar!(r#"select count(*) as "count!" from outbox"#)
        .fetch_one(&mut own)
        .await
        .unwrap();
    assert_eq!(rows, 0, "the tenant role owns the migrated schema");
    sqlx::query!("create table notes (id int)")
        .execute(&mut own)
        .await
        .expect("can create in its own schema");
    own.close().await.unwrap();

    let other = options.database(&b_db.database).connect().await;
    let err = other
        .expect_err("another tenant's database must refuse the role")
        .to_string();
    assert!(err.contains("permission denied"), "{err}");
}

#[tokio::test]
async fn bad_slugs_are_refused_before_any_sql() {
    let app = spawn_app().await;
    let before = database_count(&app).await;
    let long = "a".repeat(64);
    for slug in [
        "a\";DROP DATABASE x;--",
        "a b",
        "postgres",
        "template1",
        "www",
        long.as_str(),
    ] {
        let resp = app.signup(&signup_body(slug)).await;
        let body = expect_problem(resp, 400).await;
        assert_eq!(body["errors"][0]["field"], "slug", "{slug}: {body}");
    }
    assert_eq!(database_count(&app).await, before);
    assert_eq!(app.registry_count().await, 0);
    assert!(app.users.owners().is_empty());
}

#[tokio::test]
async fn every_invalid_field_is_named() {
    let app = spawn_app().await;
    let resp = app
        .signup(&json!({"slug": "ok-slug", "name": " ", "plan": "free",
                        "owner": {"email": "nope", "password": "short", "name": "O"}}))
        .await;
    let body = expect_problem(resp, 400).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "owner.email", "owner.password"]);
}

#[tokio::test]
async fn unknown_plans_and_extra_fields_are_refused() {
    let app = spawn_app().await;
    let mut body = signup_body("acme");
    body["plan"] = json!("platinum");
    expect_problem(app.signup(&body).await, 400).await;
    let mut body = signup_body("acme");
    body["status"] = json!("suspended");
    let problem = expect_problem(app.signup(&body).await, 400).await;
    assert!(problem.to_string().contains("status"), "{problem}");
    assert_eq!(app.registry_count().await, 0);
}

#[tokio::test]
async fn malformed_json_is_a_problem_on_every_json_endpoint() {
    let app = spawn_app().await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {}", crate::helpers::INTERNAL_TOKEN)
            .parse()
            .unwrap(),
    );
    let probed =
        common::testkit::assert_json_endpoints_reject_malformed_bodies(&app.server, &headers).await;
    assert!(probed >= 1, "signup takes JSON");
}

#[tokio::test]
async fn a_taken_slug_is_a_conflict() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    expect_problem(app.signup(&signup_body("acme")).await, 409).await;
    assert_eq!(app.databases().await.len(), 1);
}

#[tokio::test]
async fn signups_racing_for_one_slug_make_one_tenant_and_conflicts() {
    let app = spawn_app().await;
    let body = signup_body("acme");

    let responses = futures::future::join_all((0..4).map(|_| app.signup(&body))).await;

    let mut created = 0;
    for resp in responses {
        if resp.status() == 201 {
            created += 1;
        } else {
            expect_problem(resp, 409).await;
        }
    }
    assert_eq!(created, 1, "exactly one signup wins the slug");
    assert_eq!(app.registry_count().await, 1);
    assert_eq!(app.databases().await.len(), 1);
}

#[tokio::test]
async fn a_failure_after_the_database_was_created_leaves_nothing_behind() {
    let app = spawn_app().await;
    app.users.set_mode(OwnerMode::Fail);

    let resp = app.signup(&signup_body("acme")).await;

    assert!(resp.headers().contains_key("retry-after"));
    expect_problem(resp, 503).await;
    assert!(app.databases().await.is_empty(), "no orphan database");
    assert!(app.roles().await.is_empty(), "no orphan role");
    assert_eq!(app.registry_count().await, 0, "no registry row");

    app.users.set_mode(OwnerMode::Create);
    app.create_tenant("acme").await;
}

#[tokio::test]
async fn a_database_that_cannot_be_made_undoes_the_owner_made_meanwhile() {
    let app = spawn_app().await;
    // Something already has the new tenant's database name: the copy fails, after (or
    // while) user-service made the owner.
    let mut admin =
        sqlx::PgConnection::connect(&format!("{}/postgres", common::testkit::postgres_url()))
            .await
            .unwrap();
    common::testkit::create_database(&mut admin, &format!("{}acme", app.prefix), None)
        .await
        .unwrap();

    let resp = app.signup(&signup_body("acme")).await;

    assert!(resp.status().is_server_error(), "{}", resp.status());
    let (made, undone) = app.users.made_and_undone();
    assert_eq!(made.len(), 1, "the owner was made beside the copy");
    assert_eq!(undone, made, "and undone with the signup");
    assert_eq!(app.registry_count().await, 0, "no registry row");
    assert!(app.roles().await.is_empty(), "no orphan role");
}

#[tokio::test]
async fn an_owner_refused_by_user_service_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    app.users.set_mode(OwnerMode::RefusePassword);

    let body = expect_problem(app.signup(&signup_body("acme")).await, 400).await;

    assert_eq!(body["errors"][0]["field"], "owner.password", "{body}");
    assert!(app.databases().await.is_empty());
    assert!(app.roles().await.is_empty());
}

#[tokio::test]
async fn signup_publishes_tenant_created() {
    let app = spawn_app().await;
    let tap = EventTap::new(&app.exchange, "tenant.*").await;

    let tenant = app.create_tenant("acme").await;

    let event = tap.next_event().await;
    assert_eq!(event.kind, "tenant.created");
    assert_eq!(event.tenant_id.to_string(), tenant["id"].as_str().unwrap());
    assert_eq!(event.data["slug"], "acme");
    assert_eq!(event.data["plan"], "free");
    tap.delete_exchange().await;
}

#[tokio::test]
async fn new_tenants_go_to_the_cluster_with_the_fewest_tenants() {
    let server = common::testkit::postgres_url();
    let clusters = format!("east={server},west={server}");
    let app = spawn_app_with(&[("TENANT_CLUSTERS", clusters.as_str())]).await;
    for slug in ["one", "two", "three", "four"] {
        app.create_tenant(slug).await;
    }
    let placement: Vec<(String, i64)> = sqlx::query!(
        r#"select cluster, count(*) as "tenants!" from tenants group by cluster order by cluster"#
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|row| (row.cluster, row.tenants))
    .collect();
    assert_eq!(placement, [("east".to_owned(), 2), ("west".to_owned(), 2)]);
}
