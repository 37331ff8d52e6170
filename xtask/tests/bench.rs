//! The benchmark must keep working (it is not run by the tests, which must not time
//! anything): a tiny run of the tenants scenario produces sane figures and cleans up.

#[tokio::test]
async fn a_tiny_tenants_run_reports_figures_and_leaves_no_databases() {
    let server = xtask::deps::Urls::from_env().postgres;
    let mut admin =
        <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{server}/postgres"))
            .await
            .expect("PostgreSQL");
    let count = "select count(*) from pg_database where datname ~ '^b[0-9a-f]{8}_'";
    let before: i64 = sqlx::query_scalar(count)
        .fetch_one(&mut admin)
        .await
        .unwrap();

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
    let after: i64 = sqlx::query_scalar(count)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(after, before, "the bench drops what it created");
}
