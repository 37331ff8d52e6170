//! Scenario `analytics`: analytics-service's consumer end to end (publish → stored in
//! MongoDB and counted) against the same consumer with a null sink, in the same run and on
//! the same broker; then the lag (publish → stored) at half the stored rate, paced. A
//! third figure is the store's own ceiling: the same events inserted with unordered
//! `insert_many` in batches of the same size straight into an indexed `events`
//! collection, with no broker, counters or rollup marks — no consumer can beat it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use analytics_service::domain::event::Event;
use analytics_service::store::Store;
use anyhow::{Context, bail};
use clap::Parser;
use common::events::consumer::{Consumable, Consumer, NullSink, Settings, Sink, Status, Written};
use common::events::{Broker, Envelope, keys};
use common::testkit::{amqp_url, mongodb_url, unique};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Events per throughput run; the publisher sends them in confirmed chunks of [`CHUNK`].
const EVENTS: usize = 20_000;
const CHUNK: usize = 500;
const TENANTS: usize = 10;
const PACED_SECONDS: u64 = 10;

#[derive(Debug, Serialize)]
pub struct AnalyticsReport {
    pub events: usize,
    pub rounds: usize,
    pub null_sink_per_s: f64,
    pub stored_per_s: f64,
    pub stored_vs_null: f64,
    pub store_ceiling_per_s: f64,
    pub stored_vs_ceiling: f64,
    pub paced_per_s: f64,
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
}

/// Counts what the inner sink wrote and, when asked, how long after publishing.
pub(crate) struct Counted<S> {
    inner: S,
    done: Arc<AtomicUsize>,
    lags_ms: Option<Arc<Mutex<Vec<f64>>>>,
}

impl<S: Sink> Sink for Counted<S> {
    type Event = S::Event;

    async fn write(&self, events: &[S::Event]) -> anyhow::Result<Written> {
        let written = self.inner.write(events).await?;
        if let Some(lags) = &self.lags_ms {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as i64;
            let mut lags = lags.lock().expect("lags");
            lags.extend(
                events
                    .iter()
                    .map(|e| (now - e.envelope().occurred_at.timestamp_millis()) as f64),
            );
        }
        self.done
            .fetch_add(written.inserted + written.duplicates, Ordering::SeqCst);
        Ok(written)
    }
}

fn events(n: usize) -> Vec<Envelope> {
    let tenants: Vec<Uuid> = (0..TENANTS).map(|_| Uuid::now_v7()).collect();
    (0..n)
        .map(|i| {
            let tenant = tenants[i % TENANTS];
            if i % 3 == 0 {
                Envelope::new(
                    keys::URL_ACCESSED,
                    tenant,
                    None,
                    json!({"code": format!("c{}", i % 50), "referrer_host": "example.com",
                           "agent_class": "browser", "visitor_hash": format!("v{}", i % 500)}),
                )
            } else {
                Envelope::new(
                    keys::TASK_CREATED,
                    tenant,
                    None,
                    json!({"project_id": tenant, "task_id": Uuid::now_v7(), "number": i,
                           "status": tenant, "priority": "medium", "assignee_id": null, "parent_id": null}),
                )
            }
        })
        .collect()
}

/// The service's default consumer settings, on fresh queue names.
fn settings() -> Settings {
    let config = analytics_service::Config::parse_from(["analytics-service"]);
    Settings {
        queue: unique("bench.analytics"),
        dead_letter_queue: unique("bench.analytics.dead"),
        ..config.consumer_settings()
    }
}

/// Starts a consumer writing to `sink`, publishes `events` (paced to `rate` per second
/// if given) and returns the time until all of them were written.
async fn run_once<S: Sink>(
    sink: S,
    events: Vec<Envelope>,
    rate: Option<f64>,
    lags_ms: Option<Arc<Mutex<Vec<f64>>>>,
) -> anyhow::Result<Duration> {
    run_consumer(settings(), sink, events, rate, lags_ms).await
}

/// [`run_once`] for any consumer's settings and sink (the notifications scenario too).
pub(crate) async fn run_consumer<S: Sink>(
    settings: Settings,
    sink: S,
    events: Vec<Envelope>,
    rate: Option<f64>,
    lags_ms: Option<Arc<Mutex<Vec<f64>>>>,
) -> anyhow::Result<Duration> {
    let exchange = unique("bench.events");
    let broker = Broker::new(amqp_url().into(), &exchange, "bench-consumer");
    let done = Arc::new(AtomicUsize::new(0));
    let status = Status::default();
    let shutdown = CancellationToken::new();
    let consumer = Consumer {
        broker: broker.clone(),
        settings: settings.clone(),
        sink: Counted {
            inner: sink,
            done: Arc::clone(&done),
            lags_ms,
        },
        status: status.clone(),
        after_write: None,
        service: "bench-consumer",
    };
    let task = tokio::spawn(consumer.run(shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !status.consuming() {
        if Instant::now() > deadline {
            bail!("the consumer did not subscribe within 20 s (is RabbitMQ up?)");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let n = events.len();
    let started = Instant::now();
    let chunk = rate.map_or(CHUNK, |r| ((r / 20.0) as usize).max(1));
    for (i, batch) in events.chunks(chunk).enumerate() {
        let batch: Vec<(Envelope, Option<String>)> = batch
            .iter()
            // Stamped now: the lag is measured from the moment of publishing.
            .map(|e| {
                (
                    Envelope::new(&e.kind, e.tenant_id, None, e.data.clone()),
                    None,
                )
            })
            .collect();
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64((i * chunk) as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        broker
            .publish_confirmed(&batch)
            .await
            .context("publishing")?;
    }
    let limit = Instant::now() + Duration::from_secs(300);
    while done.load(Ordering::SeqCst) < n {
        if Instant::now() > limit {
            bail!(
                "only {} of {n} events were written within 300 s",
                done.load(Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    task.await.ok();
    cleanup(&broker, &exchange, &settings).await;
    Ok(elapsed)
}

async fn cleanup(broker: &Broker, exchange: &str, settings: &Settings) {
    if let Ok(channel) = broker.channel().await {
        for queue in [&settings.queue, &settings.dead_letter_queue] {
            let _ = channel
                .queue_delete(queue.as_str().into(), Default::default())
                .await;
        }
        for ex in [exchange, settings.dead_letter_queue.as_str()] {
            let _ = channel.exchange_delete(ex.into(), Default::default()).await;
        }
    }
}

pub(crate) fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

async fn mongo_store() -> anyhow::Result<Store> {
    let config = analytics_service::Config::parse_from([
        "analytics-service".to_owned(),
        format!("--mongodb-url={}", mongodb_url()),
        format!("--mongodb-database={}", unique("bench_analytics")),
    ]);
    let store = Store::new(analytics_service::database(&config).await?);
    store
        .ensure_indexes(config.retention_days)
        .await
        .with_context(|| format!("MongoDB does not answer at {}", mongodb_url()))?;
    Ok(store)
}

/// Events per second MongoDB takes in with bare unordered inserts of batches of the
/// consumer's size into the indexed `events` collection.
async fn store_ceiling(n: usize) -> anyhow::Result<f64> {
    let store = mongo_store().await?;
    let batch = settings().batch_size;
    let docs = events(n)
        .into_iter()
        .map(|e| {
            let event = Event::parse(&serde_json::to_vec(&e)?)?;
            analytics_service::store::ingest::raw_document(&event)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    for chunk in docs.chunks(batch) {
        analytics_service::store::insert_unordered(&store.events, chunk.to_vec()).await?;
    }
    let elapsed = started.elapsed();
    store.db.drop().await.ok();
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// Alternates null-sink and MongoDB runs `rounds` times (best of each), then one paced run.
pub async fn analytics_scenario(rounds: usize) -> anyhow::Result<AnalyticsReport> {
    let (mut null_best, mut stored_best, mut ceiling_best) = (f64::MIN, f64::MIN, f64::MIN);
    for round in 0..rounds {
        let null = run_once(NullSink::<Event>::default(), events(EVENTS), None, None).await?;
        let store = mongo_store().await?;
        let stored = run_once(store.clone(), events(EVENTS), None, None).await?;
        store.db.drop().await.ok();
        let (n, s) = (
            EVENTS as f64 / null.as_secs_f64(),
            EVENTS as f64 / stored.as_secs_f64(),
        );
        let c = store_ceiling(EVENTS).await?;
        println!(
            "  round {}: null sink {n:.0}/s, stored {s:.0}/s, bare inserts {c:.0}/s",
            round + 1
        );
        ceiling_best = ceiling_best.max(c);
        null_best = null_best.max(n);
        stored_best = stored_best.max(s);
    }
    let rate = stored_best / 2.0;
    let paced = ((rate * PACED_SECONDS as f64) as usize).max(1);
    let lags = Arc::new(Mutex::new(Vec::with_capacity(paced)));
    let store = mongo_store().await?;
    run_once(
        store.clone(),
        events(paced),
        Some(rate),
        Some(Arc::clone(&lags)),
    )
    .await?;
    store.db.drop().await.ok();
    let mut lags = lags.lock().expect("lags").clone();
    Ok(AnalyticsReport {
        events: EVENTS,
        rounds,
        null_sink_per_s: null_best,
        stored_per_s: stored_best,
        stored_vs_null: stored_best / null_best,
        store_ceiling_per_s: ceiling_best,
        stored_vs_ceiling: stored_best / ceiling_best,
        paced_per_s: rate,
        lag_p50_ms: percentile(&mut lags, 0.50),
        lag_p99_ms: percentile(&mut lags, 0.99),
    })
}

pub fn print_analytics(r: &AnalyticsReport) {
    println!(
        "\nanalytics (consumer end to end: publish → stored and counted; best of {} rounds)",
        r.rounds
    );
    println!("  null sink:        {:>9.0} events/s", r.null_sink_per_s);
    println!(
        "  MongoDB:          {:>9.0} events/s  ({:.2}× the null sink; goal ≥ 0.6×)",
        r.stored_per_s, r.stored_vs_null
    );
    println!(
        "  bare inserts:     {:>9.0} events/s  (the store's ceiling; stored is {:.2}× it)",
        r.store_ceiling_per_s, r.stored_vs_ceiling
    );
    println!(
        "  lag at {:.0}/s:    p50 {:.0} ms, p99 {:.0} ms",
        r.paced_per_s, r.lag_p50_ms, r.lag_p99_ms
    );
}
