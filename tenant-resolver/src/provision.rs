//! Creating and dropping a tenant's database and login role on its cluster.
//!
//! Identifiers come from a validated [`Slug`] and a validated prefix and are quoted
//! (`common::db::ddl`, through [`crate::db::catalog`]); passwords are generated here
//! (alphanumeric) and quoted as literals. Nothing a client typed is ever interpolated
//! into SQL.

use anyhow::{Context, bail};
use common::db::ddl::Ident;
use sqlx::{Connection, PgConnection};

use crate::clusters::Cluster;
use crate::db::catalog;
use crate::domain::Slug;

/// A tenant's database and role name (the same identifier: the role owns its database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub database: Ident,
    pub role: Ident,
}

impl Names {
    /// `prefix` must have passed [`validate_prefix`].
    pub fn new(prefix: &str, slug: &Slug) -> Self {
        let ident = validated(format!("{prefix}{}", slug.ident()));
        Self {
            database: ident.clone(),
            role: ident,
        }
    }

    /// The names the registry recorded for a tenant.
    pub fn recorded(database: &str, role: &str) -> anyhow::Result<Self> {
        Ok(Self {
            database: Ident::new(database).context("the registry's database name")?,
            role: Ident::new(role).context("the registry's role name")?,
        })
    }
}

/// The template database of a prefix, and the role that owns its objects.
pub fn template_names(prefix: &str) -> Names {
    Names {
        database: validated(format!("{prefix}template")),
        role: validated(format!("{prefix}template_owner")),
    }
}

/// An identifier made of a validated prefix (at most 20 bytes) and a validated slug or
/// fixed suffix (at most 32): always within the identifier rules.
fn validated(name: String) -> Ident {
    Ident::new(name).expect("a validated prefix and slug make an identifier")
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
    let template = template_names(prefix);
    let mut admin = cluster.admin.acquire().await.context("admin connection")?;
    catalog::create_login_role(&mut *admin, &names.role, password, connection_limit)
        .await
        .context("creating the tenant role")?;
    grant_membership_if_needed(cluster, &mut admin, &names.role).await?;
    {
        let _copying = cluster.template_lock.read().await;
        let mut attempt = 0;
        loop {
            match catalog::create_database_from_template(
                &mut *admin,
                &names.database,
                &names.role,
                &template.database,
            )
            .await
            {
                Ok(()) => break,
                // Another instance is migrating the template: wait and retry.
                Err(err) if catalog::template_in_use(&err) && attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(err) => return Err(err).context("creating the tenant database"),
            }
        }
    }
    catalog::revoke_database_from_public(&mut *admin, &names.database)
        .await
        .context("closing the database to other roles")?;
    drop(admin);

    let mut conn = PgConnection::connect_with(&cluster.admin_options(names.database.as_str()))
        .await
        .context("connecting to the new database")?;
    // One transaction, one commit: the hand-over is all or nothing.
    let mut tx = conn.begin().await?;
    catalog::reassign_owned(&mut *tx, &template.role, &names.role)
        .await
        .context("handing the schema to the tenant role")?;
    catalog::revoke_public_schema(&mut *tx, &template.role)
        .await
        .context("closing the schema to the template owner")?;
    tx.commit().await.context("committing the hand-over")?;
    conn.close().await.ok();
    Ok(())
}

/// A non-superuser admin (CREATEROLE) must be a member of a role to create a database
/// owned by it; superusers need nothing (asked once per cluster).
async fn grant_membership_if_needed(
    cluster: &Cluster,
    admin: &mut PgConnection,
    role: &Ident,
) -> anyhow::Result<()> {
    let superuser = *cluster
        .superuser
        .get_or_try_init(|| catalog::is_superuser(&mut *admin))
        .await
        .context("checking the admin role")?;
    if !superuser {
        catalog::grant_role_to_current_user(&mut *admin, role)
            .await
            .context("granting the admin membership of the tenant role")?;
    }
    Ok(())
}

/// Drops the tenant's database (closing its connections) and role, if they exist.
pub async fn drop_tenant_database(cluster: &Cluster, names: &Names) -> anyhow::Result<()> {
    let mut admin = cluster.admin.acquire().await.context("admin connection")?;
    catalog::drop_database_if_exists(&mut *admin, &names.database)
        .await
        .context("dropping the tenant database")?;
    catalog::drop_role_if_exists(&mut *admin, &names.role)
        .await
        .context("dropping the tenant role")?;
    Ok(())
}

/// Makes sure the cluster has the template database and its owner role (both idempotent,
/// safe when several instances start at once).
pub async fn ensure_template(cluster: &Cluster, prefix: &str) -> anyhow::Result<()> {
    let template = template_names(prefix);
    let mut admin = cluster.admin.acquire().await.context("admin connection")?;
    catalog::create_nologin_role_if_missing(&mut *admin, &template.role)
        .await
        .context("creating the template owner role")?;
    grant_membership_if_needed(cluster, &mut admin, &template.role).await?;
    if !catalog::database_exists(&mut *admin, &template.database).await?
        && catalog::create_empty_database_if_missing(&mut *admin, &template.database)
            .await
            .context("creating the template database")?
    {
        tracing::info!(
            cluster = cluster.name,
            database = template.database.as_str(),
            "created the tenant template"
        );
    }
    // The admin owns the template database itself; the owner role owns only what the
    // migrations create inside it. (Were it to own the database, `reassign owned` in a
    // new tenant database would hand the template database to that tenant.)
    catalog::own_database(&mut *admin, &template.database).await?;
    catalog::revoke_database_from_public(&mut *admin, &template.database).await?;
    drop(admin);
    let mut conn = PgConnection::connect_with(&cluster.admin_options(template.database.as_str()))
        .await
        .context("connecting to the template")?;
    catalog::grant_public_schema(&mut conn, &template.role)
        .await
        .context("letting the template owner create the schema")?;
    conn.close().await.ok();
    Ok(())
}
