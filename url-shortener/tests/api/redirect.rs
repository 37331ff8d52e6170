//! `GET /s/{code}`: grants, expiry, visit limits, and the pages for the rest.

use std::time::Duration;

use chrono::Utc;
use common::auth::Role;
use common::grant::SharedTarget;
use common::testkit::expect_problem;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{eventually, grant_key, grant_of, location, spawn_app};

#[tokio::test]
async fn opening_a_link_redirects_with_a_grant_bound_to_its_task_and_tenant() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({"ttl": 3600})).await;
    let task: Uuid = link["target"]["id"].as_str().unwrap().parse().unwrap();

    let resp = app
        .open(link["code"].as_str().unwrap(), "198.51.100.7")
        .await;

    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let location = location(&resp);
    let prefix = format!(
        "https://{}.nexus.test/shared/tasks/{task}?grant=",
        user.slug
    );
    assert!(location.starts_with(&prefix), "{location}");
    let now = Utc::now().timestamp();
    let grant = grant_key()
        .verify(grant_of(&location), now)
        .expect("project-service's key accepts the grant");
    assert_eq!(grant.tenant_id, user.tenant);
    assert_eq!(grant.target, SharedTarget::Task(task));
    assert!(
        (now + 1..=now + 301).contains(&grant.expires_at),
        "expires within the grant TTL: {} vs now {now}",
        grant.expires_at
    );
}

#[tokio::test]
async fn a_project_link_redirects_to_the_shared_project_page() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let project = app.task_of(&user);
    let resp = app
        .send(
            &user,
            reqwest::Method::POST,
            "/api/v1/links",
            Some(json!({"target": {"type": "project", "id": project}})),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let link: serde_json::Value = resp.json().await.unwrap();

    let resp = app
        .open(link["code"].as_str().unwrap(), "198.51.100.7")
        .await;

    assert_eq!(resp.status(), 302);
    let grant = grant_key()
        .verify(grant_of(&location(&resp)), Utc::now().timestamp())
        .unwrap();
    assert_eq!(grant.target, SharedTarget::Project(project));
    assert!(location(&resp).contains(&format!("/shared/projects/{project}?grant=")));
}

#[tokio::test]
async fn a_link_answers_410_once_its_expiry_has_passed() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let expires = Utc::now() + chrono::Duration::seconds(2);
    let link = app.link(&user, json!({"expires_at": expires})).await;
    let code = link["code"].as_str().unwrap();
    assert_eq!(
        app.open(code, "198.51.100.7").await.status(),
        302,
        "open before expiry (and now cached)"
    );

    let gone = eventually(Duration::from_secs(10), || async {
        app.open(code, "198.51.100.7").await.status() == 410
    })
    .await;

    assert!(gone, "the cached link did not expire");
    let page = app.open(code, "198.51.100.7").await;
    assert_eq!(page.status(), 410);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("no longer available"));
}

#[tokio::test]
async fn the_third_open_of_a_two_visit_link_is_410_and_says_so_in_one_event() {
    let app = spawn_app().await;
    let tap = app.tap("url.expired").await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({"max_visits": 2})).await;
    let code = link["code"].as_str().unwrap();

    let statuses = [
        app.open(code, "198.51.100.1").await.status().as_u16(),
        app.open(code, "198.51.100.2").await.status().as_u16(),
        app.open(code, "198.51.100.3").await.status().as_u16(),
        app.open(code, "198.51.100.4").await.status().as_u16(),
    ];

    assert_eq!(statuses, [302, 302, 410, 410]);
    let event = tap.next_event().await;
    assert_eq!(event.kind, "url.expired");
    assert_eq!(event.tenant_id, user.tenant);
    assert_eq!(event.data, json!({"code": code, "reason": "max_visits"}));
    assert!(
        tap.receive(1, Duration::from_secs(1)).await.is_empty(),
        "a second url.expired for the same link"
    );
    tap.delete_exchange().await;
}

#[tokio::test]
async fn concurrent_opens_never_exceed_max_visits() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({"max_visits": 5})).await;
    let code = link["code"].as_str().unwrap().to_owned();

    let opens = (0..40).map(|i| {
        let (app, code) = (&app, code.clone());
        async move {
            app.open(&code, &format!("203.0.113.{i}"))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(opens).await;

    assert_eq!(
        statuses.iter().filter(|s| **s == 302).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 410).count(), 35);
}

#[tokio::test]
async fn unknown_and_malformed_codes_get_the_404_page() {
    let app = spawn_app().await;
    for code in ["AAAAAAAA", "short", "has-dash1", "aaaaaaaaaaaaaaaaa"] {
        let resp = app.open(code, "198.51.100.7").await;
        assert_eq!(resp.status(), 404, "{code}");
        assert!(
            resp.text().await.unwrap().contains("Link not found"),
            "{code}"
        );
    }
}

#[tokio::test]
async fn json_clients_get_problems_instead_of_pages() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let protected = app.link(&user, json!({"password": "open sesame"})).await;
    let get = |code: String| {
        app.client
            .get(app.server.url(&format!("/s/{code}")))
            .header("accept", "application/json")
            .send()
    };

    expect_problem(get("AAAAAAAA".into()).await.unwrap(), 404).await;
    let body = expect_problem(
        get(protected["code"].as_str().unwrap().into())
            .await
            .unwrap(),
        401,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("password"),
        "{body}"
    );
}

#[tokio::test]
async fn a_disabled_link_is_410_and_a_deleted_one_404() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let disabled = app.link(&user, json!({})).await;
    let deleted = app.link(&user, json!({})).await;
    let (d, x) = (
        disabled["code"].as_str().unwrap(),
        deleted["code"].as_str().unwrap(),
    );
    assert_eq!(app.open(d, "198.51.100.7").await.status(), 302);
    assert_eq!(app.open(x, "198.51.100.7").await.status(), 302);

    let resp = app
        .send(
            &user,
            reqwest::Method::POST,
            &format!("/api/v1/links/{d}/disable"),
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = app
        .send(
            &user,
            reqwest::Method::DELETE,
            &format!("/api/v1/links/{x}"),
            None,
        )
        .await;
    assert_eq!(resp.status(), 204);

    assert_eq!(
        app.open(d, "198.51.100.7").await.status(),
        410,
        "the cache saw the change"
    );
    assert_eq!(
        app.open(x, "198.51.100.7").await.status(),
        404,
        "the cache forgot it"
    );
}

#[tokio::test]
async fn redirects_carry_the_gateways_request_id_and_other_paths_stay_problems() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({})).await;

    let resp = app
        .client
        .get(
            app.server
                .url(&format!("/s/{}", link["code"].as_str().unwrap())),
        )
        .header("x-request-id", "gw-req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["x-request-id"], "gw-req-42");

    let resp = app
        .client
        .get(app.server.url("/nothing/here"))
        .send()
        .await
        .unwrap();
    expect_problem(resp, 404).await;
    let resp = app
        .client
        .delete(app.server.url("/s/AAAAAAAA"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

/// `redirect_responses_total` of `status` as `/metrics` shows it now, summed over the
/// lane and the router unless `lane` names one (0 when absent).
pub async fn responses_counted(
    app: &crate::helpers::TestApp,
    status: &str,
    lane: Option<&str>,
) -> u64 {
    let mut labels = vec![("status", status)];
    labels.extend(lane.map(|lane| ("lane", lane)));
    common::testkit::counter_total(
        &app.server.metrics().await,
        "redirect_responses_total",
        &labels,
    )
}

#[tokio::test]
async fn every_answer_of_the_redirect_is_counted_by_its_status() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({})).await;
    let code = link["code"].as_str().unwrap();
    let (found, missing) = (
        responses_counted(&app, "302", None).await,
        responses_counted(&app, "404", None).await,
    );

    for i in 0..3 {
        assert_eq!(app.open(code, &format!("10.7.0.{i}")).await.status(), 302);
    }
    assert_eq!(app.open("Zz9Zz9Zz", "10.7.1.1").await.status(), 404);

    assert_eq!(responses_counted(&app, "302", None).await, found + 3);
    assert_eq!(responses_counted(&app, "404", None).await, missing + 1);
}
