//! One RabbitMQ connection per service, opened lazily and reopened when it drops, with a
//! confirm-mode channel for publishing.

use std::sync::Arc;

use anyhow::{Context, bail};
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::{BATCH_CONTENT_TYPE, EVENT_CONTENT_TYPE, Envelope};

/// One message for the events exchange, already encoded.
#[derive(Debug, Clone)]
pub struct Message {
    /// The event's id, or the batch's (its `message_id`).
    pub id: uuid::Uuid,
    pub routing_key: String,
    /// An envelope, or a JSON array of envelopes.
    pub body: Vec<u8>,
    pub request_id: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Message {
    /// A body that opens with `[` is a batch (the envelope itself is an object).
    pub fn is_batch(&self) -> bool {
        self.body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'[')
    }

    fn content_type(&self) -> &'static str {
        if self.is_batch() {
            BATCH_CONTENT_TYPE
        } else {
            EVENT_CONTENT_TYPE
        }
    }
}

/// A handle on the broker, cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    url: SecretString,
    exchange: String,
    name: String,
    link: Mutex<Option<Link>>,
}

struct Link {
    connection: Connection,
    publish: Channel,
}

impl Broker {
    /// Does not connect yet: the first use (or readiness probe) does, so a service can
    /// start while the broker is still coming up.
    pub fn new(url: SecretString, exchange: impl Into<String>, connection_name: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                url,
                exchange: exchange.into(),
                name: connection_name.to_owned(),
                link: Mutex::new(None),
            }),
        }
    }

    pub fn exchange(&self) -> &str {
        &self.inner.exchange
    }

    /// Opens the connection if it is not open.
    pub async fn ensure_connected(&self) -> anyhow::Result<()> {
        self.publish_channel().await.map(drop)
    }

    /// A new channel on the shared connection (consumers own theirs).
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        self.ensure_connected().await?;
        let link = self.inner.link.lock().await;
        let link = link.as_ref().context("broker connection lost")?;
        link.connection
            .create_channel()
            .await
            .context("opening channel")
    }

    async fn publish_channel(&self) -> anyhow::Result<Channel> {
        let mut link = self.inner.link.lock().await;
        if let Some(l) = link.as_ref()
            && l.connection.status().connected()
            && l.publish.status().connected()
        {
            return Ok(l.publish.clone());
        }
        let fresh = self.connect().await?;
        let channel = fresh.publish.clone();
        *link = Some(fresh);
        Ok(channel)
    }

    async fn connect(&self) -> anyhow::Result<Link> {
        let props =
            ConnectionProperties::default().with_connection_name(self.inner.name.clone().into());
        let connection = Connection::connect(self.inner.url.expose_secret(), props)
            .await
            .context("connecting to RabbitMQ")?;
        let publish = connection
            .create_channel()
            .await
            .context("opening channel")?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("enabling publisher confirms")?;
        publish
            .exchange_declare(
                self.inner.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .context("declaring the events exchange")?;
        tracing::info!(exchange = self.inner.exchange, "connected to RabbitMQ");
        Ok(Link {
            connection,
            publish,
        })
    }

    /// Publishes persistent events and waits until the broker has confirmed each one.
    /// Returns, in order, whether each was confirmed; an event that was not is safe to
    /// publish again (consumers deduplicate by event id).
    pub async fn publish_confirmed(
        &self,
        events: &[(Envelope, Option<String>)],
    ) -> anyhow::Result<Vec<bool>> {
        let messages = events
            .iter()
            .map(|(event, request_id)| {
                Ok(Message {
                    id: event.id,
                    routing_key: event.routing_key().to_owned(),
                    body: serde_json::to_vec(event).context("encoding event")?,
                    request_id: request_id.clone(),
                    at: event.occurred_at,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.publish_messages(&messages).await
    }

    /// Publishes encoded messages (one envelope, or a JSON array of them) persistently
    /// and waits for each one's confirm; returns, in order, whether each was confirmed.
    pub async fn publish_messages(&self, messages: &[Message]) -> anyhow::Result<Vec<bool>> {
        let channel = self.publish_channel().await?;
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            let mut headers = FieldTable::default();
            if let Some(id) = &message.request_id {
                headers.insert(
                    "x-request-id".into(),
                    AMQPValue::LongString(id.as_str().into()),
                );
            }
            let properties = BasicProperties::default()
                .with_message_id(message.id.to_string().into())
                .with_type(message.routing_key.as_str().into())
                .with_content_type(message.content_type().into())
                .with_delivery_mode(2)
                .with_timestamp(u64::try_from(message.at.timestamp()).unwrap_or_default())
                .with_headers(headers);
            let confirm = channel
                .basic_publish(
                    self.inner.exchange.as_str().into(),
                    message.routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    &message.body,
                    properties,
                )
                .await;
            pending.push(confirm);
        }
        let mut confirmed = Vec::with_capacity(pending.len());
        for confirm in pending {
            let ok = match confirm {
                Ok(confirm) => matches!(confirm.await, Ok(Confirmation::Ack(_))),
                Err(err) => {
                    tracing::warn!(%err, "publish failed");
                    false
                }
            };
            confirmed.push(ok);
        }
        if confirmed.iter().all(|ok| !ok) && !confirmed.is_empty() {
            // Most likely the connection broke: drop it so the next call reconnects.
            *self.inner.link.lock().await = None;
            bail!("the broker confirmed none of {} messages", confirmed.len());
        }
        Ok(confirmed)
    }
}
