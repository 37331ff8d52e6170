//! The outbox relay publishes committed events with confirms, deletes only what the
//! broker confirmed, and keeps everything while the broker is away.

use std::time::Duration;

use common::events::outbox::{Relay, enqueue, enqueue_batch};
use common::events::{Broker, Envelope};
use common::testkit::{EventTap, TestDb, amqp_url, unique};
use lapin::types::AMQPValue;
use secrecy::SecretString;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

static MIGRATOR: Migrator = sqlx::migrate!("../migrations/registry");

/// A broker on a unique exchange, and a tap on everything published to it.
struct Bus {
    broker: Broker,
    tap: EventTap,
}

impl Bus {
    async fn new() -> Self {
        let broker = Broker::new(
            SecretString::from(amqp_url()),
            unique("test.events"),
            "test",
        );
        let tap = EventTap::new(broker.exchange(), "#").await;
        Self { broker, tap }
    }

    /// Waits (at most 10 s) for `n` messages.
    async fn receive(&self, n: usize) -> Vec<lapin::message::BasicGetMessage> {
        self.tap.receive(n, Duration::from_secs(10)).await
    }

    async fn delete(self) {
        self.tap.delete_exchange().await;
    }
}

fn event(n: u32) -> Envelope {
    Envelope::new(
        common::events::keys::TENANT_CREATED,
        Uuid::now_v7(),
        None,
        serde_json::json!({ "n": n }),
    )
}

async fn outbox_len(db: &TestDb) -> i64 {
    sqlx::query_scalar!(r#"select count(*) as "count!" from outbox"#)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn committed_events_are_published_persistent_and_then_deleted() {
    let db = TestDb::migrated(&MIGRATOR).await;
    let bus = Bus::new().await;
    let events: Vec<Envelope> = (0..3).map(event).collect();
    let mut tx = db.pool.begin().await.unwrap();
    for e in &events {
        enqueue(&mut *tx, e, Some("req-1")).await.unwrap();
    }
    tx.commit().await.unwrap();

    let published = Relay::new(db.pool.clone(), bus.broker.clone())
        .drain()
        .await
        .unwrap();

    assert_eq!(published, 3);
    assert_eq!(outbox_len(&db).await, 0);
    let messages = bus.receive(3).await;
    assert_eq!(messages.len(), 3);
    for (message, sent) in messages.iter().zip(&events) {
        let received: Envelope = serde_json::from_slice(&message.delivery.data).unwrap();
        assert_eq!(&received, sent, "in order, unchanged");
        let props = &message.delivery.properties;
        assert_eq!(
            props.message_id().as_ref().unwrap().as_str(),
            sent.id.to_string()
        );
        assert_eq!(*props.delivery_mode(), Some(2), "persistent");
        assert_eq!(message.delivery.routing_key.as_str(), "tenant.created");
        let headers = props.headers().as_ref().unwrap();
        assert!(matches!(
            headers.inner().get("x-request-id"),
            Some(AMQPValue::LongString(s)) if s.to_string() == "req-1"
        ));
    }
    bus.delete().await;
}

#[tokio::test]
async fn a_batch_is_one_message_carrying_each_event_with_its_own_id() {
    let db = TestDb::migrated(&MIGRATOR).await;
    let bus = Bus::new().await;
    let single = event(0);
    let batch: Vec<Envelope> = (1..=250).map(event).collect();
    let mut tx = db.pool.begin().await.unwrap();
    enqueue(&mut *tx, &single, None).await.unwrap();
    enqueue_batch(&mut *tx, &batch, Some("req-2"))
        .await
        .unwrap();
    enqueue_batch::<serde_json::Value>(&mut *tx, &[], None)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let published = Relay::new(db.pool.clone(), bus.broker.clone())
        .drain()
        .await
        .unwrap();

    assert_eq!(published, 2, "one message for the event, one for the batch");
    assert_eq!(outbox_len(&db).await, 0);
    let messages = bus.receive(2).await;
    assert_eq!(messages.len(), 2);
    assert!(bus.tap.receive(1, Duration::from_secs(1)).await.is_empty());
    let props = |i: usize| &messages[i].delivery.properties;
    assert_eq!(
        props(0).content_type().as_ref().unwrap().as_str(),
        common::events::EVENT_CONTENT_TYPE
    );
    assert_eq!(
        props(1).content_type().as_ref().unwrap().as_str(),
        common::events::BATCH_CONTENT_TYPE
    );
    assert_eq!(*props(1).delivery_mode(), Some(2), "persistent");
    assert_eq!(messages[1].delivery.routing_key.as_str(), "tenant.created");
    let batch_id = props(1).message_id().as_ref().unwrap().to_string();
    assert!(batch.iter().all(|e| e.id.to_string() != batch_id));
    assert_eq!(common::testkit::envelopes(&messages[0].delivery), [single]);
    assert_eq!(
        common::testkit::envelopes(&messages[1].delivery),
        batch,
        "every event, in order, unchanged"
    );
    bus.delete().await;
}

#[tokio::test]
async fn events_of_a_rolled_back_transaction_are_never_published() {
    let db = TestDb::migrated(&MIGRATOR).await;
    let bus = Bus::new().await;
    let mut tx = db.pool.begin().await.unwrap();
    enqueue(&mut *tx, &event(1), None).await.unwrap();
    tx.rollback().await.unwrap();

    let published = Relay::new(db.pool.clone(), bus.broker.clone())
        .drain()
        .await
        .unwrap();

    assert_eq!(published, 0);
    // The relay has returned, so anything it published is already routed to the queue.
    assert!(bus.tap.receive(1, Duration::from_secs(1)).await.is_empty());
    bus.delete().await;
}

#[tokio::test]
async fn while_the_broker_is_unreachable_events_wait_in_the_outbox() {
    let db = TestDb::migrated(&MIGRATOR).await;
    enqueue(&db.pool, &event(1), None).await.unwrap();
    let nowhere = Broker::new(
        SecretString::from("amqp://guest:guest@127.0.0.1:1/%2f".to_owned()),
        "unused",
        "test",
    );

    let result = Relay::new(db.pool.clone(), nowhere).drain().await;

    assert!(result.is_err());
    let row = sqlx::query!("select attempts, last_error from outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(row.attempts, 1);
    assert!(row.last_error.unwrap().contains("RabbitMQ"));

    let bus = Bus::new().await;
    let published = Relay::new(db.pool.clone(), bus.broker.clone())
        .drain()
        .await
        .unwrap();
    assert_eq!(published, 1, "delivered once the broker is back");
    assert_eq!(bus.receive(1).await.len(), 1);
    bus.delete().await;
}

#[tokio::test]
async fn a_running_relay_is_woken_by_the_commit_not_the_poll() {
    let db = TestDb::migrated(&MIGRATOR).await;
    let bus = Bus::new().await;
    let shutdown = CancellationToken::new();
    let relay =
        Relay::new(db.pool.clone(), bus.broker.clone()).poll_interval(Duration::from_secs(3600));
    let running = tokio::spawn(relay.run(shutdown.clone()));
    // Wait until the relay listens (a fixed sleep is too short on a busy machine, and a
    // notification sent before LISTEN is not delivered).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listening = sqlx::query_scalar!(
            r#"select count(*) as "count!" from pg_stat_activity
               where datname = current_database() and query ilike 'listen%'"#,
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if listening > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    enqueue(&db.pool, &event(7), None).await.unwrap();

    assert_eq!(
        bus.receive(1).await.len(),
        1,
        "published well before the hour-long poll"
    );
    // The row goes once the broker's confirm is back, which may come after the message
    // reached the queue: wait for it (bounded), well inside the hour-long poll.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while outbox_len(&db).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay did not delete what it published"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    running.await.unwrap();
    assert_eq!(outbox_len(&db).await, 0);
    bus.delete().await;
}
