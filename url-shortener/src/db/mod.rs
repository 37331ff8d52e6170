//! Queries of `nexus_shortener`.

pub mod idempotency;
pub mod links;
pub mod visits;
