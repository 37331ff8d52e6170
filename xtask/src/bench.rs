//! `cargo xtask bench`: speed measured as ratios against a reference run side by side on
//! the same machine, never as absolute goals (the machines are shared and noisy).
//!
//! Scenario `tenants`: signup latency (registry row, role, database copied from the
//! template, ownership hand-over, owner call, outbox) against a bare `CREATE DATABASE …
//! TEMPLATE template0`, alternating A B A B; whether signup slows down as tenants pile up
//! (median of the last tenth against the first tenth); and the time to migrate all of
//! them when one new migration arrives.
//!
//! After the scenarios, one summary of all their ratios against their goals
//! ([`crate::bench_summary`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use serde::Serialize;
use sqlx::{Connection, PgConnection};
use tenant_resolver::domain::SignupRequest;

use crate::bench_summary::{Goal, Row, row};
use crate::deps;

#[derive(Debug, Serialize)]
pub struct TenantsReport {
    pub rounds: usize,
    pub bare_create_ms: f64,
    pub signup_ms: f64,
    pub signup_vs_bare: f64,
    pub tenants: usize,
    pub first_tenth_signup_ms: f64,
    pub last_tenth_signup_ms: f64,
    pub last_vs_first: f64,
    pub migrate_all_s: f64,
    pub migrate_per_tenant_ms: f64,
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A stand-in for user-service that accepts every owner.
async fn fake_user_service() -> anyhow::Result<String> {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/internal/tenants/{id}/owner",
            post(|| async {
                (
                    axum::http::StatusCode::CREATED,
                    axum::Json(serde_json::json!({ "user_id": uuid::Uuid::now_v7() })),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

fn request(slug: &str) -> anyhow::Result<SignupRequest> {
    Ok(serde_json::from_value(serde_json::json!({
        "slug": slug,
        "name": slug,
        "owner": { "email": format!("owner@{slug}.bench"), "password": "benchmark password", "name": "Owner" }
    }))?)
}

pub async fn tenants_scenario(tenants: usize, rounds: usize) -> anyhow::Result<TenantsReport> {
    let urls = deps::Urls::from_env();
    deps::require(
        "PostgreSQL",
        &urls.postgres,
        5432,
        "Start it or set POSTGRES_URL.",
    )?;
    let server = urls.postgres.trim_end_matches('/').to_owned();
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let prefix = format!("b{tag}_");
    let registry = format!("nexus_bench_{tag}");
    let users = fake_user_service().await?;
    let config: tenant_resolver::Config = clap::Parser::try_parse_from([
        "tenant-resolver".to_owned(),
        format!("--database-url={server}/{registry}"),
        format!("--tenant-clusters=main={server}"),
        format!("--tenant-db-prefix={prefix}"),
        format!("--user-service-url={users}"),
        "--migrate-concurrency=8".to_owned(),
    ])?;
    println!("• provisioning a registry and template ({prefix}*)");
    let state = tenant_resolver::AppState::build(config).await?;
    let result = run_tenants(&state, &server, &prefix, tenants, rounds).await;
    state.pool.close().await;
    common::testkit::drop_databases_and_roles(&prefix);
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    common::testkit::drop_database(&mut admin, &registry).await?;
    result
}

async fn run_tenants(
    state: &tenant_resolver::AppState,
    server: &str,
    prefix: &str,
    tenants: usize,
    rounds: usize,
) -> anyhow::Result<TenantsReport> {
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    let (mut bare, mut signup) = (Vec::new(), Vec::new());
    println!("• signup vs bare CREATE DATABASE, {rounds} alternating rounds");
    for round in 0..rounds {
        let name = format!("{prefix}bare{round}");
        let start = Instant::now();
        common::testkit::create_database(&mut admin, &name, Some("template0")).await?;
        // Kept until the end: DROP DATABASE forces a checkpoint that would slow the
        // signup measured next.
        bare.push(ms(start.elapsed()));

        let req = request(&format!("round-{round}"))?;
        let start = Instant::now();
        tenant_resolver::signup::signup(state, &req, None)
            .await
            .map_err(|e| anyhow::anyhow!("signup failed: {e}"))?;
        signup.push(ms(start.elapsed()));
    }

    println!("• signing up {tenants} tenants one after another");
    let mut latencies = Vec::with_capacity(tenants);
    for i in 0..tenants {
        let req = request(&format!("t{i:05}"))?;
        let start = Instant::now();
        tenant_resolver::signup::signup(state, &req, None)
            .await
            .map_err(|e| anyhow::anyhow!("signup failed: {e}"))?;
        latencies.push(ms(start.elapsed()));
    }
    let tenth = (tenants / 10).max(1);
    let mut first: Vec<f64> = latencies[..tenth].to_vec();
    let mut last: Vec<f64> = latencies[tenants - tenth..].to_vec();

    println!(
        "• migrating all {} tenants with one new migration",
        tenants + rounds
    );
    let (migrator, dir) = migrator_with_one_more().await?;
    let start = Instant::now();
    let summary = tenant_resolver::migrate::migrate_all(state, &migrator, &|_, _| {}).await?;
    let migrate_all = start.elapsed();
    std::fs::remove_dir_all(dir).ok();
    anyhow::ensure!(
        summary.failed.is_empty(),
        "{} tenants failed to migrate",
        summary.failed.len()
    );

    let (bare_ms, signup_ms) = (median(&mut bare), median(&mut signup));
    let (first_ms, last_ms) = (median(&mut first), median(&mut last));
    Ok(TenantsReport {
        rounds,
        bare_create_ms: bare_ms,
        signup_ms,
        signup_vs_bare: signup_ms / bare_ms,
        tenants,
        first_tenth_signup_ms: first_ms,
        last_tenth_signup_ms: last_ms,
        last_vs_first: last_ms / first_ms,
        migrate_all_s: migrate_all.as_secs_f64(),
        migrate_per_tenant_ms: ms(migrate_all) / summary.total.max(1) as f64,
    })
}

/// The tenant migrations plus one that adds a table, so every tenant has work to do.
async fn migrator_with_one_more() -> anyhow::Result<(sqlx::migrate::Migrator, PathBuf)> {
    let dir = std::env::temp_dir().join(format!("nexus_bench_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(crate::workspace_root().join("migrations/tenant"))? {
        let path = entry?.path();
        std::fs::copy(&path, dir.join(path.file_name().context("file name")?))?;
    }
    std::fs::write(
        dir.join("99990001_bench.sql"),
        "create table bench_probe (id int primary key);",
    )?;
    Ok((sqlx::migrate::Migrator::new(dir.as_path()).await?, dir))
}

pub fn print_tenants(report: &TenantsReport) {
    println!();
    println!("| measure | ours | reference | ratio | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| signup, median of {} | {:.1} ms | bare create {:.1} ms | {:.2}× | ≤ 1.5× |",
        report.rounds, report.signup_ms, report.bare_create_ms, report.signup_vs_bare
    );
    println!(
        "| signup, last vs first tenth of {} | {:.1} ms | {:.1} ms | {:.2} | ≤ 1.2 |",
        report.tenants,
        report.last_tenth_signup_ms,
        report.first_tenth_signup_ms,
        report.last_vs_first
    );
    println!(
        "| migrate-all, {} tenants | {:.1} s ({:.1} ms/tenant) | — | — | — |",
        report.tenants + report.rounds,
        report.migrate_all_s,
        report.migrate_per_tenant_ms
    );
}

/// Runs the scenarios in a release build of this binary.
pub fn run(scenarios: &[String], options: &Options, json: Option<&PathBuf>) -> anyhow::Result<()> {
    let mut cmd = crate::cargo();
    cmd.args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "xtask",
        "--",
        "bench-release",
    ])
    .args([
        "--tenants",
        &options.tenants.to_string(),
        "--rounds",
        &options.rounds.to_string(),
        "--soak-minutes",
        &options.soak_minutes.to_string(),
    ]);
    if let Some(path) = json {
        cmd.arg("--json").arg(path);
    }
    cmd.args(scenarios);
    deps::run(&mut cmd, "running the benchmarks (release build)")
}

/// The sizes a run takes from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Tenants of the growth and migrate-all measures.
    pub tenants: usize,
    /// Rounds of signup vs bare create; the throughput scenarios take 3 to 5 of them.
    pub rounds: usize,
    /// Minutes of mixed traffic in `soak`.
    pub soak_minutes: u64,
}

/// The scenarios in the order a full run takes them; `projects` is accepted for `tasks`.
pub const SCENARIOS: [&str; 10] = [
    "tenants",
    "gateway",
    "tasks",
    "analytics",
    "notifications",
    "redirect",
    "footprint",
    "soak",
    "stream",
    "webhooks",
];

/// The chart a full run draws.
pub fn chart_path() -> PathBuf {
    crate::workspace_root().join("docs/bench-ratios.svg")
}

/// The summary rows of each scenario's report.
fn tenants_rows(r: &TenantsReport) -> Vec<Row> {
    vec![
        row(
            "tenants",
            &format!("signup, median of {}", r.rounds),
            (r.signup_ms, r.bare_create_ms),
            "ms",
            "bare CREATE DATABASE",
            Some(Goal::AtMost(1.5)),
        ),
        row(
            "tenants",
            &format!("signup, last vs first tenth of {}", r.tenants),
            (r.last_tenth_signup_ms, r.first_tenth_signup_ms),
            "ms",
            "first tenth",
            Some(Goal::AtMost(1.2)),
        ),
    ]
}

fn gateway_rows(r: &crate::bench_gateway::GatewayReport) -> Vec<Row> {
    vec![
        row(
            "gateway",
            "req/s, closed loop",
            (r.gateway.rps, r.nginx.rps),
            "req/s",
            "nginx proxy_pass",
            Some(Goal::AtLeast(1.0)),
        ),
        row(
            "gateway",
            &format!("p99 at a fixed {} req/s", r.fixed_rate),
            (r.gateway_fixed.p99_ms, r.nginx_fixed.p99_ms),
            "ms",
            "nginx proxy_pass",
            Some(Goal::AtMost(1.2)),
        ),
        row(
            "gateway",
            "req/s vs nginx without forwarding fields",
            (r.gateway.rps, r.nginx_bare.rps),
            "req/s",
            "bare nginx proxy_pass",
            None,
        ),
        row(
            "gateway",
            "req/s vs the upstream direct",
            (r.gateway.rps, r.direct.rps),
            "req/s",
            "upstream direct",
            None,
        ),
        row(
            "gateway",
            "CPU per request (lower is better)",
            (r.gateway_cpu_us_per_request, r.nginx_cpu_us_per_request),
            "µs",
            "nginx proxy_pass",
            None,
        ),
    ]
}

fn tasks_rows(r: &crate::bench_projects::ProjectsReport) -> Vec<Row> {
    use crate::bench_projects::names;
    let against = |measure: &str, reference: &str, goal: f64| {
        row(
            "tasks",
            measure,
            (r.per_s(measure), r.per_s(reference)),
            "/s",
            reference,
            Some(Goal::AtLeast(goal)),
        )
    };
    vec![
        against(names::CREATE, names::PG_CREATE, 0.9),
        against(names::READ, names::PG_READ, 0.6),
        against(names::BOARD, names::PG_BOARD, 0.8),
        against(names::UNIFORM, names::READ, 0.8),
        against(names::ZIPF, names::READ, 0.8),
        against(names::SMALL_CAP, names::PG_READ_C, 0.8),
    ]
}

fn analytics_rows(r: &crate::bench_analytics::AnalyticsReport) -> Vec<Row> {
    vec![
        row(
            "analytics",
            "stored + counted",
            (r.stored_per_s, r.null_sink_per_s),
            "events/s",
            "null sink",
            Some(Goal::AtLeast(0.6)),
        ),
        row(
            "analytics",
            "stored vs the store's bare inserts",
            (r.stored_per_s, r.store_ceiling_per_s),
            "events/s",
            "bare insert_many",
            None,
        ),
    ]
}

fn notifications_rows(r: &crate::bench_notifications::NotificationsReport) -> Vec<Row> {
    vec![row(
        "notifications",
        "events into inboxes (3 notifications each)",
        (r.stored_per_s, r.null_sink_per_s),
        "events/s",
        "null sink",
        Some(Goal::AtLeast(0.6)),
    )]
}

fn webhooks_rows(r: &crate::bench_webhooks::WebhooksReport) -> Vec<Row> {
    vec![row(
        "webhooks",
        &format!("deliveries to a local receiver, {} at once", r.concurrency),
        (r.dispatcher_per_s, r.reqwest_per_s),
        "deliveries/s",
        "bare reqwest loops",
        Some(Goal::AtLeast(r.goal)),
    )]
}

fn redirect_rows(r: &crate::bench_redirect::RedirectReport) -> Vec<Row> {
    vec![
        row(
            "redirect",
            "direct, req/s",
            (r.direct.run.rps, r.nginx.run.rps),
            "req/s",
            "nginx return 302",
            Some(Goal::AtLeast(0.9)),
        ),
        row(
            "redirect",
            "via gateway, req/s",
            (r.gateway.run.rps, r.nginx.run.rps),
            "req/s",
            "nginx return 302",
            Some(Goal::AtLeast(0.6)),
        ),
        row(
            "redirect",
            "lane vs hyper, req/s",
            (r.direct.run.rps, r.direct_without_lane.run.rps),
            "req/s",
            "lane off (hyper + router)",
            Some(Goal::AtLeast(1.1)),
        ),
        row(
            "redirect",
            "lane vs hyper, CPU per request (lower is better)",
            (
                r.direct.cpu_us_per_request,
                r.direct_without_lane.cpu_us_per_request,
            ),
            "µs",
            "lane off (hyper + router)",
            None,
        ),
    ]
}

fn footprint_rows(r: &crate::bench_footprint::FootprintReport) -> Vec<Row> {
    r.services
        .iter()
        .map(|s| {
            row(
                "footprint",
                &format!("{} idle RSS", s.service),
                (s.idle_rss_mib, crate::bench_footprint::IDLE_GOAL_MIB),
                "MiB",
                "goal",
                Some(Goal::AtMost(1.0)),
            )
        })
        .collect()
}

fn soak_rows(r: &crate::bench_soak::SoakReport) -> Vec<Row> {
    let mut rows = vec![row(
        "soak",
        "user-service peak RSS",
        (
            r.user_service_peak_mib,
            crate::bench_soak_rss::USER_SERVICE_PEAK_GOAL_MIB,
        ),
        "MiB",
        "goal",
        Some(Goal::AtMost(1.0)),
    )];
    rows.extend(r.growth.iter().map(|g| {
        row(
            "soak",
            &format!("{} RSS, end vs after the first minute", g.service),
            (g.end_mib, g.after_first_minute_mib),
            "MiB",
            "after the first minute",
            Some(Goal::AtMost(crate::bench_soak_rss::GROWTH_GOAL)),
        )
    }));
    rows.push(row(
        "soak",
        &format!("logins answered 200, {} at a time", r.logins.concurrency),
        (r.logins.tally.ok as f64, r.logins.logins as f64),
        "logins",
        "sent",
        None,
    ));
    rows
}

fn stream_rows(r: &crate::bench_stream::StreamReport) -> Vec<Row> {
    let mut rows = vec![row(
        "stream",
        &format!(
            "gateway + notification-service RSS per idle stream, {} open",
            r.streams
        ),
        (r.together_kib_per_stream, r.per_stream_goal_kib),
        "KiB",
        "goal",
        Some(Goal::AtMost(1.0)),
    )];
    rows.extend(r.fanout.iter().map(|f| {
        let goal = f.streams == crate::bench_stream::FANOUT_STREAMS;
        row(
            "stream",
            &format!(
                "p99 write to client, one event to {}",
                crate::bench_stream::streams_text(f.streams)
            ),
            (f.p99_ms, r.p99_goal_ms),
            "ms",
            "goal",
            goal.then_some(Goal::AtMost(1.0)),
        )
    }));
    rows
}

/// The release-build side of [`run`].
pub async fn run_release(
    scenarios: &[String],
    options: &Options,
    json: Option<&PathBuf>,
) -> anyhow::Result<()> {
    let Options {
        tenants,
        rounds,
        soak_minutes,
    } = *options;
    let scenarios: Vec<&str> = scenarios
        .iter()
        .map(|s| if s == "projects" { "tasks" } else { s.as_str() })
        .collect();
    if let Some(unknown) = scenarios.iter().find(|s| !SCENARIOS.contains(s)) {
        anyhow::bail!(
            "unknown scenario {unknown:?} (known: {}; `projects` is `tasks`)",
            SCENARIOS.join(", ")
        );
    }
    let all = scenarios.is_empty();
    let wanted = |name: &str| all || scenarios.contains(&name);
    // Throughput scenarios alternate their variants for at least 3 rounds.
    let alternating = rounds.clamp(3, 5);
    let started = Instant::now();
    let mut reports = serde_json::Map::new();
    let mut rows = Vec::new();
    if wanted("tenants") {
        let report = tenants_scenario(tenants, rounds.max(3)).await?;
        print_tenants(&report);
        rows.extend(tenants_rows(&report));
        reports.insert("tenants".into(), serde_json::to_value(&report)?);
    }
    if wanted("gateway") {
        let report = crate::bench_gateway::gateway_scenario(alternating, 5)?;
        crate::bench_gateway::print_gateway(&report);
        rows.extend(gateway_rows(&report));
        reports.insert("gateway".into(), serde_json::to_value(&report)?);
    }
    if wanted("tasks") {
        let report = crate::bench_projects::projects_scenario(alternating, 5).await?;
        crate::bench_projects::print_projects(&report);
        rows.extend(tasks_rows(&report));
        reports.insert("tasks".into(), serde_json::to_value(&report)?);
    }
    if wanted("analytics") {
        let report = crate::bench_analytics::analytics_scenario(3).await?;
        crate::bench_analytics::print_analytics(&report);
        rows.extend(analytics_rows(&report));
        reports.insert("analytics".into(), serde_json::to_value(&report)?);
    }
    if wanted("notifications") {
        let report = crate::bench_notifications::notifications_scenario(5).await?;
        crate::bench_notifications::print_notifications(&report);
        rows.extend(notifications_rows(&report));
        reports.insert("notifications".into(), serde_json::to_value(&report)?);
    }
    if wanted("redirect") {
        let report = crate::bench_redirect::redirect_scenario(alternating, 5).await?;
        crate::bench_redirect::print_redirect(&report);
        rows.extend(redirect_rows(&report));
        reports.insert("redirect".into(), serde_json::to_value(&report)?);
    }
    if wanted("footprint") {
        let report = crate::bench_footprint::footprint_scenario(10)?;
        crate::bench_footprint::print_footprint(&report);
        rows.extend(footprint_rows(&report));
        reports.insert("footprint".into(), serde_json::to_value(&report)?);
    }
    if wanted("soak") {
        let report = crate::bench_soak::soak_scenario(soak_minutes).await?;
        crate::bench_soak::print_soak(&report);
        rows.extend(soak_rows(&report));
        reports.insert("soak".into(), serde_json::to_value(&report)?);
    }
    if wanted("stream") {
        let report = crate::bench_stream::stream_scenario().await?;
        crate::bench_stream::print_stream(&report);
        rows.extend(stream_rows(&report));
        reports.insert("stream".into(), serde_json::to_value(&report)?);
    }
    if wanted("webhooks") {
        let report = crate::bench_webhooks::webhooks_scenario(3).await?;
        crate::bench_webhooks::print_webhooks(&report);
        rows.extend(webhooks_rows(&report));
        reports.insert("webhooks".into(), serde_json::to_value(&report)?);
    }
    let elapsed = started.elapsed();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "\nsummary ({cores} cores, {:.1} min; ratio = ours ÷ reference, medians)\n",
        elapsed.as_secs_f64() / 60.0
    );
    print!("{}", crate::bench_summary::table(&rows));
    if all {
        let path = chart_path();
        crate::bench_summary::write_svg(
            &path,
            &rows,
            &format!("cargo xtask bench: ratios to the reference ({cores} cores)"),
        )?;
        println!("\nchart: {}", path.display());
    }
    reports.insert(
        "summary".into(),
        serde_json::json!({
            "cores": cores,
            "seconds": elapsed.as_secs_f64(),
            "rows": rows,
        }),
    );
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&reports)?)?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}
