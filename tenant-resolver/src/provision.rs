//! Creating and dropping a tenant's database and login role on its cluster.
//!
//! Identifiers come from a validated [`Slug`] and a validated prefix and are quoted;
//! passwords are generated here (alphanumeric) and quoted as literals. Nothing a client
//! typed is ever interpolated into SQL.

use anyhow::{Context, bail};
use sqlx::{Connection, PgConnection};

use crate::clusters::Cluster;
use crate::domain::Slug;

/// A tenant's database and role name (the same identifier: the role owns its database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub database: String,
    pub role: String,
}

impl Names {
    pub fn new(prefix: &str, slug: &Slug) -> Self {
        let ident = format!("{prefix}{}", slug.ident());
        Self {
            database: ident.clone(),
            role: ident,
        }
    }
}

/// The template database of a prefix, and the role that owns its objects.
pub fn template_names(prefix: &str) -> Names {
    Names {
        database: format!("{prefix}template"),
        role: format!("{prefix}template_owner"),
    }
}

/// `TENANT_DB_PREFIX` must be a safe identifier start: `[a-z][a-z0-9_]{0,19}`.
pub fn validate_prefix(prefix: &str) -> anyhow::Result<()> {
    let ok = (1..=20).contains(&prefix.len())
        && prefix.as_bytes()[0].is_ascii_lowercase()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        bail!(
            "TENANT_DB_PREFIX {prefix:?} must be 1 to 20 of a-z, 0-9 and '_', starting with a letter"
        );
    }
    Ok(())
}

/// Quotes an identifier that was built from validated parts; refuses anything else.
pub fn quote_ident(ident: &str) -> String {
    assert!(
        !ident.is_empty()
            && ident.len() <= 63
            && ident
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "identifier {ident:?} was not built from validated parts"
    );
    format!("\"{ident}\"")
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Whether a database error is `code` (a SQLSTATE).
pub fn is_sqlstate(err: &sqlx::Error, code: &str) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == code)
}

const DUPLICATE_OBJECT: &str = "42710";
const DUPLICATE_DATABASE: &str = "42P04";
const OBJECT_IN_USE: &str = "55006";

/// Creates the tenant's role and its database as a copy of the cluster's template, then
/// hands the template's objects to the role and closes the database to everyone else.
/// A failure may leave part of this behind: the caller drops it with
/// [`drop_tenant_database`] (signup does, for any failure of the whole signup).
pub async fn create_tenant_database(
    cluster: &Cluster,
    prefix: &str,
    names: &Names,
    password: &str,
    connection_limit: u32,
) -> anyhow::Result<()> {
    let role = quote_ident(&names.role);
    let database = quote_ident(&names.database);
    let template = template_names(prefix);
    let mut admin = cluster.admin.acquire().await.context("admin connection")?;
    sqlx::query(&format!(
        "create role {role} login password {} connection limit {connection_limit}",
        quote_literal(password)
    ))
    .execute(&mut *admin)
    .await
    .context("creating the tenant role")?;
    grant_membership_if_needed(&mut admin, &role).await?;
    {
        let _copying = cluster.template_lock.read().await;
        let create = format!(
            "create database {database} owner {role} template {}",
            quote_ident(&template.database)
        );
        let mut attempt = 0;
        loop {
            match sqlx::query(&create).execute(&mut *admin).await {
                Ok(_) => break,
                // Another instance is migrating the template: wait and retry.
                Err(err) if is_sqlstate(&err, OBJECT_IN_USE) && attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(err) => return Err(err).context("creating the tenant database"),
            }
        }
    }
    sqlx::query(&format!("revoke all on database {database} from public"))
        .execute(&mut *admin)
        .await
        .context("closing the database to other roles")?;
    drop(admin);

    let mut conn = PgConnection::connect_with(&cluster.admin_options(&names.database))
        .await
        .context("connecting to the new database")?;
    let template_owner = quote_ident(&template.role);
    sqlx::query(&format!("reassign owned by {template_owner} to {role}"))
        .execute(&mut conn)
        .await
        .context("handing the schema to the tenant role")?;
    sqlx::query(&format!(
        "revoke all on schema public from {template_owner}"
    ))
    .execute(&mut conn)
    .await
    .context("closing the schema to the template owner")?;
    conn.close().await.ok();
    Ok(())
}

/// A non-superuser admin (CREATEROLE) must be a member of a role to create a database
/// owned by it; superusers need nothing.
async fn grant_membership_if_needed(admin: &mut PgConnection, role: &str) -> anyhow::Result<()> {
    let superuser: bool =
        sqlx::query_scalar("select rolsuper from pg_roles where rolname = current_user")
            .fetch_one(&mut *admin)
            .await
            .context("checking the admin role")?;
    if !superuser {
        sqlx::query(&format!("grant {role} to current_user"))
            .execute(&mut *admin)
            .await
            .context("granting the admin membership of the tenant role")?;
    }
    Ok(())
}

/// Drops the tenant's database (closing its connections) and role, if they exist.
pub async fn drop_tenant_database(cluster: &Cluster, names: &Names) -> anyhow::Result<()> {
    let mut admin = cluster.admin.acquire().await.context("admin connection")?;
    sqlx::query(&format!(
        "drop database if exists {} with (force)",
        quote_ident(&names.database)
    ))
    .execute(&mut *admin)
    .await
    .context("dropping the tenant database")?;
    sqlx::query(&format!("drop role if exists {}", quote_ident(&names.role)))
        .execute(&mut *admin)
        .await
        .context("dropping the tenant role")?;
    Ok(())
}

/// Makes sure the cluster has the template database and its owner role (both idempotent,
/// safe when several instances start at once).
pub async fn ensure_template(cluster: &Cluster, prefix: &str) -> anyhow::Result<()> {
    let template = template_names(prefix);
    let mut admin = cluster.admin.acquire().await.context("admin connection")?;
    let role = quote_ident(&template.role);
    match sqlx::query(&format!("create role {role} nologin"))
        .execute(&mut *admin)
        .await
    {
        Ok(_) => {}
        Err(err) if is_sqlstate(&err, DUPLICATE_OBJECT) || is_sqlstate(&err, "23505") => {}
        Err(err) => return Err(err).context("creating the template owner role"),
    }
    grant_membership_if_needed(&mut admin, &role).await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&template.database)
            .fetch_one(&mut *admin)
            .await?;
    let database = quote_ident(&template.database);
    if !exists {
        match sqlx::query(&format!("create database {database} template template0"))
            .execute(&mut *admin)
            .await
        {
            Ok(_) => tracing::info!(
                cluster = cluster.name,
                database = template.database,
                "created the tenant template"
            ),
            Err(err) if is_sqlstate(&err, DUPLICATE_DATABASE) => {}
            Err(err) => return Err(err).context("creating the template database"),
        }
    }
    // The admin owns the template database itself; the owner role owns only what the
    // migrations create inside it. (Were it to own the database, `reassign owned` in a
    // new tenant database would hand the template database to that tenant.)
    sqlx::query(&format!("alter database {database} owner to current_user"))
        .execute(&mut *admin)
        .await?;
    sqlx::query(&format!("revoke all on database {database} from public"))
        .execute(&mut *admin)
        .await?;
    drop(admin);
    let mut conn = PgConnection::connect_with(&cluster.admin_options(&template.database))
        .await
        .context("connecting to the template")?;
    sqlx::query(&format!("grant usage, create on schema public to {role}"))
        .execute(&mut conn)
        .await
        .context("letting the template owner create the schema")?;
    conn.close().await.ok();
    Ok(())
}
