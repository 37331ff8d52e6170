//! Starts analytics-service in-process on port 0 with its own MongoDB database, a unique
//! exchange, queue and dead-letter queue on the test broker, and a small real HTTP server
//! serving the JWKS its tokens are checked against.

use std::future::Future;
use std::time::Duration;

use analytics_service::{Config, NAME};
use axum::Router;
use axum::routing::get;
use chrono::{DateTime, Utc};
use common::auth::{Claims, Role, SigningKey};
use common::events::Envelope;
use common::events::consumer::AfterWrite;
use common::testkit::{TestServer, amqp_url, mongo_database, mongodb_url, parse_config, unique};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use mongodb::bson::{Document, doc};
use serde_json::Value;
use uuid::Uuid;

pub struct TestApp {
    pub server: TestServer,
    pub mongo: mongodb::Database,
    pub exchange: String,
    pub queue: String,
    pub dead_letters: String,
    key: SigningKey,
    _jwks: TestServer,
    channel: lapin::Channel,
    _connection: Connection,
}

pub fn test_args(database: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MONGODB_URL", mongodb_url()),
        ("MONGODB_DATABASE", database.to_owned()),
        ("AMQP_URL", amqp_url()),
        ("EVENTS_EXCHANGE", unique("test.events")),
        ("ANALYTICS_QUEUE", unique("test.analytics")),
        ("ANALYTICS_DEAD_LETTER_QUEUE", unique("test.analytics.dead")),
        ("ANALYTICS_FLUSH_INTERVAL_MS", "20".to_owned()),
        // Counters must prove themselves: the repairing job stays out of the way unless
        // a test asks for it.
        ("ANALYTICS_ROLLUP_INTERVAL_SECS", "3600".to_owned()),
    ]
}

/// A ready app (the consumer is subscribed).
pub async fn spawn_app() -> TestApp {
    spawn(&[], None, true).await
}

pub async fn spawn_app_with(overrides: &[(&'static str, &str)]) -> TestApp {
    spawn(overrides, None, false).await
}

/// A ready app whose consumer calls `hook` between each write and its ack.
pub async fn spawn_app_hooked(overrides: &[(&'static str, &str)], hook: AfterWrite) -> TestApp {
    spawn(overrides, Some(hook), true).await
}

pub async fn spawn_ready_with(overrides: &[(&'static str, &str)]) -> TestApp {
    spawn(overrides, None, true).await
}

async fn spawn(
    overrides: &[(&'static str, &str)],
    hook: Option<AfterWrite>,
    ready: bool,
) -> TestApp {
    let mongo = mongo_database().await;
    let key = SigningKey::generate("analytics-test").unwrap();
    let jwks = serde_json::to_value(SigningKey::jwks([&key]).unwrap()).unwrap();
    let jwks = TestServer::router(Router::new().route(
        "/.well-known/jwks.json",
        get(move || async move { axum::Json(jwks.clone()) }),
    ))
    .await;
    let mut args = test_args(mongo.name());
    args.push(("JWKS_URL", jwks.url("/.well-known/jwks.json")));
    let config: Config = parse_config(NAME, &args, overrides);
    let (exchange, queue, dead_letters) = (
        config.amqp.events_exchange.clone(),
        config.queue.clone(),
        config.dead_letter_queue.clone(),
    );
    let server = TestServer::start(|listener, shutdown| {
        analytics_service::run_with(config, listener, shutdown, hook)
    })
    .await;
    if ready {
        server.wait_until("/readyz", Duration::from_secs(30)).await;
    }
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("RabbitMQ answers");
    let channel = connection.create_channel().await.expect("channel");
    TestApp {
        server,
        mongo,
        exchange,
        queue,
        dead_letters,
        key,
        _jwks: jwks,
        channel,
        _connection: connection,
    }
}

/// An event of `kind` for `tenant` that happened at `at`.
pub fn event(kind: &str, tenant: Uuid, at: DateTime<Utc>, data: Value) -> Envelope {
    let mut e = Envelope::new(kind, tenant, Some(Uuid::now_v7()), data);
    e.occurred_at = at;
    e
}

impl TestApp {
    /// Publishes `event` as the services do (persistent, JSON, routing key = type).
    pub async fn publish(&self, event: &Envelope) {
        self.publish_raw(&event.kind, &serde_json::to_vec(event).unwrap())
            .await;
    }

    pub async fn publish_raw(&self, routing_key: &str, body: &[u8]) {
        self.channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("publish confirm");
    }

    /// A bearer token of a `role` user of `tenant`.
    pub fn token(&self, tenant: Uuid, role: Role) -> String {
        self.key
            .sign(&Claims::new(Uuid::now_v7(), tenant, "acme", role))
            .unwrap()
    }

    /// `GET path` as `tenant`'s admin, expecting 200 JSON.
    pub async fn get_json(&self, tenant: Uuid, path: &str) -> Value {
        let resp = self.get(&self.token(tenant, Role::Admin), path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.expect("JSON")
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.server
            .client
            .get(self.server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Whether the event with `id` is stored.
    pub async fn stored(&self, id: Uuid) -> bool {
        self.mongo
            .collection::<Document>("events")
            .find_one(doc! { "_id": id.to_string() })
            .await
            .expect("reading events")
            .is_some()
    }

    /// Waits (at most 15 s) until every event of `ids` is stored.
    pub async fn wait_stored(&self, ids: &[Uuid]) {
        for id in ids {
            eventually(&format!("event {id} stored"), || self.stored(*id)).await;
        }
    }

    /// The counter of `metric` for `tenant` on `day` (0 when absent).
    pub async fn counter(&self, tenant: Uuid, day: &str, metric: &str) -> i64 {
        self.mongo
            .collection::<Document>("counters")
            .find_one(doc! { "tenant_id": tenant.to_string(), "day": day, "metric": metric })
            .await
            .expect("reading counters")
            .and_then(|d| {
                d.get_i64("value")
                    .ok()
                    .or(d.get_i32("value").ok().map(i64::from))
            })
            .unwrap_or(0)
    }

    /// Up to `n` messages from the dead-letter queue, waiting at most 10 s.
    pub async fn dead_lettered(&self, n: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got.len() < n && tokio::time::Instant::now() < deadline {
            match self
                .channel
                .basic_get(
                    self.dead_letters.as_str().into(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .expect("basic.get")
            {
                Some(message) => got.push(message.delivery.data.clone()),
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        got
    }

    /// (messages ready, consumers) of the events queue.
    pub async fn queue_state(&self) -> (u32, u32) {
        let queue = self
            .channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("the events queue exists");
        (queue.message_count(), queue.consumer_count())
    }

    /// Stops the service and removes its queues, exchanges and database.
    pub async fn cleanup(self) {
        self.server.stop();
        tokio::time::sleep(Duration::from_millis(100)).await;
        for queue in [&self.queue, &self.dead_letters] {
            let _ = self
                .channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for exchange in [&self.exchange, &self.dead_letters] {
            let _ = self
                .channel
                .exchange_delete(exchange.as_str().into(), Default::default())
                .await;
        }
        let _ = self.mongo.drop().await;
    }
}

/// Polls `check` until it holds, failing after 15 s with `what`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
