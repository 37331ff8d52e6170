//! The `tenants` table of the registry.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// A tenant as the registry records it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub plan: String,
    pub status: String,
    pub cluster: String,
    pub database_name: String,
    pub role_name: String,
    pub role_password: Vec<u8>,
    pub schema_version: i64,
    pub last_migration_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub suspended_at: Option<DateTime<Utc>>,
    pub delete_after: Option<DateTime<Utc>>,
}

pub struct NewTenant<'a> {
    pub id: Uuid,
    pub slug: &'a str,
    pub name: &'a str,
    pub plan: &'a str,
    pub cluster: &'a str,
    pub database_name: &'a str,
    pub role_name: &'a str,
    pub role_password: &'a [u8],
}

/// The constraint a second tenant with a taken slug violates.
pub const SLUG_KEY: &str = "tenants_slug_key";
/// The constraint a second tenant with a taken database name on a cluster violates (the
/// name is made from the slug, so this too means the slug is taken).
pub const DATABASE_KEY: &str = "tenants_database_key";

/// Inserts a tenant in `provisioning`; [`SLUG_KEY`] (and [`DATABASE_KEY`]) settle races.
pub async fn insert_provisioning(db: impl PgExecutor<'_>, t: &NewTenant<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into tenants (id, slug, name, plan, status, cluster, database_name, role_name, role_password)
         values ($1, $2, $3, $4, 'provisioning', $5, $6, $7, $8)",
        t.id,
        t.slug,
        t.name,
        t.plan,
        t.cluster,
        t.database_name,
        t.role_name,
        t.role_password,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Marks a provisioned tenant active; the tenant as it is now.
pub async fn activate(
    db: impl PgExecutor<'_>,
    id: Uuid,
    schema_version: i64,
) -> sqlx::Result<Tenant> {
    sqlx::query_as!(
        Tenant,
        "update tenants set status = 'active', schema_version = $2, migrated_at = now(), updated_at = now()
         where id = $1
         returning id, slug, name, plan, status, cluster, database_name, role_name, role_password,
                   schema_version, last_migration_error, created_at, updated_at, suspended_at,
                   delete_after",
        id,
        schema_version,
    )
    .fetch_one(db)
    .await
}

pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("delete from tenants where id = $1", id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn find_by_slug(db: impl PgExecutor<'_>, slug: &str) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as!(
        Tenant,
        "select id, slug, name, plan, status, cluster, database_name, role_name, role_password,
                schema_version, last_migration_error, created_at, updated_at, suspended_at,
                delete_after
         from tenants where slug = $1",
        slug,
    )
    .fetch_optional(db)
    .await
}

pub async fn find(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as!(
        Tenant,
        "select id, slug, name, plan, status, cluster, database_name, role_name, role_password,
                schema_version, last_migration_error, created_at, updated_at, suspended_at,
                delete_after
         from tenants where id = $1",
        id,
    )
    .fetch_optional(db)
    .await
}

/// Ids of active tenants after `after`, in id order, at most `limit`.
pub async fn active_ids(
    db: impl PgExecutor<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "select id from tenants
          where status = 'active' and ($1::uuid is null or id > $1)
          order by id limit $2",
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// The configured cluster with the fewest tenants (ties: by name).
pub async fn emptiest_cluster(
    db: impl PgExecutor<'_>,
    configured: &[String],
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "select c.name from clusters c left join tenants t on t.cluster = c.name
         where c.name = any($1)
         group by c.name
         order by count(t.id), c.name
         limit 1",
        configured,
    )
    .fetch_optional(db)
    .await
}

/// What a migration run needs of a tenant.
#[derive(Debug, Clone)]
pub struct MigrationTarget {
    pub id: Uuid,
    pub slug: String,
    pub cluster: String,
    pub database_name: String,
    pub role_name: String,
    pub role_password: Vec<u8>,
    pub schema_version: i64,
}

/// Tenants whose databases are migrated: active and suspended ones. Failed ones first,
/// then oldest, so a re-run resumes where it hurt.
pub async fn migration_targets(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<MigrationTarget>> {
    sqlx::query_as!(
        MigrationTarget,
        "select id, slug, cluster, database_name, role_name, role_password, schema_version from tenants
         where status in ('active', 'suspended')
         order by last_migration_error is null, created_at",
    )
    .fetch_all(db)
    .await
}

pub async fn record_migration(
    db: impl PgExecutor<'_>,
    id: Uuid,
    schema_version: i64,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update tenants set schema_version = $2, last_migration_error = $3,
             migrated_at = case when $3::text is null then now() else migrated_at end
         where id = $1",
        id,
        schema_version,
        error,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Moves a tenant between `active` and `suspended`; returns the updated tenant.
pub async fn set_suspended(db: &PgPool, id: Uuid, suspended: bool) -> sqlx::Result<Option<Tenant>> {
    let (from, to) = if suspended {
        ("active", "suspended")
    } else {
        ("suspended", "active")
    };
    sqlx::query_as!(
        Tenant,
        "update tenants set status = $3, updated_at = now(),
             suspended_at = case when $3 = 'suspended' then now() else null end
         where id = $1 and status in ($2, $3)
         returning id, slug, name, plan, status, cluster, database_name, role_name,
                   role_password, schema_version, last_migration_error, created_at,
                   updated_at, suspended_at, delete_after",
        id,
        from,
        to,
    )
    .fetch_optional(db)
    .await
}

/// Marks a tenant for deletion at `after`; returns it (whatever its status was).
pub async fn mark_deleting(
    db: &PgPool,
    id: Uuid,
    after: DateTime<Utc>,
) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as!(
        Tenant,
        "update tenants set status = 'deleting', delete_after = $2, updated_at = now()
         where id = $1 and status <> 'provisioning'
         returning id, slug, name, plan, status, cluster, database_name, role_name,
                   role_password, schema_version, last_migration_error, created_at,
                   updated_at, suspended_at, delete_after",
        id,
        after,
    )
    .fetch_optional(db)
    .await
}

/// Tenants whose deletion is due, and signups abandoned mid-way (a crashed instance).
pub async fn due_for_removal(
    db: &PgPool,
    stale_provisioning: chrono::Duration,
) -> sqlx::Result<Vec<Tenant>> {
    sqlx::query_as!(
        Tenant,
        "select id, slug, name, plan, status, cluster, database_name, role_name, role_password,
                schema_version, last_migration_error, created_at, updated_at, suspended_at,
                delete_after
         from tenants
         where (status = 'deleting' and delete_after <= now())
            or (status = 'provisioning' and created_at < now() - make_interval(secs => $1))",
        stale_provisioning.num_seconds() as f64,
    )
    .fetch_all(db)
    .await
}
