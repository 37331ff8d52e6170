//! Scenario `gateway`: a cheap upstream (nginx `return 200`) hit directly, through the
//! gateway (tenant from Host + JWT + proxy), and through nginx `proxy_pass` with
//! upstream keep-alive. The servers run on core 1 and `wrk` on core 0 (`taskset`);
//! variants alternate A B C A B C … and the medians are compared.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::auth::{Claims, Role, SigningKey};
use serde::Serialize;

use crate::deps;

const TENANT: &str = "01a20000-0000-7000-8000-000000000001";

/// Length of each fixed-rate run: a p99 wants more samples than a throughput (at 10,000
/// req/s, 10 s gives the 1% tail 1,000 requests).
const FIXED_SECONDS: u64 = 10;

/// What the reference nginx adds to each request and answer: the usual reverse-proxy
/// fields (`X-Forwarded-*`, a request id upstream and back), as the gateway does.
const NGINX_PROXY_FIELDS: &str = "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; \
     proxy_set_header X-Forwarded-Host $host; proxy_set_header X-Forwarded-Proto $scheme; \
     proxy_set_header X-Request-Id $request_id; add_header X-Request-Id $request_id always;";

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Run {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct GatewayReport {
    pub rounds: usize,
    pub seconds_per_run: u64,
    pub connections: u32,
    pub direct: Run,
    pub gateway: Run,
    pub nginx: Run,
    /// nginx `proxy_pass` without the forwarding fields and request id: the reference
    /// before they were added, kept beside it so the change of reference stays visible.
    pub nginx_bare: Run,
    pub gateway_vs_nginx_rps: f64,
    pub gateway_vs_nginx_bare_rps: f64,
    pub gateway_vs_direct_rps: f64,
    pub gateway_vs_nginx_p99: f64,
    /// Open-loop runs at one fixed rate (half the slower closed-loop throughput).
    pub fixed_rate: u64,
    pub fixed_seconds_per_run: u64,
    pub gateway_fixed: Run,
    pub nginx_fixed: Run,
    pub gateway_vs_nginx_p99_fixed: f64,
    /// CPU time (user + system) each proxy spent per request in the closed-loop runs
    /// (medians; the upstream's own share not included), in µs.
    pub gateway_cpu_us_per_request: f64,
    pub nginx_cpu_us_per_request: f64,
    /// nginx's CPU per request ÷ the gateway's (above 1: the gateway is cheaper).
    pub gateway_vs_nginx_cpu: f64,
}

/// Installs a Debian package when its command is missing.
pub(crate) fn ensure_command(command: &str, package: &str) -> anyhow::Result<()> {
    if Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()?
        .status
        .success()
    {
        return Ok(());
    }
    println!("• installing {package} (apt-get)");
    deps::run(
        Command::new("apt-get").args(["update", "-qq"]),
        "apt-get update",
    )?;
    deps::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("installing {package}"),
    )
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) fn wait_for(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Runs `program` on core 1 (the servers' core).
pub(crate) fn on_core(core: &str, program: &str) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", core, program]);
    cmd
}

pub(crate) fn nginx(dir: &Path, name: &str, server: &str) -> anyhow::Result<Child> {
    let conf = format!(
        "worker_processes 1; daemon off; pid {dir}/{name}.pid; error_log {dir}/{name}.err warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{ access_log off; client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp;\n\
         fastcgi_temp_path {dir}/tmp; uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;\n{server}\n}}\n",
        dir = dir.display()
    );
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, conf)?;
    on_core("1", "nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .context("starting nginx")
}

pub(crate) fn parse_duration_ms(text: &str) -> Option<f64> {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| text.split_at(i))?;
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        _ => return None,
    })
}

fn wrk(port: u16, token: &str, seconds: u64, connections: u32) -> anyhow::Result<Run> {
    let output = on_core("0", "wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .args([
            "-H",
            "Host: acme.localhost",
            "-H",
            &format!("Authorization: Bearer {token}"),
        ])
        .arg(format!("http://127.0.0.1:{port}/api/v1/projects"))
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
    };
    if text.contains("Non-2xx") {
        bail!("wrk saw errors on port {port}:\n{text}");
    }
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

/// An open-loop run at `rate` requests/s with `oha` (latency measured from when each
/// request was due, so a stall counts against every request it delays).
fn oha(port: u16, token: &str, seconds: u64, rate: u64) -> anyhow::Result<Run> {
    let output = on_core("0", "oha")
        .args([
            "--no-tui",
            "--output-format",
            "json",
            "--latency-correction",
        ])
        .args([
            "-c",
            "32",
            "-z",
            &format!("{seconds}s"),
            "-q",
            &rate.to_string(),
        ])
        .args(["-H", "Host: acme.localhost"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("http://127.0.0.1:{port}/api/v1/projects"))
        .output()
        .context("running oha")?;
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("oha printed no JSON report")?;
    let codes = &report["statusCodeDistribution"];
    if codes
        .as_object()
        .is_none_or(|c| c.keys().any(|k| k != "200"))
    {
        bail!("oha saw errors on port {port}: {codes}");
    }
    let seconds_to_ms = |key: &str| {
        report["latencyPercentiles"][key]
            .as_f64()
            .map(|s| s * 1000.0)
            .with_context(|| format!("oha report has no {key}"))
    };
    Ok(Run {
        rps: report["summary"]["requestsPerSec"]
            .as_f64()
            .context("oha report has no requestsPerSec")?,
        p50_ms: seconds_to_ms("p50")?,
        p99_ms: seconds_to_ms("p99")?,
    })
}

/// `oha` is a crates.io binary: installed with cargo when missing.
fn ensure_oha() -> anyhow::Result<()> {
    if Command::new("oha").arg("--version").output().is_ok() {
        return Ok(());
    }
    println!("• installing oha (cargo install; a few minutes, once)");
    deps::run(
        Command::new("cargo").args(["install", "--locked", "--quiet", "oha"]),
        "installing oha",
    )
}

pub(crate) fn median_run(runs: &[Run]) -> Run {
    let median = |f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Run {
        rps: median(|r| r.rps),
        p50_ms: median(|r| r.p50_ms),
        p99_ms: median(|r| r.p99_ms),
    }
}

pub(crate) struct Processes(pub(crate) Vec<Child>);

impl Drop for Processes {
    /// SIGTERM first, so nginx's master takes its workers down with it (a SIGKILLed
    /// master leaves them running), then SIGKILL what is still there after 3 s.
    fn drop(&mut self) {
        for child in &self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for child in &mut self.0 {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn gateway_scenario(rounds: usize, seconds: u64) -> anyhow::Result<GatewayReport> {
    ensure_command("nginx", "nginx")?;
    ensure_command("wrk", "wrk")?;
    ensure_command("taskset", "util-linux")?;
    ensure_oha()?;
    deps::run(
        crate::cargo().args(["build", "--release", "--quiet", "-p", "gateway"]),
        "building the gateway (release)",
    )?;
    let dir =
        std::env::temp_dir().join(format!("nexus_bench_gw_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("tmp"))?;
    let key = SigningKey::generate("bench")?;
    let jwks = serde_json::to_string(&SigningKey::jwks([&key])?)?;
    let tenant: uuid::Uuid = TENANT.parse()?;
    let mut claims = Claims::new(uuid::Uuid::now_v7(), tenant, "acme", Role::Owner);
    claims.exp += 3600;
    let token = key.sign(&claims)?;
    let (up, proxy, bare, gw) = (free_port()?, free_port()?, free_port()?, free_port()?);

    let mut processes = Processes(Vec::new());
    processes.0.push(nginx(
        &dir,
        "upstream",
        &format!(
            "server {{ listen 127.0.0.1:{up} reuseport; default_type application/json;\n\
             location = /healthz {{ return 200 'ok'; }}\n\
             location = /.well-known/jwks.json {{ return 200 '{jwks}'; }}\n\
             location = /internal/tenants/by-slug/acme {{ return 200 '{{\"id\":\"{tenant}\",\"slug\":\"acme\"}}'; }}\n\
             location = /internal/revocations {{ return 200 '{{\"items\":[],\"cursor\":0}}'; }}\n\
             location / {{ return 200 '{{\"ok\":true}}'; }} }}"
        ),
    )?);
    // The reference is nginx as it is run in front of an API: with the forwarding fields
    // and a request id (sent upstream and answered), the fields the gateway's contract
    // has it set too. Without them the upstream behind nginx parses a smaller head than
    // the one behind the gateway, and the two proxies are not doing the same job.
    let proxy_pass = |port: u16, fields: &str| {
        format!(
            "upstream up {{ server 127.0.0.1:{up}; keepalive 64; }}\n\
             server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://up;\n\
             proxy_http_version 1.1; proxy_set_header Connection \"\";\n\
             {fields} }} }}"
        )
    };
    processes.0.push(nginx(
        &dir,
        "proxy",
        &proxy_pass(proxy, NGINX_PROXY_FIELDS),
    )?);
    processes
        .0
        .push(nginx(&dir, "bare", &proxy_pass(bare, ""))?);
    let base = format!("http://127.0.0.1:{up}");
    // NEXUS_BENCH_GATEWAY_BIN runs another build (one with frame pointers, to profile).
    let gateway_bin = std::env::var_os("NEXUS_BENCH_GATEWAY_BIN").map_or_else(
        || crate::workspace_root().join("target/release/gateway"),
        std::path::PathBuf::from,
    );
    processes.0.push(
        on_core("1", gateway_bin.to_str().context("path")?)
            .env("BIND_ADDR", format!("127.0.0.1:{gw}"))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .envs(
                [
                    "TENANT_RESOLVER_URL",
                    "USER_SERVICE_URL",
                    "PROJECT_SERVICE_URL",
                    "URL_SHORTENER_URL",
                    "ANALYTICS_SERVICE_URL",
                    "NOTIFICATION_SERVICE_URL",
                ]
                .map(|k| (k, base.clone())),
            )
            .env("JWKS_URL", format!("{base}/.well-known/jwks.json"))
            .env("RATE_LIMIT_USER_PER_MIN", "1000000000")
            .stdout(Stdio::null())
            .spawn()
            .context("starting the gateway")?,
    );
    for port in [up, proxy, bare, gw] {
        wait_for(port)?;
    }
    let connections = 32;
    println!("• warming up");
    for port in [up, gw, proxy, bare] {
        wrk(port, &token, 1, connections)?;
    }
    let gateway_pids = [processes.0[3].id()];
    let nginx_pids = crate::bench_redirect::children(processes.0[1].id())?;
    let (mut direct, mut gateway, mut nginx_runs) = (Vec::new(), Vec::new(), Vec::new());
    let mut bare_runs = Vec::new();
    let (mut gateway_cpu, mut nginx_cpu) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        println!("• round {round}/{rounds}: direct, gateway, nginx, bare nginx ({seconds}s each)");
        direct.push(wrk(up, &token, seconds, connections)?);
        let (run, cpu) = with_cpu(&gateway_pids, seconds, || {
            wrk(gw, &token, seconds, connections)
        })?;
        gateway.push(run);
        gateway_cpu.push(cpu);
        let (run, cpu) = with_cpu(&nginx_pids, seconds, || {
            wrk(proxy, &token, seconds, connections)
        })?;
        nginx_runs.push(run);
        nginx_cpu.push(cpu);
        bare_runs.push(wrk(bare, &token, seconds, connections)?);
    }
    let median_of = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (gateway_cpu, nginx_cpu) = (median_of(&mut gateway_cpu), median_of(&mut nginx_cpu));
    let (direct, gateway, nginx, nginx_bare) = (
        median_run(&direct),
        median_run(&gateway),
        median_run(&nginx_runs),
        median_run(&bare_runs),
    );
    // The same fixed rate for both, one both can carry: half the slower one's throughput,
    // and at most 10,000 req/s: above that `oha` itself (one core, 32 connections) falls
    // behind and its latencies measure the load generator, not the servers.
    let fixed_rate =
        ((gateway.rps.min(nginx.rps) / 2.0 / 1000.0).floor() as u64).clamp(1, 10) * 1000;
    let (mut gateway_fixed, mut nginx_fixed) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        println!("• round {round}/{rounds} at a fixed {fixed_rate} req/s: gateway, nginx");
        gateway_fixed.push(oha(gw, &token, FIXED_SECONDS, fixed_rate)?);
        nginx_fixed.push(oha(proxy, &token, FIXED_SECONDS, fixed_rate)?);
    }
    drop(processes);
    std::fs::remove_dir_all(&dir).ok();
    let (gateway_fixed, nginx_fixed) = (median_run(&gateway_fixed), median_run(&nginx_fixed));
    Ok(GatewayReport {
        rounds,
        seconds_per_run: seconds,
        connections,
        direct,
        gateway,
        nginx,
        nginx_bare,
        gateway_vs_nginx_rps: gateway.rps / nginx.rps,
        gateway_vs_nginx_bare_rps: gateway.rps / nginx_bare.rps,
        gateway_vs_direct_rps: gateway.rps / direct.rps,
        gateway_vs_nginx_p99: gateway.p99_ms / nginx.p99_ms,
        fixed_rate,
        fixed_seconds_per_run: FIXED_SECONDS,
        gateway_fixed,
        nginx_fixed,
        gateway_vs_nginx_p99_fixed: gateway_fixed.p99_ms / nginx_fixed.p99_ms,
        gateway_cpu_us_per_request: gateway_cpu,
        nginx_cpu_us_per_request: nginx_cpu,
        gateway_vs_nginx_cpu: nginx_cpu / gateway_cpu,
    })
}

/// A closed-loop run and the CPU time `pids` spent per request during it (µs); the
/// request count is wrk's rate times the run's length.
fn with_cpu(
    pids: &[u32],
    seconds: u64,
    run: impl FnOnce() -> anyhow::Result<Run>,
) -> anyhow::Result<(Run, f64)> {
    crate::bench_redirect::with_cpu(pids, || {
        let run = run()?;
        Ok((run, (run.rps * seconds as f64) as u64))
    })
}

pub fn print_gateway(r: &GatewayReport) {
    println!();
    println!("| variant | req/s | p50 | p99 |");
    println!("|---|---|---|---|");
    for (name, run) in [
        ("upstream direct", r.direct),
        ("gateway (tenant + JWT + proxy)", r.gateway),
        ("nginx proxy_pass", r.nginx),
        ("nginx proxy_pass, no forwarding fields", r.nginx_bare),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
            run.rps, run.p50_ms, run.p99_ms
        );
    }
    for (name, run) in [
        ("gateway at a fixed rate", r.gateway_fixed),
        ("nginx proxy_pass at a fixed rate", r.nginx_fixed),
    ] {
        println!(
            "| {name} ({} req/s) | {:.0} | {:.2} ms | {:.2} ms |",
            r.fixed_rate, run.rps, run.p50_ms, run.p99_ms
        );
    }
    println!();
    println!(
        "CPU per request (user + system, the proxy alone): gateway {:.1} µs, nginx {:.1} µs",
        r.gateway_cpu_us_per_request, r.nginx_cpu_us_per_request
    );
    println!(
        "gateway/nginx req/s {:.2}× (goal ≥ 1.0; {:.2}× of nginx without forwarding fields) · gateway/direct {:.2}× · p99 gateway/nginx at {} req/s {:.2}× (goal ≤ 1.2; closed loop {:.2}×)",
        r.gateway_vs_nginx_rps,
        r.gateway_vs_nginx_bare_rps,
        r.gateway_vs_direct_rps,
        r.fixed_rate,
        r.gateway_vs_nginx_p99_fixed,
        r.gateway_vs_nginx_p99
    );
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn reads_wrk_durations() {
        assert_eq!(parse_duration_ms("250.00us"), Some(0.25));
        assert_eq!(parse_duration_ms("1.50ms"), Some(1.5));
        assert_eq!(parse_duration_ms("2.00s"), Some(2000.0));
        assert_eq!(parse_duration_ms("fast"), None);
    }
}
