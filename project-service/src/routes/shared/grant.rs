//! Who may see a share page: whoever holds a grant that verifies, is for this page's
//! target, and belongs to the host's tenant. Every refusal is said the same way.

use chrono::Utc;
use common::ApiError;
use common::grant::{ShareGrant, SharedTarget};
use common::tenant::TenantCtx;
use serde::Deserialize;

use crate::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct GrantQuery {
    /// The grant url-shortener put in the link's redirect.
    pub grant: Option<String>,
}

/// Why a share page shows nothing. Said the same way whatever the reason.
pub enum Refused {
    Invalid,
    Gone,
    Failed(ApiError),
}

impl From<ApiError> for Refused {
    fn from(err: ApiError) -> Self {
        Self::Failed(err)
    }
}

impl From<sqlx::Error> for Refused {
    fn from(err: sqlx::Error) -> Self {
        Self::Failed(err.into())
    }
}

/// The grant, if it verifies, is for `target`, and belongs to the host's tenant.
pub fn authorise(
    state: &AppState,
    host_tenant: Option<&TenantCtx>,
    grant: Option<&str>,
    target: SharedTarget,
) -> Result<ShareGrant, Refused> {
    let grant = state
        .grants
        .verify(grant.unwrap_or_default(), Utc::now().timestamp())
        .map_err(|err| {
            tracing::info!(reason = %err, "share grant refused");
            Refused::Invalid
        })?;
    let same_tenant = host_tenant.is_none_or(|t| t.id == grant.tenant_id);
    if grant.target != target || !same_tenant {
        tracing::info!("share grant for another target or tenant refused");
        return Err(Refused::Invalid);
    }
    Ok(grant)
}
