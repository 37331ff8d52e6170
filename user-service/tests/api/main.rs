//! user-service API tests against the real PostgreSQL and RabbitMQ.

mod auth;
mod edge;
mod hashing;
mod health;
mod helpers;
mod invites;
mod owner;
mod refresh;
mod throttle;
mod users;
