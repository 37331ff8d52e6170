//! The HTTP API: public signup, the current tenant for its members, and the internal
//! endpoints other services and operators use.

mod internal;
mod tenants;

use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(tenants::router())
        .merge(internal::router())
}

pub(crate) use internal::{
    __path_active, __path_database, __path_delete_tenant, __path_lookup, __path_migration_status,
    __path_resume, __path_start_migration, __path_suspend,
};
pub use internal::{DatabaseView, LookupView, MigrationStatus, SharedJob as SharedJobHandle};
pub(crate) use tenants::{__path_current, __path_signup};
