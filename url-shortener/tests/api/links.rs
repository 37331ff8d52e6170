//! `/api/v1/links`: create, list, read, change, delete, QR codes, and tenant isolation.

use common::auth::Role;
use common::testkit::{assert_json_endpoints_reject_malformed_bodies, expect_problem};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

#[tokio::test]
async fn creating_a_link_answers_its_code_and_short_url_and_emits_url_created() {
    let app = spawn_app().await;
    let tap = app.tap("url.created").await;
    let user = app.tenant(Role::Member);

    let link = app.link(&user, json!({"ttl": 3600, "max_visits": 3})).await;

    let code = link["code"].as_str().unwrap();
    assert_eq!(code.len(), 8);
    assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(link["short_url"], format!("https://nexus.test/s/{code}"));
    assert_eq!(link["protected"], false);
    assert_eq!(link["max_visits"], 3);
    assert_eq!(link["visits"], 0);
    assert_eq!(link["created_by"], user.id.to_string());
    let event = tap.next_event().await;
    assert_eq!(event.kind, "url.created");
    assert_eq!(event.tenant_id, user.tenant);
    assert_eq!(event.actor_id, Some(user.id));
    assert_eq!(event.data["code"], code);
    assert_eq!(event.data["target"], link["target"]);
    assert_eq!(event.data["expires_at"], link["expires_at"]);
    assert_eq!(event.data["protected"], false);
    tap.delete_exchange().await;
}

#[tokio::test]
async fn a_password_is_stored_as_an_argon2id_hash_and_never_shown() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);

    let link = app.link(&user, json!({"password": "open sesame"})).await;

    assert_eq!(link["protected"], true);
    assert!(!link.to_string().contains("open sesame") && link.get("password_hash").is_none());
    let stored = sqlx::query_scalar!(
        "select password_hash from links where code = $1",
        link["code"].as_str().unwrap(),
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
    .unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
}

#[tokio::test]
async fn a_target_outside_the_callers_tenant_is_refused() {
    let app = spawn_app().await;
    let a = app.tenant(Role::Member);
    let b = app.tenant(Role::Member);
    let task_of_a = app.task_of(&a);

    for target in [task_of_a, Uuid::now_v7()] {
        let resp = app
            .send(
                &b,
                Method::POST,
                "/api/v1/links",
                Some(json!({"target": {"type": "task", "id": target}})),
            )
            .await;
        let body = expect_problem(resp, 422).await;
        assert_eq!(body["type"], "/docs/problems#unknown-target");
    }
}

#[tokio::test]
async fn creating_fails_with_503_while_project_service_cannot_answer() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let task = app.task_of(&user);
    app.break_project_service();

    let resp = app
        .send(
            &user,
            Method::POST,
            "/api/v1/links",
            Some(json!({"target": {"type": "task", "id": task}})),
        )
        .await;

    let body = expect_problem(resp, 503).await;
    assert!(
        body["detail"].as_str().unwrap().contains("try again"),
        "{body}"
    );
}

#[tokio::test]
async fn invalid_bodies_are_400_with_each_field_named() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let task = app.task_of(&user);
    let past = chrono::Utc::now() - chrono::Duration::hours(1);

    let cases = [
        (
            json!({"target": {"type": "task", "id": task}, "ttl": 5}),
            "ttl",
        ),
        (
            json!({"target": {"type": "task", "id": task}, "expires_at": past}),
            "expires_at",
        ),
        (
            json!({"target": {"type": "task", "id": task}, "password": "abc"}),
            "password",
        ),
        (
            json!({"target": {"type": "task", "id": task}, "max_visits": 0}),
            "max_visits",
        ),
        (
            json!({"target": {"type": "comment", "id": task}}),
            "target.type",
        ),
        (
            json!({"target": {"type": "task", "id": task}, "ttl": 600, "expires_at": past}),
            "ttl",
        ),
    ];
    for (body, field) in cases {
        let resp = app
            .send(&user, Method::POST, "/api/v1/links", Some(body.clone()))
            .await;
        let problem = expect_problem(resp, 400).await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{body}: {problem}");
    }
}

#[tokio::test]
async fn malformed_json_is_a_400_problem_on_every_json_endpoint() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Owner);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {}", user.token).parse().unwrap(),
    );
    headers.insert("x-tenant-id", user.tenant.to_string().parse().unwrap());

    let probed = assert_json_endpoints_reject_malformed_bodies(&app.server, &headers).await;

    assert_eq!(
        probed, 2,
        "POST /api/v1/links and PATCH /api/v1/links/{{code}}"
    );
}

#[tokio::test]
async fn a_viewer_cannot_create_links_and_anonymous_callers_are_401() {
    let app = spawn_app().await;
    let viewer = app.tenant(Role::Viewer);
    let task = app.task_of(&viewer);
    let body = json!({"target": {"type": "task", "id": task}});

    let resp = app
        .send(&viewer, Method::POST, "/api/v1/links", Some(body.clone()))
        .await;
    expect_problem(resp, 403).await;
    let resp = app
        .client
        .post(app.server.url("/api/v1/links"))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_problem(resp, 401).await;
}

#[tokio::test]
async fn another_tenants_link_cannot_be_read_changed_or_deleted() {
    let app = spawn_app().await;
    let a = app.tenant(Role::Member);
    let b_owner = app.tenant(Role::Owner);
    let link = app.link(&a, json!({})).await;
    let path = format!("/api/v1/links/{}", link["code"].as_str().unwrap());

    let attempts = [
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({"max_visits": 1}))),
        (Method::POST, format!("{path}/disable"), None),
        (Method::DELETE, path.clone(), None),
        (Method::GET, format!("{path}/qr.svg"), None),
    ];
    for (method, path, body) in attempts {
        let resp = app.send(&b_owner, method.clone(), &path, body).await;
        expect_problem(resp, 404).await;
    }
    for scope in ["mine", "all"] {
        let resp = app
            .send(
                &b_owner,
                Method::GET,
                &format!("/api/v1/links?scope={scope}"),
                None,
            )
            .await;
        assert_eq!(resp.status(), 200);
        let list: Value = resp.json().await.unwrap();
        assert_eq!(list["items"], json!([]), "{scope}");
    }
    let still: Value = app
        .send(&a, Method::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["disabled"], false);
    assert_eq!(still["max_visits"], Value::Null);
}

#[tokio::test]
async fn members_list_their_own_links_and_managers_list_all_in_pages() {
    let app = spawn_app().await;
    let member = app.tenant(Role::Member);
    let colleague = app.colleague(&member, Role::Member);
    let manager = app.colleague(&member, Role::Manager);
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(app.link(&member, json!({})).await["code"].clone());
    }
    let theirs = app.link(&colleague, json!({})).await["code"].clone();

    let list: Value = app
        .send(&member, Method::GET, "/api/v1/links", None)
        .await
        .json()
        .await
        .unwrap();
    let codes: Vec<Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].clone())
        .collect();
    mine.reverse();
    assert_eq!(codes, mine, "own links, newest first");

    let resp = app
        .send(&member, Method::GET, "/api/v1/links?scope=all", None)
        .await;
    expect_problem(resp, 403).await;

    let mut seen = Vec::new();
    let mut path = "/api/v1/links?scope=all&limit=3".to_owned();
    loop {
        let page: Value = app
            .send(&manager, Method::GET, &path, None)
            .await
            .json()
            .await
            .unwrap();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["code"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/links?scope=all&limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.contains(&theirs));

    let resp = app
        .send(&member, Method::GET, "/api/v1/links?cursor=garbage", None)
        .await;
    expect_problem(resp, 400).await;
}

#[tokio::test]
async fn only_the_creator_or_a_manager_changes_a_link() {
    let app = spawn_app().await;
    let member = app.tenant(Role::Member);
    let colleague = app.colleague(&member, Role::Member);
    let manager = app.colleague(&member, Role::Manager);
    let link = app.link(&member, json!({})).await;
    let path = format!("/api/v1/links/{}", link["code"].as_str().unwrap());

    let resp = app.send(&colleague, Method::DELETE, &path, None).await;
    expect_problem(resp, 404).await;
    let resp = app
        .send(
            &manager,
            Method::PATCH,
            &path,
            Some(json!({"max_visits": 9})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = app.send(&member, Method::DELETE, &path, None).await;
    assert_eq!(resp.status(), 204);
    let resp = app.send(&member, Method::GET, &path, None).await;
    expect_problem(resp, 404).await;
}

#[tokio::test]
async fn updating_password_expiry_and_visits_takes_effect_on_the_next_open() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({"password": "open sesame"})).await;
    let code = link["code"].as_str().unwrap();
    let path = format!("/api/v1/links/{code}");
    assert_eq!(
        app.open(code, "198.51.100.7").await.status(),
        200,
        "the form, now cached"
    );

    let resp = app
        .send(
            &user,
            Method::PATCH,
            &path,
            Some(json!({"password": null, "max_visits": 1, "ttl": 7200})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let updated: Value = resp.json().await.unwrap();
    assert_eq!(updated["protected"], false);
    assert_eq!(updated["max_visits"], 1);
    assert_ne!(updated["expires_at"], link["expires_at"]);

    assert_eq!(app.open(code, "198.51.100.7").await.status(), 302);
    assert_eq!(app.open(code, "198.51.100.7").await.status(), 410);

    let resp = app
        .send(
            &user,
            Method::PATCH,
            &path,
            Some(json!({"password": "new secret", "max_visits": null})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        app.open(code, "198.51.100.7").await.status(),
        200,
        "form again"
    );
    assert_eq!(
        app.unlock(code, "open sesame", "198.51.100.7")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.unlock(code, "new secret", "198.51.100.7")
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn a_link_has_a_qr_code_as_svg_and_png() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({})).await;
    let path = format!("/api/v1/links/{}", link["code"].as_str().unwrap());

    let svg = app
        .send(&user, Method::GET, &format!("{path}/qr.svg"), None)
        .await;
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    let svg = svg.text().await.unwrap();
    assert!(svg.contains("<svg") && svg.contains("<path"), "{svg}");

    let png = app
        .send(&user, Method::GET, &format!("{path}/qr.png"), None)
        .await;
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[tokio::test]
async fn a_retried_create_with_the_same_idempotency_key_makes_one_link() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let task = app.task_of(&user);
    let create = || {
        app.call(&user, Method::POST, "/api/v1/links")
            .header("idempotency-key", "retry-1")
            .json(&json!({"target": {"type": "task", "id": task}}))
            .send()
    };

    let first = create().await.unwrap();
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].clone();
    let first: Value = first.json().await.unwrap();
    let again = create().await.unwrap();

    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["location"], location);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["code"], first["code"]);
    assert_eq!(link_count(&app).await, 1);
}

#[tokio::test]
async fn a_create_that_meets_its_key_being_written_is_409_and_keeps_nothing() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let task = app.task_of(&user);
    // Another request's answer under the same key, written but not yet committed: the
    // create below finds no answer to replay, and its own insert waits on this one.
    let mut other = app.db.pool.begin().await.unwrap();
    sqlx::query!(
        "insert into idempotency_keys (tenant_id, user_id, key, status, body)
         values ($1, $2, 'race-1', 201, '{}')",
        user.tenant,
        user.id,
    )
    .execute(&mut *other)
    .await
    .unwrap();
    let create = app
        .call(&user, Method::POST, "/api/v1/links")
        .header("idempotency-key", "race-1")
        .json(&json!({"target": {"type": "task", "id": task}}))
        .send();
    let create = tokio::spawn(create);
    wait_for_a_lock_wait(&app).await;

    other.commit().await.unwrap();

    expect_problem(create.await.unwrap().unwrap(), 409).await;
    assert_eq!(
        link_count(&app).await,
        0,
        "the losing create's link is rolled back"
    );
}

/// Waits (at most 10 s) until a session of the app's database waits for a lock.
async fn wait_for_a_lock_wait(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting = sqlx::query_scalar!(
            r#"select count(*) as "count!" from pg_stat_activity
               where datname = current_database() and wait_event_type = 'Lock'"#
        )
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the create never waited for the key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn link_count(app: &TestApp) -> i64 {
    sqlx::query_scalar!(r#"select count(*) as "count!" from links"#)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_change_made_on_a_stale_version_is_412_and_changes_nothing() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({"max_visits": 5})).await;
    let code = link["code"].as_str().unwrap();
    let path = format!("/api/v1/links/{code}");
    let read = link["version"].as_i64().unwrap();
    let patch = |version: String, body: Value| {
        app.call(&user, Method::PATCH, &path)
            .header("if-match", version)
            .json(&body)
            .send()
    };

    let resp = patch(format!("\"{read}\""), json!({"max_visits": 7}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let changed: Value = resp.json().await.unwrap();
    assert_eq!(changed["version"], read + 1);
    assert_eq!(changed["max_visits"], 7);

    // Another writer's copy, read before that change.
    let resp = patch(format!("\"{read}\""), json!({"max_visits": 9}))
        .await
        .unwrap();
    let problem = expect_problem(resp, 412).await;
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("precondition-failed"),
        "{problem}"
    );
    let resp = patch("soon".into(), json!({"max_visits": 9}))
        .await
        .unwrap();
    expect_problem(resp, 400).await;
    let now: Value = app
        .send(&user, Method::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (now["max_visits"].clone(), now["version"].clone()),
        (json!(7), json!(read + 1))
    );

    // Without If-Match a change is unconditional, and raises the version too.
    let resp = app
        .send(&user, Method::POST, &format!("{path}/disable"), None)
        .await;
    let disabled: Value = resp.json().await.unwrap();
    assert_eq!(disabled["version"], read + 2);
}
