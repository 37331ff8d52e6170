//! user-service API tests against the real PostgreSQL and RabbitMQ.

mod auth;
mod edge;
mod health;
mod helpers;
mod invites;
mod owner;
mod refresh;
mod users;
