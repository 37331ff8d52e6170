//! Protected links: the form, wrong and right passwords, and the attempt throttle.

use common::auth::Role;
use common::testkit::expect_problem;
use serde_json::json;

use crate::helpers::{grant_key, grant_of, location, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_protected_link_shows_a_password_form_instead_of_redirecting() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({"password": "open sesame"})).await;
    assert_eq!(link["protected"], true);
    let code = link["code"].as_str().unwrap();

    let resp = app.open(code, "198.51.100.7").await;

    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("location").is_none());
    let html = resp.text().await.unwrap();
    assert!(html.contains(&format!("action=\"/s/{code}\"")), "{html}");
    assert!(html.contains("type=\"password\""));
    assert!(!html.contains("<script"), "works without JavaScript");
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again_with_an_error() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({"password": "open sesame"})).await;
    let code = link["code"].as_str().unwrap();

    let resp = app.unlock(code, "guess", "198.51.100.7").await;

    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("location").is_none());
    let html = resp.text().await.unwrap();
    assert!(html.contains("not right"), "{html}");
    assert!(html.contains("type=\"password\""));
}

#[tokio::test]
async fn the_right_password_redirects_with_303_and_a_grant() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({"password": "open sesame"})).await;
    let code = link["code"].as_str().unwrap();

    let resp = app.unlock(code, "open sesame", "198.51.100.7").await;

    assert_eq!(resp.status(), 303);
    let grant = grant_key()
        .verify(grant_of(&location(&resp)), chrono::Utc::now().timestamp())
        .unwrap();
    assert_eq!(grant.tenant_id, user.tenant);
    assert_eq!(
        grant.target.id().to_string(),
        link["target"]["id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn the_sixth_wrong_attempt_from_one_address_is_throttled() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({"password": "open sesame"})).await;
    let code = link["code"].as_str().unwrap();
    for attempt in 1..=5 {
        let resp = app.unlock(code, "guess", "198.51.100.7").await;
        assert_eq!(resp.status(), 401, "attempt {attempt}");
    }

    let sixth = app.unlock(code, "guess", "198.51.100.7").await;
    assert_eq!(sixth.status(), 429);
    let retry_after: u64 = sixth.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert!(sixth.text().await.unwrap().contains("Too many attempts"));

    let right_but_throttled = app.unlock(code, "open sesame", "198.51.100.7").await;
    assert_eq!(
        right_but_throttled.status(),
        429,
        "charged before the check"
    );
    let elsewhere = app.unlock(code, "open sesame", "198.51.100.8").await;
    assert_eq!(elsewhere.status(), 303, "another address is not locked out");
}

#[tokio::test]
async fn a_direct_client_cannot_buy_attempts_with_a_new_forwarded_for() {
    // The test client connects from 127.0.0.1, which this list does not trust.
    let app = spawn_app_with(&[("TRUSTED_PROXIES", "10.0.0.0/8")]).await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({"password": "open sesame"})).await;
    let code = link["code"].as_str().unwrap();

    let mut statuses = Vec::new();
    for attempt in 1..=6 {
        let forwarded = format!("198.51.100.{attempt}");
        statuses.push(
            app.unlock(code, "guess", &forwarded)
                .await
                .status()
                .as_u16(),
        );
    }

    assert_eq!(
        statuses,
        [401, 401, 401, 401, 401, 429],
        "one budget per peer"
    );
}

#[tokio::test]
async fn json_clients_unlock_with_a_json_body_and_get_problems() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({"password": "open sesame"})).await;
    let url = app
        .server
        .url(&format!("/s/{}", link["code"].as_str().unwrap()));
    let post = |password: &'static str| {
        app.client
            .post(&url)
            .header("accept", "application/json")
            .json(&json!({ "password": password }))
            .send()
    };

    expect_problem(post("nope").await.unwrap(), 401).await;
    assert_eq!(post("open sesame").await.unwrap().status(), 303);
    expect_problem(
        app.client
            .post(&url)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body("{,")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}
