//! Queries of `nexus_users`.

pub mod members;
pub mod users;
