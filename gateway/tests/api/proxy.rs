//! Routing, tenancy, tokens, header hygiene, rate limits, breakers and timeouts.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::auth::Role;
use common::testkit::expect_problem;
use gateway::routes::{AuthMode, TABLE};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{ACME, GLOBEX, spawn_app, spawn_app_with};

const ACME_HOST: &str = "acme.localhost:8080";

#[tokio::test]
async fn an_unknown_tenant_host_is_404_and_a_suspended_one_423() {
    let app = spawn_app().await;
    let token = app.fleet.token(ACME, Role::Owner);
    let unknown = app
        .at("nobody.localhost", Method::GET, "/api/v1/projects")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_problem(unknown, 404).await;
    let frozen = app
        .at("frozen.localhost", Method::GET, "/api/v1/projects")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_problem(frozen, 423).await;
    let foreign = app
        .at("example.org", Method::GET, "/api/v1/projects")
        .send()
        .await
        .unwrap();
    expect_problem(foreign, 404).await;
}

#[tokio::test]
async fn a_tenant_a_token_on_tenant_b_host_is_403_on_every_protected_route() {
    let app = spawn_app().await;
    let acme_token = app.fleet.token(ACME, Role::Owner);
    let jwt_routes: Vec<_> = TABLE.iter().filter(|r| r.auth == AuthMode::Jwt).collect();
    assert!(jwt_routes.len() >= 6);
    for route in jwt_routes {
        for method in [Method::GET, Method::POST, Method::DELETE] {
            let resp = app
                .at("globex.localhost", method.clone(), route.prefix)
                .bearer_auth(&acme_token)
                .send()
                .await
                .unwrap();
            expect_problem(resp, 403).await;
        }
    }
    assert_eq!(
        app.fleet.counters.echoes.load(Ordering::SeqCst),
        0,
        "nothing reached an upstream"
    );
    let own = app
        .at(ACME_HOST, Method::GET, "/api/v1/projects")
        .bearer_auth(&acme_token)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
}

#[tokio::test]
async fn missing_expired_and_forged_tokens_are_401() {
    let app = spawn_app().await;
    let no_token = app
        .at(ACME_HOST, Method::GET, "/api/v1/projects")
        .send()
        .await
        .unwrap();
    expect_problem(no_token, 401).await;
    let mut claims = common::auth::Claims::new(uuid::Uuid::now_v7(), ACME, "acme", Role::Owner);
    claims.exp = chrono::Utc::now().timestamp() - 600;
    let expired = app.fleet.key.sign(&claims).unwrap();
    let resp = app
        .at(ACME_HOST, Method::GET, "/api/v1/projects")
        .bearer_auth(expired)
        .send()
        .await
        .unwrap();
    expect_problem(resp, 401).await;
    let stranger = common::auth::SigningKey::generate("gw-test").unwrap();
    let forged = stranger
        .sign(&common::auth::Claims::new(
            uuid::Uuid::now_v7(),
            ACME,
            "acme",
            Role::Owner,
        ))
        .unwrap();
    let resp = app
        .at(ACME_HOST, Method::GET, "/api/v1/projects")
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    expect_problem(resp, 401).await;
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_an_upstream() {
    // The test client (127.0.0.1) is a client here, not a trusted proxy.
    let app = spawn_app_with(&[("TRUSTED_PROXIES", "10.0.0.0/8")]).await;
    let token = app.fleet.token(ACME, Role::Member);

    let resp = app
        .at(ACME_HOST, Method::POST, "/api/v1/projects?x=1")
        .bearer_auth(&token)
        .header("x-tenant-id", GLOBEX.to_string())
        .header("x-tenant-slug", "globex")
        .header("x-user-id", "admin")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-request-id", "client-req-7")
        .header("x-trace", "one")
        .header("x-trace", "two")
        .body("hello")
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    let headers = &echo["headers"];
    assert_eq!(headers["x-tenant-id"], ACME.to_string());
    assert_eq!(headers["x-tenant-slug"], "acme");
    assert!(headers["x-user-id"].is_null(), "{headers}");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-host"], ACME_HOST);
    assert_eq!(headers["x-request-id"], "client-req-7");
    assert_eq!(
        headers["x-trace"], "one, two",
        "every value of a repeated header"
    );
    assert!(
        headers["authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer "),
        "passed on"
    );
    assert_eq!(
        (
            echo["method"].as_str(),
            echo["query"].as_str(),
            echo["body_len"].as_u64()
        ),
        (Some("POST"), Some("x=1"), Some(5))
    );
}

#[tokio::test]
async fn internal_endpoints_are_never_routed() {
    let app = spawn_app().await;
    let resp = app
        .at(ACME_HOST, Method::GET, "/internal/tenants/by-slug/acme")
        .send()
        .await
        .unwrap();
    expect_problem(resp, 404).await;
    assert_eq!(app.fleet.counters.lookups.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn apex_and_tenant_routes_stay_on_their_hosts() {
    let app = spawn_app().await;
    let signup_on_tenant = app
        .at(ACME_HOST, Method::POST, "/api/v1/tenants")
        .send()
        .await
        .unwrap();
    expect_problem(signup_on_tenant, 404).await;
    let login_on_apex = app
        .at("localhost:8080", Method::POST, "/api/v1/auth/login")
        .send()
        .await
        .unwrap();
    expect_problem(login_on_apex, 404).await;
    let signup = app
        .at("localhost:8080", Method::POST, "/api/v1/tenants")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 200, "the echo answers");
}

#[tokio::test]
async fn tenant_lookups_are_cached() {
    let app = spawn_app().await;
    let token = app.fleet.token(ACME, Role::Owner);
    for _ in 0..5 {
        let resp = app
            .at(ACME_HOST, Method::GET, "/api/v1/projects")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    for _ in 0..3 {
        app.at("nobody.localhost", Method::GET, "/api/v1/projects")
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        app.fleet.counters.lookups.load(Ordering::SeqCst),
        2,
        "one lookup per host, unknown ones too"
    );
}

#[tokio::test]
async fn public_routes_are_rate_limited_per_address_with_headers() {
    let app = spawn_app_with(&[("RATE_LIMIT_IP_PER_MIN", "3")]).await;
    let mut last = None;
    for _ in 0..4 {
        last = Some(
            app.at(ACME_HOST, Method::POST, "/api/v1/auth/login")
                .body("{}")
                .send()
                .await
                .unwrap(),
        );
    }
    let resp = last.unwrap();
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(resp.headers()["ratelimit-limit"], "3");
    assert_eq!(resp.headers()["ratelimit-remaining"], "0");
    expect_problem(resp, 429).await;
}

/// Three logins through `lane` (the fast lane, or the general path for a CORS request),
/// each naming `forwarded(i)` in `X-Forwarded-For`: their statuses.
async fn three_logins(
    app: &crate::helpers::TestApp,
    cors: bool,
    forwarded: impl Fn(usize) -> String,
) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..3 {
        let mut req = app
            .at(ACME_HOST, Method::POST, "/api/v1/auth/login")
            .header("x-forwarded-for", forwarded(i))
            .body("{}");
        if cors {
            req = req.header("origin", "http://elsewhere.example");
        }
        statuses.push(req.send().await.unwrap().status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn a_trusted_proxys_clients_are_limited_each_by_their_own_address() {
    // Loopback is trusted by default: the test client plays a load balancer.
    let app = spawn_app_with(&[("RATE_LIMIT_IP_PER_MIN", "2")]).await;
    for (cors, client) in [(false, "203.0.113.1"), (true, "203.0.113.2")] {
        let same = three_logins(&app, cors, |_| format!("6.6.6.6, {client}")).await;
        assert_eq!(same, [200, 200, 429], "cors {cors}");
    }
    let another = three_logins(&app, false, |_| "203.0.113.3".to_owned()).await;
    assert_eq!(another, [200, 200, 429], "a budget of its own");
}

#[tokio::test]
async fn a_direct_client_cannot_dodge_the_address_limit_with_a_new_forwarded_for() {
    for cors in [false, true] {
        let app = spawn_app_with(&[
            ("RATE_LIMIT_IP_PER_MIN", "2"),
            ("TRUSTED_PROXIES", "10.0.0.0/8"),
        ])
        .await;
        let fresh = three_logins(&app, cors, |i| format!("198.51.100.{i}")).await;
        assert_eq!(fresh, [200, 200, 429], "cors {cors}");
    }
}

#[tokio::test]
async fn authenticated_routes_are_limited_per_user_and_say_how_much_is_left() {
    let app = spawn_app_with(&[("RATE_LIMIT_USER_PER_MIN", "2")]).await;
    let token = app.fleet.token(ACME, Role::Owner);
    let first = app
        .at(ACME_HOST, Method::GET, "/api/v1/projects")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["ratelimit-remaining"], "1");
    app.at(ACME_HOST, Method::GET, "/api/v1/projects")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let third = app
        .at(ACME_HOST, Method::GET, "/api/v1/projects")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_problem(third, 429).await;
    let someone_else = app.fleet.token(ACME, Role::Owner);
    let other = app
        .at(ACME_HOST, Method::GET, "/api/v1/projects")
        .bearer_auth(&someone_else)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "limits are per user");
}

#[tokio::test]
async fn a_failing_upstream_opens_the_breaker_and_recovers_after_the_cooldown() {
    let app = spawn_app_with(&[("BREAKER_FAILURES", "3"), ("BREAKER_COOLDOWN_SECS", "1")]).await;
    let token = app.fleet.token(ACME, Role::Owner);
    let call = |path: &'static str| {
        app.at(ACME_HOST, Method::GET, path)
            .bearer_auth(token.clone())
            .send()
    };
    for _ in 0..3 {
        assert_eq!(
            call("/api/v1/links/fail").await.unwrap().status(),
            500,
            "passed through"
        );
    }
    let hits = app.fleet.counters.echoes.load(Ordering::SeqCst);

    let started = Instant::now();
    let open = call("/api/v1/links/ok").await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(open.headers().contains_key("retry-after"));
    expect_problem(open, 503).await;
    assert_eq!(
        app.fleet.counters.echoes.load(Ordering::SeqCst),
        hits,
        "no upstream call while open"
    );
    assert_eq!(
        call("/api/v1/projects").await.unwrap().status(),
        200,
        "other upstreams are unaffected"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        call("/api/v1/links/ok").await.unwrap().status(),
        200,
        "the probe closes it"
    );
    assert_eq!(call("/api/v1/links/ok").await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_slow_upstream_is_a_504_problem() {
    let app = spawn_app_with(&[("UPSTREAM_TIMEOUT_SECS", "1")]).await;
    let token = app.fleet.token(ACME, Role::Owner);
    let resp = app
        .at(ACME_HOST, Method::GET, "/api/v1/analytics/slow")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body = expect_problem(resp, 504).await;
    assert_eq!(body["type"], "/docs/problems#upstream-timeout");
}

#[tokio::test]
async fn cors_admits_only_the_configured_origins_and_answers_preflights_itself() {
    let app = spawn_app_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example")]).await;
    let preflight = |origin: &'static str| {
        app.at(ACME_HOST, Method::OPTIONS, "/api/v1/projects")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };

    let allowed = preflight("https://app.example").await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let denied = preflight("https://evil.example").await.unwrap();
    assert!(!denied.headers().contains_key("access-control-allow-origin"));
    assert_eq!(
        app.fleet.counters.echoes.load(Ordering::SeqCst),
        0,
        "preflights never reach an upstream"
    );

    let token = app.fleet.token(ACME, Role::Owner);
    let call = app
        .at(ACME_HOST, Method::GET, "/api/v1/projects")
        .header("origin", "https://app.example")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        call.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let exposed = call.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        exposed.contains("ratelimit-remaining") && exposed.contains("x-request-id"),
        "{exposed}"
    );
}
