//! Signup: a new organisation gets its registry row, its own role and database (a copy
//! of the migrated template) and, at the same time, its owner account, then a
//! `tenant.created` event. Any failure undoes what was created (the owner through
//! user-service), so no orphan database, role, row or account remains.

use common::ApiError;
use common::db::ConstraintExt;
use common::events::{Envelope, keys, outbox};
use serde::Serialize;
use uuid::Uuid;

use crate::AppState;
use crate::crypto::random_password;
use crate::db::tenants::{self, NewTenant, Tenant};
use crate::domain::{Limits, Plan, SignupRequest};
use crate::owner::OwnerError;
use crate::provision::{Names, create_tenant_database, drop_tenant_database};

/// A tenant as its members and the signup response see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub plan: Plan,
    pub status: String,
    /// Where the organisation's API and pages live.
    pub url: String,
    pub limits: Limits,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl TenantView {
    pub fn new(tenant: &Tenant, url_template: &str) -> Self {
        let plan = tenant.plan.parse().unwrap_or_default();
        Self {
            id: tenant.id,
            slug: tenant.slug.clone(),
            name: tenant.name.clone(),
            plan,
            status: tenant.status.clone(),
            url: url_template.replace("{slug}", &tenant.slug),
            limits: Plan::limits(plan),
            created_at: tenant.created_at,
        }
    }
}

fn slug_taken() -> ApiError {
    ApiError::Conflict("An organisation with this slug already exists.".into())
}

/// Creates a tenant from a validated request.
pub async fn signup(
    state: &AppState,
    req: &SignupRequest,
    request_id: Option<&str>,
) -> Result<TenantView, ApiError> {
    let slug = req.slug();
    // Placement counts the tenants of each cluster; with one cluster there is no choice.
    let cluster_name = match state.clusters.names().as_slice() {
        [only] => only.clone(),
        configured => tenants::emptiest_cluster(&state.pool, configured)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no cluster is registered"))?,
    };
    let cluster = state
        .clusters
        .get(&cluster_name)
        .ok_or_else(|| anyhow::anyhow!("cluster {cluster_name} vanished"))?;
    let prefix = &state.config.tenant_db_prefix;
    let names = Names::new(prefix, &slug);
    let password = random_password();
    let sealed = state.secret.encrypt(&password)?;
    let plan = req.plan.unwrap_or_default();
    let id = Uuid::now_v7();
    let name = req.name.trim();

    tenants::insert_provisioning(
        &state.pool,
        &NewTenant {
            id,
            slug: slug.as_str(),
            name,
            plan: plan.as_str(),
            cluster: &cluster.name,
            database_name: names.database.as_str(),
            role_name: names.role.as_str(),
            role_password: &sealed,
        },
    )
    .await
    // The slug's unique constraint is the one check: a taken slug, or a signup that
    // takes it at the same moment, ends here before anything is created.
    .on_constraint(tenants::SLUG_KEY, slug_taken)
    .on_constraint(tenants::DATABASE_KEY, slug_taken)?;

    // The owner is made while the database is copied (user-service hashes the password
    // meanwhile); a failure of either undoes both.
    let (copied, owner) = tokio::join!(
        create_tenant_database(
            cluster,
            prefix,
            &names,
            &password,
            state.config.tenant_connection_limit,
        ),
        state.users.create_owner(id, slug.as_str(), &req.owner),
    );
    let owner_id = owner.as_ref().ok().copied();
    let finished = async {
        let owner_id = owner.map_err(owner_error)?;
        copied?;
        let mut tx = state.pool.begin().await?;
        let tenant = tenants::activate(&mut *tx, id, cluster.template_version()).await?;
        let event = Envelope::new(
            keys::TENANT_CREATED,
            id,
            Some(owner_id),
            serde_json::json!({ "tenant_id": id, "slug": slug.as_str(), "plan": plan }),
        );
        outbox::enqueue(&mut *tx, &event, request_id).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(tenant)
    }
    .await;

    let tenant = match finished {
        Ok(tenant) => tenant,
        Err(err) => {
            if let Some(owner_id) = owner_id
                && let Err(undo) = state.users.remove_owner(id, owner_id).await
            {
                tracing::error!(tenant = %slug, %owner_id, error = format!("{undo:#}"), "cannot undo a failed signup's owner");
            }
            if let Err(cleanup) = drop_tenant_database(cluster, &names).await {
                tracing::error!(tenant = %slug, error = format!("{cleanup:#}"), "cannot drop a failed signup's database; the sweeper will retry");
                return Err(err);
            }
            tenants::delete(&state.pool, id).await?;
            return Err(err);
        }
    };
    tracing::info!(tenant = %slug, cluster = cluster.name, "tenant created");
    Ok(TenantView::new(&tenant, &state.config.tenant_url_template))
}

fn owner_error(err: OwnerError) -> ApiError {
    match err {
        OwnerError::Refused { errors, .. } if !errors.is_empty() => ApiError::Validation(errors),
        OwnerError::Refused { detail, .. } => {
            ApiError::Conflict(format!("The owner account cannot be created: {detail}"))
        }
        OwnerError::Unavailable(cause) => {
            tracing::warn!(cause, "user-service unavailable during signup");
            ApiError::Unavailable {
                retry_after: 5,
                detail: "Accounts cannot be created right now; nothing was kept, try again.".into(),
            }
        }
    }
}
