//! Scenario `webhooks`: notification-service's dispatcher delivering stored deliveries
//! to a local receiver, against a bare `reqwest` loop posting the same bodies with the
//! same headers to the same receiver, as many at once as the dispatcher sends to one
//! endpoint ([`PER_ENDPOINT`]), in the same run.
//!
//! One tenant database on the PostgreSQL the tests use, migrated, with one endpoint; a
//! fake tenant-resolver locates it. Each round stores [`DELIVERIES`] deliveries (one
//! statement, outside the timing), then times the dispatcher from its wake-up to the
//! receiver's last answer and to the last delivery recorded as succeeded. The receiver
//! (axum, in this process, answering 204) is the same for both.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use common::auth::SigningKey;
use common::internal::InternalToken;
use common::testkit::{TestServer, create_database, drop_database, postgres_url, unique};
use notification_service::Workers;
use notification_service::db::webhooks::{self as store, NewDelivery};
use notification_service::domain::webhook::{self, Format};
use notification_service::webhooks::PER_ENDPOINT;
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bench_projects::{TENANT_MIGRATOR, fake_resolver};

/// Deliveries per round.
pub const DELIVERIES: usize = 5_000;
pub const GOAL: f64 = 0.7;

#[derive(Debug, Serialize)]
pub struct WebhooksReport {
    pub deliveries: usize,
    pub rounds: usize,
    /// Requests at once: the dispatcher's per endpoint, and the loop's.
    pub concurrency: usize,
    pub dispatcher_per_s: f64,
    /// Until every delivery is recorded as succeeded (the receiver's count comes first).
    pub dispatcher_recorded_per_s: f64,
    pub reqwest_per_s: f64,
    pub ratio: f64,
    pub goal: f64,
}

/// The receiver: counts what it gets, answers 204.
async fn receiver(count: Arc<AtomicUsize>) -> TestServer {
    let router = axum::Router::new()
        .route(
            "/hooks",
            axum::routing::post(move || {
                let count = Arc::clone(&count);
                async move {
                    count.fetch_add(1, Ordering::Relaxed);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    TestServer::router(router).await
}

fn body(n: usize) -> String {
    webhook::body(
        Format::Standard,
        "task.moved",
        chrono::Utc::now(),
        None,
        &json!({"task_id": Uuid::now_v7(), "project_id": Uuid::now_v7(), "n": n,
                "from": Uuid::now_v7(), "to": Uuid::now_v7(), "position": 0}),
    )
}

pub async fn webhooks_scenario(rounds: usize) -> anyhow::Result<WebhooksReport> {
    let server = postgres_url().trim_end_matches('/').to_owned();
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    let db = unique("nexus_bench_webhooks");
    create_database(&mut admin, &db, None).await?;
    let result = measure(&server, &db, rounds).await;
    drop_database(&mut admin, &db).await.ok();
    result
}

async fn measure(server: &str, db: &str, rounds: usize) -> anyhow::Result<WebhooksReport> {
    let mut conn = PgConnection::connect(&format!("{server}/{db}")).await?;
    TENANT_MIGRATOR.run(&mut conn).await?;
    let tenant = Uuid::now_v7();
    let key = SigningKey::generate("bench")?;
    let resolver = fake_resolver(
        server,
        Arc::new(Mutex::new(HashMap::from([(tenant, db.to_owned())]))),
        serde_json::to_value(SigningKey::jwks([&key])?)?,
    )
    .await?;
    let count = Arc::new(AtomicUsize::new(0));
    let receiver = receiver(Arc::clone(&count)).await;
    let url = receiver.url("/hooks");
    let secret = webhook::new_secret();
    let endpoint = Uuid::now_v7();
    let events = vec!["task.*".to_owned()];
    store::insert(
        &mut conn,
        &store::NewEndpoint {
            id: endpoint,
            url: &url,
            events: &events,
            description: "bench",
            format: "standard",
            secret: &secret,
            created_by: Uuid::now_v7(),
        },
    )
    .await?;

    // The service's defaults, its receivers allowed on loopback, on the fake resolver.
    let mut config = notification_service::Config::parse_from([
        "notification-service",
        "--webhook-allowed-networks",
        "127.0.0.0/8",
    ]);
    config.tenant_db.tenant_resolver_url = resolver.base_url.clone();
    let token = InternalToken::new(secrecy::SecretString::from("bench"));
    let dispatcher =
        Workers::new(&config, "bench-webhooks", reqwest::Client::new(), token)?.webhooks;
    let stop = CancellationToken::new();
    let running = tokio::spawn(Arc::clone(&dispatcher).run(stop.clone()));

    let bodies: Vec<String> = (0..DELIVERIES).map(body).collect();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(PER_ENDPOINT)
        .build()?;
    let (mut ours, mut recorded, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    println!(
        "• {rounds} rounds of {DELIVERIES} deliveries to a local receiver, {PER_ENDPOINT} at once"
    );
    for round in 0..rounds {
        // Ours: stored first (outside the timing), then the dispatcher is woken.
        let deliveries: Vec<NewDelivery> = bodies
            .iter()
            .map(|body| NewDelivery {
                id: Uuid::now_v7(),
                endpoint_id: endpoint,
                event_id: Uuid::now_v7(),
                event_type: "task.moved".into(),
                body: body.clone(),
                occurred_at: chrono::Utc::now(),
            })
            .collect();
        store::enqueue(&mut conn, &deliveries).await?;
        count.store(0, Ordering::Relaxed);
        let started = Instant::now();
        dispatcher.touch(tenant, true);
        wait_for(&count, DELIVERIES, Duration::from_secs(600)).await?;
        let received = started.elapsed();
        loop {
            let page = store::deliveries(&mut conn, endpoint, None, Some("pending"), 1).await?;
            if page.is_empty() {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "deliveries still pending after 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let settled = started.elapsed();
        ours.push(DELIVERIES as f64 / received.as_secs_f64());
        recorded.push(DELIVERIES as f64 / settled.as_secs_f64());

        // The reference: the same bodies, headers and receiver, PER_ENDPOINT loops.
        count.store(0, Ordering::Relaxed);
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut loops = Vec::new();
        for _ in 0..PER_ENDPOINT {
            let (client, next, url, secret) = (
                client.clone(),
                Arc::clone(&next),
                url.clone(),
                secret.clone(),
            );
            let bodies = bodies.clone();
            loops.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else {
                        return anyhow::Ok(());
                    };
                    let id = webhook::message_id(Uuid::now_v7());
                    let timestamp = chrono::Utc::now().timestamp();
                    let signature = webhook::signature_header(&[&secret], &id, timestamp, body);
                    let answer = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("webhook-id", id)
                        .header("webhook-timestamp", timestamp.to_string())
                        .header("webhook-signature", signature)
                        .body(body.clone())
                        .send()
                        .await?;
                    anyhow::ensure!(answer.status().is_success(), "{}", answer.status());
                }
            }));
        }
        for handle in loops {
            handle.await??;
        }
        bare.push(DELIVERIES as f64 / started.elapsed().as_secs_f64());
        println!(
            "  round {}: dispatcher {:.0}/s (recorded {:.0}/s), reqwest loop {:.0}/s",
            round + 1,
            ours[round],
            recorded[round],
            bare[round]
        );
    }
    stop.cancel();
    running.await.ok();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ours, recorded, bare) = (median(&mut ours), median(&mut recorded), median(&mut bare));
    Ok(WebhooksReport {
        deliveries: DELIVERIES,
        rounds,
        concurrency: PER_ENDPOINT,
        dispatcher_per_s: ours,
        dispatcher_recorded_per_s: recorded,
        reqwest_per_s: bare,
        ratio: ours / bare,
        goal: GOAL,
    })
}

async fn wait_for(count: &AtomicUsize, n: usize, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while count.load(Ordering::Relaxed) < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} of {n} deliveries arrived",
            count.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

pub fn print_webhooks(r: &WebhooksReport) {
    println!(
        "\nwebhooks: {} deliveries × {} rounds, {} at once: dispatcher {:.0}/s (all recorded: \
         {:.0}/s), bare reqwest {:.0}/s: {:.2}× (goal ≥ {:.1}×) {}",
        r.deliveries,
        r.rounds,
        r.concurrency,
        r.dispatcher_per_s,
        r.dispatcher_recorded_per_s,
        r.reqwest_per_s,
        r.ratio,
        r.goal,
        if r.ratio >= r.goal {
            "✓"
        } else {
            "✗ not met"
        }
    );
}
