//! project-service API tests against real dependencies.

mod board;
mod health;
mod helpers;
mod projects;
mod tasks;
mod time;
