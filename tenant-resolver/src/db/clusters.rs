//! The registry's `clusters` table: where tenant databases may be placed.

use sqlx::PgExecutor;

/// Records a configured cluster (or its new address); tenants reference it by name.
pub async fn upsert(
    db: impl PgExecutor<'_>,
    name: &str,
    host: &str,
    port: u16,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into clusters (name, host, port) values ($1, $2, $3)
         on conflict (name) do update set host = excluded.host, port = excluded.port",
        name,
        host,
        i32::from(port),
    )
    .execute(db)
    .await?;
    Ok(())
}
