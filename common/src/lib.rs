//! What every Nexus service needs, written once.
//!
//! Services build on these pieces so that a request looks the same everywhere: the same
//! problem+json errors, the same request ids and log fields, the same token checks, the
//! same event envelope and outbox. See `docs/DESIGN.md` for the contracts they implement.

pub mod auth;
pub mod client;
pub mod config;
pub mod db;
pub mod edge;
pub mod egress;
pub mod error;
pub mod events;
pub mod extract;
pub mod grant;
pub mod internal;
pub mod lane;
pub mod metrics;
pub mod opaque;
pub mod pages;
pub mod paging;
pub mod password;
pub mod readiness;
pub mod server;
pub mod shutdown;
pub mod signed;
pub mod telemetry;
pub mod tenant;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{ApiError, FieldError, Result};
