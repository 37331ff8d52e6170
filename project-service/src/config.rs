//! project-service's settings: flags with environment fallbacks (see the README's table).

use std::net::SocketAddr;

use clap::Parser;
use common::config::{AmqpArgs, ServerArgs};

/// project-service: projects, boards, tasks, comments and time, each tenant in its own database.
#[derive(Debug, Clone, Parser)]
#[command(name = "project-service", version, about)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8083")]
    pub bind_addr: SocketAddr,
    /// Base URL of tenant-resolver.
    #[arg(
        long,
        env = "TENANT_RESOLVER_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub tenant_resolver_url: String,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,
}
