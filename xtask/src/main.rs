//! `cargo xtask <task>`: run the fleet, test it against real servers, keep docs true.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::{deps, docs, fleet, state_dir};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Nexus developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build and start all six services as local processes (like `docker compose up`).
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
    /// needed), then run every test of the workspace against them.
    Test {
        /// Passed on to the test runner (cargo nextest, else cargo test).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
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
    let nextest = xtask::cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut runner = xtask::cargo();
    if nextest {
        runner.args(["nextest", "run", "--no-fail-fast"]);
    } else {
        println!("• cargo-nextest not found; using cargo test");
        runner.args(["test", "--no-fail-fast"]);
    }
    let picks_packages = args
        .iter()
        .any(|a| a == "-p" || a.starts_with("--package") || (a.starts_with("-p") && a.len() > 2));
    if !picks_packages {
        runner.arg("--workspace");
    }
    runner
        .args(args)
        .env("NEXUS_TEST_POSTGRES_URL", &urls.postgres)
        .env("NEXUS_TEST_AMQP_URL", &urls.amqp)
        .env("NEXUS_TEST_MONGODB_URL", &urls.mongodb);
    deps::run(&mut runner, "running the tests")
}
