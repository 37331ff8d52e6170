//! Scenario `tasks` (formerly `projects`): project-service's task create, task read and
//! board read throughput over HTTP against `pgbench` running the same SQL with as many
//! connections as the bench has clients; and reads spread over many tenants against
//! reads of one.
//!
//! It runs a PostgreSQL cluster of its own (`pg_createcluster`, on a free port, dropped
//! at the end), sized as an operator would size one for the scenario:
//! `max_connections` above the largest connection cap. Every variant reports the
//! service's connection cap, the server's `max_connections`, the backends PostgreSQL
//! started during the run (`pg_stat_database.sessions`) and the most connections the
//! service held at once (sampled from `pg_stat_activity`):
//!
//! - cap at least the active tenants (1,100, connections idle up to 10 minutes): reads
//!   spread evenly over 200 tenants, and
//!   over 1,000 tenants picked with Zipf popularity (s = 1.1), against reads of one;
//! - cap below the active tenants (64 for 200): nearly every read finds its tenant
//!   without a connection and closes another's to open one, against `pgbench -C` (a new
//!   connection per transaction) running the same SQL.
//!
//! Every tenant database is a copy of one seeded template (a project, its board and 20
//! tasks made through the service), so all tenants hold the same rows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use common::auth::{Claims, Role, SigningKey};
use common::testkit::{TestServer, create_database, unique};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

pub(crate) static TENANT_MIGRATOR: Migrator = sqlx::migrate!("../migrations/tenant");

/// Concurrent HTTP clients, and pgbench's connections.
const CLIENTS: usize = 16;
/// Tenants of the uniform spreads.
const UNIFORM_TENANTS: usize = 200;
/// Tenants of the Zipf spread, and its exponent.
const ZIPF_TENANTS: usize = 1_000;
const ZIPF_S: f64 = 1.1;
/// The service's connection cap at least the active tenants (one connection each, and
/// room for the popular ones' second and third), and below them.
const LARGE_CAP: u32 = 1_100;
const SMALL_CAP: u32 = 64;
/// The bench cluster's `max_connections`: the larger cap, pgbench's 16, the bench's own
/// sessions and headroom.
const MAX_CONNECTIONS: u32 = 1_200;

/// One measured variant.
#[derive(Debug, Serialize)]
pub struct Measure {
    pub name: String,
    /// The service's connection cap (`None` for pgbench).
    pub cap: Option<u32>,
    /// The server's `max_connections`.
    pub max_connections: u32,
    /// Median per second over the rounds.
    pub per_s: f64,
    /// Backends PostgreSQL started during a run (median over the rounds).
    pub backends_started: f64,
    /// Most connections the service held at once, over every round (`None` for pgbench).
    pub most_held: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ProjectsReport {
    pub rounds: usize,
    pub seconds_per_run: u64,
    pub measures: Vec<Measure>,
}

impl ProjectsReport {
    /// The median rate of the measure called `name`.
    pub fn per_s(&self, name: &str) -> f64 {
        self.measures
            .iter()
            .find(|m| m.name == name)
            .map_or(f64::NAN, |m| m.per_s)
    }
}

/// Names of the measures, shared by the report and the summary rows.
pub mod names {
    pub const CREATE: &str = "task create, 1 tenant";
    pub const PG_CREATE: &str = "pgbench create";
    pub const READ: &str = "task read, 1 tenant";
    pub const PG_READ: &str = "pgbench read";
    pub const UNIFORM: &str = "task read, 200 tenants uniform";
    pub const ZIPF: &str = "task read, 1,000 tenants Zipf 1.1";
    pub const SMALL_CAP: &str = "task read, 200 tenants uniform, cap 64";
    pub const PG_READ_C: &str = "pgbench -C read";
    pub const BOARD: &str = "board read, 20 tasks";
    pub const PG_BOARD: &str = "pgbench board";
}

struct Tenant {
    id: Uuid,
    db: String,
    token: String,
}

/// A PostgreSQL cluster of the bench's own, dropped with this.
struct BenchCluster {
    version: String,
    name: String,
    url: String,
}

impl BenchCluster {
    fn start(max_connections: u32) -> anyhow::Result<Self> {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL's server binaries are not in /usr/lib/postgresql")?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
            .context("no PostgreSQL version in /usr/lib/postgresql")?;
        // Clusters an interrupted run left behind go first.
        let listed = std::process::Command::new("pg_lsclusters")
            .arg("-h")
            .output()
            .context("pg_lsclusters is missing (Debian: postgresql-common)")?;
        for line in String::from_utf8_lossy(&listed.stdout).lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [v, name, ..] = fields[..]
                && name.starts_with("nxbench")
            {
                run("pg_dropcluster", &[v, name, "--stop"])?;
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let name = format!("nxbench{port}");
        let max = format!("max_connections={max_connections}");
        run(
            "pg_createcluster",
            &[
                &version,
                &name,
                "-p",
                &port.to_string(),
                "-o",
                &max,
                "-o",
                "shared_buffers=256MB",
                "--",
                "--auth-host=trust",
                "--auth-local=trust",
            ],
        )?;
        run("pg_ctlcluster", &[&version, &name, "start"])?;
        Ok(Self {
            version,
            name,
            url: format!("postgres://postgres@127.0.0.1:{port}"),
        })
    }
}

impl Drop for BenchCluster {
    fn drop(&mut self) {
        if let Err(err) = run("pg_dropcluster", &[&self.version, &self.name, "--stop"]) {
            eprintln!("dropping the bench cluster {}: {err:#}", self.name);
        }
    }
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Requests a `wrk` run cycles through: `(tenant, path, JSON body)`, a body making it a
/// `POST`.
type Calls<'a> = Vec<(&'a Tenant, String, Option<String>)>;

/// How many requests of a spread are laid out for `wrk` to cycle through.
const SEQUENCE: u64 = 65_536;

/// `wrk` ([`CLIENTS`] keep-alive connections) cycling through `calls` on `base` for
/// `seconds`: requests per second. A load generator in a process of its own, written in
/// C as pgbench is, so the service's figure carries no HTTP client's cost that
/// pgbench's does not. One thread, so the requests in flight are consecutive calls (a
/// spread's 16 in flight are 16 tenants, as 16 pgbench clients on 16 connections).
/// Every answer must be a 2xx.
async fn wrk(base: &str, calls: &Calls<'_>, seconds: u64) -> anyhow::Result<f64> {
    let lua_str = |s: &str| format!("[==[{s}]==]");
    // Each tenant and each route once, in tables; the order of the calls as one string
    // of "tenant route" places (a table constructor of 65,536 entries is past LuaJIT's
    // limits on constants).
    let mut tenants = String::from("local tenants = {\n");
    let mut routes = String::from("local routes = {\n");
    let mut order = String::new();
    let (mut tenant_places, mut route_places) = (HashMap::new(), HashMap::new());
    for (tenant, path, body) in calls {
        let next = tenant_places.len() + 1;
        let t = *tenant_places.entry(tenant.id).or_insert_with(|| {
            tenants.push_str(&format!(
                "{{{}, {}}},\n",
                lua_str(&tenant.token),
                lua_str(&tenant.id.to_string())
            ));
            next
        });
        let next = route_places.len() + 1;
        let r = *route_places.entry((path, body)).or_insert_with(|| {
            routes.push_str(&format!(
                "{{{}, {}, {}}},\n",
                lua_str(if body.is_some() { "POST" } else { "GET" }),
                lua_str(path),
                body.as_deref().map_or("nil".to_owned(), lua_str),
            ));
            next
        });
        order.push_str(&format!("{t} {r}\n"));
    }
    let script = format!(
        r#"{tenants}}}
{routes}}}
local order = {order}
local requests = {{}}
local i = 0
function init(args)
  for t, r in string.gmatch(order, "(%d+) (%d+)") do
    local tenant, route = tenants[tonumber(t)], routes[tonumber(r)]
    requests[#requests + 1] = wrk.format(route[1], route[2], {{
      ["Authorization"] = "Bearer " .. tenant[1],
      ["x-tenant-id"] = tenant[2],
      ["x-tenant-slug"] = "bench",
      ["Content-Type"] = "application/json",
    }}, route[3])
  end
end
function request()
  i = i % #requests + 1
  return requests[i]
end
"#,
        order = lua_str(&order),
    );
    let dir = std::env::temp_dir().join(unique("nexus_wrk"));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("calls.lua");
    std::fs::write(&file, script)?;
    let output = tokio::process::Command::new("wrk")
        .args(["-t1", &format!("-c{CLIENTS}"), &format!("-d{seconds}s")])
        // Well past the service's acquire timeout: a slow answer is counted, not dropped.
        .args(["--timeout", "30s", "-s"])
        .arg(&file)
        .arg(base)
        .output()
        .await
        .context("running wrk")?;
    std::fs::remove_dir_all(&dir).ok();
    let text = String::from_utf8_lossy(&output.stdout);
    // wrk counts answers above 399 as "Non-2xx or 3xx responses"; the service answers
    // no 3xx here.
    if !output.status.success() || text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!(
            "wrk saw errors on {base}:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `pgbench` with `script` at `url` for `seconds` (a new connection per transaction when
/// `reconnect`): transactions per second.
fn pgbench(
    url: &str,
    script: &str,
    vars: &[(&str, &str)],
    seconds: u64,
    reconnect: bool,
) -> anyhow::Result<f64> {
    let dir = std::env::temp_dir().join(unique("nexus_pgbench"));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("script.sql");
    std::fs::write(&file, script)?;
    let found = || {
        ["/usr/lib/postgresql/15/bin/pgbench", "pgbench"]
            .into_iter()
            .find(|b| {
                std::process::Command::new(b)
                    .arg("--version")
                    .output()
                    .is_ok()
            })
    };
    let binary = match found() {
        Some(binary) => binary,
        None => {
            crate::bench_gateway::ensure_command("pgbench", "postgresql-client")?;
            found().context("pgbench is missing (Debian: postgresql-client)")?
        }
    };
    let mut cmd = std::process::Command::new(binary);
    cmd.args([
        "-n",
        "-M",
        "prepared",
        "-j",
        "2",
        "-c",
        &CLIENTS.to_string(),
    ])
    .args(["-T", &seconds.to_string(), "-f"])
    .arg(&file);
    if reconnect {
        cmd.arg("-C");
    }
    for (k, v) in vars {
        cmd.args(["-D", &format!("{k}={v}")]);
    }
    let output = cmd.arg(url).output().context("running pgbench")?;
    std::fs::remove_dir_all(&dir).ok();
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no tps in pgbench's output:\n{text}"))
}

/// The statements `POST /api/v1/projects/{id}/tasks` runs, in one transaction.
const CREATE_SQL: &str = r"
BEGIN;
UPDATE projects SET next_task_number = next_task_number + 1
 WHERE id = :project AND NOT archived RETURNING next_task_number - 1 AS number \gset
SELECT id, wip_limit, done FROM board_columns WHERE project_id = :project ORDER BY position LIMIT 1 FOR UPDATE;
SELECT count(*) AS position FROM tasks WHERE column_id = :column \gset
INSERT INTO tasks (id, project_id, number, title, description, column_id, position, priority,
    assignee_id, reporter_id, labels, due_date, estimate_minutes, parent_id)
 VALUES (gen_random_uuid(), :project, :number, 'pgbench task', '', :column, :position, 'medium',
    NULL, :user, '{}', NULL, NULL, NULL) RETURNING id AS task \gset
SELECT t.id, t.project_id, t.number, p.key || '-' || t.number AS key, t.title, t.description,
    t.column_id, t.position, t.priority, t.assignee_id, t.reporter_id, t.labels, t.due_date,
    t.estimate_minutes, t.parent_id, t.created_at, t.updated_at, t.version
  FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.id = :task;
INSERT INTO activity (id, project_id, task_id, actor_id, action, before, after)
 VALUES (gen_random_uuid(), :project, :task, :user, 'task.created', NULL,
    (SELECT to_jsonb(t) FROM tasks t WHERE t.id = :task));
INSERT INTO outbox (id, routing_key, payload, request_id)
 VALUES (gen_random_uuid(), 'task.created', jsonb_build_object('task_id', :task::text)::text, NULL);
COMMIT;
";

/// The statement `GET /api/v1/tasks/{id}` runs (by number here: pgbench picks at random).
const READ_SQL: &str = r"
\set n random(1, :tasks)
SELECT t.id, t.project_id, t.number, p.key || '-' || t.number AS key, t.title, t.description,
    t.column_id, t.position, t.priority, t.assignee_id, t.reporter_id, t.labels, t.due_date,
    t.estimate_minutes, t.parent_id, t.created_at, t.updated_at, t.version
  FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.project_id = :project AND t.number = :n;
";

/// The board read (`GET /api/v1/projects/{id}/board`): the project, its columns, its
/// tasks in board order — three statements on one connection, as the handler runs them.
const BOARD_SQL: &str = r"
SELECT id, key, name, description, archived, created_by, created_at, updated_at, version
  FROM projects WHERE id = :project;
SELECT id, name, position, wip_limit, done FROM board_columns
  WHERE project_id = :project ORDER BY position;
SELECT t.id, t.project_id, t.number, p.key || '-' || t.number AS key, t.title, t.description,
    t.column_id, t.position, t.priority, t.assignee_id, t.reporter_id, t.labels, t.due_date,
    t.estimate_minutes, t.parent_id, t.created_at, t.updated_at, t.version
  FROM tasks t JOIN projects p ON p.id = t.project_id JOIN board_columns c ON c.id = t.column_id
  WHERE t.project_id = :project ORDER BY c.position, t.position;
";

pub(crate) async fn fake_resolver(
    cluster_url: &str,
    databases: Arc<Mutex<HashMap<Uuid, String>>>,
    jwks: Value,
) -> anyhow::Result<TestServer> {
    let url: reqwest::Url = cluster_url.parse()?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port().unwrap_or(5432);
    let user = match url.username() {
        "" => "postgres".to_owned(),
        u => u.to_owned(),
    };
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/.well-known/jwks.json",
            get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        )
        .route(
            "/internal/tenants/by-slug/{slug}",
            get(|| async { axum::Json(json!({"limits": {"projects": null}})) }),
        )
        .route(
            "/internal/tenants/{id}/database",
            get(
                move |State(dbs): State<Arc<Mutex<HashMap<Uuid, String>>>>,
                      Path(id): Path<Uuid>| async move {
                    let name = dbs.lock().expect("dbs").get(&id).cloned();
                    axum::Json(json!({
                        "tenant_id": id, "host": host, "port": port, "database": name,
                        "username": user, "password": "", "schema_version": 0,
                    }))
                },
            ),
        )
        .with_state(databases);
    Ok(TestServer::router(router).await)
}

/// How long the bench's services keep a tenant's idle connection: longer than the gaps
/// between reads of the Zipf tail's tenants (about one a round), as an operator sizing
/// the cap for all of them active would set it.
const IDLE_SECS: u32 = 600;

/// project-service with connection cap `cap`.
async fn service(resolver: &TestServer, exchange: &str, cap: u32) -> TestServer {
    let args = [
        ("TENANT_RESOLVER_URL", resolver.base_url.clone()),
        ("JWKS_URL", resolver.url("/.well-known/jwks.json")),
        ("EVENTS_EXCHANGE", exchange.to_owned()),
        ("DB_MAX_CONNECTIONS", cap.to_string()),
        ("TENANT_IDLE_SECS", IDLE_SECS.to_string()),
    ];
    let config: project_service::Config =
        common::testkit::parse_config(project_service::NAME, &args, &[]);
    TestServer::start(|listener, shutdown| project_service::run_until(config, listener, shutdown))
        .await
}

/// Ranks 0..n picked with Zipf popularity: the cumulative weights of `1 / (k + 1)^s`.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect();
        for c in &mut cdf {
            *c /= total;
        }
        Self(cdf)
    }

    /// The rank for the `n`th request (a fixed pseudo-random draw per `n`).
    fn pick(&self, n: u64) -> usize {
        let u = (splitmix(n) >> 11) as f64 / (1u64 << 53) as f64;
        self.0.partition_point(|c| *c < u).min(self.0.len() - 1)
    }
}

fn splitmix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the server saw during one run: backends started and the most connections the
/// service held at once.
struct Watch {
    sessions_before: i64,
    most: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    sampler: tokio::task::JoinHandle<PgConnection>,
}

async fn sessions(conn: &mut PgConnection) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"select coalesce(sum(sessions), 0)::bigint as "sessions!" from pg_stat_database"#
    )
    .fetch_one(conn)
    .await?)
}

/// Connections project-service holds now.
async fn held(conn: &mut PgConnection) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"select count(*) as "held!" from pg_stat_activity
           where application_name = 'project-service'"#
    )
    .fetch_one(conn)
    .await?)
}

impl Watch {
    async fn start(mut conn: PgConnection) -> anyhow::Result<Self> {
        let sessions_before = sessions(&mut conn).await?;
        let (most, stop) = (
            Arc::new(AtomicI64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let sampler = tokio::spawn({
            let (most, stop) = (Arc::clone(&most), Arc::clone(&stop));
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let now = held(&mut conn).await.unwrap_or(0);
                    most.fetch_max(now, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                conn
            }
        });
        Ok(Self {
            sessions_before,
            most,
            stop,
            sampler,
        })
    }

    /// Backends started and most held; the watcher's connection back.
    async fn finish(self) -> anyhow::Result<(i64, i64, PgConnection)> {
        self.stop.store(true, Ordering::Relaxed);
        let mut conn = self.sampler.await?;
        // The statistics collector reports a session when it ends; give it a moment.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let started = sessions(&mut conn).await? - self.sessions_before;
        Ok((started, self.most.load(Ordering::Relaxed), conn))
    }
}

#[derive(Default)]
struct Samples {
    per_s: Vec<f64>,
    started: Vec<f64>,
    most_held: i64,
}

pub async fn projects_scenario(rounds: usize, seconds: u64) -> anyhow::Result<ProjectsReport> {
    crate::bench_gateway::ensure_command("wrk", "wrk")?;
    println!("• a PostgreSQL cluster of the bench's own (max_connections {MAX_CONNECTIONS})");
    let cluster = BenchCluster::start(MAX_CONNECTIONS)?;
    let result = run_scenario(&cluster.url, rounds, seconds).await;
    drop(cluster);
    result
}

async fn run_scenario(
    cluster: &str,
    rounds: usize,
    seconds: u64,
) -> anyhow::Result<ProjectsReport> {
    let mut admin = connect(cluster, "postgres").await?;
    let max_connections: u32 =
        sqlx::query_scalar!(r#"select current_setting('max_connections') as "max!""#)
            .fetch_one(&mut admin)
            .await?
            .parse()?;
    let key = SigningKey::generate("bench")?;
    let databases = Arc::new(Mutex::new(HashMap::new()));
    let resolver = fake_resolver(
        cluster,
        Arc::clone(&databases),
        serde_json::to_value(SigningKey::jwks([&key])?)?,
    )
    .await?;
    let exchange = unique("bench.events");
    let client = reqwest::Client::new();

    println!("• seeding the template: a project and 20 tasks through the service");
    let template = "nexus_bench_template";
    create_database(&mut admin, template, None).await?;
    TENANT_MIGRATOR
        .run(&mut connect(cluster, template).await?)
        .await?;
    let seed = tenant(&key, Uuid::now_v7(), template)?;
    databases
        .lock()
        .expect("dbs")
        .insert(seed.id, template.to_owned());
    let (project, tasks) = {
        let server = service(&resolver, &exchange, SMALL_CAP).await;
        let seeded = seed_template(&client, &server.base_url, &seed).await;
        server.stop();
        seeded?
    };
    {
        let mut conn = connect(cluster, template).await?;
        // The seed's events are not the copies' to publish.
        sqlx::query!("delete from outbox")
            .execute(&mut conn)
            .await?;
    }

    let count = UNIFORM_TENANTS.max(ZIPF_TENANTS);
    println!("• copying it into {count} tenant databases");
    let started = Instant::now();
    let mut tenants = Vec::with_capacity(count);
    for i in 0..count {
        let db = format!("nexus_bench_{i}");
        // The seed service's connections may still be closing.
        let mut tries = 0;
        while let Err(err) = create_database(&mut admin, &db, Some(template)).await {
            tries += 1;
            if tries > 50 {
                return Err(err);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let t = tenant(&key, Uuid::now_v7(), &db)?;
        databases.lock().expect("dbs").insert(t.id, db);
        tenants.push(t);
    }
    println!(
        "  {count} databases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let tenants = Arc::new(tenants);
    let task_ids = Arc::new(tasks);

    let get = |base: String, client: reqwest::Client| {
        move |tenant: &Tenant, path: String, body: Option<Value>| {
            let mut req = client
                .request(
                    if body.is_some() {
                        reqwest::Method::POST
                    } else {
                        reqwest::Method::GET
                    },
                    format!("{base}{path}"),
                )
                .bearer_auth(&tenant.token)
                .header("x-tenant-id", tenant.id.to_string())
                .header("x-tenant-slug", "bench");
            if let Some(body) = body {
                req = req.json(&body);
            }
            async move {
                let resp = req.send().await?;
                if !resp.status().is_success() {
                    bail!("{} from the service", resp.status());
                }
                resp.bytes().await?;
                anyhow::Ok(())
            }
        }
    };
    let zipf = Arc::new(Zipf::new(ZIPF_TENANTS, ZIPF_S));
    let user = Uuid::now_v7().to_string();
    let task_count = task_ids.len().to_string();
    let column = {
        let mut conn = connect(cluster, &tenants[0].db).await?;
        let project: Uuid = project.parse()?;
        sqlx::query_scalar!(
            r#"select id::text as "id!" from board_columns where project_id = $1
               order by position limit 1"#,
            project,
        )
        .fetch_one(&mut conn)
        .await?
    };
    let url_of = |db: &str| format!("{cluster}/{db}");

    let mut samples: HashMap<&str, Samples> = HashMap::new();
    let mut watcher = connect(cluster, "postgres").await?;
    // One service at a time, so the connections the server sees are that service's.
    let phases: [(u32, &[&str]); 2] = [
        (
            LARGE_CAP,
            &[
                names::CREATE,
                names::PG_CREATE,
                names::READ,
                names::PG_READ,
                names::UNIFORM,
                names::ZIPF,
                names::BOARD,
                names::PG_BOARD,
            ],
        ),
        (SMALL_CAP, &[names::SMALL_CAP, names::PG_READ_C]),
    ];
    for (cap, measures) in phases {
        let server = service(&resolver, &exchange, cap).await;
        let on_service = get(server.base_url.clone(), client.clone());
        let warm = if cap >= LARGE_CAP {
            tenants.len()
        } else {
            UNIFORM_TENANTS
        };
        println!("• cap {cap}: warming up, each of {warm} tenants read once");
        let path = format!("/api/v1/tasks/{}", task_ids[0]);
        for t in &tenants[..warm] {
            on_service(t, path.clone(), None).await?;
        }
        for round in 1..=rounds {
            println!("• cap {cap}, round {round}/{rounds} ({seconds} s per run)");
            for &name in measures {
                let read = |i: usize, n: u64| {
                    let task = &task_ids[usize::try_from(n).unwrap_or(0) % task_ids.len()];
                    (&tenants[i], format!("/api/v1/tasks/{task}"), None)
                };
                let calls: Calls = match name {
                    names::CREATE => vec![(
                        &tenants[0],
                        format!("/api/v1/projects/{project}/tasks"),
                        Some(json!({"title": "bench"}).to_string()),
                    )],
                    names::READ => (0..task_ids.len() as u64).map(|n| read(2, n)).collect(),
                    names::ZIPF => (0..SEQUENCE).map(|n| read(zipf.pick(n), n)).collect(),
                    // 7919 is prime: consecutive requests land far apart.
                    names::UNIFORM | names::SMALL_CAP => (0..SEQUENCE)
                        .map(|n| {
                            let i = usize::try_from(n.wrapping_mul(7919)).unwrap_or(0);
                            read(i % UNIFORM_TENANTS, n)
                        })
                        .collect(),
                    names::BOARD => vec![(
                        &tenants[1],
                        format!("/api/v1/projects/{project}/board"),
                        None,
                    )],
                    _ => Vec::new(),
                };
                let watch = Watch::start(watcher).await?;
                let per_s = match name {
                    names::PG_CREATE => pgbench(
                        &url_of(&tenants[0].db),
                        CREATE_SQL,
                        &[("project", &project), ("column", &column), ("user", &user)],
                        seconds,
                        false,
                    )?,
                    names::PG_READ | names::PG_READ_C => pgbench(
                        &url_of(&tenants[2].db),
                        READ_SQL,
                        &[("project", &project), ("tasks", &task_count)],
                        seconds,
                        name == names::PG_READ_C,
                    )?,
                    names::PG_BOARD => pgbench(
                        &url_of(&tenants[1].db),
                        BOARD_SQL,
                        &[("project", &project)],
                        seconds,
                        false,
                    )?,
                    _ => wrk(&server.base_url, &calls, seconds).await?,
                };
                let (started, most, conn) = watch.finish().await?;
                watcher = conn;
                let sample = samples.entry(name).or_default();
                sample.per_s.push(per_s);
                sample.started.push(started as f64);
                sample.most_held = sample.most_held.max(most);
                println!("  {name}: {per_s:.0}/s, {started} backends started, at most {most} held");
            }
        }
        server.stop();
        // Its connections close at shutdown; the next phase starts without them.
        let deadline = Instant::now() + Duration::from_secs(30);
        while held(&mut watcher).await? > 0 {
            if Instant::now() > deadline {
                bail!("the cap-{cap} service's connections are still open 30 s after it stopped");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut measures = Vec::new();
    for (name, mut sample) in samples {
        let pg = name.starts_with("pgbench");
        measures.push(Measure {
            name: name.to_owned(),
            cap: (!pg).then_some(if name == names::SMALL_CAP {
                SMALL_CAP
            } else {
                LARGE_CAP
            }),
            max_connections,
            per_s: median(&mut sample.per_s),
            backends_started: median(&mut sample.started),
            most_held: (!pg).then_some(sample.most_held),
        });
    }
    measures.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ProjectsReport {
        rounds,
        seconds_per_run: seconds,
        measures,
    })
}

async fn connect(cluster: &str, db: &str) -> anyhow::Result<PgConnection> {
    let url = format!("{cluster}/{db}");
    PgConnection::connect(&url)
        .await
        .with_context(|| format!("PostgreSQL does not answer at {url}"))
}

fn tenant(key: &SigningKey, id: Uuid, db: &str) -> anyhow::Result<Tenant> {
    Ok(Tenant {
        id,
        db: db.to_owned(),
        token: key.sign(&Claims::new(Uuid::now_v7(), id, "bench", Role::Owner))?,
    })
}

/// A project and 20 tasks in `seed`'s database, through the service at `base`: the
/// project's id and the tasks'.
async fn seed_template(
    client: &reqwest::Client,
    base: &str,
    seed: &Tenant,
) -> anyhow::Result<(String, Vec<String>)> {
    let call = |method: reqwest::Method, path: &str, body: Value| {
        client
            .request(method, format!("{base}{path}"))
            .bearer_auth(&seed.token)
            .header("x-tenant-id", seed.id.to_string())
            .header("x-tenant-slug", "bench")
            .json(&body)
    };
    let project: Value = call(
        reqwest::Method::POST,
        "/api/v1/projects",
        json!({"key": "BENCH", "name": "Bench"}),
    )
    .send()
    .await?
    .error_for_status()?
    .json()
    .await?;
    let project = project["id"].as_str().context("project id")?.to_owned();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let task: Value = call(
            reqwest::Method::POST,
            &format!("/api/v1/projects/{project}/tasks"),
            json!({"title": format!("task {i}")}),
        )
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
        tasks.push(task["id"].as_str().context("task id")?.to_owned());
    }
    Ok((project, tasks))
}

pub fn print_projects(r: &ProjectsReport) {
    println!(
        "\ntasks (project-service; medians of {} alternating rounds of {} s)",
        r.rounds, r.seconds_per_run
    );
    println!(
        "| measure | per second | connection cap | server max_connections | backends started per run | most held |"
    );
    println!("|---|---|---|---|---|---|");
    let dash = || "–".to_owned();
    for m in &r.measures {
        println!(
            "| {} | {:.0} | {} | {} | {:.0} | {} |",
            m.name,
            m.per_s,
            m.cap.map_or_else(dash, |c| c.to_string()),
            m.max_connections,
            m.backends_started,
            m.most_held.map_or_else(dash, |c| c.to_string()),
        );
    }
}
