//! `cargo xtask <task>`: run the fleet, test it against real servers, keep docs true.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::{deps, docs, fleet, state_dir};

/// The allocator the services' own binaries run on, so the services `bench` runs in this
/// process allocate as they do in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Nexus developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build and start all seven services as local processes (like `docker compose up`).
    Up {
        /// Run in the background (logs in .nexus/logs); stop with `cargo xtask down`.
        #[arg(long, short)]
        detach: bool,
        /// Build and run release binaries.
        #[arg(long)]
        release: bool,
    },
    /// Stop what `up --detach` started, and the MongoDB stand-in.
    Down,
    /// Check PostgreSQL, RabbitMQ and MongoDB answer (starting the MongoDB stand-in if
    /// needed), install Debian's Chromium and jq for the end-to-end tests if missing, then run every
    /// test of the workspace against them.
    Test {
        /// Passed on to the test runner (cargo nextest, else cargo test).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Measure speed as ratios against references run side by side (release build).
    /// Scenarios: tenants, gateway, tasks (alias projects), analytics, notifications,
    /// redirect, footprint, soak, stream, webhooks (all when none is named); then one summary
    /// table, and on a full run the chart docs/bench-ratios.svg.
    Bench {
        scenarios: Vec<String>,
        /// Tenants to sign up for the growth and migrate-all measures (the figure
        /// is 1,000).
        #[arg(long, default_value_t = 1000)]
        tenants: usize,
        /// Alternating rounds of signup vs bare CREATE DATABASE; the throughput
        /// scenarios alternate their variants for this many rounds, at least 3, at most 5.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Minutes of mixed API traffic in `soak`, after its logins (at least 1).
        #[arg(long, default_value_t = 3)]
        soak_minutes: u64,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// (internal) the release-build side of `bench`.
    #[command(hide = true)]
    BenchRelease {
        scenarios: Vec<String>,
        #[arg(long)]
        tenants: usize,
        #[arg(long)]
        rounds: usize,
        #[arg(long)]
        soak_minutes: u64,
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// Fuzz the lane's request-head reader with libFuzzer (cargo-fuzz, installed if
    /// missing); findings land in fuzz/artifacts/. Not part of CI.
    Fuzz {
        /// Minutes per target.
        #[arg(long, default_value_t = 1)]
        minutes: u64,
        /// Only this target (default: all).
        target: Option<String>,
    },
    /// Regenerate the README's config table and .env.example from the services' configs.
    Docs {
        /// Only check that they are current.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Up { detach, release } => fleet::up(&fleet::UpOptions { detach, release }),
        Task::Down => fleet::down(),
        Task::Test { args } => test(&args),
        Task::Docs { check } => docs::run(check),
        Task::Fuzz { minutes, target } => xtask::fuzz::run(target.as_deref(), minutes),
        Task::Bench {
            scenarios,
            tenants,
            rounds,
            soak_minutes,
            json,
        } => xtask::bench::run(
            &scenarios,
            &xtask::bench::Options {
                tenants,
                rounds,
                soak_minutes,
            },
            json.as_ref(),
        ),
        Task::BenchRelease {
            scenarios,
            tenants,
            rounds,
            soak_minutes,
            json,
        } => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| {
                rt.block_on(xtask::bench::run_release(
                    &scenarios,
                    &xtask::bench::Options {
                        tenants,
                        rounds,
                        soak_minutes,
                    },
                    json.as_ref(),
                ))
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn test(args: &[String]) -> anyhow::Result<()> {
    let urls = deps::Urls::from_env();
    deps::require_postgres_and_rabbitmq(&urls)?;
    deps::ensure_mongodb(&urls.mongodb, &state_dir())?;
    let (test_smtp, maildir) = deps::ensure_test_smtp(&state_dir())?;
    deps::ensure_test_packages()?;
    deps::pip_tool(&state_dir(), "schemathesis", deps::SCHEMATHESIS)?;
    let nextest = xtask::cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nextest {
        println!("• cargo-nextest not found; using cargo test");
    }
    let runner = |filter: Option<(&str, bool)>, extra: &[String]| {
        let mut runner = xtask::cargo();
        if nextest {
            runner.args(["nextest", "run", "--no-fail-fast"]);
        } else {
            runner.args(["test", "--no-fail-fast"]);
        }
        let picks_packages = extra.iter().any(|a| {
            a == "-p" || a.starts_with("--package") || (a.starts_with("-p") && a.len() > 2)
        });
        if !picks_packages {
            runner.arg("--workspace");
        }
        runner.args(extra);
        match (filter, nextest) {
            (Some((name, true)), true) => {
                runner.args(["-E", &format!("test(/^{name}/)"), "--test-threads", "1"])
            }
            (Some((name, false)), true) => runner.args(["-E", &format!("not test(/^{name}/)")]),
            (Some((name, true)), false) => runner.args(["--", name, "--test-threads=1"]),
            (Some((name, false)), false) => runner.args(["--", "--skip", name]),
            (None, _) => &mut runner,
        };
        runner
            .env("NEXUS_TEST_POSTGRES_URL", &urls.postgres)
            .env("NEXUS_TEST_AMQP_URL", &urls.amqp)
            .env("NEXUS_TEST_MONGODB_URL", &urls.mongodb)
            .env("NEXUS_TEST_SMTP_URL", &test_smtp)
            .env("NEXUS_TEST_MAILDIR", &maildir);
        runner
    };
    if !args.is_empty() {
        return deps::run(&mut runner(None, args), "running the tests");
    }
    // Tests that stop the shared broker or restart the shared database run last, alone.
    let everything_else = deps::run(&mut runner(Some((SERIAL, false)), &[]), "running the tests");
    let serial = deps::run(
        &mut runner(Some((SERIAL, true)), &["-p".to_owned(), "e2e".to_owned()]),
        "running the fault tests (serially)",
    );
    everything_else.and(serial)
}

/// Name prefix of the tests that stop RabbitMQ or restart PostgreSQL.
const SERIAL: &str = "serial_";
