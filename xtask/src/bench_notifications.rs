//! Scenario `notifications`: notification-service's consumer end to end (publish →
//! notifications stored in the tenants' databases) against the same consumer with a
//! null sink, in the same run and on the same broker; then the lag (publish → in the
//! inbox) at half the stored rate, paced.
//!
//! Ten tenant databases on the PostgreSQL the tests use, migrated and seeded with a
//! project, a task (a reporter and an assignee) and two comments by two members; each
//! event is a `task.comment_added` by one of the commenters, so it tells three people
//! (reporter, assignee, the other commenter) and makes three rows. A fake
//! tenant-resolver locates the databases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use clap::Parser;
use common::auth::SigningKey;
use common::events::consumer::{NullSink, Settings};
use common::events::{Broker, Envelope, keys};
use common::internal::InternalToken;
use common::testkit::{amqp_url, create_database, drop_database, postgres_url, unique};
use notification_service::Workers;
use notification_service::domain::event::Event;
use notification_service::inbox::Inbox;
use notification_service::live::Hub;
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::bench_analytics::{percentile, run_consumer};
use crate::bench_projects::{TENANT_MIGRATOR, fake_resolver};

const EVENTS: usize = 30_000;
const TENANTS: usize = 10;
const PACED_SECONDS: u64 = 10;

#[derive(Debug, Serialize)]
pub struct NotificationsReport {
    pub events: usize,
    pub rounds: usize,
    /// Notifications each event makes.
    pub per_event: usize,
    pub null_sink_per_s: f64,
    pub stored_per_s: f64,
    pub stored_vs_null: f64,
    pub paced_per_s: f64,
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
}

/// One seeded tenant: what its events name.
struct Seeded {
    tenant: Uuid,
    project: Uuid,
    task: Uuid,
    comment: Uuid,
    commenter: Uuid,
}

async fn seed(admin: &mut PgConnection, server: &str, db: &str) -> anyhow::Result<Seeded> {
    create_database(admin, db, None).await?;
    let mut conn = PgConnection::connect(&format!("{server}/{db}")).await?;
    TENANT_MIGRATOR.run(&mut conn).await?;
    let [project, column, task, comment, other_comment] = [(); 5].map(|()| Uuid::now_v7());
    let [reporter, assignee, commenter, other] = [(); 4].map(|()| Uuid::now_v7());
    sqlx::query!(
        "insert into projects (id, key, name, created_by) values ($1, 'BEN', 'Bench', $2)",
        project,
        reporter,
    )
    .execute(&mut conn)
    .await?;
    sqlx::query!(
        "insert into board_columns (id, project_id, name, position) values ($1, $2, 'To do', 0)",
        column,
        project,
    )
    .execute(&mut conn)
    .await?;
    sqlx::query!(
        "insert into tasks (id, project_id, number, title, column_id, position, reporter_id,
                            assignee_id)
         values ($1, $2, 1, 'Bench task', $3, 0, $4, $5)",
        task,
        project,
        column,
        reporter,
        assignee,
    )
    .execute(&mut conn)
    .await?;
    for (id, author) in [(comment, commenter), (other_comment, other)] {
        sqlx::query!(
            "insert into comments (id, task_id, project_id, author_id, body)
             values ($1, $2, $3, $4, 'A comment of the bench')",
            id,
            task,
            project,
            author,
        )
        .execute(&mut conn)
        .await?;
    }
    conn.close().await?;
    Ok(Seeded {
        tenant: Uuid::now_v7(),
        project,
        task,
        comment,
        commenter,
    })
}

fn events(tenants: &[Seeded], n: usize) -> Vec<Envelope> {
    (0..n)
        .map(|i| {
            let t = &tenants[i % tenants.len()];
            Envelope::new(
                keys::TASK_COMMENT_ADDED,
                t.tenant,
                Some(t.commenter),
                json!({"task_id": t.task, "project_id": t.project, "comment_id": t.comment,
                       "mentions": [], "parent_id": null}),
            )
        })
        .collect()
}

/// The service's default consumer settings, on fresh queue names.
fn settings() -> Settings {
    let config = notification_service::Config::parse_from(["notification-service"]);
    Settings {
        queue: unique("bench.notifications"),
        dead_letter_queue: unique("bench.notifications.dead"),
        ..config.consumer_settings()
    }
}

/// Alternates null-sink and inbox runs `rounds` times (best of each), then one paced run.
pub async fn notifications_scenario(rounds: usize) -> anyhow::Result<NotificationsReport> {
    let server = postgres_url().trim_end_matches('/').to_owned();
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    let prefix = unique("nexus_bench_notify");
    let mut seeded = Vec::with_capacity(TENANTS);
    let databases = Arc::new(Mutex::new(HashMap::new()));
    println!("• {TENANTS} tenant databases, each with a task followed by three people");
    for i in 0..TENANTS {
        let db = format!("{prefix}_{i}");
        let s = seed(&mut admin, &server, &db).await?;
        databases.lock().expect("dbs").insert(s.tenant, db);
        seeded.push(s);
    }
    let result = measure(&server, &seeded, Arc::clone(&databases), rounds).await;
    let names: Vec<String> = databases.lock().expect("dbs").values().cloned().collect();
    for db in names {
        drop_database(&mut admin, &db).await.ok();
    }
    result
}

async fn measure(
    server: &str,
    seeded: &[Seeded],
    databases: Arc<Mutex<HashMap<Uuid, String>>>,
    rounds: usize,
) -> anyhow::Result<NotificationsReport> {
    let key = SigningKey::generate("bench")?;
    let resolver = fake_resolver(
        server,
        databases,
        serde_json::to_value(SigningKey::jwks([&key])?)?,
    )
    .await?;
    // The service's own defaults, as for the consumer's settings, on the fake resolver.
    let mut config = notification_service::Config::parse_from(["notification-service"]);
    config.tenant_db.tenant_resolver_url = resolver.base_url.clone();
    // The mails the inbox queues are stored with the notifications (part of what is
    // measured); no mailer runs to send them. Each batch is matched against the
    // tenant's webhook endpoints (it has none).
    let inbox = || -> anyhow::Result<Inbox> {
        let token = InternalToken::new(secrecy::SecretString::from("bench"));
        let Workers {
            databases: directory,
            mailer,
            webhooks,
        } = Workers::new(
            &config,
            "bench-notifications",
            reqwest::Client::new(),
            token,
        )?;
        // The live stream's appends and fanout are part of every batch's work too.
        let broker = Broker::new(amqp_url().into(), unique("bench.notifications"), "bench");
        Ok(Inbox {
            directory,
            mailer,
            webhooks,
            digest_secs: config.mail.digest_interval_secs as f64,
            hub: Arc::new(Hub::new(
                broker,
                std::time::Duration::from_secs(config.stream.stream_retention_secs),
            )),
            retention_secs: config.stream.stream_retention_secs as f64,
        })
    };
    let (mut null_best, mut stored_best) = (f64::MIN, f64::MIN);
    for round in 0..rounds {
        let null = run_consumer(
            settings(),
            NullSink::<Event>::default(),
            events(seeded, EVENTS),
            None,
            None,
        )
        .await?;
        let sink = inbox()?;
        let stored =
            run_consumer(settings(), sink.clone(), events(seeded, EVENTS), None, None).await?;
        sink.directory.connections().close().await;
        let (n, s) = (
            EVENTS as f64 / null.as_secs_f64(),
            EVENTS as f64 / stored.as_secs_f64(),
        );
        println!(
            "  round {}: null sink {n:.0} events/s, into inboxes {s:.0} events/s ({:.0} notifications/s)",
            round + 1,
            s * 3.0
        );
        null_best = null_best.max(n);
        stored_best = stored_best.max(s);
    }
    let rate = stored_best / 2.0;
    let paced = ((rate * PACED_SECONDS as f64) as usize).max(1);
    let lags = Arc::new(Mutex::new(Vec::with_capacity(paced)));
    let sink = inbox()?;
    run_consumer(
        settings(),
        sink.clone(),
        events(seeded, paced),
        Some(rate),
        Some(Arc::clone(&lags)),
    )
    .await?;
    sink.directory.connections().close().await;
    resolver.stop();
    let mut lags = lags.lock().expect("lags").clone();
    Ok(NotificationsReport {
        events: EVENTS,
        rounds,
        per_event: 3,
        null_sink_per_s: null_best,
        stored_per_s: stored_best,
        stored_vs_null: stored_best / null_best,
        paced_per_s: rate,
        lag_p50_ms: percentile(&mut lags, 0.50),
        lag_p99_ms: percentile(&mut lags, 0.99),
    })
}

pub fn print_notifications(r: &NotificationsReport) {
    println!(
        "\nnotifications (consumer end to end: publish → {} notifications per event stored in the tenants' databases; best of {} rounds)",
        r.per_event, r.rounds
    );
    println!("  null sink:        {:>9.0} events/s", r.null_sink_per_s);
    println!(
        "  into inboxes:     {:>9.0} events/s  ({:.2}× the null sink; goal ≥ 0.6×)",
        r.stored_per_s, r.stored_vs_null
    );
    println!(
        "  lag at {:.0}/s:    p50 {:.0} ms, p99 {:.0} ms",
        r.paced_per_s, r.lag_p50_ms, r.lag_p99_ms
    );
}
