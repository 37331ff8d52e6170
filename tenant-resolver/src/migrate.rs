//! Schema migrations of tenant databases: the template first (new tenants are copies of
//! it), then every tenant with bounded concurrency. Each tenant's outcome is recorded in
//! the registry (version, last error); one failure never stops the others, and a re-run
//! picks up exactly what is still pending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::{ConnectOptions, Connection, PgConnection};
use uuid::Uuid;

use crate::AppState;
use crate::clusters::Cluster;
use crate::db::migrations::applied_version;
use crate::db::{catalog, tenants};
use crate::provision::template_names;

/// The outcome of a fleet migration.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub total: usize,
    pub migrated: usize,
    pub already_current: usize,
    pub failed: Vec<Failure>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Failure {
    pub tenant_id: Uuid,
    pub slug: String,
    pub error: String,
}

enum Outcome {
    Migrated,
    Current,
}

/// `Migrator::run_direct` boxed: `Migrator::run` over `&mut PgConnection` is `Send`
/// only for one concrete lifetime, which tasks spawned over many tenants cannot name.
fn run_migrator<'c>(
    migrator: &'c Migrator,
    conn: &'c mut PgConnection,
) -> BoxFuture<'c, Result<(), sqlx::migrate::MigrateError>> {
    Box::pin(migrator.run_direct(conn))
}

/// Brings a cluster's template to the latest migration, as the template owner role so
/// that its objects can be handed to each new tenant's role.
pub async fn migrate_template(
    cluster: &Cluster,
    prefix: &str,
    migrator: &Migrator,
) -> anyhow::Result<i64> {
    let template = template_names(prefix);
    let _exclusive = cluster.template_lock.write().await;
    let mut conn = cluster
        .admin_options(template.database.as_str())
        .log_statements(log::LevelFilter::Off)
        .connect()
        .await
        .context("connecting to the template")?;
    catalog::set_role(&mut conn, &template.role).await?;
    run_migrator(migrator, &mut conn)
        .await
        .context("migrating the template")?;
    let version = applied_version(&mut conn).await?;
    conn.close().await.ok();
    cluster.set_template_version(version);
    tracing::info!(
        cluster = cluster.name,
        version,
        "tenant template is current"
    );
    Ok(version)
}

/// Migrates every template and then every active or suspended tenant.
/// `progress` is told each finished tenant (a progress bar, or nothing).
pub async fn migrate_all(
    state: &AppState,
    migrator: &Migrator,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> anyhow::Result<Summary> {
    let start = Instant::now();
    for cluster in state.clusters.iter() {
        migrate_template(cluster, &state.config.tenant_db_prefix, migrator).await?;
    }
    let targets = tenants::migration_targets(&state.pool).await?;
    let total = targets.len();
    let mut summary = Summary {
        total,
        ..Summary::default()
    };
    let mut done = 0;
    let mut results = futures::stream::iter(targets)
        .map(|target| {
            async move {
                let outcome = migrate_tenant(state, migrator, &target).await;
                (target, outcome)
            }
            .boxed()
        })
        .buffer_unordered(state.config.migrate_concurrency.max(1));
    while let Some((target, outcome)) = results.next().await {
        done += 1;
        progress(done, total);
        match outcome {
            Ok(Outcome::Migrated) => summary.migrated += 1,
            Ok(Outcome::Current) => summary.already_current += 1,
            Err(err) => summary.failed.push(Failure {
                tenant_id: target.id,
                slug: target.slug,
                error: err,
            }),
        }
    }
    summary.seconds = start.elapsed().as_secs_f64();
    tracing::info!(
        total,
        migrated = summary.migrated,
        current = summary.already_current,
        failed = summary.failed.len(),
        "tenant migration finished"
    );
    Ok(summary)
}

/// Migrates one tenant as its own role and records the result. The error is returned as
/// text (it is what the registry and the summary keep).
async fn migrate_tenant(
    state: &AppState,
    migrator: &Migrator,
    target: &tenants::MigrationTarget,
) -> Result<Outcome, String> {
    let result = async {
        let cluster = Arc::clone(
            state
                .clusters
                .get(&target.cluster)
                .with_context(|| format!("cluster {} is not configured", target.cluster))?,
        );
        let password = state.secret.decrypt(&target.role_password)?;
        let options = cluster
            .tenant_options(&target.database_name, &target.role_name, &password)
            .log_statements(log::LevelFilter::Off);
        let mut conn = tokio::time::timeout(Duration::from_secs(10), options.connect())
            .await
            .context("connecting timed out")?
            .context("connecting")?;
        let before = applied_version(&mut conn).await?;
        let run = run_migrator(migrator, &mut conn).await;
        let after = applied_version(&mut conn).await.unwrap_or(before);
        conn.close().await.ok();
        anyhow::Ok((before, after, run))
    }
    .await;
    match result {
        Ok((before, after, Ok(()))) => {
            tenants::record_migration(&state.pool, target.id, after, None)
                .await
                .map_err(|e| format!("{e:#}"))?;
            Ok(if after > before {
                Outcome::Migrated
            } else {
                Outcome::Current
            })
        }
        Ok((_, after, Err(err))) => {
            let error = format!("{:#}", anyhow::Error::new(err));
            record_failure(state, target, Some(after), &error).await;
            Err(error)
        }
        Err(err) => {
            let error = format!("{err:#}");
            record_failure(state, target, None, &error).await;
            Err(error)
        }
    }
}

async fn record_failure(
    state: &AppState,
    target: &tenants::MigrationTarget,
    version: Option<i64>,
    error: &str,
) {
    tracing::warn!(tenant = target.slug, error, "tenant migration failed");
    let version = version.unwrap_or(target.schema_version);
    if let Err(err) = tenants::record_migration(&state.pool, target.id, version, Some(error)).await
    {
        tracing::error!(
            tenant = target.slug,
            error = format!("{err:#}"),
            "cannot record a migration failure"
        );
    }
}
