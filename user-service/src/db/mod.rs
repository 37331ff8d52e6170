//! Queries of `nexus_users`, one module per table, all `sqlx::query!`-family macros
//! checked against `migrations/users` at compile time (`cargo sql`).

pub mod invites;
pub mod members;
pub mod refresh_tokens;
pub mod revocations;
pub mod users;
