//! Every query of the service, one module per table or resource. Queries are
//! compile-checked (`sqlx::query!` and friends, against `migrations/tenant`; `.sqlx/`
//! holds their descriptions for offline builds). Functions take the connection or
//! transaction they run on, so a handler decides what shares a transaction.

pub mod activity;
pub mod idempotency;
