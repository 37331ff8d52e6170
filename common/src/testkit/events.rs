//! What a service publishes, seen through a private queue.

use std::time::Duration;

use super::{amqp_url, unique};

/// A private queue bound to an exchange, to see what a service publishes.
pub struct EventTap {
    _connection: lapin::Connection,
    channel: lapin::Channel,
    queue: String,
    exchange: String,
}

impl EventTap {
    /// Declares `exchange` (topic, durable, as the services do) and binds a private queue
    /// to it with `binding` (`#` for everything).
    pub async fn new(exchange: &str, binding: &str) -> Self {
        use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
        use lapin::types::FieldTable;
        let url = amqp_url();
        let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
            .await
            .unwrap_or_else(|err| panic!("RabbitMQ does not answer at {url}: {err}"));
        let channel = connection.create_channel().await.expect("channel");
        channel
            .exchange_declare(
                exchange.into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declaring the exchange");
        let queue = unique("test.tap");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declaring the tap queue");
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.into(),
                binding.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("binding the tap queue");
        Self {
            _connection: connection,
            channel,
            queue,
            exchange: exchange.to_owned(),
        }
    }

    /// Up to `n` messages, waiting at most `within` for them.
    pub async fn receive(
        &self,
        n: usize,
        within: Duration,
    ) -> Vec<lapin::message::BasicGetMessage> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while got.len() < n && tokio::time::Instant::now() < deadline {
            match self
                .channel
                .basic_get(
                    self.queue.as_str().into(),
                    lapin::options::BasicGetOptions { no_ack: true },
                )
                .await
                .expect("basic.get")
            {
                Some(message) => got.push(message),
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        got
    }

    /// Up to `n` events, waiting at most `within`: a batch message counts as the events
    /// it carries (all of them, so a batch may take the count past `n`).
    pub async fn receive_events(&self, n: usize, within: Duration) -> Vec<crate::events::Envelope> {
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while events.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(message) = self.receive(1, left).await.pop() else {
                break;
            };
            events.extend(envelopes(&message.delivery));
        }
        events
    }

    /// The next message's event (the first, if it is a batch), waiting at most 10 s.
    pub async fn next_event(&self) -> crate::events::Envelope {
        let message = self
            .receive(1, Duration::from_secs(10))
            .await
            .pop()
            .expect("no event arrived within 10 s");
        envelopes(&message.delivery).swap_remove(0)
    }

    /// Deletes the exchange (test exchanges are durable and would otherwise linger).
    pub async fn delete_exchange(self) {
        let _ = self
            .channel
            .exchange_delete(
                self.exchange.as_str().into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await;
    }
}

/// The envelopes a message carries: one, or a batch's (by its content type).
pub fn envelopes(delivery: &lapin::message::Delivery) -> Vec<crate::events::Envelope> {
    let batch = delivery
        .properties
        .content_type()
        .as_ref()
        .is_some_and(|t| t.as_str() == crate::events::BATCH_CONTENT_TYPE);
    if batch {
        let events: Vec<crate::events::Envelope> =
            serde_json::from_slice(&delivery.data).expect("a batch of event envelopes");
        assert!(!events.is_empty(), "an empty batch message");
        events
    } else {
        vec![serde_json::from_slice(&delivery.data).expect("an event envelope")]
    }
}
