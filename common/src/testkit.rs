//! Test kit (feature `testkit`): real dependencies, isolated per test.
//!
//! Each test gets its own PostgreSQL database, its own exchange and queue names and its
//! own MongoDB database, so tests run in parallel against one server without seeing each
//! other. A dependency that does not answer fails the test with a message naming it;
//! nothing is skipped.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// PostgreSQL server URL without a database (`NEXUS_TEST_POSTGRES_URL`).
pub fn postgres_url() -> String {
    std::env::var("NEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// RabbitMQ URL (`NEXUS_TEST_AMQP_URL`).
pub fn amqp_url() -> String {
    std::env::var("NEXUS_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// MongoDB URL (`NEXUS_TEST_MONGODB_URL`).
pub fn mongodb_url() -> String {
    std::env::var("NEXUS_TEST_MONGODB_URL")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:27017".to_owned())
}

/// `prefix_` followed by 12 random hex digits: a name no other test uses.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..12])
}

/// Logs to the terminal when `TEST_LOG=1`.
pub fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        crate::telemetry::init(
            "test",
            "debug,sqlx=warn,lapin=info",
            crate::telemetry::LogFormat::Text,
        );
    }
}

/// A throw-away database, dropped when the value is.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    /// Creates an empty database with a unique name.
    pub async fn create() -> Self {
        let name = unique("nexus_test");
        let server = postgres_url();
        let mut admin = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "PostgreSQL does not answer at {server} (set NEXUS_TEST_POSTGRES_URL): {err}"
                )
            });
        sqlx::query(&format!("create database {name}"))
            .execute(&mut admin)
            .await
            .expect("creating test database");
        let url = format!("{server}/{name}");
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(&url)
            .await
            .expect("connecting to test database");
        Self { name, url, pool }
    }

    /// Creates a database and applies `migrator` to it.
    pub async fn migrated(migrator: &sqlx::migrate::Migrator) -> Self {
        let db = Self::create().await;
        migrator.run(&db.pool).await.expect("applying migrations");
        db
    }
}

impl TestDb {
    /// Makes the database unreachable: new connections are refused and open ones are
    /// closed, as in an outage. Dropping the value still removes it.
    pub async fn cut_off(&self) {
        let mut admin = PgConnection::connect(&format!("{}/postgres", postgres_url()))
            .await
            .expect("admin connection");
        sqlx::query(&format!(
            "alter database {} with allow_connections false",
            self.name
        ))
        .execute(&mut admin)
        .await
        .expect("disallowing connections");
        sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1")
            .bind(&self.name)
            .execute(&mut admin)
            .await
            .expect("closing connections");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        admin_blocking(move |mut admin| async move {
            let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                .execute(&mut admin)
                .await;
        });
    }
}

/// Runs `work` with an admin connection on a thread of its own, with its own runtime:
/// `Drop` runs inside the test's runtime, which must not be blocked on. Clean-up is best
/// effort, so a failure to connect is ignored.
fn admin_blocking<F, Fut>(work: F)
where
    F: FnOnce(PgConnection) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let server = postgres_url();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            if let Ok(admin) = PgConnection::connect(&format!("{server}/postgres")).await {
                work(admin).await;
            }
        });
    })
    .join();
}

/// Drops every database and role whose name starts with `prefix` (tenant databases a
/// test provisioned). Blocking, so it can be called from `Drop`.
pub fn drop_databases_and_roles(prefix: &str) {
    let prefix = prefix.to_owned();
    admin_blocking(move |mut admin| async move {
        // Databases first: a role cannot be dropped while it owns one.
        let kinds = [
            (
                "select datname from pg_database where left(datname, length($1)) = $1",
                "drop database if exists \"{}\" with (force)",
            ),
            (
                "select rolname from pg_roles where left(rolname, length($1)) = $1",
                "drop role if exists \"{}\"",
            ),
        ];
        for (list, drop) in kinds {
            let names: Vec<String> = sqlx::query_scalar(list)
                .bind(&prefix)
                .fetch_all(&mut admin)
                .await
                .unwrap_or_default();
            for name in names {
                let _ = sqlx::query(&drop.replace("{}", &name))
                    .execute(&mut admin)
                    .await;
            }
        }
    });
}

/// A MongoDB database with a unique name (dropped by the test when it wants to).
pub async fn mongo_database() -> mongodb::Database {
    let url = mongodb_url();
    let client = mongodb::Client::with_uri_str(&url)
        .await
        .unwrap_or_else(|err| panic!("invalid MongoDB URL {url}: {err}"));
    let db = client.database(&unique("nexus_test"));
    tokio::time::timeout(
        Duration::from_secs(10),
        db.run_command(mongodb::bson::doc! { "ping": 1 }),
    )
    .await
    .unwrap_or_else(|_| {
        panic!("MongoDB does not answer at {url} (run `cargo xtask test`, which starts one)")
    })
    .unwrap_or_else(|err| panic!("MongoDB does not answer at {url}: {err}"));
    db
}

/// A server running in-process on an ephemeral port, stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub base_url: String,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
}

impl TestServer {
    /// Binds 127.0.0.1:0 and runs `start(listener, shutdown)` on it.
    pub async fn start<F, Fut>(start: F) -> Self
    where
        F: FnOnce(TcpListener, CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding port 0");
        Self::start_on(listener, start).await
    }

    /// Runs `start(listener, shutdown)` on a listener bound beforehand (services that
    /// must know each other's addresses before any of them starts).
    pub async fn start_on<F, Fut>(listener: TcpListener, start: F) -> Self
    where
        F: FnOnce(TcpListener, CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        init_tracing();
        let addr = listener.local_addr().expect("local address");
        let shutdown = CancellationToken::new();
        let server = start(listener, shutdown.clone());
        tokio::spawn(async move {
            if let Err(err) = server.await {
                panic!("test server failed: {err:#}");
            }
        });
        let server = Self {
            addr,
            base_url: format!("http://{addr}"),
            client: reqwest::Client::new(),
            shutdown,
        };
        server.wait_until("/healthz", Duration::from_secs(30)).await;
        server
    }

    /// Serves a plain router (fake upstreams, extractor tests).
    pub async fn router(router: axum::Router) -> Self {
        Self::start(|listener, shutdown| async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await?;
            Ok(())
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The server's `/metrics` text, now.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the /metrics text")
    }

    /// Waits until `path` answers 2xx (a router without `/healthz` answers 404, which
    /// also proves it is listening).
    pub async fn wait_until(&self, path: &str, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(resp) = self.client.get(self.url(path)).send().await
                && (resp.status().is_success() || resp.status() == reqwest::StatusCode::NOT_FOUND)
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not answer 2xx within {limit:?}",
                self.url(path)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server, draining like on SIGTERM.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The sum of the counter `name`'s samples in `/metrics` text whose labels include every
/// `(label, value)` of `labels` (0 when there is none).
pub fn counter_total(metrics: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(label, value)| line.contains(&format!("{label}=\"{value}\"")))
        })
        .map(|line| {
            let value = line.rsplit(' ').next().unwrap_or_default();
            value
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{name} is not a counter: {line}"))
        })
        .sum()
}

/// Asserts `resp` is an RFC 9457 problem with `status`, and returns its body.
pub async fn expect_problem(resp: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(
        resp.status().as_u16(),
        status,
        "unexpected status for {}",
        resp.url()
    );
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        content_type,
        crate::error::PROBLEM_JSON,
        "problem media type"
    );
    let body: serde_json::Value = resp.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status, "problem status field: {body}");
    for field in ["type", "title", "detail", "request_id"] {
        assert!(body[field].is_string(), "problem lacks `{field}`: {body}");
    }
    body
}

/// For every operation of the service's OpenAPI document that takes a JSON body, sends
/// a malformed body and asserts a 400 problem+json comes back (not text, not 5xx).
/// `headers` carry what gets a request past authentication (a bearer token, tenant
/// headers), so the body parser is what answers. Returns how many operations were probed.
pub async fn assert_json_endpoints_reject_malformed_bodies(
    server: &TestServer,
    headers: &reqwest::header::HeaderMap,
) -> usize {
    let spec = openapi(server).await;
    let mut probed = 0;
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if op["requestBody"]["content"]["application/json"].is_null() {
                continue;
            }
            let path = fill_path_params(path);
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("HTTP method");
            let resp = server
                .client
                .request(method.clone(), server.url(&path))
                .headers(headers.clone())
                .header("content-type", "application/json")
                .body("{,")
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            assert_eq!(status, 400, "{method} {path}: malformed JSON got {status}");
            let body = expect_problem(resp, 400).await;
            assert!(
                body["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("not valid JSON"),
                "{method} {path}: {body}"
            );
            probed += 1;
        }
    }
    probed
}

fn fill_path_params(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                uuid::Uuid::now_v7().to_string()
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Asserts the operational routes every service serves: `/healthz`, `/readyz` = 200
/// with each of `dependencies` "ok", `/metrics` with this service's request counters,
/// and an OpenAPI document titled with the service's name that lists the ops routes.
pub async fn assert_ops_routes(server: &TestServer, service: &str, dependencies: &[&str]) {
    let health = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200, "healthz");

    let (status, report) = readyz(server).await;
    assert_eq!(status, 200, "readyz: {report}");
    for dependency in dependencies {
        assert_eq!(report["checks"][dependency], "ok", "{dependency}: {report}");
    }
    assert_eq!(
        report["checks"].as_object().map(serde_json::Map::len),
        Some(dependencies.len()),
        "exactly these dependencies are checked: {report}"
    );

    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("metrics text");
    let label = format!("service=\"{service}\"");
    assert!(
        text.lines()
            .any(|l| l.starts_with("http_requests_total") && l.contains(&label)),
        "no request counter labelled {label} in:\n{text}"
    );

    let spec = openapi(server).await;
    assert_eq!(spec["info"]["title"], service);
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{spec}"
    );
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the document"
        );
    }
}

/// The service's `/openapi.json`.
async fn openapi(server: &TestServer) -> serde_json::Value {
    server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("openapi.json")
        .json()
        .await
        .expect("openapi.json is JSON")
}

/// Asserts each of `tables` exists in the database (the service applied its migrations).
pub async fn assert_tables_exist(pool: &PgPool, tables: &[&str]) {
    for table in tables {
        let found: Option<String> = sqlx::query_scalar("select to_regclass($1)::text")
            .bind(table)
            .fetch_one(pool)
            .await
            .expect("querying the catalogue");
        assert_eq!(found.as_deref(), Some(*table), "table {table} is missing");
    }
}

/// `/readyz`'s status and report.
async fn readyz(server: &TestServer) -> (u16, serde_json::Value) {
    let ready = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let status = ready.status().as_u16();
    (status, ready.json().await.expect("readyz JSON"))
}

/// Asserts `/readyz` answers 503 with `dependency` down.
pub async fn assert_not_ready_because(server: &TestServer, dependency: &str) {
    let (status, report) = readyz(server).await;
    assert_eq!(status, 503, "readyz: {report}");
    assert_eq!(report["checks"][dependency], "down", "{report}");
}

/// Starts the service binary at `bin` with `env` and `BIND_ADDR=127.0.0.1:0`, waits for
/// it to listen, sends SIGTERM and asserts it drains and exits with status 0.
pub fn assert_stops_cleanly_on_sigterm(bin: &str, env: &[(&str, String)]) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut child = Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|err| panic!("starting {bin}: {err}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!("{bin} never logged {needle:?}"),
            }
        }
    };
    wait_for("\"listening\"");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(killed.success());
    wait_for("\"stopped\"");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for child") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{bin} did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{bin} exited with {status}");
}

/// Parses a service `Config` from settings given by their environment names
/// (`("AMQP_URL", …)`), with `overrides` replacing or adding some, bound to 127.0.0.1:0.
/// Going through clap keeps every other setting at its documented default.
pub fn parse_config<C: clap::Parser>(
    bin: &str,
    settings: &[(&str, String)],
    overrides: &[(&str, &str)],
) -> C {
    let mut argv = vec![bin.to_owned(), "--bind-addr=127.0.0.1:0".to_owned()];
    for (env, value) in settings {
        let value = overrides
            .iter()
            .find(|(k, _)| k == env)
            .map_or(value.as_str(), |(_, v)| *v);
        argv.push(format!(
            "--{}={value}",
            env.to_ascii_lowercase().replace('_', "-")
        ));
    }
    for (env, value) in overrides {
        if !settings.iter().any(|(k, _)| k == env) {
            argv.push(format!(
                "--{}={value}",
                env.to_ascii_lowercase().replace('_', "-")
            ));
        }
    }
    C::try_parse_from(argv).expect("test configuration parses")
}

/// A private queue bound to an exchange, to see what a service publishes.
pub struct EventTap {
    _connection: lapin::Connection,
    channel: lapin::Channel,
    queue: String,
    exchange: String,
}

impl EventTap {
    /// Declares `exchange` (topic, durable, as the services do) and binds a private queue
    /// to it with `binding` (`#` for everything).
    pub async fn new(exchange: &str, binding: &str) -> Self {
        use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
        use lapin::types::FieldTable;
        let url = amqp_url();
        let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
            .await
            .unwrap_or_else(|err| panic!("RabbitMQ does not answer at {url}: {err}"));
        let channel = connection.create_channel().await.expect("channel");
        channel
            .exchange_declare(
                exchange.into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declaring the exchange");
        let queue = unique("test.tap");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declaring the tap queue");
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.into(),
                binding.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("binding the tap queue");
        Self {
            _connection: connection,
            channel,
            queue,
            exchange: exchange.to_owned(),
        }
    }

    /// Up to `n` messages, waiting at most `within` for them.
    pub async fn receive(
        &self,
        n: usize,
        within: Duration,
    ) -> Vec<lapin::message::BasicGetMessage> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while got.len() < n && tokio::time::Instant::now() < deadline {
            match self
                .channel
                .basic_get(
                    self.queue.as_str().into(),
                    lapin::options::BasicGetOptions { no_ack: true },
                )
                .await
                .expect("basic.get")
            {
                Some(message) => got.push(message),
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        got
    }

    /// Up to `n` events, waiting at most `within`: a batch message counts as the events
    /// it carries (all of them, so a batch may take the count past `n`).
    pub async fn receive_events(&self, n: usize, within: Duration) -> Vec<crate::events::Envelope> {
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while events.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(message) = self.receive(1, left).await.pop() else {
                break;
            };
            events.extend(envelopes(&message.delivery));
        }
        events
    }

    /// The next message's event (the first, if it is a batch), waiting at most 10 s.
    pub async fn next_event(&self) -> crate::events::Envelope {
        let message = self
            .receive(1, Duration::from_secs(10))
            .await
            .pop()
            .expect("no event arrived within 10 s");
        envelopes(&message.delivery).swap_remove(0)
    }

    /// Deletes the exchange (test exchanges are durable and would otherwise linger).
    pub async fn delete_exchange(self) {
        let _ = self
            .channel
            .exchange_delete(
                self.exchange.as_str().into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await;
    }
}

/// The envelopes a message carries: one, or a batch's (by its content type).
pub fn envelopes(delivery: &lapin::message::Delivery) -> Vec<crate::events::Envelope> {
    let batch = delivery
        .properties
        .content_type()
        .as_ref()
        .is_some_and(|t| t.as_str() == crate::events::BATCH_CONTENT_TYPE);
    if batch {
        let events: Vec<crate::events::Envelope> =
            serde_json::from_slice(&delivery.data).expect("a batch of event envelopes");
        assert!(!events.is_empty(), "an empty batch message");
        events
    } else {
        vec![serde_json::from_slice(&delivery.data).expect("an event envelope")]
    }
}

/// A TCP relay to a real server that a test can cut and restore, to play an outage of
/// that server (RabbitMQ, say) without stopping it for other tests.
pub struct TcpRelay {
    pub addr: SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: std::sync::Arc<tokio::sync::Notify>,
}

impl TcpRelay {
    /// Relays connections on a free local port to `target`.
    pub async fn to(target: SocketAddr) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a relay");
        let addr = listener.local_addr().expect("relay address");
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (up2, cut2) = (Arc::clone(&up), Arc::clone(&cut));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // refused: dropped at once
                }
                let cut = Arc::clone(&cut2);
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {},
                        () = cut.notified() => {},
                    }
                });
            }
        });
        Self { addr, up, cut }
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
