//! analytics-service's settings: flags with environment fallbacks (see the README's table).

use std::net::SocketAddr;

use clap::Parser;
use common::config::{AmqpArgs, ServerArgs};
use secrecy::SecretString;

/// analytics-service: the event store, counters and dashboards, fed from RabbitMQ into MongoDB.
#[derive(Debug, Clone, Parser)]
#[command(name = "analytics-service", version, about)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8085")]
    pub bind_addr: SocketAddr,
    /// MongoDB URL.
    #[arg(long, env = "MONGODB_URL", default_value = "mongodb://127.0.0.1:27017",
          value_parser = common::config::secret, hide_env_values = true)]
    pub mongodb_url: SecretString,
    /// MongoDB database holding events, counters and rollups.
    #[arg(long, env = "MONGODB_DATABASE", default_value = "nexus_analytics")]
    pub mongodb_database: String,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,
}
