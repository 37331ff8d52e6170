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

#[tokio::test]
async fn holders_of_a_permission_are_the_active_members_whose_role_grants_it() {
    let app = spawn_app().await;
    let (acme, globex) = (Tenant::new("acme"), Tenant::new("globex"));
    let olive = app.owner(&acme, "olive@acme.test").await;
    app.owner(&globex, "gil@globex.test").await;
    // Olive's colleagues: an admin, a member, and an admin who was removed.
    for (email, role, status) in [
        ("ada@acme.test", "admin", "active"),
        ("max@acme.test", "member", "active"),
        ("rex@acme.test", "admin", "removed"),
    ] {
        let id = uuid::Uuid::now_v7();
        sqlx::query!(
            "insert into users (id, email, name, password_hash) values ($1, $2, $2, 'x')",
            id,
            email
        )
        .execute(&app.db.pool)
        .await
        .unwrap();
        sqlx::query!(
            "insert into memberships (tenant_id, user_id, tenant_slug, role, status)
             values ($1, $2, 'acme', $3, $4)",
            acme.id,
            id,
            role,
            status
        )
        .execute(&app.db.pool)
        .await
        .unwrap();
    }
    let holders = |permission: &str| {
        app.server
            .client
            .get(app.server.url(&format!(
                "/internal/tenants/{}/users?permission={permission}",
                acme.id
            )))
            .bearer_auth(INTERNAL_TOKEN)
            .send()
    };
    let emails = |found: Value| -> Vec<String> {
        let mut emails: Vec<String> = found
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_owned())
            .collect();
        emails.sort();
        emails
    };
    let managers: Value = holders("webhooks.manage")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(emails(managers), ["ada@acme.test", "olive@acme.test"]);
    let readers: Value = holders("tasks.read").await.unwrap().json().await.unwrap();
    assert_eq!(
        emails(readers),
        ["ada@acme.test", "max@acme.test", "olive@acme.test"]
    );
    let only_owner: Value = holders("tenant.manage")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(only_owner[0]["id"], json!(olive));
    let unknown = holders("webhooks.own").await.unwrap();
    let body = expect_problem(unknown, 400).await;
    assert_eq!(body["errors"][0]["field"], "permission");
}

#[tokio::test]
async fn undoing_a_signups_owner_removes_the_membership_and_only_an_account_made_for_it() {
    let app = spawn_app().await;
    let (acme, globex) = (Tenant::new("acme"), Tenant::new("globex"));
    let olive = app.owner(&acme, "olive@acme.test").await;
    assert_eq!(app.owner(&globex, "olive@acme.test").await, olive);
    let gil = app.owner(&globex, "gil@globex.test").await;
    let undo = |tenant: uuid::Uuid, user: uuid::Uuid, token: &str| {
        app.server
            .client
            .delete(
                app.server
                    .url(&format!("/internal/tenants/{tenant}/owner/{user}")),
            )
            .bearer_auth(token)
            .send()
    };
    let user = |id: uuid::Uuid| {
        sqlx::query_scalar!(
            r#"select count(*) as "count!" from users where id = $1"#,
            id
        )
        .fetch_one(&app.db.pool)
    };
    let memberships = |tenant: uuid::Uuid| {
        sqlx::query_scalar!(
            r#"select count(*) as "count!" from memberships where tenant_id = $1"#,
            tenant
        )
        .fetch_one(&app.db.pool)
    };

    expect_problem(undo(globex.id, gil, "wrong").await.unwrap(), 401).await;
    assert_eq!(user(gil).await.unwrap(), 1);

    // Gil's account was made for globex's signup: undone with it. Olive's account was
    // made for acme's and joined globex with its password: it stays, in acme only.
    assert_eq!(
        undo(globex.id, gil, INTERNAL_TOKEN).await.unwrap().status(),
        204
    );
    assert_eq!(
        undo(globex.id, olive, INTERNAL_TOKEN)
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(user(gil).await.unwrap(), 0);
    assert_eq!(user(olive).await.unwrap(), 1);
    assert_eq!(memberships(globex.id).await.unwrap(), 0);
    assert_eq!(memberships(acme.id).await.unwrap(), 1);

    // Done already: 404, nothing more changes.
    expect_problem(undo(globex.id, gil, INTERNAL_TOKEN).await.unwrap(), 404).await;
}
