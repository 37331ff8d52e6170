//! Time tracking: timers, work logs, roll-ups and the CSV export.

use common::auth::Role;
use common::testkit::{EventTap, expect_problem};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[tokio::test]
async fn a_timer_started_and_stopped_logs_the_elapsed_minutes_once() {
    let app = spawn_app().await;
    let tap = EventTap::new(&app.exchange, "task.time_logged").await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let (a, b) = (
        app.task(&acme, &web, "a").await,
        app.task(&acme, &web, "b").await,
    );

    let started = app
        .send(
            &acme,
            Method::POST,
            &format!("/api/v1/tasks/{}/timer/start", id(&a)),
            None,
        )
        .await;
    assert_eq!(started.status(), 201);
    sqlx::query!("update timers set started_at = now() - interval '30 minutes'")
        .execute(&acme.db.pool)
        .await
        .unwrap();
    let log: Value = app
        .send(
            &acme,
            Method::POST,
            &format!("/api/v1/tasks/{}/timer/stop", id(&a)),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (log["minutes"].as_i64(), log["task_id"].as_str()),
        (Some(30), Some(id(&a)))
    );
    let event = tap.next_event().await;
    assert_eq!(
        (
            event.data["minutes"].as_i64(),
            event.data["task_id"].as_str()
        ),
        (Some(30), Some(id(&a)))
    );
    expect_problem(
        app.send(
            &acme,
            Method::POST,
            &format!("/api/v1/tasks/{}/timer/stop", id(&a)),
            None,
        )
        .await,
        409,
    )
    .await;

    // Starting on another task stops the running one.
    app.send(
        &acme,
        Method::POST,
        &format!("/api/v1/tasks/{}/timer/start", id(&a)),
        None,
    )
    .await;
    sqlx::query!("update timers set started_at = now() - interval '5 minutes'")
        .execute(&acme.db.pool)
        .await
        .unwrap();
    let switched: Value = app
        .send(
            &acme,
            Method::POST,
            &format!("/api/v1/tasks/{}/timer/start", id(&b)),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(switched["stopped"]["minutes"], 5);
    assert_eq!(switched["timer"]["task_id"], b["id"]);
    let logs: Vec<Value> = app
        .send(
            &acme,
            Method::GET,
            &format!("/api/v1/tasks/{}/worklogs", id(&a)),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(logs.len(), 2);
    let running: i64 = sqlx::query_scalar!(r#"select count(*) as "count!" from timers"#)
        .fetch_one(&acme.db.pool)
        .await
        .unwrap();
    assert_eq!(running, 1, "one timer per user");
    tap.delete_exchange().await;
}

#[tokio::test]
async fn totals_roll_subtasks_into_parents_and_the_project_and_export_as_csv() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let pid = id(&web);
    let parent = app.task(&acme, &web, "parent").await;
    let child: Value = app
        .send(
            &acme,
            Method::POST,
            &format!("/api/v1/projects/{pid}/tasks"),
            Some(json!({"title": "child", "parent_id": parent["id"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    let grandchild: Value = app
        .send(
            &acme,
            Method::POST,
            &format!("/api/v1/projects/{pid}/tasks"),
            Some(json!({"title": "grandchild", "parent_id": child["id"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    let other = app.task(&acme, &web, "other").await;
    for (task, minutes, day, note) in [
        (&parent, 10, "2026-11-02", "planning"),
        (&child, 20, "2026-11-03", "=HYPERLINK(\"evil\")"),
        (&grandchild, 5, "2026-11-03", ""),
        (&other, 45, "2026-11-20", "later"),
    ] {
        let resp = app
            .send(
                &acme,
                Method::POST,
                &format!("/api/v1/tasks/{}/worklogs", id(task)),
                Some(json!({"minutes": minutes, "worked_on": day, "note": note})),
            )
            .await;
        assert_eq!(resp.status(), 201);
    }
    expect_problem(
        app.send(
            &acme,
            Method::POST,
            &format!("/api/v1/tasks/{}/worklogs", id(&other)),
            Some(json!({"minutes": 0})),
        )
        .await,
        400,
    )
    .await;

    let time: Value = app
        .send(
            &acme,
            Method::GET,
            &format!("/api/v1/tasks/{}/time", id(&parent)),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(time, json!({"minutes": 10, "total_minutes": 35}));
    let all: Value = app
        .send(
            &acme,
            Method::GET,
            &format!("/api/v1/projects/{pid}/time"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["total_minutes"], 80);
    assert_eq!(all["by_task"][0]["minutes"], 45);
    let early: Value = app
        .send(
            &acme,
            Method::GET,
            &format!("/api/v1/projects/{pid}/time?from=2026-11-01&to=2026-11-10"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(early["total_minutes"], 35);
    assert_eq!(early["by_user"].as_array().unwrap().len(), 1);

    let csv = app
        .send(
            &acme,
            Method::GET,
            &format!("/api/v1/projects/{pid}/worklogs.csv?to=2026-11-10"),
            None,
        )
        .await;
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "worked_on,task,user_id,minutes,note,logged_at");
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[1].starts_with("2026-11-02,WEB-1,"), "{text}");
    assert!(
        text.contains("\"'=HYPERLINK(\"\"evil\"\")\""),
        "formulas are quoted as text: {text}"
    );

    // Someone else's log needs tasks.manage to delete.
    let log: Vec<Value> = app
        .send(
            &acme,
            Method::GET,
            &format!("/api/v1/tasks/{}/worklogs", id(&other)),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/tasks/{}/worklogs/{}", id(&other), id(&log[0]));
    let member = app.member_of(&acme, Role::Member);
    expect_problem(app.send(&member, Method::DELETE, &path, None).await, 403).await;
    assert_eq!(
        app.send(&acme, Method::DELETE, &path, None).await.status(),
        204
    );
    let all: Value = app
        .send(
            &acme,
            Method::GET,
            &format!("/api/v1/projects/{pid}/time"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["total_minutes"], 35);
}
