//! Members, columns, deletes, the activity log and the plan's project limit.

use common::auth::Role;
use common::testkit::{EventTap, expect_problem};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::spawn_app;

fn names(board: &Value) -> Vec<String> {
    board["columns"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            assert_eq!(c["position"].as_u64(), Some(i as u64), "dense: {board}");
            c["name"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn members_are_added_changed_and_removed_and_adding_emits_an_event() {
    let app = spawn_app().await;
    let tap = EventTap::new(&app.exchange, "project.user_added").await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let someone = Uuid::now_v7();
    let path = format!(
        "/api/v1/projects/{}/members/{someone}",
        web["id"].as_str().unwrap()
    );

    let added = app
        .send(&acme, Method::PUT, &path, Some(json!({"role": "member"})))
        .await;
    assert_eq!(added.status(), 201);
    let event = tap.next_event().await;
    assert_eq!(
        (event.data["user_id"].clone(), event.data["role"].clone()),
        (json!(someone), json!("member"))
    );
    let changed = app
        .send(&acme, Method::PUT, &path, Some(json!({"role": "viewer"})))
        .await;
    assert_eq!(changed.status(), 200);
    expect_problem(
        app.send(&acme, Method::PUT, &path, Some(json!({"role": "boss"})))
            .await,
        400,
    )
    .await;

    let list: Vec<Value> = app
        .send(
            &acme,
            Method::GET,
            &format!("/api/v1/projects/{}/members", web["id"].as_str().unwrap()),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let roles: Vec<&str> = list.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["lead", "viewer"]);

    let member = app.member_of(&acme, Role::Member);
    expect_problem(app.send(&member, Method::DELETE, &path, None).await, 403).await;
    assert_eq!(
        app.send(&acme, Method::DELETE, &path, None).await.status(),
        204
    );
    expect_problem(app.send(&acme, Method::DELETE, &path, None).await, 404).await;
    assert!(
        tap.receive(1, std::time::Duration::from_millis(300))
            .await
            .is_empty(),
        "a role change is not an add"
    );
    tap.delete_exchange().await;
}

#[tokio::test]
async fn columns_are_added_moved_and_removed_with_dense_positions() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let pid = web["id"].as_str().unwrap();
    let review: Value = app
        .send(
            &acme,
            Method::POST,
            &format!("/api/v1/projects/{pid}/columns"),
            Some(json!({"name": "Review", "position": 2, "wip_limit": 2})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        names(&app.board(&acme, &web).await),
        ["To do", "In progress", "Review", "Done"]
    );

    let column = format!(
        "/api/v1/projects/{pid}/columns/{}",
        review["id"].as_str().unwrap()
    );
    let moved: Value = app
        .send(
            &acme,
            Method::PATCH,
            &column,
            Some(json!({"position": 0, "wip_limit": null, "name": "Triage"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (moved["position"].as_i64(), moved["wip_limit"].clone()),
        (Some(0), Value::Null)
    );
    assert_eq!(
        names(&app.board(&acme, &web).await),
        ["Triage", "To do", "In progress", "Done"]
    );

    let task = app.task(&acme, &web, "waits").await;
    let first_column = app.board(&acme, &web).await["columns"][0]["id"].clone();
    assert_eq!(
        task["column_id"], first_column,
        "new tasks land in the first column"
    );
    expect_problem(app.send(&acme, Method::DELETE, &column, None).await, 409).await;
    let todo = app.board(&acme, &web).await["columns"][1].clone();
    let moved = app
        .send(
            &acme,
            Method::POST,
            &format!("/api/v1/tasks/{}/move", task["id"].as_str().unwrap()),
            Some(json!({"column_id": todo["id"], "position": 0})),
        )
        .await;
    assert_eq!(moved.status(), 200);
    assert_eq!(
        app.send(&acme, Method::DELETE, &column, None)
            .await
            .status(),
        204
    );
    assert_eq!(
        names(&app.board(&acme, &web).await),
        ["To do", "In progress", "Done"]
    );
}

#[tokio::test]
async fn deleting_a_task_takes_its_subtasks_and_closes_the_gaps() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let pid = web["id"].as_str().unwrap();
    let a = app.task(&acme, &web, "a").await;
    let parent = app.task(&acme, &web, "parent").await;
    let child = app
        .send(
            &acme,
            Method::POST,
            &format!("/api/v1/projects/{pid}/tasks"),
            Some(json!({"title": "child", "parent_id": parent["id"]})),
        )
        .await;
    assert_eq!(child.status(), 201);
    app.task(&acme, &web, "z").await;

    let path = format!("/api/v1/tasks/{}", parent["id"].as_str().unwrap());
    let member = app.member_of(&acme, Role::Member);
    expect_problem(app.send(&member, Method::DELETE, &path, None).await, 403).await;
    assert_eq!(
        app.send(&acme, Method::DELETE, &path, None).await.status(),
        204
    );
    expect_problem(app.send(&acme, Method::GET, &path, None).await, 404).await;

    let board = app.board(&acme, &web).await;
    let todo: Vec<(&str, u64)> = board["columns"][0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["title"].as_str().unwrap(),
                t["position"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(todo, [("a", 0), ("z", 1)]);

    let log: Value = app
        .send(
            &acme,
            Method::GET,
            &format!("/api/v1/projects/{pid}/activity?limit=2"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["task.deleted", "task.created"], "newest first");
    assert_eq!(log["items"][0]["before"]["title"], "parent");
    let cursor = log["next_cursor"].as_str().unwrap();
    let older: Value = app
        .send(
            &acme,
            Method::GET,
            &format!("/api/v1/projects/{pid}/activity?cursor={cursor}"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        older["items"].as_array().unwrap().last().unwrap()["action"],
        "project.created"
    );
    let of_a: Value = app
        .send(
            &acme,
            Method::GET,
            &format!(
                "/api/v1/projects/{pid}/activity?task_id={}",
                a["id"].as_str().unwrap()
            ),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(of_a["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_plan_limits_active_projects() {
    let app = spawn_app().await;
    app.resolver.limit_projects(Some(2));
    let acme = app.tenant().await;
    let one = app.project(&acme, "ONE").await;
    app.project(&acme, "TWO").await;
    let third = app
        .send(
            &acme,
            Method::POST,
            "/api/v1/projects",
            Some(json!({"key": "THREE", "name": "Three"})),
        )
        .await;
    let problem = expect_problem(third, 409).await;
    assert!(
        problem["type"].as_str().unwrap().ends_with("plan-limit"),
        "{problem}"
    );
    let archived = app
        .send(
            &acme,
            Method::PATCH,
            &format!("/api/v1/projects/{}", one["id"].as_str().unwrap()),
            Some(json!({"archived": true})),
        )
        .await;
    assert_eq!(archived.status(), 200);
    let three = app.project(&acme, "THREE").await;

    let path = format!("/api/v1/projects/{}", three["id"].as_str().unwrap());
    let member = app.member_of(&acme, Role::Member);
    expect_problem(app.send(&member, Method::DELETE, &path, None).await, 403).await;
    assert_eq!(
        app.send(&acme, Method::DELETE, &path, None).await.status(),
        204
    );
    expect_problem(app.send(&acme, Method::GET, &path, None).await, 404).await;
    app.project(&acme, "FOUR").await;
}
