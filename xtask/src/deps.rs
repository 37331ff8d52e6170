//! The servers the fleet and the tests need: PostgreSQL and RabbitMQ must be running;
//! MongoDB is started as the `nx-27017` stand-in when none answers, and an SMTP server as
//! `aiosmtpd` (writing what it receives to a Maildir the tests read).

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432";
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_MONGODB_URL: &str = "mongodb://127.0.0.1:27017";
/// Where `cargo xtask up` sends mail (notification-service's default `SMTP_URL`).
pub const DEFAULT_SMTP_URL: &str = "smtp://127.0.0.1:1025";
/// The SMTP stand-in's version, pinned likewise.
pub const AIOSMTPD: &str = "aiosmtpd==1.4.6";
/// The stand-in's version, pinned so every machine runs the same server.
pub const NX_27017: &str = "nx-27017==0.8.1";
/// The API fuzzer the security tests run, pinned likewise.
pub const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// The URLs of the three servers, from the environment or the defaults.
pub struct Urls {
    pub postgres: String,
    pub amqp: String,
    pub mongodb: String,
    pub smtp: String,
}

impl Urls {
    pub fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        Self {
            postgres: var("POSTGRES_URL", DEFAULT_POSTGRES_URL),
            amqp: var("AMQP_URL", DEFAULT_AMQP_URL),
            mongodb: var("MONGODB_URL", DEFAULT_MONGODB_URL),
            smtp: var("SMTP_URL", DEFAULT_SMTP_URL),
        }
    }
}

/// `host:port` of a URL like `scheme://user:pass@host:port/path?query`.
pub fn host_port(url: &str, default_port: u16) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit('@').next()?.split(',').next()?;
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default_port,
    };
    Some((host.to_owned(), port))
}

fn answers(host: &str, port: u16) -> bool {
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|addr: SocketAddr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
}

/// Fails with a message naming each server that does not answer.
pub fn require(name: &str, url: &str, default_port: u16, hint: &str) -> anyhow::Result<()> {
    let (host, port) = host_port(url, default_port)
        .with_context(|| format!("cannot read the {name} URL {url:?}"))?;
    if answers(&host, port) {
        println!("✓ {name} answers at {host}:{port}");
        Ok(())
    } else {
        bail!("{name} does not answer at {host}:{port} ({url}).\n  {hint}")
    }
}

pub fn require_postgres_and_rabbitmq(urls: &Urls) -> anyhow::Result<()> {
    let postgres = require(
        "PostgreSQL",
        &urls.postgres,
        5432,
        "Start it (e.g. `pg_ctlcluster 15 main start`) or set POSTGRES_URL.",
    );
    let rabbitmq = require(
        "RabbitMQ",
        &urls.amqp,
        5672,
        "Start it (e.g. `rabbitmq-server -detached`) or set AMQP_URL.",
    );
    match (postgres, rabbitmq) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(a), Err(b)) => bail!("{a}\n{b}"),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// Uses the MongoDB at `url` if one answers; otherwise, for a local address, installs
/// `nx-27017` into `.nexus/venv` and starts it there, saying so.
pub fn ensure_mongodb(url: &str, state: &Path) -> anyhow::Result<()> {
    let (host, port) =
        host_port(url, 27017).with_context(|| format!("cannot read MONGODB_URL {url:?}"))?;
    if answers(&host, port) {
        println!("✓ MongoDB answers at {host}:{port}");
        return Ok(());
    }
    if !matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1") {
        bail!("MongoDB does not answer at {host}:{port} ({url}). Start it or set MONGODB_URL.");
    }
    println!(
        "• No MongoDB answers at {host}:{port}: starting nx-27017, a MongoDB wire-protocol \
         stand-in (docker compose runs real MongoDB)."
    );
    let server = pip_tool(state, "nx-27017", NX_27017)?;
    for dir in ["mongo", "logs", "pids"] {
        std::fs::create_dir_all(state.join(dir))?;
    }
    run(
        Command::new(&server)
            .arg("--data-dir")
            .arg(state.join("mongo"))
            .args(["--host", &host, "--port", &port.to_string()])
            .arg("--log-file")
            .arg(state.join("logs/nx-27017.log"))
            .arg("--pid-file")
            .arg(state.join("pids/nx-27017.pid"))
            .arg("--daemon"),
        "starting nx-27017",
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers(&host, port) {
        if Instant::now() > deadline {
            bail!(
                "nx-27017 did not start listening on {host}:{port}; see {}",
                state.join("logs/nx-27017.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("✓ nx-27017 answers at {host}:{port} (stop it with `cargo xtask down`)");
    Ok(())
}

/// Uses the SMTP server at `url` if one answers; otherwise, for a local address, installs
/// `aiosmtpd` into `.nexus/venv` and starts it there, writing every mail it receives to
/// the Maildir `<state>/mail/<port>`.
pub fn ensure_smtp(url: &str, state: &Path) -> anyhow::Result<()> {
    let (host, port) =
        host_port(url, 25).with_context(|| format!("cannot read SMTP_URL {url:?}"))?;
    if answers(&host, port) {
        println!("✓ an SMTP server answers at {host}:{port}");
        return Ok(());
    }
    if !matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1") {
        bail!("No SMTP server answers at {host}:{port} ({url}). Start one or set SMTP_URL.");
    }
    let maildir = state.join("mail").join(port.to_string());
    println!(
        "• No SMTP server answers at {host}:{port}: starting aiosmtpd, writing mail to {} \
         (docker compose runs Mailpit)",
        maildir.display()
    );
    start_aiosmtpd(state, &host, port, &maildir, &format!("aiosmtpd-{port}"))
}

/// The tests' own SMTP server, one per checkout: `aiosmtpd` on a free loopback port,
/// writing to the Maildir `<state>/mail/test` the tests read. Reused while the one an
/// earlier run started still answers (its port is kept in `<state>/mail/test.port`);
/// never a server some other checkout or program runs. Returns `(SMTP URL, Maildir)`.
pub fn ensure_test_smtp(state: &Path) -> anyhow::Result<(String, PathBuf)> {
    let maildir = state.join("mail").join("test");
    let port_file = state.join("mail").join("test.port");
    let name = "aiosmtpd-test";
    let ours_alive = std::fs::read_to_string(state.join(format!("pids/{name}.pid")))
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
    let recorded = std::fs::read_to_string(&port_file)
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok());
    if let Some(port) = recorded.filter(|&p| ours_alive && answers("127.0.0.1", p)) {
        println!("✓ the tests' SMTP server answers at 127.0.0.1:{port}");
        return Ok((format!("smtp://127.0.0.1:{port}"), maildir));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    println!(
        "• Starting aiosmtpd for the tests at 127.0.0.1:{port}, writing mail to {}",
        maildir.display()
    );
    start_aiosmtpd(state, "127.0.0.1", port, &maildir, name)?;
    std::fs::write(&port_file, port.to_string())?;
    Ok((format!("smtp://127.0.0.1:{port}"), maildir))
}

/// Starts `aiosmtpd` (installed into `.nexus/venv` if missing) on `host:port`, writing
/// to the Maildir `maildir`, with its pid in `<state>/pids/<name>.pid` for `down`.
fn start_aiosmtpd(
    state: &Path,
    host: &str,
    port: u16,
    maildir: &Path,
    name: &str,
) -> anyhow::Result<()> {
    let server = pip_tool(state, "aiosmtpd", AIOSMTPD)?;
    for dir in ["logs", "pids"] {
        std::fs::create_dir_all(state.join(dir))?;
    }
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub))?;
    }
    let log = std::fs::File::create(state.join(format!("logs/{name}.log")))?;
    let child = Command::new(&server)
        .args(["-n", "-l", &format!("{host}:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting aiosmtpd")?;
    std::fs::write(
        state.join(format!("pids/{name}.pid")),
        child.id().to_string(),
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers(host, port) {
        if Instant::now() > deadline {
            bail!(
                "aiosmtpd did not start listening on {host}:{port}; see {}",
                state.join(format!("logs/{name}.log")).display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("✓ aiosmtpd answers at {host}:{port} (stop it with `cargo xtask down`)");
    Ok(())
}

/// `.nexus/venv/bin/<command>`, installing `requirement` from PyPI into the venv (made
/// if missing) when the command is not there yet.
pub fn pip_tool(state: &Path, command: &str, requirement: &str) -> anyhow::Result<PathBuf> {
    let venv = state.join("venv");
    let tool = venv.join("bin").join(command);
    if tool.exists() {
        return Ok(tool);
    }
    if !venv.join("bin/pip").exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "creating a Python venv (needs python3 with venv)",
        )?;
    }
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            requirement,
        ]),
        &format!("installing {requirement} from PyPI"),
    )?;
    Ok(tool)
}

/// What the end-to-end tests run besides the services, from Debian's packages, installed
/// with apt when missing: Chromium and chromedriver (the browser test) and jq (the README
/// walkthrough). The tests fail naming them if they still are.
pub fn ensure_test_packages() -> anyhow::Result<()> {
    const NEEDED: [(&str, &str); 3] = [
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
        ("/usr/bin/jq", "jq"),
    ];
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        println!("✓ Chromium, chromedriver and jq are installed");
        return Ok(());
    }
    println!(
        "• Installing {} from Debian's packages for the end-to-end tests",
        missing.join(", ")
    );
    run(
        Command::new("apt-get").args(["update", "-qq"]),
        "apt-get update (installing test packages needs root and the Debian mirrors)",
    )?;
    run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("apt-get install {}", missing.join(" ")),
    )
}

pub fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command.status().with_context(|| what.to_owned())?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn reads_host_and_port_from_service_urls() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432",
                5432,
                ("127.0.0.1", 5432),
            ),
            ("amqp://guest:guest@rabbit:5673/%2f", 5672, ("rabbit", 5673)),
            ("mongodb://localhost", 27017, ("localhost", 27017)),
            ("mongodb://a:1,b:2/db?replicaSet=x", 27017, ("a", 1)),
            ("postgres://[::1]:6000/x", 5432, ("::1", 6000)),
            ("postgres://[::1]/x", 5432, ("::1", 5432)),
        ];
        for (url, default, (host, port)) in cases {
            assert_eq!(
                host_port(url, default),
                Some((host.to_owned(), port)),
                "{url}"
            );
        }
    }
}
