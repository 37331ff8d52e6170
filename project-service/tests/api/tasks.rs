//! Tasks: numbering, moves under WIP limits and concurrency, and events through the
//! outbox surviving a broker outage.

use std::time::Duration;

use common::testkit::{EventTap, TcpRelay, expect_problem};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Tenant, TestApp, spawn_app, spawn_app_with};

/// The titles of a page of a project's task list, and its next cursor.
async fn list(
    app: &TestApp,
    tenant: &Tenant,
    project: &str,
    query: &str,
) -> (Vec<String>, Option<String>) {
    let path = format!("/api/v1/projects/{project}/tasks?{query}");
    let resp = app.call(tenant, Method::GET, &path).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    let page: Value = resp.json().await.unwrap();
    let titles = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect();
    (titles, page["next_cursor"].as_str().map(str::to_owned))
}

async fn move_to(
    app: &TestApp,
    tenant: &Tenant,
    task: &Value,
    column: &Value,
    position: i64,
) -> reqwest::Response {
    app.call(
        tenant,
        Method::POST,
        &format!("/api/v1/tasks/{}/move", task["id"].as_str().unwrap()),
    )
    .json(&json!({"column_id": column["id"], "position": position}))
    .send()
    .await
    .unwrap()
}

/// Each column's task titles in board order, after checking positions are 0, 1, 2, ….
async fn columns(app: &TestApp, tenant: &Tenant, project: &Value) -> Vec<Vec<String>> {
    let board = app.board(tenant, project).await;
    board["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let tasks = c["tasks"].as_array().unwrap();
            for (i, t) in tasks.iter().enumerate() {
                assert_eq!(
                    t["position"].as_u64(),
                    Some(i as u64),
                    "dense positions: {board}"
                );
            }
            tasks
                .iter()
                .map(|t| t["title"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn tasks_are_numbered_per_project_and_move_atomically() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let a = app.task(&acme, &web, "a").await;
    let b = app.task(&acme, &web, "b").await;
    let c = app.task(&acme, &web, "c").await;
    assert_eq!(
        (a["key"].as_str(), c["key"].as_str()),
        (Some("WEB-1"), Some("WEB-3"))
    );

    let board = app.board(&acme, &web).await;
    let [todo, doing, _done] = [0, 1, 2].map(|i| board["columns"][i].clone());
    assert_eq!(move_to(&app, &acme, &c, &todo, 0).await.status(), 200);
    assert_eq!(
        columns(&app, &acme, &web).await,
        [vec!["c", "a", "b"], vec![], vec![]]
    );
    let moved = move_to(&app, &acme, &a, &doing, 99).await;
    assert_eq!(moved.status(), 200);
    let moved: Value = moved.json().await.unwrap();
    assert_eq!(
        (moved["position"].as_i64(), moved["version"].as_i64()),
        (Some(0), Some(2))
    );
    assert_eq!(
        columns(&app, &acme, &web).await,
        [vec!["c", "b"], vec!["a"], vec![]]
    );

    let elsewhere = app.project(&acme, "OPS").await;
    let foreign_column = app.board(&acme, &elsewhere).await["columns"][0].clone();
    expect_problem(move_to(&app, &acme, &b, &foreign_column, 0).await, 400).await;
    let missing = json!({"id": Uuid::now_v7()});
    expect_problem(move_to(&app, &acme, &missing, &todo, 0).await, 404).await;
    assert_eq!(
        columns(&app, &acme, &web).await,
        [vec!["c", "b"], vec!["a"], vec![]]
    );
}

#[tokio::test]
async fn concurrent_moves_never_exceed_the_wip_limit_and_keep_positions_dense() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        tasks.push(app.task(&acme, &web, &format!("t{i}")).await);
    }
    sqlx::query!("update board_columns set wip_limit = 3 where name = 'In progress'")
        .execute(&acme.db.pool)
        .await
        .unwrap();
    let doing = app.board(&acme, &web).await["columns"][1].clone();

    // Two clients, each moving every task into the column at once.
    let moves = (0..2)
        .flat_map(|_| tasks.iter())
        .map(|t| move_to(&app, &acme, t, &doing, 0));
    let statuses: Vec<u16> = futures::future::join_all(moves)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| [200, 409].contains(s)),
        "{statuses:?}"
    );
    let cols = columns(&app, &acme, &web).await;
    assert_eq!(cols[1].len(), 3, "the WIP limit holds: {cols:?}");
    assert_eq!(cols[0].len(), 5);
    let full = move_to(
        &app,
        &acme,
        tasks
            .iter()
            .find(|t| cols[0].contains(&t["title"].as_str().unwrap().to_owned()))
            .unwrap(),
        &doing,
        0,
    )
    .await;
    let problem = expect_problem(full, 409).await;
    assert!(
        problem["type"].as_str().unwrap().ends_with("wip-limit"),
        "{problem}"
    );
}

#[tokio::test]
async fn assigning_a_task_emits_task_assigned_and_stale_versions_are_412() {
    let app = spawn_app().await;
    let tap = EventTap::new(&app.exchange, "task.*").await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let task = app.task(&acme, &web, "Write docs").await;
    assert_eq!(tap.next_event().await.kind, "task.created");
    let assignee = Uuid::now_v7();
    let path = format!("/api/v1/tasks/{}", task["id"].as_str().unwrap());
    let assigned = app
        .call(&acme, Method::PATCH, &path)
        .header("if-match", "\"1\"")
        .json(&json!({"assignee_id": assignee, "priority": "high"}))
        .send()
        .await
        .unwrap();
    assert_eq!(assigned.status(), 200);
    let event = tap.next_event().await;
    assert_eq!(event.kind, "task.assigned");
    assert_eq!(event.tenant_id, acme.id);
    assert_eq!(event.data["to"], json!(assignee));
    assert_eq!(event.data["from"], Value::Null);

    let stale = app
        .call(&acme, Method::PATCH, &path)
        .header("if-match", "\"1\"")
        .json(&json!({"assignee_id": null}))
        .send()
        .await
        .unwrap();
    expect_problem(stale, 412).await;
    let bad = app
        .call(&acme, Method::PATCH, &path)
        .json(&json!({"priority": "whenever"}))
        .send()
        .await
        .unwrap();
    expect_problem(bad, 400).await;
    let now: Value = app
        .call(&acme, Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (now["priority"].as_str(), now["assignee_id"].clone()),
        (Some("high"), json!(assignee))
    );
    tap.delete_exchange().await;
}

#[tokio::test]
async fn a_hundred_tasks_created_while_rabbitmq_is_down_are_published_once_it_is_back() {
    let rabbit: std::net::SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let relay = TcpRelay::to(rabbit).await;
    let url = format!("amqp://guest:guest@{}/%2f", relay.addr);
    let app = spawn_app_with(&[("AMQP_URL", url.as_str())]).await;
    let tap = EventTap::new(&app.exchange, "task.created").await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;

    relay.cut();
    for i in 0..100 {
        app.task(&acme, &web, &format!("offline {i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        tap.receive(1, Duration::from_millis(200)).await.is_empty(),
        "nothing got through"
    );
    let waiting: i64 = sqlx::query_scalar!(
        r#"select count(*) as "count!" from outbox where routing_key = 'task.created'"#
    )
    .fetch_one(&acme.db.pool)
    .await
    .unwrap();
    assert_eq!(waiting, 100);

    relay.restore();
    let mut got = tap.receive(100, Duration::from_secs(30)).await;
    got.extend(tap.receive(1, Duration::from_secs(1)).await);
    let mut ids: Vec<Uuid> = got
        .iter()
        .map(|m| {
            serde_json::from_slice::<common::events::Envelope>(&m.delivery.data)
                .unwrap()
                .id
        })
        .collect();
    assert_eq!(ids.len(), 100, "exactly a hundred task.created events");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "none twice");
    let left: i64 = sqlx::query_scalar!(r#"select count(*) as "count!" from outbox"#)
        .fetch_one(&acme.db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    tap.delete_exchange().await;
}

#[tokio::test]
async fn a_retried_create_with_the_same_idempotency_key_makes_one_task() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let path = format!("/api/v1/projects/{}/tasks", web["id"].as_str().unwrap());
    let send = |key: &'static str, title: &'static str| {
        app.call(&acme, Method::POST, &path)
            .header("idempotency-key", key)
            .json(&json!({"title": title}))
            .send()
    };
    let first = send("k-1", "Once").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send("k-1", "Once").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        first,
        "the same answer"
    );
    let other = send("k-2", "Twice").await.unwrap();
    assert_eq!(other.json::<Value>().await.unwrap()["key"], "WEB-2");
    let counts = sqlx::query!(
        r#"select (select count(*) from tasks) as "tasks!",
                  (select count(*) from activity where action = 'task.created') as "events!""#,
    )
    .fetch_one(&acme.db.pool)
    .await
    .unwrap();
    let (tasks, events) = (counts.tasks, counts.events);
    assert_eq!((tasks, events), (2, 2));
}

#[tokio::test]
async fn tasks_filter_search_page_and_report_subtask_progress() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let pid = web["id"].as_str().unwrap();
    let create = |body: Value| {
        app.call(
            &acme,
            Method::POST,
            &format!("/api/v1/projects/{pid}/tasks"),
        )
        .json(&body)
        .send()
    };
    let parent: Value = create(json!({"title": "Launch", "labels": ["release"]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let someone = Uuid::now_v7();
    for (title, priority) in [
        ("Write the press release", "high"),
        ("Fix login bug", "urgent"),
        ("Polish icons", "low"),
    ] {
        let resp = create(json!({"title": title, "priority": priority, "parent_id": parent["id"], "assignee_id": someone}))
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    assert_eq!(
        list(&app, &acme, pid, "priority=urgent").await.0,
        ["Fix login bug"]
    );
    assert_eq!(list(&app, &acme, pid, "label=release").await.0, ["Launch"]);
    assert_eq!(
        list(
            &app,
            &acme,
            pid,
            &format!("assignee_id={someone}&q=release")
        )
        .await
        .0,
        ["Write the press release"]
    );
    assert_eq!(
        list(
            &app,
            &acme,
            pid,
            &format!("parent_id={}", parent["id"].as_str().unwrap())
        )
        .await
        .0
        .len(),
        3
    );

    let (first, cursor) = list(&app, &acme, pid, "limit=3").await;
    assert_eq!(first.len(), 3);
    let (rest, end) = list(
        &app,
        &acme,
        pid,
        &format!("limit=3&cursor={}", cursor.unwrap()),
    )
    .await;
    assert_eq!((rest, end), (vec!["Polish icons".to_owned()], None));
    let bad = app
        .call(
            &acme,
            Method::GET,
            &format!("/api/v1/projects/{pid}/tasks?priority=soon"),
        )
        .send()
        .await
        .unwrap();
    expect_problem(bad, 400).await;

    let done = app.board(&acme, &web).await["columns"][2].clone();
    let icons = list(&app, &acme, pid, "q=icons").await.0;
    assert_eq!(icons.len(), 1);
    let board = app.board(&acme, &web).await;
    let icons = board["columns"][0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["title"] == "Polish icons")
        .unwrap()
        .clone();
    assert_eq!(move_to(&app, &acme, &icons, &done, 0).await.status(), 200);
    let progress: Value = app
        .call(
            &acme,
            Method::GET,
            &format!("/api/v1/tasks/{}/progress", parent["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(progress, json!({"total": 3, "done": 1}));
}

#[tokio::test]
async fn task_changes_emit_task_updated_moved_and_deleted() {
    let app = spawn_app().await;
    let tap = EventTap::new(&app.exchange, "task.*").await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let project = web["id"].clone();
    let board = app.board(&acme, &web).await;
    let [todo, doing] = [0, 1].map(|i| board["columns"][i].clone());
    let parent = app.task(&acme, &web, "Launch").await;
    let path = format!("/api/v1/projects/{}/tasks", project.as_str().unwrap());
    let sub = app
        .send(
            &acme,
            Method::POST,
            &path,
            Some(json!({"title": "Press", "parent_id": parent["id"]})),
        )
        .await;
    assert_eq!(sub.status(), 201);
    let sub: Value = sub.json().await.unwrap();
    let task = format!("/api/v1/tasks/{}", parent["id"].as_str().unwrap());

    let changes = json!({"title": "Launch v2", "labels": ["release"], "priority": "medium"});
    let patched = app.send(&acme, Method::PATCH, &task, Some(changes)).await;
    assert_eq!(patched.status(), 200);
    let same = json!({"title": "Launch v2"});
    let unchanged = app.send(&acme, Method::PATCH, &task, Some(same)).await;
    assert_eq!(unchanged.status(), 200);
    assert_eq!(move_to(&app, &acme, &parent, &todo, 1).await.status(), 200);
    assert_eq!(move_to(&app, &acme, &parent, &doing, 0).await.status(), 200);
    let deleted = app.send(&acme, Method::DELETE, &task, None).await;
    assert_eq!(deleted.status(), 204);

    let events = tap.receive_events(8, Duration::from_secs(10)).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "task.created",
            "task.created",
            "task.updated",
            "task.moved",
            "task.status_changed",
            "task.moved",
            "task.deleted",
            "task.deleted"
        ],
        "no task.updated for a PATCH that changes nothing"
    );
    let id = &parent["id"];
    assert_eq!(
        events[2].data,
        json!({"task_id": id, "project_id": project, "fields": ["title", "labels"]})
    );
    assert_eq!(
        events[3].data,
        json!({"task_id": id, "project_id": project, "from": todo["id"], "to": todo["id"],
               "position": 1})
    );
    assert_eq!(
        events[5].data,
        json!({"task_id": id, "project_id": project, "from": todo["id"], "to": doing["id"],
               "position": 0})
    );
    let mut gone: Vec<&Value> = events[6..].iter().map(|e| &e.data["task_id"]).collect();
    gone.sort_by_key(|id| id.as_str());
    let mut expected = vec![id, &sub["id"]];
    expected.sort_by_key(|id| id.as_str());
    assert_eq!(gone, expected);
    assert!(events[6..].iter().all(|e| e.data["project_id"] == project));
    tap.delete_exchange().await;
}
