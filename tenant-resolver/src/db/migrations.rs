//! What sqlx's migrator recorded in a database: `_sqlx_migrations`.
//!
//! These run against tenant databases (and their template) but are checked against the
//! registry's schema: the table is sqlx's own, created with the same shape by the
//! migrator in every database it runs on, and the registry is one of them.

use sqlx::PgConnection;

/// The highest successfully applied migration version (0 before the first migration).
pub async fn applied_version(conn: &mut PgConnection) -> sqlx::Result<i64> {
    let migrated =
        sqlx::query_scalar!(r#"select to_regclass('_sqlx_migrations') is not null as "migrated!""#)
            .fetch_one(&mut *conn)
            .await?;
    if !migrated {
        return Ok(0);
    }
    sqlx::query_scalar!(
        r#"select coalesce(max(version), 0) as "version!" from _sqlx_migrations where success"#
    )
    .fetch_one(&mut *conn)
    .await
}
