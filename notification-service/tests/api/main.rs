//! notification-service on its own: its ops routes and readiness, and what its consumer
//! does with messages that tell nobody (unreadable ones are dead-lettered, events of a
//! tenant that does not resolve are dropped). Who is told of what runs end to end in
//! `e2e/tests/notifications.rs`.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use common::auth::SigningKey;
use common::events::{Broker, Envelope, Message, keys};
use common::testkit::{
    TestServer, amqp_url, assert_not_ready_because, assert_ops_routes,
    assert_stops_cleanly_on_sigterm, parse_config, unique,
};
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use uuid::Uuid;

struct TestApp {
    server: TestServer,
    _resolver: TestServer,
    broker: Broker,
    args: Vec<(&'static str, String)>,
}

/// A tenant-resolver that knows no tenant (404 for every database), and the JWKS.
async fn fake_resolver() -> TestServer {
    let key = SigningKey::generate("ns-test").expect("a key");
    let jwks = serde_json::to_value(SigningKey::jwks([&key]).expect("jwks")).expect("json");
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/internal/tenants/{id}/database",
            get(|| async { (StatusCode::NOT_FOUND, "no such tenant") }),
        )
        .route(
            "/.well-known/jwks.json",
            get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
    TestServer::router(router).await
}

async fn spawn_app(overrides: &[(&str, &str)]) -> TestApp {
    let resolver = fake_resolver().await;
    let exchange = unique("test.events");
    let args = vec![
        ("TENANT_RESOLVER_URL", resolver.base_url.clone()),
        ("JWKS_URL", resolver.url("/.well-known/jwks.json")),
        ("AMQP_URL", amqp_url()),
        ("EVENTS_EXCHANGE", exchange.clone()),
        ("NOTIFICATION_QUEUE", unique("test.notifications")),
        (
            "NOTIFICATION_DEAD_LETTER_QUEUE",
            unique("test.notifications.dead"),
        ),
    ];
    let config: notification_service::Config =
        parse_config(notification_service::NAME, &args, overrides);
    let server = TestServer::start(|listener, shutdown| {
        notification_service::run_until(config, listener, shutdown)
    })
    .await;
    let broker = Broker::new(secrecy::SecretString::from(amqp_url()), &exchange, "test");
    TestApp {
        server,
        _resolver: resolver,
        broker,
        args,
    }
}

fn arg(app: &TestApp, name: &str) -> String {
    app.args
        .iter()
        .rev()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.clone())
        .expect("a test argument")
}

/// How many messages wait in `queue`.
async fn depth(queue: &str) -> u32 {
    let connection =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("RabbitMQ answers");
    let channel = connection.create_channel().await.expect("a channel");
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("the queue exists");
    declared.message_count()
}

#[tokio::test]
async fn serves_health_readiness_metrics_and_openapi() {
    let app = spawn_app(&[]).await;
    app.server
        .wait_until("/readyz", Duration::from_secs(20))
        .await;
    assert_ops_routes(
        &app.server,
        notification_service::NAME,
        &["tenant-resolver", "rabbitmq", "consumer", "stream"],
    )
    .await;
    let doc: serde_json::Value = reqwest::get(app.server.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/notifications",
        "/api/v1/notifications/unread-count",
        "/api/v1/notifications/{id}/snooze",
        "/api/v1/notifications/subscriptions/tasks/{task_id}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
}

#[tokio::test]
async fn is_not_ready_while_rabbitmq_is_unreachable() {
    let app = spawn_app(&[("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")]).await;
    assert_not_ready_because(&app.server, "rabbitmq").await;
}

#[tokio::test]
async fn unreadable_messages_are_dead_lettered_and_unknown_tenants_dropped() {
    let app = spawn_app(&[]).await;
    app.server
        .wait_until("/readyz", Duration::from_secs(20))
        .await;
    let garbage = Message {
        id: Uuid::now_v7(),
        routing_key: keys::TASK_ASSIGNED.to_owned(),
        body: b"{not json".to_vec(),
        request_id: None,
        at: chrono::Utc::now(),
    };
    assert_eq!(
        app.broker.publish_messages(&[garbage]).await.unwrap(),
        [true]
    );
    let nobody = Envelope::new(
        keys::TASK_ASSIGNED,
        Uuid::now_v7(),
        Some(Uuid::now_v7()),
        serde_json::json!({"task_id": Uuid::now_v7(), "to": Uuid::now_v7()}),
    );
    assert_eq!(
        app.broker
            .publish_confirmed(&[(nobody, None)])
            .await
            .unwrap(),
        [true]
    );
    let (queue, dead) = (
        arg(&app, "NOTIFICATION_QUEUE"),
        arg(&app, "NOTIFICATION_DEAD_LETTER_QUEUE"),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while depth(&dead).await < 1 || depth(&queue).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue still holds {} and the dead letters {}",
            depth(&queue).await,
            depth(&dead).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Only the unreadable one is there: the unknown tenant's event was acked and dropped.
    assert_eq!(depth(&dead).await, 1);
    let connection =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let message = channel
        .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the dead letter");
    assert_eq!(message.delivery.data, b"{not json");
}

#[test]
fn stops_cleanly_on_sigterm() {
    assert_stops_cleanly_on_sigterm(
        env!("CARGO_BIN_EXE_notification-service"),
        &[
            ("AMQP_URL", amqp_url()),
            ("EVENTS_EXCHANGE", unique("test.events")),
            ("NOTIFICATION_QUEUE", unique("test.notifications")),
            (
                "NOTIFICATION_DEAD_LETTER_QUEUE",
                unique("test.notifications.dead"),
            ),
        ],
    );
}
