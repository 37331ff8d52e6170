//! Fleet migrations: bounded, recorded per tenant, never blocked by one broken tenant,
//! resumable.

use std::path::PathBuf;
use std::time::Duration;

use common::db::ddl::{self, Ident};
use futures::StreamExt;
use sqlx::Connection;
use sqlx::migrate::Migrator;
use tenant_resolver::AppState;
use tenant_resolver::domain::SignupRequest;
use tenant_resolver::migrate::migrate_all;

use crate::helpers::{TestApp, signup_body, spawn_app};

const PROBE_VERSION: i64 = 99_990_001;

/// The tenant migrations plus one more that creates `migrate_probe`.
async fn migrator_with_probe() -> (Migrator, PathBuf) {
    let dir = std::env::temp_dir().join(common::testkit::unique("nexus_migrations"));
    std::fs::create_dir_all(&dir).unwrap();
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../migrations/tenant");
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        dir.join(format!("{PROBE_VERSION}_probe.sql")),
        "create table migrate_probe (id int primary key);",
    )
    .unwrap();
    (Migrator::new(dir.as_path()).await.unwrap(), dir)
}

/// Provisions `n` tenants through the library, four at a time.
async fn provision(state: &AppState, n: usize) -> Vec<String> {
    let slugs: Vec<String> = (0..n).map(|i| format!("tenant-{i:03}")).collect();
    let results: Vec<_> = futures::stream::iter(slugs.clone())
        .map(|slug| async move {
            let req: SignupRequest = serde_json::from_value(signup_body(&slug)).unwrap();
            tenant_resolver::signup::signup(state, &req, None).await
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for result in results {
        result.expect("provisioning");
    }
    slugs
}

/// The schema version and last error the registry recorded for a tenant.
async fn recorded_migration(app: &TestApp, slug: &str) -> (i64, Option<String>) {
    let row = sqlx::query!(
        "select schema_version, last_migration_error from tenants where slug = $1",
        slug,
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    (row.schema_version, row.last_migration_error)
}

async fn admin_connection(app: &TestApp, slug: &str) -> sqlx::PgConnection {
    let url = format!(
        "{}/{}{}",
        common::testkit::postgres_url(),
        app.prefix,
        slug.replace('-', "_")
    );
    sqlx::PgConnection::connect(&url).await.unwrap()
}

#[tokio::test]
async fn one_broken_tenant_of_200_is_recorded_and_the_rest_migrate_then_a_rerun_resumes_it() {
    let app = spawn_app().await;
    let state = app.state().await;
    provision(&state, 200).await;
    let (migrator, dir) = migrator_with_probe().await;
    let broken = "tenant-057";
    let mut conn = admin_connection(&app, broken).await;
    sqlx::query!("create table migrate_probe (something_else text)")
        .execute(&mut conn)
        .await
        .unwrap();

    let first = migrate_all(&state, &migrator, &|_, _| {}).await.unwrap();

    assert_eq!(first.total, 200);
    assert_eq!(first.migrated, 199);
    assert_eq!(first.failed.len(), 1);
    assert_eq!(first.failed[0].slug, broken);
    assert!(
        first.failed[0].error.contains("migrate_probe"),
        "{}",
        first.failed[0].error
    );
    let (version, error) = recorded_migration(&app, broken).await;
    assert!(version < PROBE_VERSION);
    assert!(error.unwrap().contains("migrate_probe"));
    let current = sqlx::query_scalar!(
        r#"select count(*) as "count!" from tenants
           where schema_version = $1 and last_migration_error is null"#,
        PROBE_VERSION,
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(current, 199);

    sqlx::query!("drop table migrate_probe")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let second = migrate_all(&state, &migrator, &|_, _| {}).await.unwrap();

    assert_eq!(
        (second.migrated, second.already_current, second.failed.len()),
        (1, 199, 0)
    );
    let (version, error) = recorded_migration(&app, broken).await;
    assert_eq!((version, error), (PROBE_VERSION, None));
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn the_template_is_migrated_too_so_new_tenants_are_born_current() {
    let app = spawn_app().await;
    let state = app.state().await;
    let (migrator, dir) = migrator_with_probe().await;

    migrate_all(&state, &migrator, &|_, _| {}).await.unwrap();
    provision(&state, 1).await;

    let mut conn = admin_connection(&app, "tenant-000").await;
    let probe = sqlx::query_scalar!("select to_regclass('migrate_probe')::text as probe")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(probe.as_deref(), Some("migrate_probe"));
    let version = sqlx::query_scalar!("select schema_version from tenants")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(version, PROBE_VERSION);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn the_internal_endpoint_runs_a_migration_and_reports_its_summary() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;

    let started = app
        .internal(reqwest::Method::POST, "/internal/migrations")
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status: serde_json::Value = app
            .internal(reqwest::Method::GET, "/internal/migrations")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["running"] == false && !status["last"].is_null() {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "migration did not finish: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["last"]["total"], 2);
    assert_eq!(status["last"]["already_current"], 2);
    assert_eq!(status["last"]["failed"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn the_migrate_command_prints_a_summary_and_exits_zero() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let args = crate::helpers::test_args(&app.db, &app.users, &app.prefix, &app.exchange);

    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tenant-resolver"))
            .arg("migrate")
            .envs(args.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LOG_FORMAT", "json")
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1 tenants: 0 migrated, 1 already current, 0 failed"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_tenant_whose_password_no_longer_works_is_recorded_not_fatal() {
    let app = spawn_app().await;
    let state = app.state().await;
    provision(&state, 3).await;
    let mut conn = admin_connection(&app, "tenant-001").await;
    let role = Ident::new(format!("{}tenant_001", app.prefix)).unwrap();
    ddl::execute(&mut conn, "alter role {} nologin", &[&role])
        .await
        .unwrap();

    let summary = migrate_all(&state, &tenant_resolver::TENANT_MIGRATOR, &|_, _| {})
        .await
        .unwrap();

    assert_eq!(summary.already_current, 2);
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].slug, "tenant-001");
}
