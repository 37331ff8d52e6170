//! PostgreSQL connections for services that own a database.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::config::DbArgs;

/// Connects to `url`, creating the database if it does not exist yet and retrying for
/// `db_connect_timeout_secs` while PostgreSQL is still starting, then applies `migrator`.
pub async fn connect_and_migrate(
    url: &str,
    args: &DbArgs,
    migrator: &Migrator,
) -> anyhow::Result<PgPool> {
    let deadline = Instant::now() + Duration::from_secs(args.db_connect_timeout_secs);
    let mut delay = Duration::from_millis(200);
    let pool = loop {
        match try_connect(url, args).await {
            Ok(pool) => break pool,
            Err(err) if Instant::now() < deadline => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "PostgreSQL not reachable yet; retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(3));
            }
            Err(err) => return Err(err),
        }
    };
    migrator.run(&pool).await.context("applying migrations")?;
    Ok(pool)
}

async fn try_connect(url: &str, args: &DbArgs) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse().context("parsing DATABASE_URL")?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    if !Postgres::database_exists(url)
        .await
        .with_context(|| format!("connecting to PostgreSQL for database {name}"))?
    {
        match Postgres::create_database(url).await {
            Ok(()) => tracing::info!(database = name, "created database"),
            // Another instance created it between our check and our create.
            Err(_) if Postgres::database_exists(url).await.unwrap_or(false) => {}
            Err(err) => return Err(err).with_context(|| format!("creating database {name}")),
        }
    }
    PgPoolOptions::new()
        .max_connections(args.db_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to database {name}"))
}

/// A pool of `connections` of its own to `pool`'s database, for one background job (an
/// outbox relay, a batch writer): the job neither waits behind the request path for a
/// connection nor holds one the request path needs, and it keeps talking to the same few
/// backends, whose memory and caches stay warm, rather than to each of the shared pool's
/// in turn. Connects on first use.
pub fn dedicated(pool: &PgPool, connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(connections.max(1))
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with((*pool.connect_options()).clone())
}
