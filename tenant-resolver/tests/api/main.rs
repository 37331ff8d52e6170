//! tenant-resolver API tests against the real PostgreSQL and RabbitMQ.

mod health;
mod helpers;
mod internal;
mod migrate;
mod signup;
mod tenant;
