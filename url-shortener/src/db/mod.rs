//! Queries of `nexus_shortener`.

pub mod links;
pub mod visits;
