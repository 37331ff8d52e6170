//! Suspension, deletion and the clean-up worker that drops deleted tenants after their
//! grace period and signups abandoned half-way by a crashed instance.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::db::tenants::{self, Tenant};
use crate::provision::{Names, drop_tenant_database};

/// A signup still `provisioning` after this long was abandoned.
const STALE_PROVISIONING_SECS: i64 = 10 * 60;
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Drops a tenant's database and role, then forgets it.
pub async fn remove(state: &AppState, tenant: &Tenant) -> anyhow::Result<()> {
    let cluster = state
        .clusters
        .get(&tenant.cluster)
        .ok_or_else(|| anyhow::anyhow!("cluster {} is not configured", tenant.cluster))?;
    let names = Names::recorded(&tenant.database_name, &tenant.role_name)?;
    drop_tenant_database(cluster, &names).await?;
    tenants::delete(&state.pool, tenant.id).await?;
    tracing::info!(tenant = tenant.slug, "tenant removed");
    Ok(())
}

/// One sweep: removes what is due. Returns how many tenants were removed.
pub async fn sweep(state: &AppState) -> anyhow::Result<usize> {
    let due = tenants::due_for_removal(
        &state.pool,
        chrono::Duration::seconds(STALE_PROVISIONING_SECS),
    )
    .await?;
    let mut removed = 0;
    for tenant in &due {
        match remove(state, tenant).await {
            Ok(()) => removed += 1,
            Err(err) => tracing::warn!(
                tenant = tenant.slug,
                error = format!("{err:#}"),
                "cannot remove tenant yet"
            ),
        }
    }
    Ok(removed)
}

pub async fn run_sweeper(state: AppState, shutdown: CancellationToken) {
    loop {
        if let Err(err) = sweep(&state).await {
            tracing::warn!(error = format!("{err:#}"), "tenant sweep failed");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(SWEEP_INTERVAL) => {},
        }
    }
}
