//! Every query of the service, one module per table or resource. Queries are
//! compile-checked (`sqlx::query!` and friends, against `migrations/tenant`; `.sqlx/`
//! holds their descriptions for offline builds). Functions take the connection or
//! transaction they run on (`&mut tx` of a [`crate::tenant::TenantTx`] derefs to one),
//! so a handler decides what shares a transaction.
//!
//! The one query built at run time is [`tasks::list`], the documented list builder of
//! the task list's optional filters (every value bound, never formatted into the SQL).

pub mod activity;
pub mod attachments;
pub mod columns;
pub mod comments;
pub mod idempotency;
pub mod locks;
pub mod members;
pub mod projects;
pub mod shared;
pub mod tasks;
pub mod timers;
pub mod worklogs;
