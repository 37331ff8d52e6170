//! project-service API tests against real dependencies.

mod health;
mod helpers;
mod projects;
mod tasks;
