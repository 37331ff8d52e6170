//! Registry queries.

pub mod tenants;
