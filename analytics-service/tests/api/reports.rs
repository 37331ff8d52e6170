//! The reports: what each answers, who may ask, and that a tenant sees only its own.

use chrono::{DateTime, TimeZone, Utc};
use common::auth::Role;
use common::events::{Envelope, keys};
use common::testkit::expect_problem;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, event, eventually, spawn_app, spawn_ready_with};

const RANGE: &str = "from=2026-11-01&to=2026-11-07";

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

/// One tenant's week: two tasks in one project (one done after 26 h), 45 minutes logged,
/// three clicks on one link (two visitors, one bot, two referrers).
struct Week {
    project: Uuid,
    assignee: Uuid,
    code: String,
    events: Vec<Envelope>,
}

fn week(tenant: Uuid) -> Week {
    let (project, assignee, done_col, todo_col) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let (t1, t2) = (Uuid::now_v7(), Uuid::now_v7());
    let code = format!("c{}", &Uuid::now_v7().simple().to_string()[24..]);
    let created = |task: Uuid, day: u32| {
        event(
            keys::TASK_CREATED,
            tenant,
            at(day, 8),
            json!({"project_id": project, "task_id": task, "number": 1, "status": todo_col,
                   "priority": "high", "assignee_id": assignee, "parent_id": null}),
        )
    };
    let click = |day: u32, referrer: &str, agent: &str, visitor: &str| {
        event(
            keys::URL_ACCESSED,
            tenant,
            at(day, 12),
            json!({"code": code, "referrer_host": referrer, "agent_class": agent, "visitor_hash": visitor}),
        )
    };
    let events = vec![
        created(t1, 2),
        created(t2, 3),
        event(
            keys::TASK_STATUS_CHANGED,
            tenant,
            at(3, 10),
            json!({"task_id": t1, "project_id": project, "from": todo_col, "to": done_col,
                   "done": true, "was_done": false}),
        ),
        event(
            keys::TASK_TIME_LOGGED,
            tenant,
            at(3, 11),
            json!({"task_id": t1, "project_id": project, "user_id": assignee, "minutes": 45,
                   "worked_on": "2026-11-03", "work_log_id": Uuid::now_v7()}),
        ),
        event(
            keys::URL_CREATED,
            tenant,
            at(2, 9),
            json!({"code": code, "target": {}, "protected": false}),
        ),
        click(4, "news.example", "browser", "v1"),
        click(4, "news.example", "browser", "v1"),
        click(5, "", "bot", "v2"),
    ];
    Week {
        project,
        assignee,
        code,
        events,
    }
}

async fn publish_all(app: &TestApp, events: &[Envelope]) {
    for e in events {
        app.publish(e).await;
    }
    app.wait_stored(&events.iter().map(|e| e.id).collect::<Vec<_>>())
        .await;
}

fn day<'a>(daily: &'a Value, date: &str) -> &'a Value {
    daily
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["date"] == date)
        .unwrap()
}

#[tokio::test]
async fn the_overview_has_daily_counts_totals_status_mix_cycle_time_and_top_links() {
    let app = spawn_ready_with(&[("ANALYTICS_ROLLUP_INTERVAL_SECS", "1")]).await;
    let tenant = Uuid::now_v7();
    let w = week(tenant);
    publish_all(&app, &w.events).await;

    let path = format!("/api/v1/analytics/overview?{RANGE}");
    // Rollups follow the counters by up to a job interval (a day written by several
    // batches is recomputed after the last).
    eventually("the rollups cover the week", || async {
        let o = app.get_json(tenant, &path).await;
        o["top_links"][0]["clicks"] == 3 && o["cycle_time"]["tasks"] == 1
    })
    .await;
    let o = app.get_json(tenant, &path).await;
    assert_eq!(
        o["totals"],
        json!({"tasks_created": 2, "tasks_completed": 1, "link_clicks": 3, "minutes_logged": 45})
    );
    assert_eq!(o["daily"].as_array().unwrap().len(), 7);
    assert_eq!(day(&o["daily"], "2026-11-03")["tasks_completed"], 1);
    assert_eq!(day(&o["daily"], "2026-11-04")["link_clicks"], 2);
    assert_eq!(day(&o["daily"], "2026-11-07")["tasks_created"], 0);
    assert_eq!(o["status_mix"]["open"], 1);
    assert_eq!(o["status_mix"]["done"], 1);
    assert_eq!(
        o["cycle_time"],
        json!({"average_minutes": 26.0 * 60.0, "tasks": 1})
    );
    assert_eq!(o["top_links"], json!([{"code": w.code, "clicks": 3}]));
    assert_eq!(
        o["top_referrers"],
        json!([{"host": "news.example", "clicks": 2}, {"host": "(direct)", "clicks": 1}])
    );
    app.cleanup().await;
}

#[tokio::test]
async fn link_stats_count_clicks_per_day_referrers_bots_and_unique_visitors() {
    let app = spawn_app().await;
    let tenant = Uuid::now_v7();
    let w = week(tenant);
    publish_all(&app, &w.events).await;

    let s = app
        .get_json(
            tenant,
            &format!("/api/v1/analytics/links/{}?{RANGE}", w.code),
        )
        .await;
    assert_eq!(
        (s["clicks"].as_i64(), s["unique_visitors"].as_i64()),
        (Some(3), Some(2))
    );
    assert_eq!(
        (s["browsers"].as_i64(), s["bots"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        day(&s["daily"], "2026-11-04"),
        &json!({"date": "2026-11-04", "clicks": 2, "unique_visitors": 1})
    );
    assert_eq!(
        s["referrers"][0],
        json!({"host": "news.example", "clicks": 2})
    );

    let unknown = app
        .get(
            &app.token(tenant, Role::Admin),
            "/api/v1/analytics/links/nosuchcode",
        )
        .await;
    expect_problem(unknown, 404).await;
    app.cleanup().await;
}

#[tokio::test]
async fn the_tasks_report_is_a_burn_up_per_project_and_per_assignee() {
    let app = spawn_app().await;
    let tenant = Uuid::now_v7();
    let w = week(tenant);
    publish_all(&app, &w.events).await;

    let b = app
        .get_json(
            tenant,
            "/api/v1/analytics/tasks?from=2026-11-03&to=2026-11-04",
        )
        .await;
    let project = &b["projects"][0];
    assert_eq!(project["project_id"], w.project.to_string());
    assert_eq!(
        project["daily"][0],
        json!({"date": "2026-11-03", "created": 1, "completed": 1,
                                           "total_created": 2, "total_completed": 1})
    );
    assert_eq!(project["daily"][1]["total_created"], 2);
    assert_eq!(b["assignees"][0]["assignee_id"], w.assignee.to_string());
    assert_eq!(b["assignees"][0]["daily"][1]["total_completed"], 1);
    app.cleanup().await;
}

#[tokio::test]
async fn tenant_a_never_sees_tenant_b_numbers_on_any_route() {
    let app = spawn_ready_with(&[("ANALYTICS_ROLLUP_INTERVAL_SECS", "1")]).await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let b_week = week(b);
    publish_all(&app, &b_week.events).await;
    let a_task = event(
        keys::TASK_CREATED,
        a,
        at(2, 8),
        json!({"project_id": Uuid::now_v7(), "task_id": Uuid::now_v7(), "status": Uuid::now_v7()}),
    );
    publish_all(&app, &[a_task]).await;
    // B's rollups exist, so a leak would show.
    eventually("B's rollups are computed", || async {
        app.get_json(b, &format!("/api/v1/analytics/overview?{RANGE}"))
            .await["top_links"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    })
    .await;

    let o = app
        .get_json(a, &format!("/api/v1/analytics/overview?{RANGE}"))
        .await;
    assert_eq!(
        o["totals"],
        json!({"tasks_created": 1, "tasks_completed": 0, "link_clicks": 0, "minutes_logged": 0})
    );
    assert_eq!(o["top_links"], json!([]));
    assert_eq!(o["top_referrers"], json!([]));
    assert_eq!(o["cycle_time"]["tasks"], 0);
    assert_eq!(o["status_mix"]["open"], 1);

    let token = app.token(a, Role::Owner);
    let link = app
        .get(
            &token,
            &format!("/api/v1/analytics/links/{}?{RANGE}", b_week.code),
        )
        .await;
    expect_problem(link, 404).await;

    let t = app
        .get_json(a, &format!("/api/v1/analytics/tasks?{RANGE}"))
        .await;
    assert!(!t.to_string().contains(&b_week.project.to_string()), "{t}");
    assert!(!t.to_string().contains(&b_week.assignee.to_string()), "{t}");

    let page = app
        .get(&token, &format!("/api/v1/analytics/dashboard?{RANGE}"))
        .await;
    let html = page.text().await.unwrap();
    assert!(
        !html.contains(&b_week.code),
        "B's link shows on A's dashboard"
    );
    // A parameter cannot choose the tenant.
    let sneaky = app
        .get(
            &token,
            &format!("/api/v1/analytics/overview?{RANGE}&tenant_id={b}"),
        )
        .await;
    expect_problem(sneaky, 400).await;
    app.cleanup().await;
}

#[tokio::test]
async fn every_report_needs_a_token_with_analytics_read() {
    let app = spawn_app().await;
    let tenant = Uuid::now_v7();
    let member = app.token(tenant, Role::Member);
    for path in [
        "/api/v1/analytics/overview",
        "/api/v1/analytics/links/abc",
        "/api/v1/analytics/tasks",
        "/api/v1/analytics/dashboard",
    ] {
        let anonymous = app
            .server
            .client
            .get(app.server.url(path))
            .send()
            .await
            .unwrap();
        expect_problem(anonymous, 401).await;
        expect_problem(app.get(&member, path).await, 403).await;
    }
    let manager = app
        .get(
            &app.token(tenant, Role::Manager),
            "/api/v1/analytics/overview",
        )
        .await;
    assert_eq!(manager.status(), 200);
    app.cleanup().await;
}

#[tokio::test]
async fn a_range_that_ends_before_it_starts_is_refused() {
    let app = spawn_app().await;
    let token = app.token(Uuid::now_v7(), Role::Admin);
    let resp = app
        .get(
            &token,
            "/api/v1/analytics/overview?from=2026-11-07&to=2026-11-01",
        )
        .await;
    let problem = expect_problem(resp, 400).await;
    assert_eq!(problem["errors"][0]["field"], "from");
    app.cleanup().await;
}

#[tokio::test]
async fn the_dashboard_is_html_with_inline_svg_charts_and_no_scripts() {
    let app = spawn_app().await;
    let tenant = Uuid::now_v7();
    publish_all(&app, &week(tenant).events).await;
    let resp = app
        .get(
            &app.token(tenant, Role::Admin),
            &format!("/api/v1/analytics/dashboard?{RANGE}"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = resp.text().await.unwrap();
    assert!(html.matches("<svg").count() >= 2, "{html}");
    assert!(
        html.contains("2026-11-04 clicks: 2"),
        "the chart shows the day's clicks"
    );
    assert!(
        !html.contains("<script") && !html.contains("src="),
        "nothing to run or fetch"
    );
    app.cleanup().await;
}
