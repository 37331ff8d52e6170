//! Scenario `tasks` (formerly `projects`): project-service's task create, task read and
//! board read throughput over HTTP
//! against `pgbench` running the same SQL on the same tenant database with as many
//! connections as the service's pool for one tenant; and reads spread over many tenants
//! (pools opened, evicted and reopened under the global cap) against reads of one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use common::auth::{Claims, Role, SigningKey};
use common::testkit::{TestServer, create_database, postgres_url, unique};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

static TENANT_MIGRATOR: Migrator = sqlx::migrate!("../migrations/tenant");

/// Concurrent HTTP clients; the service's pool per tenant, and pgbench's connections.
const CLIENTS: usize = 16;
const POOL_PER_TENANT: u32 = 4;

#[derive(Debug, Serialize)]
pub struct ProjectsReport {
    pub rounds: usize,
    pub seconds_per_run: u64,
    pub tenants: usize,
    pub create_per_s: f64,
    pub pgbench_create_per_s: f64,
    pub create_vs_pgbench: f64,
    pub read_per_s: f64,
    pub pgbench_read_per_s: f64,
    pub read_vs_pgbench: f64,
    pub read_many_tenants_per_s: f64,
    pub many_vs_one: f64,
    /// Board reads of a project with 20 tasks (another tenant's, untouched by the creates).
    pub board_per_s: f64,
    pub pgbench_board_per_s: f64,
    pub board_vs_pgbench: f64,
}

struct Tenant {
    id: Uuid,
    db: String,
    token: String,
    project: String,
    tasks: Vec<String>,
}

async fn admin() -> anyhow::Result<PgConnection> {
    let url = format!("{}/postgres", postgres_url());
    PgConnection::connect(&url)
        .await
        .with_context(|| format!("PostgreSQL does not answer at {url}"))
}

/// Runs `requests` (each returns whether it succeeded) from [`CLIENTS`] clients for
/// `seconds`; requests per second.
async fn closed_loop<F, Fut>(seconds: u64, request: F) -> anyhow::Result<f64>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers = (0..CLIENTS).map(|_| {
        let (done, request) = (Arc::clone(&done), request.clone());
        tokio::spawn(async move {
            while Instant::now() < deadline {
                request(done.fetch_add(1, Ordering::Relaxed)).await?;
            }
            anyhow::Ok(())
        })
    });
    for worker in workers.collect::<Vec<_>>() {
        worker.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// `pgbench` with `script` on `db` for `seconds`: transactions per second.
fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

fn pgbench(db: &str, script: &str, vars: &[(&str, &str)], seconds: u64) -> anyhow::Result<f64> {
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
        &POOL_PER_TENANT.to_string(),
    ])
    .args(["-T", &seconds.to_string(), "-f"])
    .arg(&file);
    for (k, v) in vars {
        cmd.args(["-D", &format!("{k}={v}")]);
    }
    let output = cmd
        .arg(format!("{}/{db}", postgres_url()))
        .output()
        .context("running pgbench")?;
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

async fn fake_resolver(
    databases: HashMap<Uuid, String>,
    jwks: Value,
) -> anyhow::Result<TestServer> {
    let url: reqwest::Url = postgres_url().parse()?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port().unwrap_or(5432);
    let user = match url.username() {
        "" => "postgres".to_owned(),
        u => u.to_owned(),
    };
    let password = url.password().unwrap_or_default().to_owned();
    let databases = Arc::new(Mutex::new(databases));
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
                        "username": user, "password": password, "schema_version": 0,
                    }))
                },
            ),
        )
        .with_state(databases);
    Ok(TestServer::router(router).await)
}

pub async fn projects_scenario(
    tenants: usize,
    rounds: usize,
    seconds: u64,
) -> anyhow::Result<ProjectsReport> {
    let prefix = unique("nexus_bench_ps");
    let result = run(&prefix, tenants.max(2), rounds, seconds).await;
    common::testkit::drop_databases_and_roles(&prefix);
    result
}

async fn run(
    prefix: &str,
    count: usize,
    rounds: usize,
    seconds: u64,
) -> anyhow::Result<ProjectsReport> {
    println!("• creating {count} tenant databases");
    let mut admin = admin().await?;
    let template = format!("{prefix}_template");
    create_database(&mut admin, &template, None).await?;
    {
        let mut conn = PgConnection::connect(&format!("{}/{template}", postgres_url())).await?;
        TENANT_MIGRATOR.run(&mut conn).await?;
    }
    let key = SigningKey::generate("bench")?;
    let mut tenants = Vec::new();
    let mut databases = HashMap::new();
    for i in 0..count {
        let db = format!("{prefix}_{i}");
        create_database(&mut admin, &db, Some(&template)).await?;
        let id = Uuid::now_v7();
        databases.insert(id, db.clone());
        let token = key.sign(&Claims::new(Uuid::now_v7(), id, "bench", Role::Owner))?;
        tenants.push(Tenant {
            id,
            db,
            token,
            project: String::new(),
            tasks: Vec::new(),
        });
    }
    let resolver =
        fake_resolver(databases, serde_json::to_value(SigningKey::jwks([&key])?)?).await?;
    let args = [
        ("TENANT_RESOLVER_URL", resolver.base_url.clone()),
        ("JWKS_URL", resolver.url("/.well-known/jwks.json")),
        ("EVENTS_EXCHANGE", unique("bench.events")),
        ("DB_POOL_PER_TENANT", POOL_PER_TENANT.to_string()),
    ];
    let config: project_service::Config =
        common::testkit::parse_config(project_service::NAME, &args, &[]);
    let server = TestServer::start(|listener, shutdown| {
        project_service::run_until(config, listener, shutdown)
    })
    .await;
    let client = reqwest::Client::new();
    let base = server.base_url.clone();

    println!("• a project and 20 tasks per tenant");
    for tenant in &mut tenants {
        let call = |method: reqwest::Method, path: &str| {
            client
                .request(method, format!("{base}{path}"))
                .bearer_auth(&tenant.token)
                .header("x-tenant-id", tenant.id.to_string())
                .header("x-tenant-slug", "bench")
        };
        let project: Value = call(reqwest::Method::POST, "/api/v1/projects")
            .json(&json!({"key": "BENCH", "name": "Bench"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let project = project["id"].as_str().context("project id")?.to_owned();
        for i in 0..20 {
            let task: Value = call(
                reqwest::Method::POST,
                &format!("/api/v1/projects/{project}/tasks"),
            )
            .json(&json!({"title": format!("task {i}")}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
            tenant
                .tasks
                .push(task["id"].as_str().context("task id")?.to_owned());
        }
        tenant.project = project;
    }
    let tenants = Arc::new(tenants);
    let request = {
        let (client, base) = (client.clone(), base.clone());
        move |tenant: &Tenant, method: reqwest::Method, path: String, body: Option<Value>| {
            let mut req = client
                .request(method, format!("{base}{path}"))
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

    let first = &tenants[0];
    let mut conn = PgConnection::connect(&format!("{}/{}", postgres_url(), first.db)).await?;
    let project: Uuid = first.project.parse()?;
    let column = sqlx::query_scalar!(
        r#"select id::text as "id!" from board_columns where project_id = $1
           order by position limit 1"#,
        project,
    )
    .fetch_one(&mut conn)
    .await?;
    let task_count = sqlx::query_scalar!(
        r#"select count(*) as "count!" from tasks where project_id = $1"#,
        project,
    )
    .fetch_one(&mut conn)
    .await?;
    drop(conn);
    let user = Uuid::now_v7().to_string();
    let task_count = task_count.to_string();

    let (mut creates, mut pg_creates, mut reads, mut pg_reads, mut many) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut boards, mut pg_boards) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        println!(
            "• round {round}/{rounds}: create, pgbench create, read, pgbench read, read across {} tenants, board, pgbench board ({seconds} s each)",
            tenants.len()
        );
        creates.push(
            closed_loop(seconds, {
                let (tenants, request) = (Arc::clone(&tenants), request.clone());
                move |_| {
                    let t = &tenants[0];
                    request(
                        t,
                        reqwest::Method::POST,
                        format!("/api/v1/projects/{}/tasks", t.project),
                        Some(json!({"title": "bench"})),
                    )
                }
            })
            .await?,
        );
        pg_creates.push(pgbench(
            &first.db,
            CREATE_SQL,
            &[
                ("project", &first.project),
                ("column", &column),
                ("user", &user),
            ],
            seconds,
        )?);
        reads.push(
            closed_loop(seconds, {
                let (tenants, request) = (Arc::clone(&tenants), request.clone());
                move |n| {
                    let t = &tenants[0];
                    let id = &t.tasks[usize::try_from(n).unwrap_or(0) % t.tasks.len()];
                    request(t, reqwest::Method::GET, format!("/api/v1/tasks/{id}"), None)
                }
            })
            .await?,
        );
        pg_reads.push(pgbench(
            &first.db,
            READ_SQL,
            &[("project", &first.project), ("tasks", &task_count)],
            seconds,
        )?);
        many.push(
            closed_loop(seconds, {
                let (tenants, request) = (Arc::clone(&tenants), request.clone());
                move |n| {
                    let n = usize::try_from(n).unwrap_or(0);
                    let t = &tenants[n.wrapping_mul(7919) % tenants.len()];
                    let id = &t.tasks[n % t.tasks.len()];
                    request(t, reqwest::Method::GET, format!("/api/v1/tasks/{id}"), None)
                }
            })
            .await?,
        );
        boards.push(
            closed_loop(seconds, {
                let (tenants, request) = (Arc::clone(&tenants), request.clone());
                move |_| {
                    let t = &tenants[1];
                    request(
                        t,
                        reqwest::Method::GET,
                        format!("/api/v1/projects/{}/board", t.project),
                        None,
                    )
                }
            })
            .await?,
        );
        pg_boards.push(pgbench(
            &tenants[1].db,
            BOARD_SQL,
            &[("project", &tenants[1].project)],
            seconds,
        )?);
    }
    server.stop();
    let board_per_s = median(&mut boards);
    let pgbench_board_per_s = median(&mut pg_boards);
    let create_per_s = median(&mut creates);
    let pgbench_create_per_s = median(&mut pg_creates);
    let read_per_s = median(&mut reads);
    let pgbench_read_per_s = median(&mut pg_reads);
    let read_many_tenants_per_s = median(&mut many);
    Ok(ProjectsReport {
        rounds,
        seconds_per_run: seconds,
        tenants: tenants.len(),
        create_per_s,
        pgbench_create_per_s,
        create_vs_pgbench: create_per_s / pgbench_create_per_s,
        read_per_s,
        pgbench_read_per_s,
        read_vs_pgbench: read_per_s / pgbench_read_per_s,
        read_many_tenants_per_s,
        many_vs_one: read_many_tenants_per_s / read_per_s,
        board_per_s,
        pgbench_board_per_s,
        board_vs_pgbench: board_per_s / pgbench_board_per_s,
    })
}

pub fn print_projects(r: &ProjectsReport) {
    println!(
        "\ntasks (project-service; medians of {} alternating rounds)",
        r.rounds
    );
    println!("| measure | project-service | reference | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| task create, 1 tenant | {:.0}/s | pgbench same SQL {:.0}/s | {:.2}× |",
        r.create_per_s, r.pgbench_create_per_s, r.create_vs_pgbench
    );
    println!(
        "| task read, 1 tenant | {:.0}/s | pgbench same SQL {:.0}/s | {:.2}× |",
        r.read_per_s, r.pgbench_read_per_s, r.read_vs_pgbench
    );
    println!(
        "| task read, {} tenants | {:.0}/s | 1 tenant {:.0}/s | {:.2}× |",
        r.tenants, r.read_many_tenants_per_s, r.read_per_s, r.many_vs_one
    );
    println!(
        "| board read, 20 tasks | {:.0}/s | pgbench same SQL {:.0}/s | {:.2}× |",
        r.board_per_s, r.pgbench_board_per_s, r.board_vs_pgbench
    );
}
