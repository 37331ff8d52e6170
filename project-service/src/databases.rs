//! The tenants' databases: located and connected through `common::db::directory`, and
//! the first connection of this process to a tenant marks its outbox (events a previous
//! run left unpublished go out then).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use common::ApiError;
use common::db::directory::TenantDirectory;
use common::db::tenants::{Limits, TenantConnection, TenantConnections};
use common::internal::InternalToken;
use uuid::Uuid;

use crate::relay::Outboxes;

pub struct TenantDatabases {
    directory: TenantDirectory,
    outboxes: Arc<Outboxes>,
    /// Tenants this process has connected to.
    seen: Mutex<HashSet<Uuid>>,
}

impl TenantDatabases {
    pub fn new(
        http: reqwest::Client,
        resolver_url: &str,
        token: InternalToken,
        limits: Limits,
        outboxes: Arc<Outboxes>,
    ) -> Self {
        Self {
            directory: TenantDirectory::new(crate::NAME, http, resolver_url, token, limits),
            outboxes,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// A connection to `tenant`'s database.
    pub async fn connect(&self, tenant: Uuid) -> Result<TenantConnection, ApiError> {
        let conn = self.directory.connect(tenant).await?;
        if self.seen.lock().expect("seen lock").insert(tenant) {
            // Events a previous run left unpublished go out now.
            self.outboxes.mark(tenant);
        }
        Ok(conn)
    }

    /// The connection manager (its reaper, counts and shutdown).
    pub fn connections(&self) -> &Arc<TenantConnections> {
        self.directory.connections()
    }
}
