//! The queues a consuming service owns: a durable queue bound to the routing keys it
//! reads, whose rejected messages the broker moves to a dead-letter queue.

use anyhow::Context;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use super::Settings;

/// Declares (idempotently) the events exchange, the dead-letter exchange and queue (both
/// named by `dead_letter_queue`) and the events queue, bound to each of `bindings`.
pub async fn declare(channel: &Channel, exchange: &str, settings: &Settings) -> anyhow::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let dlq = settings.dead_letter_queue.as_str();
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .context("declaring the events exchange")?;
    channel
        .exchange_declare(
            dlq.into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .context("declaring the dead-letter exchange")?;
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(dlq.into(), durable_queue, FieldTable::default())
        .await
        .context("declaring the dead-letter queue")?;
    channel
        .queue_bind(
            dlq.into(),
            dlq.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("binding the dead-letter queue")?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dlq.into()),
    );
    let queue = settings.queue.as_str();
    channel
        .queue_declare(queue.into(), durable_queue, arguments)
        .await
        .context("declaring the events queue")?;
    for binding in &settings.bindings {
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                binding.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("binding the events queue to {binding}"))?;
    }
    Ok(())
}
