//! project-service API tests against real dependencies.

mod attachments;
mod board;
mod comments;
mod health;
mod helpers;
mod projects;
mod shared;
mod tasks;
mod time;
mod visibility;
