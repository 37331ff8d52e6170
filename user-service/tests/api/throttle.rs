//! The login throttle keys by the client address of `common::client`: `X-Forwarded-For`
//! counts only from a trusted proxy, so a direct client cannot buy a fresh budget by
//! naming a fresh address.

use crate::helpers::{Tenant, spawn_app_with};

#[tokio::test]
async fn a_direct_client_cannot_dodge_the_login_throttle_with_a_new_forwarded_for() {
    // The test client connects from 127.0.0.1, which this list does not trust.
    let app = spawn_app_with(&[
        ("TRUSTED_PROXIES", "10.0.0.0/8"),
        ("LOGIN_MAX_FAILURES_PER_ADDRESS", "3"),
    ])
    .await;
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;

    let mut statuses = Vec::new();
    for i in 1..=4 {
        let forwarded = format!("198.51.100.{i}");
        let resp = app
            .login_from(&acme, "olive@acme.test", "guess", &forwarded)
            .await;
        statuses.push(resp.status().as_u16());
    }

    assert_eq!(
        statuses,
        [401, 401, 401, 429],
        "each new X-Forwarded-For bought a new budget"
    );
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_is_believed() {
    // Loopback is trusted by default: the test client plays the gateway.
    let app = spawn_app_with(&[("LOGIN_MAX_FAILURES_PER_ADDRESS", "3")]).await;
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;
    for _ in 0..3 {
        let resp = app
            .login_from(&acme, "olive@acme.test", "guess", "198.51.100.1")
            .await;
        assert_eq!(resp.status(), 401);
    }

    let same = app
        .login_from(&acme, "olive@acme.test", "guess", "198.51.100.1")
        .await;
    let other = app
        .login_from(&acme, "olive@acme.test", "guess", "198.51.100.2")
        .await;

    assert_eq!(
        same.status(),
        429,
        "the forwarded address has spent its budget"
    );
    assert_eq!(
        other.status(),
        401,
        "another forwarded address has a budget of its own"
    );
}
