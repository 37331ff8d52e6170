//! Scenario `footprint`: the resident memory of each of the seven release binaries, idle
//! after start-up and under load through the gateway.
//!
//! Starts the fleet as `cargo xtask up --release` would (default ports, the local
//! PostgreSQL, RabbitMQ and MongoDB), waits for every `/readyz`, lets it settle, reads
//! `VmRSS` from `/proc/<pid>/status`; then `wrk` drives the gateway's public
//! `GET /.well-known/jwks.json` (gateway → user-service) and the RSS is read again at the
//! end of the load, with the peak (`VmHWM`). The processes are killed afterwards, also
//! when something fails.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::fleet::Fleet;

/// The goal of the benchmarks issue, per service, idle.
pub const IDLE_GOAL_MIB: f64 = 20.0;
const SETTLE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
pub struct ServiceMemory {
    pub service: String,
    pub idle_rss_mib: f64,
    pub loaded_rss_mib: f64,
    pub peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
pub struct FootprintReport {
    pub load_seconds: u64,
    pub load_route: String,
    pub load_rps: f64,
    pub services: Vec<ServiceMemory>,
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
pub(crate) fn memory(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        Ok(kib / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

pub fn footprint_scenario(seconds: u64) -> anyhow::Result<FootprintReport> {
    crate::bench_gateway::ensure_command("wrk", "wrk")?;
    let dir = std::env::temp_dir().join(format!(
        "nexus_bench_footprint_{}",
        uuid::Uuid::new_v4().simple()
    ));
    println!(
        "• starting the seven release binaries (logs in {})",
        dir.display()
    );
    let fleet = Fleet::start_release(&dir)?;
    std::thread::sleep(SETTLE);
    let mut services = Vec::new();
    for (name, child) in &fleet.children {
        let (idle, _) = memory(child.id())?;
        services.push(ServiceMemory {
            service: (*name).to_owned(),
            idle_rss_mib: idle,
            loaded_rss_mib: f64::NAN,
            peak_rss_mib: f64::NAN,
        });
    }
    let route = "/.well-known/jwks.json";
    println!("• wrk -c32 on the gateway's {route} for {seconds} s");
    let handle = std::thread::spawn({
        let seconds = seconds.to_string();
        move || {
            Command::new("wrk")
                .args(["-t1", "-c32", &format!("-d{seconds}s")])
                .arg(format!("http://127.0.0.1:8080{route}"))
                .output()
        }
    });
    // Read just before the load ends, while it is still on.
    std::thread::sleep(Duration::from_secs(seconds.saturating_sub(1).max(1)));
    for ((_, child), memory_row) in fleet.children.iter().zip(&mut services) {
        let (rss, peak) = memory(child.id())?;
        memory_row.loaded_rss_mib = rss;
        memory_row.peak_rss_mib = peak;
    }
    let output = handle
        .join()
        .map_err(|_| anyhow::anyhow!("wrk thread panicked"))?
        .context("running wrk")?;
    drop(fleet);
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed on the gateway:\n{text}");
    }
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        println!(
            "  (wrk saw errors; the memory figures stand, the load was partly refused)\n{text}"
        );
    }
    let load_rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .context("wrk output has no Requests/sec")?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(FootprintReport {
        load_seconds: seconds,
        load_route: route.to_owned(),
        load_rps,
        services,
    })
}

pub fn print_footprint(r: &FootprintReport) {
    println!(
        "\nfootprint (RSS; load: {} req/s on the gateway's {} for {} s)",
        r.load_rps.round(),
        r.load_route,
        r.load_seconds
    );
    println!("| service | idle | under load | peak | goal idle |");
    println!("|---|---|---|---|---|");
    for s in &r.services {
        println!(
            "| {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | ≤ {IDLE_GOAL_MIB:.0} MiB |",
            s.service, s.idle_rss_mib, s.loaded_rss_mib, s.peak_rss_mib
        );
    }
}
