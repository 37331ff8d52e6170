//! Integration tests of the shared building blocks, against real PostgreSQL and RabbitMQ.

mod auth;
mod db;
mod errors;
mod helpers;
mod outbox;
mod server;
mod tenants;
