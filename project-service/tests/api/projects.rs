//! Projects and boards, tenant isolation, and the global connection cap.

use common::auth::Role;
use common::testkit::expect_problem;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_new_project_has_a_default_board_and_a_lead() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let project = app.project(&acme, "WEB").await;
    assert_eq!(project["key"], "WEB");
    assert_eq!(project["version"], 1);

    let board = app.board(&acme, &project).await;
    let columns: Vec<(&str, Value, bool)> = board["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["wip_limit"].clone(),
                c["done"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        vec![
            ("To do", Value::Null, false),
            ("In progress", json!(5), false),
            ("Done", Value::Null, true)
        ]
    );
    let lead: String = sqlx::query_scalar!("select role from project_members")
        .fetch_one(&acme.db.pool)
        .await
        .unwrap();
    assert_eq!(lead, "lead");

    let again = app
        .call(&acme, Method::POST, "/api/v1/projects")
        .json(&json!({"key": "WEB", "name": "Twice"}))
        .send()
        .await
        .unwrap();
    expect_problem(again, 409).await;
    let bad = app
        .call(&acme, Method::POST, "/api/v1/projects")
        .json(&json!({"key": "web site", "name": ""}))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(bad, 400).await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["key", "name"]);
    let count: i64 = sqlx::query_scalar!(r#"select count(*) as "count!" from projects"#)
        .fetch_one(&acme.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "refused creates change nothing");
}

#[tokio::test]
async fn viewers_read_but_cannot_write_and_stale_writes_are_412() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let project = app.project(&acme, "OPS").await;
    let id = project["id"].as_str().unwrap();
    let viewer = app.member_of(&acme, Role::Viewer);

    let read = app
        .call(&viewer, Method::GET, &format!("/api/v1/projects/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let write = app
        .call(&viewer, Method::PATCH, &format!("/api/v1/projects/{id}"))
        .json(&json!({"name": "Mine now"}))
        .send()
        .await
        .unwrap();
    expect_problem(write, 403).await;

    let renamed = app
        .call(&acme, Method::PATCH, &format!("/api/v1/projects/{id}"))
        .header("if-match", "\"1\"")
        .json(&json!({"name": "Operations"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    let renamed: Value = renamed.json().await.unwrap();
    assert_eq!(
        (renamed["name"].as_str(), renamed["version"].as_i64()),
        (Some("Operations"), Some(2))
    );
    let stale = app
        .call(&acme, Method::PATCH, &format!("/api/v1/projects/{id}"))
        .header("if-match", "\"1\"")
        .json(&json!({"name": "Lost update"}))
        .send()
        .await
        .unwrap();
    expect_problem(stale, 412).await;
    let activity: Vec<String> = sqlx::query_scalar!("select action from activity order by id")
        .fetch_all(&acme.db.pool)
        .await
        .unwrap();
    assert_eq!(activity, ["project.created", "project.updated"]);
}

#[tokio::test]
async fn one_tenants_token_never_reaches_another_tenants_projects_or_tasks() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let globex = app.tenant().await;
    let theirs = app.project(&globex, "SEC").await;
    let their_task = app.task(&globex, &theirs, "Secret plan").await;
    let pid = theirs["id"].as_str().unwrap();
    let tid = their_task["id"].as_str().unwrap();

    // Acme's token on Acme's host, with Globex's ids: Acme's database has no such rows.
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/projects/{pid}"), None),
        (Method::GET, format!("/api/v1/projects/{pid}/board"), None),
        (
            Method::PATCH,
            format!("/api/v1/projects/{pid}"),
            Some(json!({"name": "x"})),
        ),
        (
            Method::POST,
            format!("/api/v1/projects/{pid}/tasks"),
            Some(json!({"title": "x"})),
        ),
        (Method::GET, format!("/api/v1/projects/{pid}/tasks"), None),
        (
            Method::GET,
            format!("/api/v1/projects/{pid}/activity"),
            None,
        ),
        (Method::GET, format!("/api/v1/projects/{pid}/members"), None),
        (
            Method::PUT,
            format!("/api/v1/projects/{pid}/members/{}", uuid::Uuid::now_v7()),
            Some(json!({"role": "member"})),
        ),
        (
            Method::POST,
            format!("/api/v1/projects/{pid}/columns"),
            Some(json!({"name": "x"})),
        ),
        (
            Method::PATCH,
            format!(
                "/api/v1/projects/{pid}/columns/{}",
                their_task["column_id"].as_str().unwrap()
            ),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("/api/v1/tasks/{tid}"), None),
        (Method::DELETE, format!("/api/v1/projects/{pid}"), None),
        (Method::GET, format!("/api/v1/projects/{pid}/time"), None),
        (
            Method::GET,
            format!("/api/v1/projects/{pid}/worklogs.csv"),
            None,
        ),
        (Method::GET, format!("/api/v1/tasks/{tid}/worklogs"), None),
        (
            Method::POST,
            format!("/api/v1/tasks/{tid}/worklogs"),
            Some(json!({"minutes": 5})),
        ),
        (
            Method::POST,
            format!("/api/v1/tasks/{tid}/timer/start"),
            None,
        ),
        (Method::GET, format!("/api/v1/tasks/{tid}/time"), None),
        (Method::GET, format!("/api/v1/tasks/{tid}/comments"), None),
        (
            Method::POST,
            format!("/api/v1/tasks/{tid}/comments"),
            Some(json!({"body": "hi"})),
        ),
        (Method::GET, format!("/api/v1/tasks/{tid}"), None),
        (Method::GET, format!("/api/v1/tasks/{tid}/progress"), None),
        (
            Method::POST,
            format!("/api/v1/tasks/{tid}/move"),
            Some(json!({"column_id": their_task["column_id"], "position": 0})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/tasks/{tid}"),
            Some(json!({"title": "x"})),
        ),
    ] {
        let mut request = app.call(&acme, method.clone(), &path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        expect_problem(request.send().await.unwrap(), 404).await;
    }
    let listed: Vec<Value> = app
        .call(&acme, Method::GET, "/api/v1/projects")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed.is_empty());

    // Acme's token on Globex's host (the gateway's X-Tenant-Id): refused outright.
    let impostor = Tenant {
        id: globex.id,
        db: std::sync::Arc::clone(&globex.db),
        token: acme.token.clone(),
    };
    let cross = app
        .call(&impostor, Method::GET, &format!("/api/v1/projects/{pid}"))
        .send()
        .await
        .unwrap();
    expect_problem(cross, 403).await;

    let row =
        sqlx::query!("select p.name, t.title from projects p join tasks t on t.project_id = p.id",)
            .fetch_one(&globex.db.pool)
            .await
            .unwrap();
    let untouched = (row.name, row.title);
    assert_eq!(
        untouched,
        ("Project SEC".to_owned(), "Secret plan".to_owned())
    );
}

#[tokio::test]
async fn with_a_cap_of_8_connections_requests_across_50_tenants_all_succeed() {
    let app = spawn_app_with(&[("DB_MAX_CONNECTIONS", "8")]).await;
    // Made eight at a time: each is a database of its own with every tenant migration.
    let tenants: Vec<_> = futures::stream::iter(0..50)
        .map(|_| app.tenant())
        .buffered(8)
        .collect()
        .await;
    let names: Vec<String> = tenants.iter().map(|t| t.db.name.clone()).collect();
    let watcher = tenants[0].db.pool.clone();
    // PostgreSQL's own count of the service's connections to these 50 databases,
    // sampled while the requests run.
    let sampling = tokio_util::sync::CancellationToken::new();
    let sampler = tokio::spawn({
        let (names, stop) = (names.clone(), sampling.clone());
        async move {
            let mut most = 0;
            while !stop.is_cancelled() {
                let open = sqlx::query_scalar!(
                    "select count(*) from pg_stat_activity
                     where datname = any($1) and application_name = 'project-service'",
                    &names[..],
                )
                .fetch_one(&watcher)
                .await
                .unwrap()
                .unwrap_or(0);
                most = most.max(open);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            most
        }
    });
    // Two rounds, 16 tenants at a time: twice the cap in flight, so requests wait for
    // connections and every tenant's connection is opened, evicted and opened again.
    for _ in 0..2 {
        for chunk in tenants.chunks(16) {
            let calls = chunk.iter().map(|t| async {
                let resp = app
                    .call(t, Method::GET, "/api/v1/projects")
                    .send()
                    .await
                    .unwrap();
                resp.status().as_u16()
            });
            let statuses = futures::future::join_all(calls).await;
            assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        }
    }
    sampling.cancel();
    let most = sampler.await.unwrap();
    assert!(most <= 8, "{most} connections open at once, cap 8");
    assert!(
        most >= 2,
        "the sampler saw the service's connections ({most})"
    );
    let metrics = app.server.metrics().await;
    assert!(
        metric(&metrics, "tenant_connection_evictions_total") >= 50.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn an_idle_tenant_holds_no_connection_after_tenant_idle_secs() {
    let app = spawn_app_with(&[("TENANT_IDLE_SECS", "1")]).await;
    let acme = app.tenant().await;
    list_projects(&app, &acme).await;
    let held = || async {
        sqlx::query_scalar!(
            "select count(*) from pg_stat_activity
             where datname = $1 and application_name = 'project-service'",
            &acme.db.name,
        )
        .fetch_one(&acme.db.pool)
        .await
        .unwrap()
        .unwrap_or(0)
    };
    assert!(
        held().await >= 1,
        "the request's connection stays open for reuse"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while held().await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle tenant still holds a connection 10 s after a 1 s idle limit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // And it is served again, on a new connection.
    list_projects(&app, &acme).await;
}

async fn list_projects(app: &TestApp, tenant: &Tenant) {
    let resp = app
        .call(tenant, Method::GET, "/api/v1/projects")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// The value of the first `/metrics` line starting with `name`.
fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

#[tokio::test]
async fn concurrent_creates_of_one_key_make_one_project_and_the_others_are_409() {
    let app = spawn_app().await;
    let acme = app.tenant().await;

    let creates = (0..6).map(|i| {
        app.send(
            &acme,
            Method::POST,
            "/api/v1/projects",
            Some(json!({"key": "SAME", "name": format!("Attempt {i}")})),
        )
    });
    let mut created = 0;
    for resp in futures::future::join_all(creates).await {
        if resp.status() == 201 {
            created += 1;
        } else {
            let problem = expect_problem(resp, 409).await;
            assert!(
                problem["type"].as_str().unwrap().ends_with("conflict"),
                "{problem}"
            );
            assert!(problem["detail"].as_str().unwrap().contains("SAME"));
        }
    }
    assert_eq!(created, 1);
    let count = sqlx::query_scalar!(r#"select count(*) as "count!" from projects"#)
        .fetch_one(&acme.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn concurrent_creates_at_the_plan_limit_make_only_what_the_plan_allows() {
    let app = spawn_app().await;
    app.resolver.limit_projects(Some(3));
    let acme = app.tenant().await;
    app.project(&acme, "ONE").await;

    let creates = ["A1", "A2", "A3", "A4", "A5", "A6"].map(|key| {
        app.send(
            &acme,
            Method::POST,
            "/api/v1/projects",
            Some(json!({"key": key, "name": key})),
        )
    });
    let mut created = 0;
    for resp in futures::future::join_all(creates).await {
        if resp.status() == 201 {
            created += 1;
        } else {
            let problem = expect_problem(resp, 409).await;
            assert!(
                problem["type"].as_str().unwrap().ends_with("plan-limit"),
                "{problem}"
            );
        }
    }
    assert_eq!(created, 2, "two more fit under a limit of three");
    let active =
        sqlx::query_scalar!(r#"select count(*) as "count!" from projects where not archived"#)
            .fetch_one(&acme.db.pool)
            .await
            .unwrap();
    assert_eq!(active, 3);
}
