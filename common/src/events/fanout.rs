//! A fanout beside the events exchange: a message published once reaches every running
//! instance of a service, each through its own exclusive, auto-deleted queue. For what
//! every replica must see now and nobody must replay (live-stream deliveries, cache
//! invalidations): messages are transient, and an instance that was not connected
//! misses them (the durable record is elsewhere, e.g. the tenant's database).

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};
use std::sync::Arc;
use tokio::sync::Mutex;

use super::Broker;

/// A fanout exchange named `<events exchange>.<name>`.
#[derive(Clone)]
pub struct Fanout {
    broker: Broker,
    exchange: String,
    /// The channel publishes go out on, opened (and the exchange declared) once.
    publishing: Arc<Mutex<Option<Channel>>>,
}

impl Fanout {
    pub fn new(broker: Broker, name: &str) -> Self {
        let exchange = format!("{}.{name}", broker.exchange());
        Self {
            broker,
            exchange,
            publishing: Arc::default(),
        }
    }

    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    async fn declare(&self, channel: &Channel) -> anyhow::Result<()> {
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("declaring the fanout {}", self.exchange))
    }

    /// Publishes `body` to every instance subscribed now.
    pub async fn publish(&self, body: &[u8]) -> anyhow::Result<()> {
        let mut publishing = self.publishing.lock().await;
        let channel = match publishing.as_ref() {
            Some(channel) if channel.status().connected() => channel.clone(),
            _ => {
                let channel = self.broker.channel().await?;
                self.declare(&channel).await?;
                publishing.insert(channel).clone()
            }
        };
        let published = channel
            .basic_publish(
                self.exchange.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_content_type("application/json".into()),
            )
            .await
            .context("publishing to the fanout");
        if published.is_err() {
            *publishing = None;
        }
        published.map(drop)
    }

    /// This instance's own queue on the fanout, and the bodies that arrive on it (the
    /// stream ends when the connection does; subscribe again then).
    pub async fn subscribe(
        &self,
    ) -> anyhow::Result<impl futures::Stream<Item = Vec<u8>> + Send + Unpin + use<>> {
        let channel = self.broker.channel().await?;
        self.declare(&channel).await?;
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .context("declaring this instance's fanout queue")?;
        channel
            .queue_bind(
                queue.name().clone(),
                self.exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("binding this instance's fanout queue")?;
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .context("consuming this instance's fanout queue")?;
        // The channel lives as long as the consumer that holds it.
        Ok(consumer.filter_map(|delivery| futures::future::ready(delivery.ok().map(|d| d.data))))
    }
}
