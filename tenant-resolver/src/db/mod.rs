//! Every query tenant-resolver runs, by what it reads or writes.
//!
//! - [`tenants`] and [`clusters`]: the registry's tables.
//! - [`migrations`]: sqlx's `_sqlx_migrations` bookkeeping, read in *tenant* databases.
//!   These queries are compiled against the registry schema like the rest, and that
//!   check is a real one: `_sqlx_migrations` is created by sqlx's migrator, with one
//!   shape, in every database it migrates, the registry among them.
//! - [`catalog`]: a cluster's roles and databases. Its DDL names identifiers computed at
//!   run time (a tenant's database and role), which PostgreSQL cannot bind, so it is the
//!   crate's one place of SQL built as text, through `common::db::ddl` (README,
//!   "Choices"); its catalogue reads are macros like every other query.
//!
//! Everything else is a `sqlx::query!`-family macro, checked against
//! `migrations/registry` at compile time (`cargo sql`).

pub mod catalog;
pub mod clusters;
pub mod migrations;
pub mod tenants;
