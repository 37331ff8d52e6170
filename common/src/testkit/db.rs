//! Throw-away PostgreSQL databases, one per test, and the clean-up of what a test
//! provisioned on the server.
//!
//! Their names are computed at run time, so the statements on them are built by
//! `common::db::ddl` from fixed templates and quoted identifiers; this file holds the
//! test kit's (and the benchmarks') templates, and nothing else outside tenant-resolver's
//! `db::catalog` does.

use std::future::Future;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

use super::{postgres_url, unique};
use crate::db::ddl::{self, Ident};

/// A throw-away database, dropped when the value is.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    /// Creates an empty database with a unique name.
    pub async fn create() -> Self {
        let name = unique("nexus_test");
        let server = postgres_url();
        let mut admin = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "PostgreSQL does not answer at {server} (set NEXUS_TEST_POSTGRES_URL): {err}"
                )
            });
        create_database(&mut admin, &name, None)
            .await
            .expect("creating test database");
        let url = format!("{server}/{name}");
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(&url)
            .await
            .expect("connecting to test database");
        Self { name, url, pool }
    }

    /// Creates a database and applies `migrator` to it.
    pub async fn migrated(migrator: &sqlx::migrate::Migrator) -> Self {
        let db = Self::create().await;
        migrator.run(&db.pool).await.expect("applying migrations");
        db
    }
}

impl TestDb {
    /// Makes the database unreachable: new connections are refused and open ones are
    /// closed, as in an outage. Dropping the value still removes it.
    pub async fn cut_off(&self) {
        let mut admin = PgConnection::connect(&format!("{}/postgres", postgres_url()))
            .await
            .expect("admin connection");
        ddl::execute(
            &mut admin,
            "alter database {} with allow_connections false",
            &[&ident(&self.name)],
        )
        .await
        .expect("disallowing connections");
        sqlx::query!(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1",
            self.name,
        )
        .fetch_all(&mut admin)
        .await
        .expect("closing connections");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        admin_blocking(move |mut admin| async move {
            let _ = drop_database(&mut admin, &name).await;
        });
    }
}

/// Creates the database `name`, a copy of `template` (PostgreSQL's default, `template1`,
/// when `None`): for tests and benchmarks that make databases of computed names.
pub async fn create_database(
    admin: &mut PgConnection,
    name: &str,
    template: Option<&str>,
) -> anyhow::Result<()> {
    let name = Ident::new(name)?;
    match template {
        Some(template) => {
            let template = Ident::new(template)?;
            ddl::execute(admin, "create database {} template {}", &[&name, &template]).await?;
        }
        None => ddl::execute(admin, "create database {}", &[&name]).await?,
    }
    Ok(())
}

/// Drops the database `name`, closing its connections, if it exists.
pub async fn drop_database(admin: &mut PgConnection, name: &str) -> anyhow::Result<()> {
    let name = Ident::new(name)?;
    ddl::execute(admin, "drop database if exists {} with (force)", &[&name]).await?;
    Ok(())
}

impl TestDb {
    /// A login role of its own on this database, limited to `connection_limit`
    /// connections, as tenant-resolver makes for a tenant: its name (`prefix` made
    /// unique); the password is `password`. Dropped by [`TestDb::drop_role`].
    pub async fn login_role(
        &self,
        prefix: &str,
        password: &str,
        connection_limit: u32,
    ) -> anyhow::Result<String> {
        let role = Ident::new(unique(prefix).to_lowercase())?;
        ddl::execute(
            &self.pool,
            "create role {} login password {} connection limit {}",
            &[&role, &ddl::Literal(password), &connection_limit],
        )
        .await?;
        ddl::execute(
            &self.pool,
            "grant connect on database {} to {}",
            &[&ident(&self.name), &role],
        )
        .await?;
        Ok(role.as_str().to_owned())
    }

    /// Drops a role made by [`TestDb::login_role`] (after its connections are closed).
    pub async fn drop_role(&self, role: &str) -> anyhow::Result<()> {
        let role = Ident::new(role)?;
        ddl::execute(&self.pool, "drop owned by {}", &[&role]).await?;
        ddl::execute(&self.pool, "drop role if exists {}", &[&role]).await?;
        Ok(())
    }
}

/// A test database's name as an identifier (always one: [`unique`] makes it).
fn ident(name: &str) -> Ident {
    Ident::new(name).expect("test database names are plain identifiers")
}

/// Runs `work` with an admin connection on a thread of its own, with its own runtime:
/// `Drop` runs inside the test's runtime, which must not be blocked on. Clean-up is best
/// effort, so a failure to connect is ignored.
fn admin_blocking<F, Fut>(work: F)
where
    F: FnOnce(PgConnection) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let server = postgres_url();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            if let Ok(admin) = PgConnection::connect(&format!("{server}/postgres")).await {
                work(admin).await;
            }
        });
    })
    .join();
}

/// Drops every database and role whose name starts with `prefix` (tenant databases a
/// test provisioned). Blocking, so it can be called from `Drop`.
pub fn drop_databases_and_roles(prefix: &str) {
    let prefix = prefix.to_owned();
    admin_blocking(move |mut admin| async move {
        // Databases first: a role cannot be dropped while it owns one.
        let databases = sqlx::query_scalar!(
            r#"select datname as "datname!" from pg_database where left(datname, length($1)) = $1"#,
            prefix,
        )
        .fetch_all(&mut admin)
        .await
        .unwrap_or_default();
        for name in databases
            .into_iter()
            .filter_map(|name| Ident::new(name).ok())
        {
            let _ = ddl::execute(
                &mut admin,
                "drop database if exists {} with (force)",
                &[&name],
            )
            .await;
        }
        let roles = sqlx::query_scalar!(
            r#"select rolname as "rolname!" from pg_roles where left(rolname, length($1)) = $1"#,
            prefix,
        )
        .fetch_all(&mut admin)
        .await
        .unwrap_or_default();
        for name in roles.into_iter().filter_map(|name| Ident::new(name).ok()) {
            let _ = ddl::execute(&mut admin, "drop role if exists {}", &[&name]).await;
        }
    });
}

/// Asserts each of `tables` exists in the database (the service applied its migrations).
pub async fn assert_tables_exist(pool: &PgPool, tables: &[&str]) {
    for table in tables {
        let found = sqlx::query_scalar!("select to_regclass($1)::text as found", table)
            .fetch_one(pool)
            .await
            .expect("querying the catalogue");
        assert_eq!(found.as_deref(), Some(*table), "table {table} is missing");
    }
}
