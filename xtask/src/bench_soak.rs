//! Scenario `soak`: the seven release binaries as processes, a tenant with 100 users, 1,000
//! logins 50 at a time through the gateway, then mixed API traffic for `--soak-minutes`
//! (tasks, boards, moves, comments, share links and their redirects, password-protected
//! ones with the right password, analytics), and each service's resident memory over
//! all of it ([`crate::bench_soak_rss`]), judged by two goals: user-service under
//! 150 MiB at its peak, and no service at the end above 1.3× its RSS after the first
//! minute of mixed traffic.
//!
//! The fleet runs on its default ports but with databases, tenant prefix, exchange,
//! queues and MongoDB database of its own (all removed afterwards), and with the limits
//! that would refuse one address's traffic raised ([`RAISED`]): every request comes from
//! 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bench_soak_load::{self as load, LoginReport, MixedReport};
use crate::bench_soak_rss::{self as rss, Growth, Recorder, Series};
use crate::deps;
use crate::fleet::Fleet;

/// Users of the soak's tenant; the logins are spread round-robin over them.
pub const USERS: usize = 100;
pub const LOGINS: usize = 1000;
pub const LOGIN_CONCURRENCY: usize = 50;
/// Requests of the mixed traffic in flight at once.
pub const MIXED_CONNECTIONS: usize = 32;
/// Invitations accepted at once during the setup (each hashes a password).
const SETUP_CONCURRENCY: usize = 4;
const SETTLE: Duration = Duration::from_secs(5);
const FIRST_MINUTE: Duration = Duration::from_secs(60);
const IDLE: Duration = Duration::from_secs(20);
const GATEWAY_PORT: u16 = 8080;

/// Settings raised for the soak, (service, variable, value): all of its traffic comes
/// from one address, so the gateway's per-address limit (120 requests a minute) would
/// refuse the logins and the redirects, its per-user one (1,200) could refuse a busy
/// user, and url-shortener's password throttle (5 attempts per address and link, 50 per
/// link, in 15 minutes) the protected opens. user-service's login throttle counts
/// failed logins only, and the soak sends none: it keeps its defaults.
pub const RAISED: [(&str, &str, &str); 4] = [
    ("gateway", "RATE_LIMIT_IP_PER_MIN", "1000000000"),
    ("gateway", "RATE_LIMIT_USER_PER_MIN", "1000000000"),
    (
        "url-shortener",
        "PASSWORD_ATTEMPTS_PER_ADDRESS",
        "1000000000",
    ),
    ("url-shortener", "PASSWORD_ATTEMPTS_PER_LINK", "1000000000"),
];

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub soak_minutes: u64,
    pub users: usize,
    pub setup_seconds: f64,
    pub logins: LoginReport,
    pub mixed: MixedReport,
    pub memory: Series,
    pub user_service_peak_mib: f64,
    pub user_service_peak_met: bool,
    pub growth: Vec<Growth>,
    /// `VARIABLE=value (service)` for each setting raised.
    pub raised: Vec<String>,
    /// Services whose process was gone before the end.
    pub exited: Vec<String>,
}

/// Names of everything a fleet benchmark creates (`soak`, `stream`), so all of it can be
/// removed.
pub(crate) struct Names {
    /// Prefix of its PostgreSQL databases and roles (services' and tenants').
    pub(crate) prefix: String,
    pub(crate) slug: String,
    exchange: String,
    queue: String,
    dead_letter_queue: String,
    notification_queue: String,
    notification_dead_letter_queue: String,
    mongo_database: String,
}

impl Names {
    /// Names of scenario `scenario` (lowercase letters), with a tag of their own.
    pub(crate) fn new(scenario: &str) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        Self {
            prefix: format!("b{scenario}{tag}_"),
            slug: format!("{scenario}-{tag}"),
            exchange: format!("bench.{scenario}.{tag}.events"),
            queue: format!("bench.{scenario}.{tag}.analytics"),
            dead_letter_queue: format!("bench.{scenario}.{tag}.analytics.dead"),
            notification_queue: format!("bench.{scenario}.{tag}.notifications"),
            notification_dead_letter_queue: format!("bench.{scenario}.{tag}.notifications.dead"),
            mongo_database: format!("nexus_bench_{scenario}_{tag}"),
        }
    }

    /// The variables `service` runs with in the scenario: its own stores and broker
    /// objects, and the settings of `raised` that are `service`'s.
    pub(crate) fn settings(
        &self,
        service: &str,
        dir: &std::path::Path,
        raised: &[(&str, &'static str, &str)],
    ) -> Vec<(&'static str, String)> {
        let postgres = deps::Urls::from_env().postgres;
        let postgres = postgres.trim_end_matches('/');
        let prefix = &self.prefix;
        let mut vars = vec![("EVENTS_EXCHANGE", self.exchange.clone())];
        match service {
            "tenant-resolver" => vars.extend([
                ("DATABASE_URL", format!("{postgres}/{prefix}registry")),
                ("TENANT_CLUSTERS", format!("main={postgres}")),
                ("TENANT_DB_PREFIX", format!("{prefix}t_")),
            ]),
            "user-service" => vars.extend([
                ("DATABASE_URL", format!("{postgres}/{prefix}users")),
                ("SIGNING_KEYS_DIR", dir.join("keys").display().to_string()),
            ]),
            "project-service" => {
                vars.push((
                    "ATTACHMENTS_DIR",
                    dir.join("attachments").display().to_string(),
                ));
            }
            "url-shortener" => vars.push(("DATABASE_URL", format!("{postgres}/{prefix}shortener"))),
            "analytics-service" => vars.extend([
                ("MONGODB_DATABASE", self.mongo_database.clone()),
                ("ANALYTICS_QUEUE", self.queue.clone()),
                (
                    "ANALYTICS_DEAD_LETTER_QUEUE",
                    self.dead_letter_queue.clone(),
                ),
            ]),
            "notification-service" => vars.extend([
                ("NOTIFICATION_QUEUE", self.notification_queue.clone()),
                (
                    "NOTIFICATION_DEAD_LETTER_QUEUE",
                    self.notification_dead_letter_queue.clone(),
                ),
            ]),
            _ => {}
        }
        vars.extend(
            raised
                .iter()
                .filter(|(s, _, _)| *s == service)
                .map(|(_, var, value)| (*var, (*value).to_owned())),
        );
        vars
    }
}

pub async fn soak_scenario(minutes: u64) -> anyhow::Result<SoakReport> {
    let minutes = minutes.max(1);
    let names = Names::new("soak");
    let dir = std::env::temp_dir().join(format!("nexus_bench_{}", names.prefix));
    println!(
        "• starting the seven release binaries (databases {}*, logs in {})",
        names.prefix,
        dir.display()
    );
    let fleet = Fleet::start_release_with(&dir, |service| names.settings(service, &dir, &RAISED))?;
    let result = run(&fleet, &names, minutes).await;
    drop(fleet);
    if let Err(err) = remove(&names).await {
        println!("  (could not remove all the soak's broker and MongoDB objects: {err:#})");
    }
    common::testkit::drop_databases_and_roles(&names.prefix);
    match &result {
        Ok(report) if report.exited.is_empty() => {
            std::fs::remove_dir_all(&dir).ok();
        }
        _ => println!("  the services' logs are kept in {}", dir.display()),
    }
    result
}

fn print_checkpoint(sample: &rss::Sample, services: &[String]) {
    let values: Vec<String> = services
        .iter()
        .zip(&sample.rss_mib)
        .map(|(s, v)| format!("{s} {v:.1}"))
        .collect();
    println!(
        "  RSS at {:.0} s, {} (MiB): {}",
        sample.at_s,
        sample.checkpoint.as_deref().unwrap_or(""),
        values.join(" · ")
    );
}

async fn run(fleet: &Fleet, names: &Names, minutes: u64) -> anyhow::Result<SoakReport> {
    tokio::time::sleep(SETTLE).await;
    let services: Vec<(&str, u32)> = fleet
        .children
        .iter()
        .map(|(name, child)| (*name, child.id()))
        .collect();
    let service_names: Vec<String> = services.iter().map(|(n, _)| (*n).to_owned()).collect();
    let recorder = Recorder::start(&services, "start");
    let checkpoint = |label: &str| print_checkpoint(&recorder.checkpoint(label), &service_names);
    checkpoint(rss::START);

    recorder.phase("setup");
    println!(
        "• setup: tenant {}, {USERS} users, 4 boards of 20 tasks",
        names.slug
    );
    let started = Instant::now();
    let client = load::Client::new(GATEWAY_PORT, &names.slug)?;
    let world = Arc::new(load::setup(client, &names.slug, USERS, SETUP_CONCURRENCY).await?);
    let setup_seconds = started.elapsed().as_secs_f64();
    checkpoint(rss::AFTER_SETUP);

    recorder.phase("logins");
    println!("• {LOGINS} logins, {LOGIN_CONCURRENCY} at a time, over {USERS} users");
    let logins = load::logins(&world, LOGINS, LOGIN_CONCURRENCY).await;
    println!(
        "  {} of {} answered 200 in {:.1} s ({:.1} logins/s); not 200: {}",
        logins.tally.ok,
        logins.logins,
        logins.seconds,
        logins.ok_per_s,
        logins.tally.errors_text()
    );
    checkpoint(rss::AFTER_LOGINS);

    recorder.phase("mixed");
    println!("• mixed traffic for {minutes} min, {MIXED_CONNECTIONS} requests in flight");
    let mixed = load::Mixed::start(&world, MIXED_CONNECTIONS);
    let started = tokio::time::Instant::now();
    tokio::time::sleep(FIRST_MINUTE).await;
    checkpoint(rss::AFTER_FIRST_MINUTE);
    tokio::time::sleep_until(started + Duration::from_secs(minutes * 60)).await;
    let mixed = mixed.stop().await;
    checkpoint(rss::END);
    println!(
        "  {} requests, {:.0}/s; not as expected: {}",
        mixed.total.requests,
        mixed.requests_per_s,
        mixed.total.errors_text()
    );

    recorder.phase("idle");
    tokio::time::sleep(IDLE).await;
    checkpoint(rss::AFTER_IDLE);
    let memory = recorder.finish();
    let exited = memory
        .samples
        .last()
        .map(|last| {
            service_names
                .iter()
                .zip(&last.rss_mib)
                .filter(|(_, v)| !v.is_finite())
                .map(|(s, _)| s.clone())
                .collect()
        })
        .unwrap_or_default();
    Ok(SoakReport {
        soak_minutes: minutes,
        users: USERS,
        setup_seconds,
        logins,
        mixed,
        user_service_peak_mib: memory.peak_mib("user-service"),
        user_service_peak_met: memory.user_service_peak_met(),
        growth: memory.growth(),
        memory,
        raised: RAISED
            .iter()
            .map(|(service, var, value)| format!("{var}={value} ({service})"))
            .collect(),
        exited,
    })
}

/// Deletes a scenario's queues and exchanges (the live stream's fanout too) and its
/// MongoDB database.
pub(crate) async fn remove(names: &Names) -> anyhow::Result<()> {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let urls = deps::Urls::from_env();
    let connection =
        lapin::Connection::connect(&urls.amqp, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let dead_letters = [
        &names.dead_letter_queue,
        &names.notification_dead_letter_queue,
    ];
    for queue in [&names.queue, &names.notification_queue]
        .into_iter()
        .chain(dead_letters)
    {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    let fanout = format!("{}.stream", names.exchange);
    for exchange in [&names.exchange, &fanout].into_iter().chain(dead_letters) {
        channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await?;
    }
    let _ = connection.close(0, "done".into()).await;
    mongodb::Client::with_uri_str(&urls.mongodb)
        .await?
        .database(&names.mongo_database)
        .drop()
        .await?;
    Ok(())
}

pub fn print_soak(r: &SoakReport) {
    println!(
        "\nsoak: {} users, setup {:.1} s; settings raised: {}",
        r.users,
        r.setup_seconds,
        r.raised.join(", ")
    );
    let l = &r.logins;
    println!("\n| logins | concurrency | seconds | 200/s | p50 | p99 | 200 | not 200 |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} over {} users | {} | {:.1} | {:.1} | {:.0} ms | {:.0} ms | {} | {} |",
        l.logins,
        l.users,
        l.concurrency,
        l.seconds,
        l.ok_per_s,
        l.p50_ms,
        l.p99_ms,
        l.tally.ok,
        l.tally.errors_text()
    );
    let m = &r.mixed;
    println!(
        "\nmixed traffic: {:.0} s, {} in flight, {:.0} requests/s\n",
        m.seconds, m.connections, m.requests_per_s
    );
    println!("| request | sent | as expected | not as expected |");
    println!("|---|---|---|---|");
    for (kind, t) in m.by_kind.iter().chain([(&"all".to_owned(), &m.total)]) {
        println!(
            "| {kind} | {} | {} | {} |",
            t.requests,
            t.ok,
            t.errors_text()
        );
    }
    print_memory(r);
}

fn print_memory(r: &SoakReport) {
    let memory = &r.memory;
    println!("\nRSS (MiB) at each checkpoint, and the peak (the largest sample or VmHWM)\n");
    println!("| checkpoint | s | {} |", memory.services.join(" | "));
    println!("|---|---|{}", "---|".repeat(memory.services.len()));
    let values = |v: &[f64]| {
        v.iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    for sample in memory.samples.iter().filter(|s| s.checkpoint.is_some()) {
        println!(
            "| {} | {:.0} | {} |",
            sample.checkpoint.as_deref().unwrap_or_default(),
            sample.at_s,
            values(&sample.rss_mib)
        );
    }
    let peaks: Vec<f64> = memory.services.iter().map(|s| memory.peak_mib(s)).collect();
    println!("| peak | | {} |", values(&peaks));
    println!(
        "\nRSS every {} s (MiB; all samples in the JSON)\n",
        rss::SAMPLE_EVERY.as_secs() * 5
    );
    println!("| s | phase | {} |", memory.services.join(" | "));
    println!("|---|---|{}", "---|".repeat(memory.services.len()));
    for sample in memory
        .samples
        .iter()
        .filter(|s| s.checkpoint.is_none())
        .step_by(5)
    {
        println!(
            "| {:.0} | {} | {} |",
            sample.at_s,
            sample.phase,
            values(&sample.rss_mib)
        );
    }
    let mark = |met: bool| if met { "✓" } else { "✗ not met" };
    println!(
        "\nuser-service peak {:.1} MiB (goal < {:.0} MiB) {}",
        r.user_service_peak_mib,
        rss::USER_SERVICE_PEAK_GOAL_MIB,
        mark(r.user_service_peak_met)
    );
    for g in &r.growth {
        println!(
            "{}: end {:.1} MiB ÷ after the first minute {:.1} MiB = {:.2}× (goal ≤ {:.1}×) {}",
            g.service,
            g.end_mib,
            g.after_first_minute_mib,
            g.ratio,
            rss::GROWTH_GOAL,
            mark(g.met)
        );
    }
    if !r.exited.is_empty() {
        println!("gone before the end: {}", r.exited.join(", "));
    }
}
