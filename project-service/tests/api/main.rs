//! project-service API tests against real dependencies.

mod board;
mod comments;
mod health;
mod helpers;
mod projects;
mod tasks;
mod time;
