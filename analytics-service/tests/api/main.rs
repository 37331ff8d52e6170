//! analytics-service API tests against real dependencies.

mod health;
mod helpers;
