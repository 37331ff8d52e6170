//! `cargo xtask up` / `down`: the seven services as local processes, like `docker compose`.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::services::{SERVICES, ServiceDef};
use crate::{deps, state_dir, workspace_root};

/// How long the fleet may take to report ready once built.
const READY_WITHIN: Duration = Duration::from_secs(60);
const COLOURS: [&str; 7] = ["36", "33", "32", "35", "34", "91", "31"];

pub struct UpOptions {
    pub detach: bool,
    pub release: bool,
}

pub fn up(options: &UpOptions) -> anyhow::Result<()> {
    let state = state_dir();
    if let Some(running) = running_services(&state).first() {
        bail!(
            "{running} is already running from an earlier `cargo xtask up --detach`; run `cargo xtask down` first"
        );
    }
    let urls = deps::Urls::from_env();
    deps::require_postgres_and_rabbitmq(&urls)?;
    deps::ensure_mongodb(&urls.mongodb, &state)?;
    deps::ensure_smtp(&urls.smtp, &state)?;
    let bin_dir = build(options.release)?;
    if options.detach {
        up_detached(&bin_dir, &state)
    } else {
        up_attached(&bin_dir)
    }
}

fn build(release: bool) -> anyhow::Result<PathBuf> {
    let mut cargo = crate::cargo();
    cargo.arg("build");
    if release {
        cargo.arg("--release");
    }
    for service in &SERVICES {
        cargo.args(["-p", service.name]);
    }
    deps::run(&mut cargo, "building the services")?;
    Ok(workspace_root()
        .join("target")
        .join(if release { "release" } else { "debug" }))
}

/// A service's command. Variables that mean something different for each service
/// (`BIND_ADDR`, `DATABASE_URL`) are not inherited from the caller's shell, where one
/// value would send all services to the same address or database.
fn command(bin_dir: &Path, service: &ServiceDef, log_format: &str) -> Command {
    let mut cmd = Command::new(bin_dir.join(service.name));
    cmd.current_dir(workspace_root()).env(
        "LOG_FORMAT",
        std::env::var("LOG_FORMAT").unwrap_or_else(|_| log_format.to_owned()),
    );
    for var in crate::docs::per_service_variables() {
        cmd.env_remove(var);
    }
    // Local development: webhook receivers on this machine are allowed (the default
    // allows none), unless the caller's shell says otherwise.
    if service.name == "notification-service" && std::env::var_os(WEBHOOK_NETWORKS).is_none() {
        cmd.env(WEBHOOK_NETWORKS, LOOPBACK);
    }
    cmd
}

const WEBHOOK_NETWORKS: &str = "WEBHOOK_ALLOWED_NETWORKS";
const LOOPBACK: &str = "127.0.0.0/8,::1";

/// Foreground: every line prefixed with its coloured service name; Ctrl-C stops all.
fn up_attached(bin_dir: &Path) -> anyhow::Result<()> {
    let width = SERVICES.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let children: Arc<Mutex<Vec<(&'static str, Child)>>> = Arc::default();
    let mut printers = Vec::new();
    for (service, colour) in SERVICES.iter().zip(COLOURS) {
        let mut child = command(bin_dir, service, "text")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", service.name))?;
        let prefix = format!("\x1b[{colour}m{:width$} |\x1b[0m", service.name);
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let prefix = prefix.clone();
            printers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{prefix} {line}");
                }
            }));
        }
        children
            .lock()
            .expect("children lock")
            .push((service.name, child));
    }
    let on_signal = Arc::clone(&children);
    ctrlc::set_handler(move || {
        println!("\nStopping the fleet…");
        for (_, child) in on_signal.lock().expect("children lock").iter() {
            signal(child.id(), "TERM");
        }
    })
    .context("installing the Ctrl-C handler")?;
    let ready = wait_until_ready(|name| {
        children
            .lock()
            .expect("children lock")
            .iter_mut()
            .find(|(n, _)| *n == name)
            .is_some_and(|(_, c)| matches!(c.try_wait(), Ok(None)))
    });
    match ready {
        Ok(elapsed) => println!(
            "\x1b[1mAll seven services are ready ({:.1}s). Gateway: http://localhost:8080 — Ctrl-C stops all.\x1b[0m",
            elapsed.as_secs_f64()
        ),
        Err(err) => println!("\x1b[31m{err:#}\x1b[0m"),
    }
    for printer in printers {
        let _ = printer.join();
    }
    for (name, child) in children.lock().expect("children lock").iter_mut() {
        let status = child.wait()?;
        println!("{name} exited ({status})");
    }
    Ok(())
}

/// Background: logs to `.nexus/logs/<service>.log`, pids in `.nexus/pids/`.
fn up_detached(bin_dir: &Path, state: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(state.join("logs"))?;
    fs::create_dir_all(state.join("pids"))?;
    let mut children = Vec::new();
    for service in &SERVICES {
        let log = fs::File::create(log_path(state, service.name))?;
        let child = command(bin_dir, service, "text")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a later Ctrl-C in this terminal does not reach it.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", service.name))?;
        fs::write(pid_path(state, service.name), child.id().to_string())?;
        children.push((service.name, child));
    }
    let ready = wait_until_ready(|name| {
        children
            .iter_mut()
            .find(|(n, _)| *n == name)
            .is_some_and(|(_, c)| matches!(c.try_wait(), Ok(None)))
    });
    match ready {
        Ok(elapsed) => {
            println!(
                "All seven services are ready ({:.1}s). Gateway: http://localhost:8080\nLogs: {}/<service>.log — stop with `cargo xtask down`.",
                elapsed.as_secs_f64(),
                state.join("logs").display()
            );
            Ok(())
        }
        Err(err) => {
            down()?;
            Err(err)
        }
    }
}

/// The seven release binaries started as children, for a benchmark: logs in `dir`, and
/// all of them killed when this is dropped (also on an error or a panic).
pub struct Fleet {
    pub children: Vec<(&'static str, Child)>,
}

impl Fleet {
    /// Builds the seven services in release, starts them with their default addresses and
    /// waits for every `/readyz`. Fails if any default port is already taken (an earlier
    /// `cargo xtask up` still running).
    pub fn start_release(dir: &Path) -> anyhow::Result<Fleet> {
        Self::start_release_with(dir, |_| Vec::new())
    }

    /// [`Fleet::start_release`] with settings of each service's own: `settings(name)`
    /// gives the variables to set for the service `name` (a benchmark's databases,
    /// raised limits).
    pub fn start_release_with(
        dir: &Path,
        settings: impl Fn(&str) -> Vec<(&'static str, String)>,
    ) -> anyhow::Result<Fleet> {
        if let Some(busy) = SERVICES
            .iter()
            .find(|s| TcpStream::connect(("127.0.0.1", s.port)).is_ok())
        {
            bail!(
                "port {} ({}) is already in use; stop what runs there (`cargo xtask down`)",
                busy.port,
                busy.name
            );
        }
        let urls = deps::Urls::from_env();
        deps::require_postgres_and_rabbitmq(&urls)?;
        deps::ensure_mongodb(&urls.mongodb, &state_dir())?;
        deps::ensure_smtp(&urls.smtp, &state_dir())?;
        let bin_dir = build(true)?;
        fs::create_dir_all(dir)?;
        let mut fleet = Fleet {
            children: Vec::new(),
        };
        for service in &SERVICES {
            let log = fs::File::create(dir.join(format!("{}.log", service.name)))?;
            let child = command(&bin_dir, service, "text")
                .envs(settings(service.name))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", service.name))?;
            fleet.children.push((service.name, child));
        }
        let children = &mut fleet.children;
        wait_until_ready(|name| {
            children
                .iter_mut()
                .find(|(n, _)| *n == name)
                .is_some_and(|(_, c)| matches!(c.try_wait(), Ok(None)))
        })
        .with_context(|| format!("logs in {}", dir.display()))?;
        Ok(fleet)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls every service's `/readyz` until all answer 200. `alive(name)` tells whether a
/// service's process still runs, so a crash is reported at once, not after the timeout.
fn wait_until_ready(mut alive: impl FnMut(&str) -> bool) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut pending: Vec<&ServiceDef> = SERVICES.iter().collect();
    while !pending.is_empty() {
        for service in &pending {
            if !alive(service.name) {
                bail!("{} exited during start-up; see its log", service.name);
            }
        }
        pending.retain(|s| readyz_status(s.port) != Some(200));
        if start.elapsed() > READY_WITHIN {
            let names: Vec<_> = pending.iter().map(|s| s.name).collect();
            bail!(
                "not ready within {}s: {}",
                READY_WITHIN.as_secs(),
                names.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(start.elapsed())
}

/// The status of `GET /readyz` on a local port, with plain HTTP/1.0.
pub fn readyz_status(port: u16) -> Option<u16> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    stream
        .write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Stops what `up --detach` (and the MongoDB and SMTP stand-ins) started: SIGTERM, then SIGKILL
/// for anything still running after the drain period.
pub fn down() -> anyhow::Result<()> {
    let state = state_dir();
    let mut stopping = Vec::new();
    let stand_ins = fs::read_dir(state.join("pids"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e
                .file_name()
                .to_string_lossy()
                .strip_suffix(".pid")?
                .to_owned();
            name.starts_with("aiosmtpd-").then_some(name)
        })
        .collect::<Vec<_>>();
    let names = SERVICES
        .iter()
        .map(|s| s.name.to_owned())
        .chain(["nx-27017".to_owned()])
        .chain(stand_ins);
    for name in names {
        let path = pid_path(&state, &name);
        let Ok(pid) = fs::read_to_string(&path) else {
            continue;
        };
        let _ = fs::remove_file(&path);
        let Ok(pid) = pid.trim().parse::<u32>() else {
            continue;
        };
        if is_alive(pid) {
            signal(pid, "TERM");
            stopping.push((name, pid));
        }
    }
    if stopping.is_empty() {
        println!("Nothing is running.");
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(25);
    while stopping.iter().any(|(_, pid)| is_alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for (name, pid) in stopping {
        if is_alive(pid) {
            signal(pid, "KILL");
            println!("{name} did not stop in time; killed");
        } else {
            println!("{name} stopped");
        }
    }
    Ok(())
}

/// Services whose pid file names a live process.
fn running_services(state: &Path) -> Vec<&'static str> {
    SERVICES
        .iter()
        .map(|s| s.name)
        .filter(|name| {
            fs::read_to_string(pid_path(state, name))
                .ok()
                .and_then(|pid| pid.trim().parse().ok())
                .is_some_and(is_alive)
        })
        .collect()
}

fn pid_path(state: &Path, name: &str) -> PathBuf {
    state.join("pids").join(format!("{name}.pid"))
}

fn log_path(state: &Path, name: &str) -> PathBuf {
    state.join("logs").join(format!("{name}.log"))
}

fn is_alive(pid: u32) -> bool {
    signal(pid, "0")
}

/// Sends a signal with kill(1): std has no signal API, and this keeps the crate free of
/// unsafe code.
fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
