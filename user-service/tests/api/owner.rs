//! The internal owner endpoint tenant-resolver calls at signup, and user summaries.

use common::testkit::expect_problem;
use serde_json::{Value, json};

use crate::helpers::{INTERNAL_TOKEN, PASSWORD, Tenant, spawn_app};

#[tokio::test]
async fn the_owner_endpoint_needs_the_internal_token() {
    let app = spawn_app().await;
    let resp = app
        .server
        .client
        .post(app.server.url(&format!("/internal/tenants/{}/owner", uuid::Uuid::now_v7())))
        .json(&json!({"tenant_slug": "acme", "email": "o@acme.test", "password": PASSWORD, "name": "O"}))
        .send()
        .await
        .unwrap();
    expect_problem(resp, 401).await;
}

#[tokio::test]
async fn an_existing_email_becomes_owner_only_with_its_password() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    let first = app.owner(&acme, "olive@acme.test").await;
    let globex = Tenant::new("globex");

    let wrong = app
        .server
        .client
        .post(app.server.url(&format!("/internal/tenants/{}/owner", globex.id)))
        .bearer_auth(INTERNAL_TOKEN)
        .json(&json!({"tenant_slug": "globex", "email": "Olive@Acme.test", "password": "another password", "name": "O"}))
        .send()
        .await
        .unwrap();
    let body = expect_problem(wrong, 400).await;
    assert_eq!(body["errors"][0]["field"], "email");

    assert_eq!(
        app.owner(&globex, "olive@acme.test").await,
        first,
        "one person, two organisations"
    );
    let users = sqlx::query_scalar!(r#"select count(*) as "count!" from users"#)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn owners_racing_with_one_new_email_make_one_account() {
    let app = spawn_app().await;
    let tenants = ["acme", "globex", "initech", "umbrella"].map(Tenant::new);

    let (a, b, c, d) = tokio::join!(
        app.create_owner(&tenants[0], "olive@acme.test"),
        app.create_owner(&tenants[1], "olive@acme.test"),
        app.create_owner(&tenants[2], "olive@acme.test"),
        app.create_owner(&tenants[3], "olive@acme.test")
    );

    // The first insert wins; one that loses on the email's unique index is refused
    // naming the email, and one that comes after joins the account with its password.
    for resp in [a, b, c, d] {
        if resp.status() != 201 {
            let body = expect_problem(resp, 400).await;
            assert_eq!(body["errors"][0]["field"], "email", "{body}");
        }
    }
    let users = sqlx::query_scalar!(r#"select count(*) as "count!" from users"#)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn weak_owner_passwords_are_refused_with_the_field_named() {
    let app = spawn_app().await;
    let resp = app
        .server
        .client
        .post(app.server.url(&format!("/internal/tenants/{}/owner", uuid::Uuid::now_v7())))
        .bearer_auth(INTERNAL_TOKEN)
        .json(&json!({"tenant_slug": "acme", "email": "o@acme.test", "password": "short", "name": "O"}))
        .send()
        .await
        .unwrap();
    let body = expect_problem(resp, 400).await;
    assert_eq!(body["errors"][0]["field"], "password");
}

#[tokio::test]
async fn summaries_name_users_by_id() {
    let app = spawn_app().await;
    let id = app.owner(&Tenant::new("acme"), "olive@acme.test").await;
    let found: Value = app
        .server
        .client
        .get(app.server.url(&format!(
            "/internal/users?ids={id},{}",
            uuid::Uuid::now_v7()
        )))
        .bearer_auth(INTERNAL_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["name"], "Olive Owner");

    // Restricted to a tenant: only its members.
    let globex = Tenant::new("globex");
    let gil = app.owner(&globex, "gil@globex.test").await;
    let members = |tenant: uuid::Uuid| {
        app.server
            .client
            .get(app.server.url(&format!(
                "/internal/users?ids={id},{gil}&tenant_id={tenant}"
            )))
            .bearer_auth(INTERNAL_TOKEN)
            .send()
    };
    let of_globex: Value = members(globex.id).await.unwrap().json().await.unwrap();
    assert_eq!(of_globex.as_array().unwrap().len(), 1);
    assert_eq!(of_globex[0]["id"], json!(gil));
}
