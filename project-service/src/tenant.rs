//! The prologue of every handler: the caller's permission is checked, their tenant's
//! database connected, and a transaction begun (writes) or a connection taken (reads), so a
//! handler reads as its business step alone:
//!
//! ```ignore
//! let mut tx = Tenant::write(&state, &user, Perm::TasksWrite).await?;
//! let task = db::tasks::find(&mut tx, id).await?.ok_or_else(Task::missing)?;
//! access::readable(&mut tx, &user, task.project_id, Task::missing).await?;
//! tx.record(Change::task(task.project_id, id, "task.updated").after(&task)).await?;
//! tx.emit(keys::TASK_ASSIGNED, json!({..})).await?;
//! tx.commit().await?;
//! ```
//!
//! Which of the tenant's projects the caller reads is [`crate::access`]'s to say: a
//! handler asks it once it knows the project.
//!
//! The tenant is always the token's (`AuthUser` has checked it against the gateway's
//! `X-Tenant-Id`), so a token only ever reaches its own tenant's data. Events emitted in a
//! transaction are in its outbox; [`TenantTx::commit`] then wakes the relay for the tenant.
//! A handler with work between the permission check and the database (reading a header,
//! asking tenant-resolver for the plan or user-service for mentions, receiving an upload)
//! splits the prologue in two: [`Tenant::allow`], then [`Tenant::begin`] or
//! [`Tenant::connect`].

use std::ops::{Deref, DerefMut};

use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::db::tenants::{TenantConnection, TenantTransaction};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::db;
use crate::domain::activity::Change;
use crate::relay::Outboxes;

/// A caller allowed one permission on their tenant's database; nothing is connected yet.
#[derive(Clone, Copy)]
pub struct Tenant<'a> {
    state: &'a AppState,
    user: &'a AuthUser,
}

impl<'a> Tenant<'a> {
    /// The prologue of a write: checks `perm`, connects to the database, begins.
    pub async fn write(
        state: &'a AppState,
        user: &'a AuthUser,
        perm: Perm,
    ) -> Result<TenantTx<'a>, ApiError> {
        Self::allow(state, user, perm)?.begin().await
    }

    /// The prologue of a read: checks `perm`, connects to the database.
    pub async fn read(
        state: &'a AppState,
        user: &'a AuthUser,
        perm: Perm,
    ) -> Result<TenantConn, ApiError> {
        Self::allow(state, user, perm)?.connect().await
    }

    /// Checks `perm` (403 naming it when the caller's role lacks it).
    pub fn allow(state: &'a AppState, user: &'a AuthUser, perm: Perm) -> Result<Self, ApiError> {
        user.require(perm)?;
        Ok(Self { state, user })
    }

    /// Connects to the tenant's database and begins a transaction.
    pub async fn begin(self) -> Result<TenantTx<'a>, ApiError> {
        let conn = self.state.databases.connect(self.user.tenant_id).await?;
        let tx = conn.begin().await?;
        Ok(TenantTx {
            tx,
            user: self.user,
            outboxes: &self.state.outboxes,
            emitted: false,
        })
    }

    /// Connects to the tenant's database.
    pub async fn connect(self) -> Result<TenantConn, ApiError> {
        TenantConn::open(self.state, self.user.tenant_id).await
    }
}

/// A write's transaction on the caller's tenant database. Derefs to the connection, so
/// `db::…` functions take `&mut tx`. Dropped without [`commit`](Self::commit), it rolls
/// back.
pub struct TenantTx<'a> {
    tx: TenantTransaction,
    user: &'a AuthUser,
    outboxes: &'a Outboxes,
    emitted: bool,
}

impl TenantTx<'_> {
    /// Records `change` in the project's activity log, by the caller.
    pub async fn record(&mut self, change: Change<'_>) -> Result<(), ApiError> {
        db::activity::insert(&mut self.tx, self.user.user_id, &change).await?;
        Ok(())
    }

    /// Writes a `kind` event with `data` to the tenant's outbox, published after commit.
    pub async fn emit(&mut self, kind: &str, data: Value) -> Result<(), ApiError> {
        crate::events::enqueue(&mut self.tx, self.user, kind, data).await?;
        self.emitted = true;
        Ok(())
    }

    /// Commits, then wakes the outbox relay for the tenant if events were emitted.
    pub async fn commit(self) -> Result<(), ApiError> {
        self.tx.commit().await?;
        if self.emitted {
            self.outboxes.mark(self.user.tenant_id);
        }
        Ok(())
    }
}

impl Deref for TenantTx<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for TenantTx<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

/// A connection to a tenant's database, for reads. Derefs to the connection.
pub struct TenantConn {
    conn: TenantConnection,
}

impl TenantConn {
    /// A connection to `tenant`'s database, whoever asks: for callers that are not a
    /// member (share pages, whose grant names the tenant). Members go through [`Tenant`].
    pub async fn open(state: &AppState, tenant: Uuid) -> Result<Self, ApiError> {
        Ok(Self {
            conn: state.databases.connect(tenant).await?,
        })
    }
}

impl Deref for TenantConn {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for TenantConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}
