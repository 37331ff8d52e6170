//! Scenario `redirect`: cached share-link redirects (`GET /s/{code}` → 302 with a fresh
//! grant) served by url-shortener directly and through the gateway, against nginx
//! answering `return 302` with a Location of the same length; and url-shortener's
//! redirect lane against the same service with the lane off (`REDIRECT_LANE=false`:
//! hyper and the router answer every open), the side-by-side the lane has to win by 10%
//! to be kept. The servers run on core 1 and `wrk` on core 0 (`taskset`); the variants
//! alternate A B C D A B C D … and the medians are compared. Visits are counted and written as in production (batched into
//! PostgreSQL, events through the outbox to RabbitMQ), so that cost is in the figures.
//! Besides req/s and latency it reports the server's CPU time per request (user + system,
//! from `/proc/<pid>/stat`), which other work on a shared machine disturbs far less.

use std::process::Stdio;

use anyhow::{Context, bail};
use common::auth::{Claims, Role, SigningKey};
use common::grant::{GrantKey, ShareGrant, SharedTarget};
use serde::Serialize;
use sqlx::Connection;

use crate::bench_gateway::{
    Processes, Run, ensure_command, free_port, median_run, nginx, on_core, parse_duration_ms,
    wait_for,
};
use crate::deps;

const TENANT: &str = "01a20000-0000-7000-8000-000000000002";
const TASK: &str = "01a20000-0000-7000-8000-0000000000aa";
const GRANT_SECRET: &str = "bench-share-grant-secret";

/// A closed-loop run plus the CPU the server under test spent per request.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Measured {
    #[serde(flatten)]
    pub run: Run,
    pub cpu_us_per_request: f64,
}

#[derive(Debug, Serialize)]
pub struct RedirectReport {
    pub rounds: usize,
    pub seconds_per_run: u64,
    pub connections: u32,
    pub direct: Measured,
    /// url-shortener direct with `REDIRECT_LANE=false`: hyper and the router only.
    pub direct_without_lane: Measured,
    pub gateway: Measured,
    pub nginx: Measured,
    pub direct_vs_nginx_rps: f64,
    /// nginx's CPU per request over url-shortener's: the throughput ratio one core allows.
    pub direct_vs_nginx_cpu: f64,
    pub gateway_vs_nginx_rps: f64,
    pub direct_vs_nginx_p99: f64,
    pub gateway_vs_nginx_p99: f64,
    /// The lane's req/s over hyper's (url-shortener direct, lane on ÷ off).
    pub lane_vs_hyper_rps: f64,
    /// hyper's CPU per request over the lane's (above 1: the lane is cheaper).
    pub lane_vs_hyper_cpu: f64,
    /// Visits the service had written to its database when the runs were over.
    pub visits_written: i64,
}

/// Clock ticks of CPU (user + system) `pid` has used; the stat's fields after the
/// command name, which may hold spaces, are read from the last `)`.
pub(crate) fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("unexpected /proc stat")?
        .1
        .split_whitespace()
        .collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("short /proc stat")?.parse()?)
    };
    // utime and stime are fields 14 and 15, the 12th and 13th after the name.
    Ok(field(11)? + field(12)?)
}

pub(crate) fn ticks_per_second() -> anyhow::Result<f64> {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// A run (which says how many requests it made) and the CPU time `pids` spent per
/// request during it, in µs.
pub(crate) fn with_cpu<R>(
    pids: &[u32],
    run: impl FnOnce() -> anyhow::Result<(R, u64)>,
) -> anyhow::Result<(R, f64)> {
    let ticks = || -> anyhow::Result<u64> { pids.iter().map(|p| cpu_ticks(*p)).sum() };
    let before = ticks()?;
    let (run, requests) = run()?;
    let cpu_s = (ticks()? - before) as f64 / ticks_per_second()?;
    Ok((run, cpu_s * 1e6 / requests.max(1) as f64))
}

/// `wrk` against `url` while measuring `pids`' CPU time.
fn measured(url: &str, pids: &[u32], seconds: u64, connections: u32) -> anyhow::Result<Measured> {
    let (run, cpu_us_per_request) = with_cpu(pids, || wrk(url, "localhost", seconds, connections))?;
    Ok(Measured {
        run,
        cpu_us_per_request,
    })
}

fn median_measured(runs: &[Measured]) -> Measured {
    let mut cpu: Vec<f64> = runs.iter().map(|m| m.cpu_us_per_request).collect();
    cpu.sort_by(f64::total_cmp);
    Measured {
        run: median_run(&runs.iter().map(|m| m.run).collect::<Vec<_>>()),
        cpu_us_per_request: cpu[cpu.len() / 2],
    }
}

/// `wrk` against `url` with `host`; every answer must be a 302. The run and how many
/// requests it made.
fn wrk(url: &str, host: &str, seconds: u64, connections: u32) -> anyhow::Result<(Run, u64)> {
    let output = on_core("0", "wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .args(["-H", &format!("Host: {host}")])
        .args(["-H", "User-Agent: Mozilla/5.0 (bench) Firefox/125.0"])
        .arg(url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    // wrk counts statuses above 399 as errors ("Non-2xx or 3xx responses").
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk saw errors on {url}:\n{text}");
    }
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
    };
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("wrk output has no request count")?;
    let run = Run {
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .context("wrk output has no Requests/sec")?,
        p50_ms: field("50%")
            .and_then(|v| parse_duration_ms(&v))
            .context("no p50")?,
        p99_ms: field("99%")
            .and_then(|v| parse_duration_ms(&v))
            .context("no p99")?,
    };
    Ok((run, requests))
}

/// The child processes of `pid` (nginx's workers under its master).
pub(crate) fn children(pid: u32) -> anyhow::Result<Vec<u32>> {
    let out = std::process::Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .context("running pgrep")?;
    let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    if pids.is_empty() {
        bail!("nginx {pid} has no workers");
    }
    Ok(pids)
}

async fn admin() -> anyhow::Result<sqlx::PgConnection> {
    let url = format!("{}/postgres", common::testkit::postgres_url());
    sqlx::PgConnection::connect(&url)
        .await
        .with_context(|| format!("PostgreSQL does not answer at {url}"))
}

pub async fn redirect_scenario(rounds: usize, seconds: u64) -> anyhow::Result<RedirectReport> {
    ensure_command("nginx", "nginx")?;
    ensure_command("wrk", "wrk")?;
    ensure_command("taskset", "util-linux")?;
    deps::run(
        crate::cargo().args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "gateway",
            "-p",
            "url-shortener",
        ]),
        "building the gateway and url-shortener (release)",
    )?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("nexus_bench_redirect_{id}"));
    std::fs::create_dir_all(dir.join("tmp"))?;
    let database = format!("nexus_bench_redirect_{}", &id[..12]);
    let exchange = format!("bench.events.{}", &id[..12]);
    let key = SigningKey::generate("bench")?;
    let jwks = serde_json::to_string(&SigningKey::jwks([&key])?)?;
    let tenant: uuid::Uuid = TENANT.parse()?;
    let mut claims = Claims::new(uuid::Uuid::now_v7(), tenant, "acme", Role::Owner);
    claims.exp += 3600;
    let token = key.sign(&claims)?;
    // nginx's Location carries a grant of the real length, so both answers weigh the same.
    let grant =
        GrantKey::new(&secrecy::SecretString::from(GRANT_SECRET.to_owned())).sign(&ShareGrant {
            tenant_id: tenant,
            target: SharedTarget::Task(TASK.parse()?),
            expires_at: i64::MAX,
        });
    let (up, reference, shortener, gw) = (free_port()?, free_port()?, free_port()?, free_port()?);
    let without_lane = free_port()?;

    let mut processes = Processes(Vec::new());
    // Stands in for project-service (the target check), the JWKS and tenant-resolver.
    processes.0.push(nginx(
        &dir,
        "upstream",
        &format!(
            "server {{ listen 127.0.0.1:{up}; default_type application/json;\n\
             location = /.well-known/jwks.json {{ return 200 '{jwks}'; }}\n\
             location / {{ return 200 '{{\"id\":\"{TASK}\",\"slug\":\"acme\"}}'; }} }}"
        ),
    )?);
    processes.0.push(nginx(
        &dir,
        "reference",
        &format!(
            "server {{ listen 127.0.0.1:{reference};\n\
             location /s/ {{ add_header Cache-Control no-store;\n\
             return 302 'http://acme.localhost:8080/shared/tasks/{TASK}?grant={grant}'; }} }}"
        ),
    )?);
    let bin = |name: &str| crate::workspace_root().join("target/release").join(name);
    let postgres = common::testkit::postgres_url();
    // Two url-shortener processes on the same database and exchange, one with the lane
    // and one without; each is idle while the other is measured.
    let url_shortener = |port: u16, lane: bool| -> anyhow::Result<std::process::Child> {
        on_core("1", bin("url-shortener").to_str().context("path")?)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", format!("{postgres}/{database}"))
            .env("AMQP_URL", common::testkit::amqp_url())
            .env("EVENTS_EXCHANGE", &exchange)
            .env(
                "JWKS_URL",
                format!("http://127.0.0.1:{up}/.well-known/jwks.json"),
            )
            .env("PROJECT_SERVICE_URL", format!("http://127.0.0.1:{up}"))
            .env("SHARE_GRANT_SECRET", GRANT_SECRET)
            .env("REDIRECT_LANE", lane.to_string())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting url-shortener")
    };
    processes.0.push(url_shortener(shortener, true)?);
    let shortener_pid = processes.0[2].id();
    // The second one after the first has created and migrated the database.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while crate::fleet::readyz_status(shortener) != Some(200) {
        if std::time::Instant::now() > deadline {
            bail!("url-shortener on {shortener} was not ready within 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    processes.0.push(url_shortener(without_lane, false)?);
    let without_lane_pid = processes.0[3].id();
    let upstream = format!("http://127.0.0.1:{up}");
    processes.0.push(
        on_core("1", bin("gateway").to_str().context("path")?)
            .env("BIND_ADDR", format!("127.0.0.1:{gw}"))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .envs(
                [
                    "TENANT_RESOLVER_URL",
                    "USER_SERVICE_URL",
                    "PROJECT_SERVICE_URL",
                    "ANALYTICS_SERVICE_URL",
                    "NOTIFICATION_SERVICE_URL",
                ]
                .map(|k| (k, upstream.clone())),
            )
            .env("URL_SHORTENER_URL", format!("http://127.0.0.1:{shortener}"))
            .env("JWKS_URL", format!("{upstream}/.well-known/jwks.json"))
            .env("RATE_LIMIT_IP_PER_MIN", "1000000000")
            .stdout(Stdio::null())
            .spawn()
            .context("starting the gateway")?,
    );
    for port in [up, reference, shortener, without_lane, gw] {
        wait_for(port)?;
    }
    let http = reqwest::Client::new();
    let created = http
        .post(format!("http://127.0.0.1:{shortener}/api/v1/links"))
        .bearer_auth(&token)
        .header("x-tenant-id", TENANT)
        .header("x-tenant-slug", "acme")
        .json(&serde_json::json!({"target": {"type": "task", "id": TASK}, "ttl": 86400}))
        .send()
        .await
        .context("creating the link")?;
    if created.status() != 201 {
        bail!("creating the link: {}", created.text().await?);
    }
    let code = created.json::<serde_json::Value>().await?["code"]
        .as_str()
        .context("no code")?
        .to_owned();
    let connections = 32;
    let direct_url = format!("http://127.0.0.1:{shortener}/s/{code}");
    let without_lane_url = format!("http://127.0.0.1:{without_lane}/s/{code}");
    let gateway_url = format!("http://127.0.0.1:{gw}/s/{code}");
    let nginx_url = format!("http://127.0.0.1:{reference}/s/{code}");
    println!("• warming up");
    for url in [&direct_url, &without_lane_url, &gateway_url, &nginx_url] {
        wrk(url, "localhost", 1, connections)?;
    }
    let gateway_pid = processes.0[4].id();
    let nginx_workers = children(processes.0[1].id())?;
    let (mut direct, mut gateway, mut nginx_runs) = (Vec::new(), Vec::new(), Vec::new());
    let mut no_lane = Vec::new();
    for round in 1..=rounds {
        println!(
            "• round {round}/{rounds}: direct, direct without the lane, gateway, nginx ({seconds}s each)"
        );
        direct.push(measured(
            &direct_url,
            &[shortener_pid],
            seconds,
            connections,
        )?);
        no_lane.push(measured(
            &without_lane_url,
            &[without_lane_pid],
            seconds,
            connections,
        )?);
        gateway.push(measured(
            &gateway_url,
            &[gateway_pid, shortener_pid],
            seconds,
            connections,
        )?);
        nginx_runs.push(measured(&nginx_url, &nginx_workers, seconds, connections)?);
    }
    let visits_written = {
        let mut db = sqlx::PgConnection::connect(&format!("{postgres}/{database}")).await?;
        url_shortener::db::links::visits_written(&mut db, &code)
            .await?
            .context("the benchmark's link is gone")?
    };
    drop(processes);
    std::fs::remove_dir_all(&dir).ok();
    let mut admin = admin().await?;
    common::testkit::drop_database(&mut admin, &database)
        .await
        .ok();
    let (direct, direct_without_lane, gateway, nginx) = (
        median_measured(&direct),
        median_measured(&no_lane),
        median_measured(&gateway),
        median_measured(&nginx_runs),
    );
    Ok(RedirectReport {
        rounds,
        seconds_per_run: seconds,
        connections,
        direct,
        direct_without_lane,
        gateway,
        nginx,
        direct_vs_nginx_rps: direct.run.rps / nginx.run.rps,
        direct_vs_nginx_cpu: nginx.cpu_us_per_request / direct.cpu_us_per_request,
        gateway_vs_nginx_rps: gateway.run.rps / nginx.run.rps,
        direct_vs_nginx_p99: direct.run.p99_ms / nginx.run.p99_ms,
        gateway_vs_nginx_p99: gateway.run.p99_ms / nginx.run.p99_ms,
        lane_vs_hyper_rps: direct.run.rps / direct_without_lane.run.rps,
        lane_vs_hyper_cpu: direct_without_lane.cpu_us_per_request / direct.cpu_us_per_request,
        visits_written,
    })
}

pub fn print_redirect(r: &RedirectReport) {
    println!();
    println!("| variant | req/s | p50 | p99 | CPU per request |");
    println!("|---|---|---|---|---|");
    for (name, m) in [
        ("url-shortener direct (cached 302 + grant)", r.direct),
        (
            "url-shortener direct, lane off (hyper + router)",
            r.direct_without_lane,
        ),
        (
            "through the gateway (gateway + url-shortener CPU)",
            r.gateway,
        ),
        ("nginx `return 302`", r.nginx),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.1} µs |",
            m.run.rps, m.run.p50_ms, m.run.p99_ms, m.cpu_us_per_request
        );
    }
    println!();
    println!(
        "direct/nginx req/s {:.2}× (goal ≥ 0.9) · by CPU per request {:.2}× · gateway/nginx {:.2}× · p99 direct/nginx {:.2}× · gateway/nginx {:.2}× · visits written {}",
        r.direct_vs_nginx_rps,
        r.direct_vs_nginx_cpu,
        r.gateway_vs_nginx_rps,
        r.direct_vs_nginx_p99,
        r.gateway_vs_nginx_p99,
        r.visits_written
    );
    println!(
        "redirect lane / hyper (url-shortener direct, lane on ÷ off): req/s {:.2}× (kept if ≥ 1.1) · by CPU per request {:.2}×",
        r.lane_vs_hyper_rps, r.lane_vs_hyper_cpu
    );
}
