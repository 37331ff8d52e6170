//! The data layer: every statement notification-service runs on a tenant's database,
//! compile-checked against the tenant schema (`migrations/tenant/`).

pub mod exclusions;
pub mod mails;
pub mod notifications;
pub mod preferences;
pub mod stream;
pub mod tasks;
pub mod webhooks;
