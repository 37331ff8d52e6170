//! PostgreSQL connections for services that own a database.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::config::DbArgs;

pub mod ddl;
pub mod directory;
pub mod tenants;

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

/// The constraint a database error violated (unique, foreign key, check, exclusion), if
/// `err` is one. Looks through `ApiError::Internal`, which is how `?` carries a
/// `sqlx::Error` out of a data-layer call.
pub fn violated_constraint(err: &crate::ApiError) -> Option<&str> {
    let crate::ApiError::Internal(inner) = err else {
        return None;
    };
    constraint_of(inner.downcast_ref::<sqlx::Error>()?)
}

/// The constraint (or unique index) `err` violated, if it is such a database error: for
/// code that handles `sqlx::Error` itself (provisioning, under `anyhow`), where
/// [`ConstraintExt`] serves the API's errors.
pub fn constraint_of(err: &sqlx::Error) -> Option<&str> {
    err.as_database_error()?.constraint()
}

/// Maps a violation of a named constraint to the API error it means for the client, so a
/// handler states "a second project with this key is a 409" by the constraint's name
/// rather than by SQLSTATE or a check-then-insert race:
///
/// ```ignore
/// db::projects::insert(&mut tx, &new)
///     .await
///     .on_constraint("projects_key_key", || ApiError::Conflict("That key is taken.".into()))?;
/// ```
///
/// Calls chain; any other error passes through unchanged.
pub trait ConstraintExt<T> {
    fn on_constraint(
        self,
        name: &str,
        error: impl FnOnce() -> crate::ApiError,
    ) -> Result<T, crate::ApiError>;
}

impl<T, E: Into<crate::ApiError>> ConstraintExt<T> for Result<T, E> {
    fn on_constraint(
        self,
        name: &str,
        error: impl FnOnce() -> crate::ApiError,
    ) -> Result<T, crate::ApiError> {
        self.map_err(|err| {
            let err = err.into();
            if violated_constraint(&err) == Some(name) {
                error()
            } else {
                err
            }
        })
    }
}
