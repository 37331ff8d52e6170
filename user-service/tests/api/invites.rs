//! Invites: within the plan's user limit, never above the inviter's role, and only on
//! the tenant that sent them.

use std::sync::atomic::Ordering;

use common::testkit::expect_problem;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Tenant, spawn_app};

#[tokio::test]
async fn an_existing_user_joins_another_tenant_without_a_new_password() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    let globex = Tenant::new("globex");
    let olive = app.owner(&acme, "olive@acme.test").await;
    app.owner(&globex, "gil@globex.test").await;
    let gil = app.access(&globex, "gil@globex.test").await;
    let invite: Value = app
        .on(&globex, Method::POST, "/api/v1/invites")
        .bearer_auth(&gil)
        .json(&json!({"email": "OLIVE@acme.test", "role": "member"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let joined = app
        .on(&globex, Method::POST, "/api/v1/auth/accept-invite")
        .json(&json!({"token": invite["token"]}))
        .send()
        .await
        .unwrap();

    assert_eq!(joined.status(), 200);
    let me: Value = app
        .on(&globex, Method::GET, "/api/v1/users/me")
        .bearer_auth(app.access(&globex, "olive@acme.test").await)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["id"].as_str().unwrap(), me["role"].as_str().unwrap()),
        (olive.to_string().as_str(), "member")
    );
    let used_again = app
        .on(&globex, Method::POST, "/api/v1/auth/accept-invite")
        .json(&json!({"token": invite["token"]}))
        .send()
        .await
        .unwrap();
    expect_problem(used_again, 404).await;
}

#[tokio::test]
async fn an_invite_works_only_on_its_own_tenant() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    let globex = Tenant::new("globex");
    app.owner(&acme, "olive@acme.test").await;
    let owner = app.access(&acme, "olive@acme.test").await;
    let invite: Value = app
        .on(&acme, Method::POST, "/api/v1/invites")
        .bearer_auth(&owner)
        .json(&json!({"email": "new@x.test", "role": "viewer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let elsewhere = app
        .on(&globex, Method::POST, "/api/v1/auth/accept-invite")
        .json(&json!({"token": invite["token"], "name": "N", "password": PASSWORD}))
        .send()
        .await
        .unwrap();

    expect_problem(elsewhere, 404).await;
}

#[tokio::test]
async fn the_plan_user_limit_counts_members_and_pending_invites() {
    let app = spawn_app().await;
    app.resolver.user_limit.store(2, Ordering::SeqCst);
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;
    let owner = app.access(&acme, "olive@acme.test").await;
    let invite = |email: &'static str| {
        app.on(&acme, Method::POST, "/api/v1/invites")
            .bearer_auth(owner.clone())
            .json(&json!({"email": email, "role": "viewer"}))
            .send()
    };

    assert_eq!(invite("one@x.test").await.unwrap().status(), 201);
    let body = expect_problem(invite("two@x.test").await.unwrap(), 409).await;

    assert_eq!(body["type"], "/docs/problems#plan-limit");
    assert!(body["detail"].as_str().unwrap().contains('2'));
}

#[tokio::test]
async fn nobody_invites_above_their_own_role() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;
    let owner = app.access(&acme, "olive@acme.test").await;
    let manager = app.member(&acme, &owner, "max@acme.test", "manager").await;
    let member = app.member(&acme, &owner, "mia@acme.test", "member").await;

    let up = app
        .on(&acme, Method::POST, "/api/v1/invites")
        .bearer_auth(&manager)
        .json(&json!({"email": "a@x.test", "role": "admin"}))
        .send()
        .await
        .unwrap();
    expect_problem(up, 403).await;
    let no_right = app
        .on(&acme, Method::POST, "/api/v1/invites")
        .bearer_auth(&member)
        .json(&json!({"email": "b@x.test", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    expect_problem(no_right, 403).await;
    let owner_invite = app
        .on(&acme, Method::POST, "/api/v1/invites")
        .bearer_auth(&owner)
        .json(&json!({"email": "c@x.test", "role": "owner"}))
        .send()
        .await
        .unwrap();
    expect_problem(owner_invite, 400).await;
}

#[tokio::test]
async fn a_second_pending_invite_to_one_address_is_a_conflict() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;
    let owner = app.access(&acme, "olive@acme.test").await;
    let invite = |email: &'static str| {
        app.on(&acme, Method::POST, "/api/v1/invites")
            .bearer_auth(owner.clone())
            .json(&json!({"email": email, "role": "viewer"}))
            .send()
    };

    assert_eq!(invite("new@x.test").await.unwrap().status(), 201);
    let body = expect_problem(invite("NEW@x.test").await.unwrap(), 409).await;

    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("already has a pending invite"),
        "{body}"
    );
}

#[tokio::test]
async fn invites_racing_for_the_last_seat_take_it_once() {
    let app = spawn_app().await;
    app.resolver.user_limit.store(2, Ordering::SeqCst);
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;
    let owner = app.access(&acme, "olive@acme.test").await;
    let invite = |email: &'static str| {
        app.on(&acme, Method::POST, "/api/v1/invites")
            .bearer_auth(owner.clone())
            .json(&json!({"email": email, "role": "viewer"}))
            .send()
    };

    let (a, b, c, d) = tokio::join!(
        invite("a@x.test"),
        invite("b@x.test"),
        invite("c@x.test"),
        invite("d@x.test")
    );

    let statuses: Vec<u16> = [a, b, c, d]
        .into_iter()
        .map(|resp| resp.unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [201, 409].contains(s)),
        "{statuses:?}"
    );
}
