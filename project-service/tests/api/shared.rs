//! Share pages: a task (or project) shown read-only to whoever holds a grant signed with
//! the shared secret, and nothing shown for any other grant.

use chrono::Utc;
use common::grant::{GrantKey, ShareGrant, SharedTarget};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{SHARE_SECRET, Tenant, TestApp, spawn_app};

fn id(v: &Value) -> Uuid {
    v["id"].as_str().unwrap().parse().unwrap()
}

fn grant(tenant: Uuid, target: SharedTarget, lifetime_secs: i64) -> String {
    GrantKey::new(&SecretString::from(SHARE_SECRET)).sign(&ShareGrant {
        tenant_id: tenant,
        target,
        expires_at: Utc::now().timestamp() + lifetime_secs,
    })
}

/// Opens a share page as a browser with no token would, through `host_tenant`'s host.
async fn open(
    app: &TestApp,
    host_tenant: Uuid,
    path: &str,
    grant: &str,
    accept: &str,
) -> reqwest::Response {
    app.server
        .client
        .get(app.server.url(path))
        .query(&[("grant", grant)])
        .header("x-tenant-id", host_tenant.to_string())
        .header("x-tenant-slug", "t")
        .header("accept", accept)
        .send()
        .await
        .unwrap()
}

/// A task with a description, an assignee, one of two subtasks done, and a comment
/// that tries to inject a script.
async fn shared_task(app: &TestApp, acme: &Tenant) -> Value {
    let web = app.project(acme, "WEB").await;
    let task = app.task(acme, &web, "Ship the release").await;
    let olive = Uuid::now_v7();
    app.resolver.add_member(acme.id, olive, "Olive Oyl");
    let patched = app
        .send(
            acme,
            Method::PATCH,
            &format!("/api/v1/tasks/{}", id(&task)),
            Some(
                json!({"assignee_id": olive, "description": "Check **everything**",
                        "priority": "high", "due_date": "2026-12-24"}),
            ),
        )
        .await;
    assert_eq!(patched.status(), 200, "{}", patched.text().await.unwrap());
    let tasks = format!("/api/v1/projects/{}/tasks", id(&web));
    for title in ["Write notes", "Tag the build"] {
        let sub = app
            .send(
                acme,
                Method::POST,
                &tasks,
                Some(json!({"title": title, "parent_id": id(&task)})),
            )
            .await;
        assert_eq!(sub.status(), 201);
        if title == "Tag the build" {
            let sub: Value = sub.json().await.unwrap();
            let board = app.board(acme, &web).await;
            let done = board["columns"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["done"] == true)
                .unwrap();
            let moved = app
                .send(
                    acme,
                    Method::POST,
                    &format!("/api/v1/tasks/{}/move", id(&sub)),
                    Some(json!({"column_id": done["id"], "position": 0})),
                )
                .await;
            assert_eq!(moved.status(), 200);
        }
    }
    let comment = app
        .send(
            acme,
            Method::POST,
            &format!("/api/v1/tasks/{}/comments", id(&task)),
            Some(json!({"body": "Careful <script>alert('owned')</script> here"})),
        )
        .await;
    assert_eq!(comment.status(), 201);
    task
}

#[tokio::test]
async fn a_valid_grant_shows_the_task_read_only_with_comments_escaped() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let task = shared_task(&app, &acme).await;
    let path = format!("/shared/tasks/{}", id(&task));
    let grant = grant(acme.id, SharedTarget::Task(id(&task)), 300);

    let page = open(&app, acme.id, &path, &grant, "text/html").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    for shown in [
        "Ship the release",
        "WEB-1",
        "Olive Oyl",
        "<span class=\"pill high\">high</span>",
        "2026-12-24",
        "<strong>everything</strong>",
        "Write notes",
        "Tag the build",
        "1 of 2 done",
        "&lt;script&gt;",
    ] {
        assert!(html.contains(shown), "{shown} missing from {html}");
    }
    let (main, after) = html.split_once("</main>").expect("a main");
    assert!(!main.contains("<script"), "no script survives: {html}");
    assert_eq!(
        after.matches("<script").count(),
        1,
        "the page's own live script alone: {html}"
    );
    assert!(!html.contains("<form"), "read-only");

    let json: Value = open(&app, acme.id, &path, &grant, "application/json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json["task"]["title"], "Ship the release");
    assert_eq!(json["task"]["assignee"], "Olive Oyl");
    assert_eq!(json["progress"], json!({"done": 1, "total": 2}));
    assert!(
        json["comments"][0]["html"]
            .as_str()
            .unwrap()
            .contains("&lt;script&gt;")
    );
}

#[tokio::test]
async fn expired_tampered_other_task_and_other_tenant_grants_show_nothing() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let globex = app.tenant().await;
    let task = shared_task(&app, &acme).await;
    let other = app
        .task(&acme, &app.project(&acme, "OPS").await, "Other")
        .await;
    let path = format!("/shared/tasks/{}", id(&task));
    let valid = grant(acme.id, SharedTarget::Task(id(&task)), 300);
    let (payload, signature) = valid.split_once('.').unwrap();
    let mut flipped = signature.chars().collect::<Vec<_>>();
    flipped[0] = if flipped[0] == 'A' { 'B' } else { 'A' };
    let tampered = format!("{payload}.{}", flipped.into_iter().collect::<String>());
    let forged_secret = GrantKey::new(&SecretString::from("not the secret")).sign(&ShareGrant {
        tenant_id: acme.id,
        target: SharedTarget::Task(id(&task)),
        expires_at: Utc::now().timestamp() + 300,
    });

    let refused = [
        (
            "expired",
            acme.id,
            grant(acme.id, SharedTarget::Task(id(&task)), -1),
        ),
        ("tampered", acme.id, tampered),
        ("another secret", acme.id, forged_secret),
        (
            "another task",
            acme.id,
            grant(acme.id, SharedTarget::Task(id(&other)), 300),
        ),
        (
            "the project",
            acme.id,
            grant(acme.id, SharedTarget::Project(Uuid::now_v7()), 300),
        ),
        ("another tenant's host", globex.id, valid.clone()),
        ("no grant", acme.id, String::new()),
    ];
    for (why, host, grant) in refused {
        let page = open(&app, host, &path, &grant, "text/html").await;
        assert_eq!(page.status(), 403, "{why}");
        let html = page.text().await.unwrap();
        assert!(
            !html.contains("Ship the release") && !html.contains("Olive"),
            "{why}: {html}"
        );
        let problem = open(&app, host, &path, &grant, "application/json").await;
        assert_eq!(problem.status(), 403, "{why}");
        assert!(
            !problem.text().await.unwrap().contains("Ship the release"),
            "{why}"
        );
    }

    let fine = open(&app, acme.id, &path, &valid, "text/html").await;
    assert_eq!(fine.status(), 200, "the valid grant still works");
}

#[tokio::test]
async fn a_project_grant_shows_its_board_and_no_task_page() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let task = app.task(&acme, &web, "Paint the <b>fence</b>").await;
    let grant = grant(acme.id, SharedTarget::Project(id(&web)), 300);

    let page = open(
        &app,
        acme.id,
        &format!("/shared/projects/{}", id(&web)),
        &grant,
        "text/html",
    )
    .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Project WEB") && html.contains("To do"),
        "{html}"
    );
    assert!(
        html.contains("Paint the &lt;b&gt;fence&lt;/b&gt;"),
        "{html}"
    );

    let task_page = open(
        &app,
        acme.id,
        &format!("/shared/tasks/{}", id(&task)),
        &grant,
        "text/html",
    )
    .await;
    assert_eq!(task_page.status(), 403, "a project grant is no task grant");
}
