//! `cargo sql prepare` and `cargo sql check`: the compile-time SQL check.
//!
//! Every query in the services is a `sqlx::query!`-family macro, checked at build time
//! against a database. Builds run offline (`SQLX_OFFLINE=true` in `.cargo/config.toml`)
//! from the query descriptions committed in `.sqlx/` at the workspace root. This tool makes
//! those descriptions, and checks them, against the schema each crate really queries:
//!
//! 1. creates one throw-away database per schema (`registry`, `users`, `tenant`,
//!    `shortener`) and applies that folder of `migrations/` to it;
//! 2. compiles the crates of [`CRATES`] (`cargo check --all-targets`), each online against
//!    its own schema's database, so a query that no longer matches the schema fails to
//!    compile;
//! 3. `prepare` writes the descriptions to `.sqlx/`; `check` writes them to a scratch
//!    folder and fails when `.sqlx/` differs (missing, stale or changed descriptions).
//!
//! The `query!` macros read one `DATABASE_URL` for the whole build, but a crate is also
//! compiled as a dependency of others (every service under `xtask`), and each must see
//! its own schema then too. So the one `cargo check` runs with this tool as its
//! `RUSTC_WORKSPACE_WRAPPER`: for each workspace crate it compiles, the wrapper sets
//! `DATABASE_URL` to that crate's schema (by `CARGO_PKG_NAME`), or leaves the crate
//! offline when it is not in [`CRATES`], where a query macro then fails to compile.
//!
//! It is its own package rather than a task of `xtask` because `xtask` builds every
//! service: with a changed query and stale `.sqlx/`, that build fails before the task that
//! would fix it could run.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnection;

/// Each crate that holds queries, and the migrations folder (schema) it queries.
///
/// `common` holds only queries of the tables every schema has (the outbox) and of
/// PostgreSQL's catalogue, so it is checked against the tenant schema and holds for all
/// four. `xtask`'s benchmarks and tests read tenant databases (and the catalogue); what
/// they read of another schema they ask of that service's data layer
/// (`url_shortener::db::links::visits_written`).
const CRATES: &[(&str, &str)] = &[
    ("common", "tenant"),
    ("tenant-resolver", "registry"),
    ("user-service", "users"),
    ("project-service", "tenant"),
    ("url-shortener", "shortener"),
    ("notification-service", "tenant"),
    ("xtask", "tenant"),
];

#[derive(Parser)]
#[command(name = "cargo sql", about = "Compile-time SQL: make or check .sqlx/")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Compile every crate against its schema and write the query descriptions to .sqlx/.
    Prepare,
    /// Compile every crate against its schema and fail when .sqlx/ is not what that gives.
    Check,
}

/// Set for the `cargo check` this tool runs: `crate=url` pairs, separated by spaces.
const SCHEMA_URLS: &str = "NEXUS_SQL_SCHEMA_URLS";

fn main() -> ExitCode {
    if std::env::var_os(SCHEMA_URLS).is_some() {
        return wrap_rustc();
    }
    let task = Cli::parse().task;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting tokio: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&task)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(task: &Task) -> anyhow::Result<()> {
    let root = workspace_root();
    let server = std::env::var("POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let server = server.trim_end_matches('/').to_owned();
    // One set of databases per run, so two checkouts can check at once.
    let suffix = format!("{}_{}", std::process::id(), unix_secs());
    let mut schemas = BTreeMap::new();
    for (_, schema) in CRATES {
        if !schemas.contains_key(schema) {
            let name = format!("nexus_sqlx_{schema}_{suffix}");
            create_schema_db(&server, &name, &root.join("migrations").join(schema)).await?;
            schemas.insert(*schema, name);
        }
    }
    let outcome = compile_all(task, &root, &server, &schemas);
    for name in schemas.values() {
        if let Err(err) = drop_db(&server, name).await {
            eprintln!("warning: could not drop {name}: {err:#}");
        }
    }
    outcome
}

fn compile_all(
    task: &Task,
    root: &Path,
    server: &str,
    schemas: &BTreeMap<&str, String>,
) -> anyhow::Result<()> {
    let committed = root.join(".sqlx");
    let out = match task {
        Task::Prepare => committed.clone(),
        Task::Check => root.join("target").join("sqlx-check"),
    };
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // The macros run only when their crate is compiled: make every one stale first.
    for (krate, _) in CRATES {
        touch_sources(&root.join(krate))?;
    }
    let mut urls = Vec::new();
    let mut check = cargo();
    check
        .current_dir(root)
        .args(["check", "--quiet", "--locked", "--all-targets"]);
    for (krate, schema) in CRATES {
        println!("• {krate}: checking its queries against the {schema} schema");
        urls.push(format!("{krate}={server}/{}", schemas[schema]));
        check.args(["-p", krate]);
    }
    let wrapper = std::env::current_exe().context("locating this tool")?;
    let status = check
        .env("RUSTC_WORKSPACE_WRAPPER", wrapper)
        .env(SCHEMA_URLS, urls.join(" "))
        .env("SQLX_OFFLINE", "true")
        .env_remove("DATABASE_URL")
        .env("SQLX_OFFLINE_DIR", &out)
        .status()
        .context("running cargo check")?;
    if !status.success() {
        bail!("queries do not compile against their crate's schema (above)");
    }
    match task {
        Task::Prepare => {
            let count = fs::read_dir(&out)?.count();
            println!("• wrote {count} query descriptions to .sqlx/");
            Ok(())
        }
        Task::Check => compare(&committed, &out),
    }
}

/// Fails naming every description that `.sqlx/` lacks, has in excess, or has otherwise.
fn compare(committed: &Path, fresh: &Path) -> anyhow::Result<()> {
    let old = read_dir_files(committed)?;
    let new = read_dir_files(fresh)?;
    let mut problems = Vec::new();
    for (name, text) in &new {
        match old.get(name) {
            None => problems.push(format!("missing: {name}")),
            Some(previous) if previous != text => problems.push(format!("changed: {name}")),
            Some(_) => {}
        }
    }
    for name in old.keys().filter(|name| !new.contains_key(*name)) {
        problems.push(format!("no longer used: {name}"));
    }
    if problems.is_empty() {
        println!("• .sqlx/ is current ({} query descriptions)", new.len());
        return Ok(());
    }
    for problem in &problems {
        eprintln!("  {problem}");
    }
    bail!(
        "{} query descriptions in .sqlx/ are out of date; run `cargo sql prepare` and commit .sqlx/",
        problems.len()
    )
}

fn read_dir_files(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    if !dir.exists() {
        return Ok(files);
    }
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            files.insert(name, text);
        }
    }
    Ok(files)
}

async fn create_schema_db(server: &str, name: &str, migrations: &Path) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&format!("{server}/postgres"))
        .await
        .with_context(|| format!("connecting to PostgreSQL at {server}"))?;
    sqlx::raw_sql(&format!("create database \"{name}\""))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating {name}"))?;
    let mut conn = PgConnection::connect(&format!("{server}/{name}")).await?;
    Migrator::new(migrations)
        .await
        .with_context(|| format!("reading {}", migrations.display()))?
        .run(&mut conn)
        .await
        .with_context(|| format!("applying {} to {name}", migrations.display()))?;
    Ok(())
}

async fn drop_db(server: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    sqlx::raw_sql(&format!("drop database if exists \"{name}\" with (force)"))
        .execute(&mut admin)
        .await?;
    Ok(())
}

/// Runs as `RUSTC_WORKSPACE_WRAPPER` (`<this tool> <rustc> <args>…`): compiles one crate
/// with `DATABASE_URL` set to its own schema's database, online, when it is one of
/// [`CRATES`]; other crates compile as `cargo check` was started (offline).
fn wrap_rustc() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(rustc) = args.next() else {
        eprintln!("error: {SCHEMA_URLS} is set but no rustc was given to wrap");
        return ExitCode::FAILURE;
    };
    let mut command = Command::new(rustc);
    command.args(args);
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    let urls = std::env::var(SCHEMA_URLS).unwrap_or_default();
    if let Some(url) = urls
        .split(' ')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(krate, url)| (krate == package).then_some(url))
    {
        command
            .env("DATABASE_URL", url)
            .env("SQLX_OFFLINE", "false");
    }
    match command.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1)),
        Err(err) => {
            eprintln!("error: running rustc: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Marks every Rust source of a crate as modified now.
fn touch_sources(dir: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default();
        if path.is_dir() {
            if name != "target" && name != "sql" {
                touch_sources(&path)?;
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            fs::File::options()
                .append(true)
                .open(&path)
                .and_then(|f| f.set_modified(SystemTime::now()))
                .with_context(|| format!("touching {}", path.display()))?;
        }
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("xtask/sql lives two folders below the root")
        .to_path_buf()
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `cargo`, without the variables `cargo run` set for this tool.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR" {
            cmd.env_remove(name);
        }
    }
    cmd
}
