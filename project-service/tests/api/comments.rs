//! Comments: safe rendering, mentions of members only, one level of replies, and who
//! may edit or delete.

use common::auth::Role;
use common::testkit::{EventTap, expect_problem};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn comments_render_safely_and_mention_only_members() {
    let app = spawn_app().await;
    let tap = EventTap::new(&app.exchange, "task.comment_added").await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let task = app.task(&acme, &web, "t").await;
    let (olive, stranger) = (Uuid::now_v7(), Uuid::now_v7());
    app.resolver.add_member(acme.id, olive, "olive");
    app.resolver.add_member(Uuid::now_v7(), stranger, "gil");
    let path = format!("/api/v1/tasks/{}/comments", task["id"].as_str().unwrap());

    let body = format!("**Look** @{olive} and @{stranger} <script>alert('x')</script>");
    let created = app
        .send(&acme, Method::POST, &path, Some(json!({"body": body})))
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["body"], body.as_str(), "stored as written");
    let html = created["html"].as_str().unwrap();
    assert!(
        html.contains("<strong>Look</strong>")
            && html.contains("&lt;script&gt;")
            && !html.contains("<script"),
        "{html}"
    );
    assert_eq!(
        created["mentions"],
        json!([olive]),
        "only members of this tenant"
    );
    let event = tap.next_event().await;
    assert_eq!(event.data["mentions"], json!([olive]));

    let reply = app
        .send(
            &acme,
            Method::POST,
            &path,
            Some(json!({"body": "ok", "parent_id": created["id"]})),
        )
        .await;
    assert_eq!(reply.status(), 201);
    let reply: Value = reply.json().await.unwrap();
    let nested = app
        .send(
            &acme,
            Method::POST,
            &path,
            Some(json!({"body": "no", "parent_id": reply["id"]})),
        )
        .await;
    expect_problem(nested, 400).await;
    let listed: Vec<Value> = app
        .send(&acme, Method::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["parent_id"], created["id"]);
    tap.delete_exchange().await;
}

#[tokio::test]
async fn authors_edit_their_own_comments_and_managers_delete_any() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let task = app.task(&acme, &web, "t").await;
    let path = format!("/api/v1/tasks/{}/comments", task["id"].as_str().unwrap());
    let member = app.member_of(&acme, Role::Member);

    let theirs: Value = app
        .send(&member, Method::POST, &path, Some(json!({"body": "mine"})))
        .await
        .json()
        .await
        .unwrap();
    let one = format!("{path}/{}", theirs["id"].as_str().unwrap());
    expect_problem(
        app.send(
            &acme,
            Method::PATCH,
            &one,
            Some(json!({"body": "owner's words"})),
        )
        .await,
        403,
    )
    .await;
    let edited: Value = app
        .send(
            &member,
            Method::PATCH,
            &one,
            Some(json!({"body": "mine, edited"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (edited["body"].as_str(), edited["edited"].as_bool()),
        (Some("mine, edited"), Some(true))
    );

    let owners: Value = app
        .send(&acme, Method::POST, &path, Some(json!({"body": "owner"})))
        .await
        .json()
        .await
        .unwrap();
    let other = format!("{path}/{}", owners["id"].as_str().unwrap());
    expect_problem(app.send(&member, Method::DELETE, &other, None).await, 403).await;
    assert_eq!(
        app.send(&acme, Method::DELETE, &one, None).await.status(),
        204,
        "managers delete any"
    );
    expect_problem(
        app.send(&acme, Method::POST, &path, Some(json!({"body": "  "})))
            .await,
        400,
    )
    .await;
    let left: Vec<Value> = app
        .send(&acme, Method::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
}
