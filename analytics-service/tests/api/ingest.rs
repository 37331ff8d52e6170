//! The consumer: idempotent by event id, ack only after the write, poison to the DLQ,
//! exact completions, counters repaired by the rollup job, reconnects after an outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::events::keys;
use common::testkit::{TcpRelay, amqp_url};
use mongodb::bson::{Document, doc};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{event, eventually, spawn_app, spawn_app_hooked, spawn_ready_with};

const DAY: &str = "2026-11-20";

fn at(hour: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, hour, 0, 0).unwrap()
}

fn task_created(tenant: Uuid, task: Uuid) -> common::events::Envelope {
    event(
        keys::TASK_CREATED,
        tenant,
        at(9),
        json!({"project_id": Uuid::now_v7(), "task_id": task, "number": 1,
               "status": Uuid::now_v7(), "priority": "medium", "assignee_id": null, "parent_id": null}),
    )
}

fn moved(
    tenant: Uuid,
    task: Uuid,
    hour: u32,
    done: bool,
    was_done: bool,
) -> common::events::Envelope {
    event(
        keys::TASK_STATUS_CHANGED,
        tenant,
        at(hour),
        json!({"task_id": task, "project_id": Uuid::now_v7(), "from": Uuid::now_v7(),
               "to": Uuid::now_v7(), "done": done, "was_done": was_done}),
    )
}

#[tokio::test]
async fn the_same_event_delivered_twice_is_counted_once() {
    let app = spawn_app().await;
    let tenant = Uuid::now_v7();
    let created = task_created(tenant, Uuid::now_v7());
    let click = click(tenant, "abc12345");
    app.publish(&created).await;
    app.publish(&click).await;
    app.publish(&created).await;
    app.publish(&click).await;
    let marker = task_created(tenant, Uuid::now_v7());
    app.publish(&marker).await;
    app.wait_stored(&[created.id, click.id, marker.id]).await;

    assert_eq!(
        app.counter(tenant, DAY, "tasks_created").await,
        2,
        "the duplicate is not counted"
    );
    assert_eq!(app.counter(tenant, DAY, "link_clicks").await, 1);
    let stored = app
        .mongo
        .collection::<Document>("events")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(stored, 3);
    app.cleanup().await;
}

fn click(tenant: Uuid, code: &str) -> common::events::Envelope {
    event(
        keys::URL_ACCESSED,
        tenant,
        at(10),
        json!({"code": code, "referrer_host": null, "agent_class": "browser", "visitor_hash": "v"}),
    )
}

#[tokio::test]
async fn a_batch_message_counts_each_of_its_events_once_and_a_bad_batch_is_dead_lettered_whole() {
    let app = spawn_app().await;
    let tenant = Uuid::now_v7();
    let clicks: Vec<_> = (0..300).map(|_| click(tenant, "abc12345")).collect();
    app.publish_raw(keys::URL_ACCESSED, &serde_json::to_vec(&clicks).unwrap())
        .await;
    // The same batch again, and one overlapping it: only the new events count.
    app.publish_raw(keys::URL_ACCESSED, &serde_json::to_vec(&clicks).unwrap())
        .await;
    let more = vec![clicks[0].clone(), click(tenant, "abc12345")];
    app.publish_raw(keys::URL_ACCESSED, &serde_json::to_vec(&more).unwrap())
        .await;
    let mut bad = vec![click(tenant, "abc12345"), click(tenant, "abc12345")];
    bad[1].data = json!({"agent_class": "browser"});
    let bad_body = serde_json::to_vec(&bad).unwrap();
    app.publish_raw(keys::URL_ACCESSED, &bad_body).await;
    let marker = task_created(tenant, Uuid::now_v7());
    app.publish(&marker).await;
    let mut expected: Vec<Uuid> = clicks.iter().map(|e| e.id).collect();
    expected.extend([more[1].id, marker.id]);
    app.wait_stored(&expected).await;

    assert_eq!(app.counter(tenant, DAY, "link_clicks").await, 301);
    let dead = app.dead_lettered(1).await;
    assert_eq!(dead, [bad_body], "the batch with a bad event, whole");
    assert!(
        !app.stored(bad[0].id).await,
        "nothing of a refused batch is stored"
    );
    let stored = app
        .mongo
        .collection::<Document>("events")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(stored, 302);
    app.cleanup().await;
}

#[tokio::test]
async fn an_event_redelivered_after_a_crash_between_write_and_ack_is_counted_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    // The first batch is written, then the channel closes before the ack, as a crash
    // would leave it; the broker redelivers it to the reconnected consumer.
    let app = spawn_app_hooked(
        &[],
        Arc::new(move || seen.fetch_add(1, Ordering::SeqCst) == 0),
    )
    .await;
    let tenant = Uuid::now_v7();
    let logged = event(
        keys::TASK_TIME_LOGGED,
        tenant,
        at(11),
        json!({"task_id": Uuid::now_v7(), "project_id": Uuid::now_v7(), "user_id": Uuid::now_v7(),
               "minutes": 30, "worked_on": DAY, "work_log_id": Uuid::now_v7()}),
    );
    app.publish(&logged).await;

    eventually("the batch is written again after the crash", || {
        let calls = Arc::clone(&calls);
        async move { calls.load(Ordering::SeqCst) >= 2 }
    })
    .await;
    app.server.stop();
    eventually("the consumer is gone", || async {
        app.queue_state().await.1 == 0
    })
    .await;
    assert_eq!(
        app.queue_state().await.0,
        0,
        "the redelivered message was acked, not requeued"
    );
    assert_eq!(app.counter(tenant, DAY, "minutes_logged").await, 30);
    app.cleanup().await;
}

#[tokio::test]
async fn a_poison_message_lands_in_the_dlq_while_the_valid_events_behind_it_are_stored() {
    let app = spawn_app().await;
    let tenant = Uuid::now_v7();
    app.publish_raw("task.created", b"{not json at all").await;
    let invalid = event(
        keys::TASK_TIME_LOGGED,
        tenant,
        at(12),
        json!({"task_id": Uuid::now_v7(), "minutes": "lots"}),
    );
    app.publish(&invalid).await;
    let valid: Vec<_> = (0..5)
        .map(|_| task_created(tenant, Uuid::now_v7()))
        .collect();
    for e in &valid {
        app.publish(e).await;
    }
    app.wait_stored(&valid.iter().map(|e| e.id).collect::<Vec<_>>())
        .await;

    let dead = app.dead_lettered(2).await;
    assert_eq!(dead.len(), 2, "both poison messages are dead-lettered");
    assert_eq!(dead[0], b"{not json at all");
    assert!(!app.stored(invalid.id).await);
    assert_eq!(app.counter(tenant, DAY, "tasks_created").await, 5);
    assert_eq!(app.counter(tenant, DAY, "minutes_logged").await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn a_task_completed_reopened_and_completed_again_the_same_day_counts_once() {
    let app = spawn_app().await;
    let (tenant, task) = (Uuid::now_v7(), Uuid::now_v7());
    let events = [
        task_created(tenant, task),
        moved(tenant, task, 10, true, false),
        moved(tenant, task, 11, false, true),
        moved(tenant, task, 12, true, false),
        // Between two done columns: not a completion.
        moved(tenant, task, 13, true, true),
    ];
    for e in &events {
        app.publish(e).await;
    }
    app.wait_stored(&events.iter().map(|e| e.id).collect::<Vec<_>>())
        .await;
    assert_eq!(app.counter(tenant, DAY, "tasks_completed").await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn the_rollup_job_repairs_a_counter_left_wrong() {
    let app = spawn_ready_with(&[("ANALYTICS_ROLLUP_INTERVAL_SECS", "1")]).await;
    let tenant = Uuid::now_v7();
    let first = task_created(tenant, Uuid::now_v7());
    app.publish(&first).await;
    app.wait_stored(&[first.id]).await;
    // As if a crash had struck between the insert and the `$inc`, or worse.
    app.mongo
        .collection::<Document>("counters")
        .update_one(
            doc! {"tenant_id": tenant.to_string(), "day": DAY, "metric": "tasks_created"},
            doc! {"$set": {"value": 99_i64}},
        )
        .await
        .unwrap();
    let second = task_created(tenant, Uuid::now_v7());
    app.publish(&second).await;
    eventually("the counter is recomputed from the raw events", || async {
        app.counter(tenant, DAY, "tasks_created").await == 2
    })
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn after_a_broker_outage_the_consumer_reconnects_and_readyz_tells_meanwhile() {
    let target = url_addr(&amqp_url());
    let relay = TcpRelay::to(target).await;
    let via_relay = amqp_url()
        .replace(&target.to_string(), &relay.addr.to_string())
        .replace(
            &format!("localhost:{}", target.port()),
            &relay.addr.to_string(),
        );
    let app = spawn_ready_with(&[("AMQP_URL", &via_relay)]).await;

    relay.cut();
    eventually("readyz reports the consumer down", || async {
        let report: serde_json::Value = app
            .server
            .client
            .get(app.server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        report["checks"]["consumer"] == "down"
    })
    .await;
    relay.restore();
    app.server
        .wait_until("/readyz", Duration::from_secs(30))
        .await;
    let tenant = Uuid::now_v7();
    let after = task_created(tenant, Uuid::now_v7());
    app.publish(&after).await;
    app.wait_stored(&[after.id]).await;
    assert_eq!(app.counter(tenant, DAY, "tasks_created").await, 1);
    app.cleanup().await;
}

fn url_addr(url: &str) -> std::net::SocketAddr {
    let rest = url.split("@").last().unwrap_or(url);
    let host_port = rest.split('/').next().unwrap();
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port.parse().expect("AMQP URL with host:port")
}
