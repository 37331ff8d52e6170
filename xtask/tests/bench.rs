//! The benchmark must keep working (it is not run by the tests, which must not time
//! anything): a tiny run of the tenants scenario produces sane figures and cleans up.

#[tokio::test]
async fn a_tiny_tenants_run_reports_figures_and_leaves_no_databases() {
    let server = xtask::deps::Urls::from_env().postgres;
    let mut admin =
        <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{server}/postgres"))
            .await
            .expect("PostgreSQL");
    let before = bench_databases(&mut admin).await;

    let report = xtask::bench::tenants_scenario(3, 2)
        .await
        .expect("bench run");

    assert_eq!((report.tenants, report.rounds), (3, 2));
    for (name, value) in [
        ("signup", report.signup_ms),
        ("bare", report.bare_create_ms),
        ("migrate", report.migrate_all_s),
    ] {
        assert!(value.is_finite() && value > 0.0, "{name} = {value}");
    }
    let after = bench_databases(&mut admin).await;
    assert_eq!(after, before, "the bench drops what it created");
}

/// How many databases are named like the benchmark's (`b`, 8 hex digits, `_`).
async fn bench_databases(admin: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from pg_database where datname ~ '^b[0-9a-f]{8}_'"#
    )
    .fetch_one(admin)
    .await
    .unwrap()
}
