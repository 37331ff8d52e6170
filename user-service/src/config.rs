//! user-service's settings: flags with environment fallbacks (see the README's table).

use std::net::SocketAddr;

use clap::Parser;
use common::config::{AmqpArgs, DbArgs, ServerArgs};
use secrecy::SecretString;

/// user-service: users, credentials, tokens, roles and invites.
#[derive(Debug, Clone, Parser)]
#[command(name = "user-service", version, about)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8082")]
    pub bind_addr: SocketAddr,
    /// PostgreSQL URL of the service's own database (created if missing).
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/nexus_users",
          value_parser = common::config::secret, hide_env_values = true)]
    pub database_url: SecretString,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,
}
