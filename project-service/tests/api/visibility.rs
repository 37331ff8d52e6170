//! Who reads a project: `tenant` projects every member of the tenant, `members` projects
//! only their members and those who manage projects; everyone else gets the 404 of a
//! project or task that is not there.

use common::auth::Role;
use common::testkit::{EventTap, expect_problem};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Tenant, TestApp, spawn_app};

/// A `members` project of `owner`'s with one task, which has one comment.
async fn members_project(app: &TestApp, owner: &Tenant, key: &str) -> (Value, Value) {
    let resp = app
        .send(
            owner,
            Method::POST,
            "/api/v1/projects",
            Some(json!({"key": key, "name": "Secret", "visibility": "members"})),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let project: Value = resp.json().await.unwrap();
    assert_eq!(project["visibility"], "members");
    let task = app.task(owner, &project, "Hidden work").await;
    let path = format!("/api/v1/tasks/{}/comments", task["id"].as_str().unwrap());
    let comment = app
        .send(owner, Method::POST, &path, Some(json!({"body": "hush"})))
        .await;
    assert_eq!(comment.status(), 201);
    (project, task)
}

/// The reads of a project and its task: project, board, task list, task, comments.
fn reads(project: &str, task: &str) -> [String; 5] {
    [
        format!("/api/v1/projects/{project}"),
        format!("/api/v1/projects/{project}/board"),
        format!("/api/v1/projects/{project}/tasks"),
        format!("/api/v1/tasks/{task}"),
        format!("/api/v1/tasks/{task}/comments"),
    ]
}

/// The keys of the projects `caller` is listed.
async fn listed(app: &TestApp, caller: &Tenant) -> Vec<String> {
    let resp = app
        .send(caller, Method::GET, "/api/v1/projects", None)
        .await;
    assert_eq!(resp.status(), 200);
    let projects: Vec<Value> = resp.json().await.unwrap();
    projects
        .iter()
        .map(|p| p["key"].as_str().unwrap().to_owned())
        .collect()
}

/// What a 404 problem says, without its request id.
async fn not_found(resp: reqwest::Response) -> (Value, Value, Value) {
    let problem = expect_problem(resp, 404).await;
    (
        problem["type"].clone(),
        problem["title"].clone(),
        problem["detail"].clone(),
    )
}

#[tokio::test]
async fn a_members_project_is_missing_to_tenant_members_until_they_join_it() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let (project, task) = members_project(&app, &acme, "SEC").await;
    app.project(&acme, "WEB").await;
    let (id, task_id) = (
        project["id"].as_str().unwrap(),
        task["id"].as_str().unwrap(),
    );
    let (member_id, member) = app.user_of(&acme, Role::Member);

    let nothing = Uuid::now_v7().to_string();
    for (hidden, absent) in reads(id, task_id).iter().zip(reads(&nothing, &nothing)) {
        let hidden = app.send(&member, Method::GET, hidden, None).await;
        let absent = app.send(&member, Method::GET, &absent, None).await;
        assert_eq!(not_found(hidden).await, not_found(absent).await);
    }
    let writes = [
        (
            Method::POST,
            format!("/api/v1/projects/{id}/tasks"),
            json!({"title": "x"}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/tasks/{task_id}"),
            json!({"title": "x"}),
        ),
        (
            Method::POST,
            format!("/api/v1/tasks/{task_id}/move"),
            json!({"column_id": task["column_id"], "position": 0}),
        ),
        (
            Method::POST,
            format!("/api/v1/tasks/{task_id}/comments"),
            json!({"body": "hi"}),
        ),
        (
            Method::POST,
            format!("/api/v1/tasks/{task_id}/worklogs"),
            json!({"minutes": 5}),
        ),
    ];
    for (method, path, body) in writes {
        let resp = app.send(&member, method, &path, Some(body)).await;
        expect_problem(resp, 404).await;
    }
    for path in [
        format!("/api/v1/tasks/{task_id}/attachments"),
        format!("/api/v1/tasks/{task_id}/progress"),
        format!("/api/v1/tasks/{task_id}/time"),
        format!("/api/v1/projects/{id}/activity"),
        format!("/api/v1/projects/{id}/members"),
        format!("/api/v1/projects/{id}/time"),
    ] {
        expect_problem(app.send(&member, Method::GET, &path, None).await, 404).await;
    }
    assert_eq!(listed(&app, &member).await, ["WEB"]);

    let path = format!("/api/v1/projects/{id}/members/{member_id}");
    let added = app
        .send(&acme, Method::PUT, &path, Some(json!({"role": "member"})))
        .await;
    assert_eq!(added.status(), 201);
    for path in reads(id, task_id) {
        let resp = app.send(&member, Method::GET, &path, None).await;
        assert_eq!(resp.status(), 200, "{path}");
    }
    assert_eq!(listed(&app, &member).await, ["WEB", "SEC"]);
    let board: Value = app.board(&member, &project).await;
    assert_eq!(board["columns"][0]["tasks"][0]["title"], "Hidden work");
}

#[tokio::test]
async fn those_who_manage_projects_read_a_members_project_without_joining_it() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let (project, task) = members_project(&app, &acme, "SEC").await;
    let (id, task_id) = (
        project["id"].as_str().unwrap(),
        task["id"].as_str().unwrap(),
    );

    for role in [Role::Admin, Role::Manager] {
        let caller = app.member_of(&acme, role);
        for path in reads(id, task_id) {
            let resp = app.send(&caller, Method::GET, &path, None).await;
            assert_eq!(resp.status(), 200, "{role:?} {path}");
        }
        assert_eq!(listed(&app, &caller).await, ["SEC"], "{role:?}");
    }
    let viewer = app.member_of(&acme, Role::Viewer);
    for path in reads(id, task_id) {
        expect_problem(app.send(&viewer, Method::GET, &path, None).await, 404).await;
    }
    assert!(listed(&app, &viewer).await.is_empty());
}

#[tokio::test]
async fn a_tenant_project_is_read_by_every_member_of_the_tenant() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let project = app.project(&acme, "WEB").await;
    assert_eq!(project["visibility"], "tenant");
    let task = app.task(&acme, &project, "Open work").await;
    let (id, task_id) = (
        project["id"].as_str().unwrap(),
        task["id"].as_str().unwrap(),
    );

    for role in [Role::Member, Role::Viewer] {
        let caller = app.member_of(&acme, role);
        for path in reads(id, task_id) {
            let resp = app.send(&caller, Method::GET, &path, None).await;
            assert_eq!(resp.status(), 200, "{role:?} {path}");
        }
        assert_eq!(listed(&app, &caller).await, ["WEB"], "{role:?}");
    }
}

#[tokio::test]
async fn visibility_is_validated_and_a_change_is_in_project_updated() {
    let app = spawn_app().await;
    let tap = EventTap::new(&app.exchange, "project.*").await;
    let acme = app.tenant().await;
    let bad = app
        .send(
            &acme,
            Method::POST,
            "/api/v1/projects",
            Some(json!({"key": "WEB", "name": "Web", "visibility": "secret"})),
        )
        .await;
    let problem = expect_problem(bad, 400).await;
    assert_eq!(problem["errors"][0]["field"], "visibility", "{problem}");
    let project = app.project(&acme, "WEB").await;
    let created = tap.next_event().await;
    assert_eq!(created.kind, "project.created");
    assert_eq!(created.data["visibility"], "tenant");
    let path = format!("/api/v1/projects/{}", project["id"].as_str().unwrap());
    let bad = app
        .send(
            &acme,
            Method::PATCH,
            &path,
            Some(json!({"visibility": "everyone"})),
        )
        .await;
    let problem = expect_problem(bad, 400).await;
    assert_eq!(problem["errors"][0]["field"], "visibility", "{problem}");

    let member = app.member_of(&acme, Role::Member);
    let hidden = app
        .send(
            &acme,
            Method::PATCH,
            &path,
            Some(json!({"visibility": "members"})),
        )
        .await;
    assert_eq!(hidden.status(), 200);
    let hidden: Value = hidden.json().await.unwrap();
    assert_eq!(hidden["visibility"], "members");
    let updated = tap.next_event().await;
    assert_eq!(updated.kind, "project.updated");
    assert_eq!(updated.data["visibility"], "members");
    expect_problem(app.send(&member, Method::GET, &path, None).await, 404).await;

    let renamed = app
        .send(
            &acme,
            Method::PATCH,
            &path,
            Some(json!({"name": "Website"})),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    let updated = tap.next_event().await;
    assert_eq!(updated.data["name"], "Website");
    assert!(
        updated.data.get("visibility").is_none(),
        "unchanged visibility is not in the event: {}",
        updated.data
    );
    tap.delete_exchange().await;
}
