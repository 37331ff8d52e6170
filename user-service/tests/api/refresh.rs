//! Refresh tokens rotate on every use; reuse revokes the family (RFC 9700).

use std::time::Duration;

use common::testkit::expect_problem;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Tenant, spawn_app};

fn refresh_token(pair: &Value) -> String {
    pair["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn each_refresh_gives_a_new_token_and_reusing_an_old_one_revokes_the_family() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;
    let first = app.tokens(&acme, "olive@acme.test", PASSWORD).await;

    let second: Value = app
        .refresh(&acme, &refresh_token(&first))
        .await
        .json()
        .await
        .unwrap();
    let third: Value = app
        .refresh(&acme, &refresh_token(&second))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(refresh_token(&first), refresh_token(&second));
    assert_ne!(refresh_token(&second), refresh_token(&third));
    assert!(third["access_token"].is_string());

    tokio::time::sleep(Duration::from_millis(2200)).await; // past the retry grace
    expect_problem(app.refresh(&acme, &refresh_token(&first)).await, 401).await;
    expect_problem(app.refresh(&acme, &refresh_token(&third)).await, 401).await;
}

#[tokio::test]
async fn a_retried_refresh_within_the_grace_gets_the_same_successor() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;
    let first = app.tokens(&acme, "olive@acme.test", PASSWORD).await;

    let a: Value = app
        .refresh(&acme, &refresh_token(&first))
        .await
        .json()
        .await
        .unwrap();
    let b: Value = app
        .refresh(&acme, &refresh_token(&first))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(refresh_token(&a), refresh_token(&b));
    assert_eq!(
        app.refresh(&acme, &refresh_token(&a)).await.status(),
        200,
        "the family lives on"
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;
    let pair = app.tokens(&acme, "olive@acme.test", PASSWORD).await;

    let out = app
        .on(&acme, reqwest::Method::POST, "/api/v1/auth/logout")
        .json(&json!({"refresh_token": refresh_token(&pair)}))
        .send()
        .await
        .unwrap();

    assert_eq!(out.status(), 204);
    expect_problem(app.refresh(&acme, &refresh_token(&pair)).await, 401).await;
}

#[tokio::test]
async fn refresh_tokens_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;
    let pair = app.tokens(&acme, "olive@acme.test", PASSWORD).await;
    let stored = sqlx::query_scalar!("select token_hash from refresh_tokens")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    let plain = refresh_token(&pair).into_bytes();
    assert!(stored.iter().all(|h| h.len() == 32 && *h != plain));
}
