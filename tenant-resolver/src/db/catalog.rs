//! A cluster's roles and databases: what provisioning creates, hands over and drops.
//!
//! The statements here name a tenant's database and role, identifiers computed at run
//! time that PostgreSQL cannot take as bound parameters. They are the crate's one place
//! of SQL built as text: each is a fixed template filled by `common::db::ddl` with
//! checked, double-quoted identifiers (README, "Choices"). The catalogue reads are
//! `query!` macros like every other query.

use common::db::constraint_of;
use common::db::ddl::{self, Ident, Literal};
use sqlx::PgExecutor;

/// SQLSTATE `duplicate_object`: a role another instance created first.
const DUPLICATE_OBJECT: &str = "42710";
/// SQLSTATE `duplicate_database`: a database another instance created first.
const DUPLICATE_DATABASE: &str = "42P04";
/// SQLSTATE `object_in_use`: a template database someone is connected to.
const OBJECT_IN_USE: &str = "55006";
/// The catalogue's unique index a role created concurrently with the same name violates
/// (instead of `duplicate_object`, when both passed the existence check).
const ROLE_NAME_KEY: &str = "pg_authid_rolname_index";
/// The same for databases.
const DATABASE_NAME_KEY: &str = "pg_database_datname_index";

fn is_sqlstate(err: &sqlx::Error, code: &str) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == code)
}

/// Whether `err` says the template could not be copied because someone is connected to
/// it (another instance migrating it): worth a retry.
pub fn template_in_use(err: &sqlx::Error) -> bool {
    is_sqlstate(err, OBJECT_IN_USE)
}

/// A tenant's login role, limited to `connection_limit` connections.
pub async fn create_login_role(
    db: impl PgExecutor<'_>,
    role: &Ident,
    password: &str,
    connection_limit: u32,
) -> sqlx::Result<()> {
    ddl::execute(
        db,
        "create role {} login password {} connection limit {}",
        &[role, &Literal(password), &connection_limit],
    )
    .await
}

/// A role that cannot log in (the template's owner), unless it exists already.
pub async fn create_nologin_role_if_missing(
    db: impl PgExecutor<'_>,
    role: &Ident,
) -> sqlx::Result<()> {
    match ddl::execute(db, "create role {} nologin", &[role]).await {
        Err(err)
            if is_sqlstate(&err, DUPLICATE_OBJECT)
                || constraint_of(&err) == Some(ROLE_NAME_KEY) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Whether the connected role is a superuser.
pub async fn is_superuser(db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select rolsuper as "rolsuper!" from pg_roles where rolname = current_user"#
    )
    .fetch_one(db)
    .await
}

/// Makes the connected role a member of `role` (a CREATEROLE admin must be one to
/// create a database owned by it).
pub async fn grant_role_to_current_user(db: impl PgExecutor<'_>, role: &Ident) -> sqlx::Result<()> {
    ddl::execute(db, "grant {} to current_user", &[role]).await
}

pub async fn database_exists(db: impl PgExecutor<'_>, database: &Ident) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from pg_database where datname = $1) as "exists!""#,
        database.as_str(),
    )
    .fetch_one(db)
    .await
}

/// A copy of `template` owned by `owner` (see [`template_in_use`] for its usual failure).
pub async fn create_database_from_template(
    db: impl PgExecutor<'_>,
    database: &Ident,
    owner: &Ident,
    template: &Ident,
) -> sqlx::Result<()> {
    ddl::execute(
        db,
        "create database {} owner {} template {}",
        &[database, owner, template],
    )
    .await
}

/// An empty database, unless it exists already; true when this call created it.
pub async fn create_empty_database_if_missing(
    db: impl PgExecutor<'_>,
    database: &Ident,
) -> sqlx::Result<bool> {
    match ddl::execute(db, "create database {} template template0", &[database]).await {
        Ok(()) => Ok(true),
        Err(err)
            if is_sqlstate(&err, DUPLICATE_DATABASE)
                || constraint_of(&err) == Some(DATABASE_NAME_KEY) =>
        {
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

/// Gives the database itself to the connected (admin) role.
pub async fn own_database(db: impl PgExecutor<'_>, database: &Ident) -> sqlx::Result<()> {
    ddl::execute(db, "alter database {} owner to current_user", &[database]).await
}

/// Closes the database to every role but its owner (and superusers).
pub async fn revoke_database_from_public(
    db: impl PgExecutor<'_>,
    database: &Ident,
) -> sqlx::Result<()> {
    ddl::execute(db, "revoke all on database {} from public", &[database]).await
}

/// Hands every object `from` owns in the connected database to `to`.
pub async fn reassign_owned(db: impl PgExecutor<'_>, from: &Ident, to: &Ident) -> sqlx::Result<()> {
    ddl::execute(db, "reassign owned by {} to {}", &[from, to]).await
}

/// Lets `role` create objects in the connected database's `public` schema.
pub async fn grant_public_schema(db: impl PgExecutor<'_>, role: &Ident) -> sqlx::Result<()> {
    ddl::execute(db, "grant usage, create on schema public to {}", &[role]).await
}

/// Takes back what [`grant_public_schema`] gave.
pub async fn revoke_public_schema(db: impl PgExecutor<'_>, role: &Ident) -> sqlx::Result<()> {
    ddl::execute(db, "revoke all on schema public from {}", &[role]).await
}

/// Drops the database, closing its connections, if it exists.
pub async fn drop_database_if_exists(
    db: impl PgExecutor<'_>,
    database: &Ident,
) -> sqlx::Result<()> {
    ddl::execute(db, "drop database if exists {} with (force)", &[database]).await
}

pub async fn drop_role_if_exists(db: impl PgExecutor<'_>, role: &Ident) -> sqlx::Result<()> {
    ddl::execute(db, "drop role if exists {}", &[role]).await
}

/// Acts as `role` for the rest of the session.
pub async fn set_role(db: impl PgExecutor<'_>, role: &Ident) -> sqlx::Result<()> {
    ddl::execute(db, "set role {}", &[role]).await
}

/// The size of a database on the cluster, in bytes.
pub async fn database_size(db: impl PgExecutor<'_>, database: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select pg_database_size($1::text::name) as "bytes!""#,
        database,
    )
    .fetch_one(db)
    .await
}
