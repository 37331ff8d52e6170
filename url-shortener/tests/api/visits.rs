//! Visits: counted in batches, each one a `url.accessed` event, none lost.

use std::collections::HashSet;
use std::time::Duration;

use common::auth::Role;
use common::testkit::{EventTap, TcpRelay, counter_total};
use serde_json::json;

use crate::helpers::{TestApp, eventually, spawn_app, spawn_app_with};

/// `visit_event_messages_total` of `via` ("broker" or "outbox") as `/metrics` shows it.
async fn messages_via(app: &TestApp, via: &str) -> u64 {
    counter_total(
        &app.server.metrics().await,
        "visit_event_messages_total",
        &[("via", via)],
    )
}

/// `url.accessed` messages waiting in the outbox.
async fn outboxed(app: &TestApp) -> i64 {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from outbox where routing_key = 'url.accessed'"#
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_thousand_opens_make_exactly_a_thousand_url_accessed_events() {
    let app = spawn_app().await;
    let tap = app.tap("url.accessed").await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({})).await;
    let code = link["code"].as_str().unwrap().to_owned();

    for chunk in 0..20 {
        let opens = (0..50).map(|i| {
            let (app, code) = (&app, &code);
            async move { app.open(code, &format!("10.0.{chunk}.{i}")).await.status() }
        });
        for status in futures::future::join_all(opens).await {
            assert_eq!(status, 302);
        }
    }

    let events = tap.receive_events(1000, Duration::from_secs(60)).await;
    assert_eq!(events.len(), 1000);
    assert!(
        tap.receive_events(1, Duration::from_secs(1))
            .await
            .is_empty(),
        "more than 1000 events"
    );
    let mut ids = HashSet::new();
    for event in &events {
        assert_eq!(event.kind, "url.accessed");
        assert_eq!(event.tenant_id, user.tenant);
        assert_eq!(event.data["code"], code.as_str());
        assert_eq!(event.data["agent_class"], "browser");
        assert!(ids.insert(event.id), "duplicate event {}", event.id);
    }
    assert_eq!(app.visits_written(&code).await, 1000);
    // With the broker up, every batch went to it directly, none through the outbox.
    assert!(messages_via(&app, "broker").await >= 1);
    assert_eq!(messages_via(&app, "outbox").await, 0);
    tap.delete_exchange().await;
}

#[tokio::test]
async fn a_visit_event_carries_referrer_host_agent_class_and_a_hash_but_no_address() {
    let app = spawn_app().await;
    let tap = app.tap("url.accessed").await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({})).await;
    let code = link["code"].as_str().unwrap();

    let resp = app
        .client
        .get(app.server.url(&format!("/s/{code}")))
        .header("x-forwarded-for", "203.0.113.77, 10.0.0.1")
        .header("user-agent", "Slackbot-LinkExpanding 1.0")
        .header("referer", "https://chat.example.com/archives/C1?thread=9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);

    let event = tap.next_event().await;
    assert_eq!(event.data["referrer_host"], "chat.example.com");
    assert_eq!(event.data["agent_class"], "bot");
    let hash = event.data["visitor_hash"].as_str().unwrap();
    assert_eq!(hash.len(), 16);
    let raw = serde_json::to_string(&event).unwrap();
    assert!(
        !raw.contains("203.0.113.77") && !raw.contains("thread=9"),
        "{raw}"
    );
    tap.delete_exchange().await;
}

#[tokio::test]
async fn visits_made_while_the_broker_is_down_are_published_when_it_returns() {
    let relay = TcpRelay::to("127.0.0.1:5672".parse().unwrap()).await;
    let amqp = format!("amqp://guest:guest@{}/%2f", relay.addr);
    let app = spawn_app_with(&[("AMQP_URL", &amqp)]).await;
    let tap = EventTap::new(&app.exchange, "url.accessed").await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({})).await;
    let code = link["code"].as_str().unwrap();
    relay.cut();

    for i in 0..10 {
        assert_eq!(app.open(code, &format!("10.9.0.{i}")).await.status(), 302);
    }
    let written = eventually(Duration::from_secs(10), || async {
        app.visits_written(code).await == 10
    })
    .await;
    assert!(written, "visits are counted while the broker is down");
    assert!(outboxed(&app).await >= 1, "the events wait in the outbox");
    assert_eq!(messages_via(&app, "broker").await, 0);
    relay.restore();

    let events = tap.receive_events(10, Duration::from_secs(30)).await;
    assert_eq!(events.len(), 10);
    let ids: HashSet<_> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 10, "each visit's event once");
    let drained = eventually(Duration::from_secs(10), || async {
        outboxed(&app).await == 0
    })
    .await;
    assert!(drained, "the relay deleted what it published");
    tap.delete_exchange().await;
}

#[tokio::test]
async fn pending_visits_are_written_on_shutdown() {
    let app = spawn_app_with(&[("VISIT_FLUSH_INTERVAL_MS", "60000")]).await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({})).await;
    let code = link["code"].as_str().unwrap();
    for i in 0..3 {
        assert_eq!(app.open(code, &format!("10.8.0.{i}")).await.status(), 302);
    }

    app.server.stop();

    let written = eventually(Duration::from_secs(20), || async {
        app.visits_written(code).await == 3
    })
    .await;
    assert!(
        written,
        "the 3 visits were not written before the process stopped"
    );
}

#[tokio::test]
async fn a_broker_that_never_answers_does_not_hold_up_the_counts() {
    // Accepts connections and never says a word: the flusher's publish times out.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let amqp = format!("amqp://guest:guest@{}/%2f", silent.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let app = spawn_app_with(&[("AMQP_URL", &amqp)]).await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({})).await;
    let code = link["code"].as_str().unwrap();

    for i in 0..5 {
        assert_eq!(app.open(code, &format!("10.7.0.{i}")).await.status(), 302);
    }
    let written = eventually(Duration::from_secs(15), || async {
        app.visits_written(code).await == 5
    })
    .await;
    assert!(written, "visits are counted although the broker hangs");
    assert!(outboxed(&app).await >= 1, "their events wait in the outbox");
    assert_eq!(messages_via(&app, "broker").await, 0);
}
