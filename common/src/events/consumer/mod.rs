//! The events consumer every consuming service runs (analytics-service,
//! notification-service): batches deliveries from the service's own durable queue,
//! writes them through a [`Sink`] and acks only after the write. A delivery is one event or a batch message of several (each counted
//! and deduplicated by its own id). Messages that cannot be parsed or validated are
//! rejected at once (the broker dead-letters them); events MongoDB refuses are retried
//! alone and their message dead-lettered after `max_attempts`; while MongoDB is unreachable the batch is held
//! (unacked) and retried with backoff; when the broker goes away the consumer
//! reconnects with backoff. Neither kind of poison stalls the events behind it.

pub mod topology;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::events::Broker;
use anyhow::{Context, bail};
use chrono::Utc;
use futures::StreamExt;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

use super::Envelope;

/// An event as a consumer accepts it: parsed and checked from a message body (one
/// envelope, or a batch of them), so nothing after the edge has to check again.
pub trait Consumable: Clone + Send + Sync + 'static {
    /// The events of one message body; `Err` (why) dead-letters the message.
    fn parse_message(body: &[u8]) -> Result<Vec<Self>, String>;

    fn envelope(&self) -> &Envelope;
}

/// Where a batch of valid events goes (a store, or nothing for a benchmark baseline).
pub trait Sink: Send + Sync + 'static {
    type Event: Consumable;

    /// Writes `events`. `Err` means nothing can be assumed (retry the whole batch).
    fn write(&self, events: &[Self::Event])
    -> impl Future<Output = anyhow::Result<Written>> + Send;
}

/// What a write did.
#[derive(Debug, Default)]
pub struct Written {
    pub inserted: usize,
    pub duplicates: usize,
    /// Indexes of the events the store refused (not duplicates): retried, then dead-lettered.
    pub refused: Vec<usize>,
}

/// Accepts everything and stores nothing: the consumer's own cost, for the benchmarks.
pub struct NullSink<E>(std::marker::PhantomData<fn() -> E>);

impl<E> Default for NullSink<E> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<E: Consumable> Sink for NullSink<E> {
    type Event = E;

    async fn write(&self, events: &[E]) -> anyhow::Result<Written> {
        Ok(Written {
            inserted: events.len(),
            ..Written::default()
        })
    }
}

/// The consumer's settings (from its service's configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    pub queue: String,
    pub dead_letter_queue: String,
    /// Routing keys the queue is bound to (`#` for every event).
    pub bindings: Vec<String>,
    pub prefetch: u16,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub max_attempts: u32,
}

/// Whether the consumer is subscribed right now (a `/readyz` check).
#[derive(Clone, Default)]
pub struct Status(Arc<AtomicBool>);

impl Status {
    pub fn consuming(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self, consuming: bool) {
        self.0.store(consuming, Ordering::SeqCst);
    }
}

/// Called after a batch is written and before it is acked; returning `true` closes the
/// channel there, as a crash would (tests use it to prove redelivery is harmless).
pub type AfterWrite = Arc<dyn Fn() -> bool + Send + Sync>;

const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct Consumer<S> {
    pub broker: Broker,
    pub settings: Settings,
    pub sink: S,
    pub status: Status,
    pub after_write: Option<AfterWrite>,
    pub service: &'static str,
}

impl<S: Sink> Consumer<S> {
    /// Consumes until `shutdown`, reconnecting with backoff whenever the session ends.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.session(&shutdown, &mut backoff).await {
                Ok(()) => break,
                Err(err) => {
                    self.status.set(false);
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "events consumer stopped; reconnecting"
                    );
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.status.set(false);
    }

    async fn session(
        &self,
        shutdown: &CancellationToken,
        backoff: &mut Duration,
    ) -> anyhow::Result<()> {
        let channel = self.broker.channel().await?;
        topology::declare(&channel, self.broker.exchange(), &self.settings).await?;
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await
            .context("setting prefetch")?;
        let mut deliveries = channel
            .basic_consume(
                self.settings.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("subscribing to the events queue")?;
        self.status.set(true);
        *backoff = Duration::from_millis(100);
        tracing::info!(queue = self.settings.queue, "consuming events");
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = channel.close(200, "shutting down".into()).await;
                    return Ok(());
                }
                next = deliveries.next() => next,
            };
            let mut batch = vec![first.context("the broker ended the subscription")??];
            let deadline = tokio::time::Instant::now() + self.settings.flush_interval;
            while batch.len() < self.settings.batch_size {
                match tokio::time::timeout_at(deadline, deliveries.next()).await {
                    Ok(Some(delivery)) => batch.push(delivery?),
                    Ok(None) => bail!("the broker ended the subscription"),
                    Err(_) => break,
                }
            }
            self.handle(&channel, batch, shutdown).await?;
        }
    }

    /// Rejects what is invalid, writes the rest, dead-letters what the store keeps
    /// refusing, then acks the batch.
    async fn handle(
        &self,
        channel: &Channel,
        batch: Vec<Delivery>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let service = self.service;
        let started = Instant::now();
        // A delivery may carry several events (a batch message): `owner[i]` is the index
        // in `tags` of the delivery event `i` came in.
        let mut events = Vec::with_capacity(batch.len());
        let mut owner = Vec::with_capacity(batch.len());
        let mut tags = Vec::with_capacity(batch.len());
        for delivery in batch {
            match S::Event::parse_message(&delivery.data) {
                Ok(parsed) => {
                    owner.extend(std::iter::repeat_n(tags.len(), parsed.len()));
                    events.extend(parsed);
                    tags.push(delivery.delivery_tag);
                }
                Err(why) => {
                    tracing::warn!(%why, routing_key = %delivery.routing_key, "dead-lettering an invalid message");
                    self.dead_letter(channel, delivery.delivery_tag).await?;
                }
            }
        }
        metrics::counter!("events_consumed_total", "service" => service)
            .increment(events.len() as u64);
        if events.is_empty() {
            return Ok(());
        }
        let written = self.write_holding(channel, &events, shutdown).await?;
        let (mut inserted, mut duplicates) = (written.inserted, written.duplicates);
        let mut refused = written.refused;
        let mut attempt = 1;
        while !refused.is_empty() && attempt < self.settings.max_attempts {
            tokio::time::sleep(Duration::from_millis(50) * attempt).await;
            let again: Vec<S::Event> = refused.iter().map(|&i| events[i].clone()).collect();
            let retry = self.write_holding(channel, &again, shutdown).await?;
            inserted += retry.inserted;
            duplicates += retry.duplicates;
            refused = retry.refused.iter().map(|&j| refused[j]).collect();
            attempt += 1;
        }
        // A message is dead-lettered whole when the store keeps refusing any of its
        // events; the ones it did store are duplicates if the message is ever replayed.
        let mut poisoned: Vec<usize> = refused.iter().map(|&i| owner[i]).collect();
        poisoned.sort_unstable();
        poisoned.dedup();
        for &i in &refused {
            tracing::warn!(event_id = %events[i].envelope().id, attempts = attempt,
                "the store keeps refusing an event; dead-lettering its message");
        }
        for &d in &poisoned {
            self.dead_letter(channel, tags[d]).await?;
        }
        metrics::counter!("events_stored_total", "service" => service).increment(inserted as u64);
        metrics::counter!("events_duplicates_total", "service" => service)
            .increment(duplicates as u64);
        let now = Utc::now();
        let lag = metrics::histogram!("event_lag_seconds", "service" => service);
        for event in &events {
            lag.record(
                (now - event.envelope().occurred_at)
                    .as_seconds_f64()
                    .max(0.0),
            );
        }
        if let Some(hook) = &self.after_write
            && hook()
        {
            let _ = channel.close(200, "crashed after the write".into()).await;
            bail!("after-write hook: stopped before the ack");
        }
        // Every earlier delivery on this channel is settled (acked, or rejected just now),
        // so one ack of the highest stored tag covers the rest of the batch.
        let stored = tags
            .iter()
            .enumerate()
            .filter(|(d, _)| !poisoned.contains(d))
            .map(|(_, tag)| *tag)
            .max();
        if let Some(tag) = stored {
            channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await
                .context("acking a batch")?;
        }
        metrics::histogram!("events_batch_duration_seconds", "service" => service)
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    async fn dead_letter(&self, channel: &Channel, tag: u64) -> anyhow::Result<()> {
        channel
            .basic_nack(
                tag,
                BasicNackOptions {
                    multiple: false,
                    requeue: false,
                },
            )
            .await
            .context("rejecting a message")?;
        metrics::counter!("events_dead_lettered_total", "service" => self.service).increment(1);
        Ok(())
    }

    /// Writes, holding the (unacked) batch and retrying with backoff while the store is
    /// unreachable; gives up only on shutdown or when the channel is gone (the broker
    /// then redelivers the batch).
    async fn write_holding(
        &self,
        channel: &Channel,
        events: &[S::Event],
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Written> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.sink.write(events).await {
                Ok(written) => return Ok(written),
                Err(err) => {
                    metrics::counter!("events_write_failures_total", "service" => self.service)
                        .increment(1);
                    tracing::warn!(error = format!("{err:#}"), retry_in = ?backoff,
                        "writing a batch failed; holding it");
                }
            }
            if !channel.status().connected() {
                bail!("the channel closed while a batch was held");
            }
            tokio::select! {
                () = shutdown.cancelled() => bail!("shutting down with a held batch (it will be redelivered)"),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
