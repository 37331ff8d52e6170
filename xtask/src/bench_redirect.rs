//! Scenario `redirect`: cached share-link redirects (`GET /s/{code}` → 302 with a fresh
//! grant) served by url-shortener directly and through the gateway, against nginx
//! answering `return 302` with a Location of the same length. The servers run on core 1
//! and `wrk` on core 0 (`taskset`); the variants alternate A B C A B C … and the
//! medians are compared. Visits are counted and written as in production (batched into
//! PostgreSQL, events through the outbox to RabbitMQ), so that cost is in the figures.

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

#[derive(Debug, Serialize)]
pub struct RedirectReport {
    pub rounds: usize,
    pub seconds_per_run: u64,
    pub connections: u32,
    pub direct: Run,
    pub gateway: Run,
    pub nginx: Run,
    pub direct_vs_nginx_rps: f64,
    pub gateway_vs_nginx_rps: f64,
    pub direct_vs_nginx_p99: f64,
    pub gateway_vs_nginx_p99: f64,
    /// Visits the service had written to its database when the runs were over.
    pub visits_written: i64,
}

/// `wrk` against `url` with `host`; every answer must be a 302.
fn wrk(url: &str, host: &str, seconds: u64, connections: u32) -> anyhow::Result<Run> {
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
    Ok(Run {
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .context("wrk output has no Requests/sec")?,
        p50_ms: field("50%")
            .and_then(|v| parse_duration_ms(&v))
            .context("no p50")?,
        p99_ms: field("99%")
            .and_then(|v| parse_duration_ms(&v))
            .context("no p99")?,
    })
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
    processes.0.push(
        on_core("1", bin("url-shortener").to_str().context("path")?)
            .env("BIND_ADDR", format!("127.0.0.1:{shortener}"))
            .env("DATABASE_URL", format!("{postgres}/{database}"))
            .env("AMQP_URL", common::testkit::amqp_url())
            .env("EVENTS_EXCHANGE", &exchange)
            .env(
                "JWKS_URL",
                format!("http://127.0.0.1:{up}/.well-known/jwks.json"),
            )
            .env("PROJECT_SERVICE_URL", format!("http://127.0.0.1:{up}"))
            .env("SHARE_GRANT_SECRET", GRANT_SECRET)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting url-shortener")?,
    );
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
    for port in [up, reference, shortener, gw] {
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
    let gateway_url = format!("http://127.0.0.1:{gw}/s/{code}");
    let nginx_url = format!("http://127.0.0.1:{reference}/s/{code}");
    println!("• warming up");
    for url in [&direct_url, &gateway_url, &nginx_url] {
        wrk(url, "localhost", 1, connections)?;
    }
    let (mut direct, mut gateway, mut nginx_runs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        println!("• round {round}/{rounds}: direct, gateway, nginx ({seconds}s each)");
        direct.push(wrk(&direct_url, "localhost", seconds, connections)?);
        gateway.push(wrk(&gateway_url, "localhost", seconds, connections)?);
        nginx_runs.push(wrk(&nginx_url, "localhost", seconds, connections)?);
    }
    let visits_written: i64 = {
        let mut db = sqlx::PgConnection::connect(&format!("{postgres}/{database}")).await?;
        sqlx::query_scalar("select visits from links where code = $1")
            .bind(&code)
            .fetch_one(&mut db)
            .await?
    };
    drop(processes);
    std::fs::remove_dir_all(&dir).ok();
    let mut admin = admin().await?;
    sqlx::query(&format!("drop database if exists {database} with (force)"))
        .execute(&mut admin)
        .await
        .ok();
    let (direct, gateway, nginx) = (
        median_run(&direct),
        median_run(&gateway),
        median_run(&nginx_runs),
    );
    Ok(RedirectReport {
        rounds,
        seconds_per_run: seconds,
        connections,
        direct,
        gateway,
        nginx,
        direct_vs_nginx_rps: direct.rps / nginx.rps,
        gateway_vs_nginx_rps: gateway.rps / nginx.rps,
        direct_vs_nginx_p99: direct.p99_ms / nginx.p99_ms,
        gateway_vs_nginx_p99: gateway.p99_ms / nginx.p99_ms,
        visits_written,
    })
}

pub fn print_redirect(r: &RedirectReport) {
    println!();
    println!("| variant | req/s | p50 | p99 |");
    println!("|---|---|---|---|");
    for (name, run) in [
        ("url-shortener direct (cached 302 + grant)", r.direct),
        ("through the gateway", r.gateway),
        ("nginx `return 302`", r.nginx),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
            run.rps, run.p50_ms, run.p99_ms
        );
    }
    println!();
    println!(
        "direct/nginx req/s {:.2}× (goal ≥ 0.9) · gateway/nginx {:.2}× · p99 direct/nginx {:.2}× · gateway/nginx {:.2}× · visits written {}",
        r.direct_vs_nginx_rps,
        r.gateway_vs_nginx_rps,
        r.direct_vs_nginx_p99,
        r.gateway_vs_nginx_p99,
        r.visits_written
    );
}
