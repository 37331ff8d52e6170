//! analytics-service API tests against real dependencies.

mod health;
mod helpers;
mod ingest;
mod reports;
