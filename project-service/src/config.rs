//! project-service's settings: flags with environment fallbacks (see the README's table).

use std::net::SocketAddr;

use clap::Parser;
use common::config::{AmqpArgs, AuthArgs, InternalArgs, ServerArgs};
use common::grant::GrantArgs;

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
    /// Base URL of user-service (mentions are resolved to members there).
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    pub user_service_url: String,
    /// Most connections open at once to one PostgreSQL cluster, across all its tenants'
    /// databases; at the cap, an idle connection of another tenant is closed to open one
    /// (a spare of a tenant holding several first, else the least recently used).
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 64)]
    pub db_max_connections: u32,
    /// Seconds a tenant's connection stays open unused; an idle tenant holds none.
    #[arg(long, env = "TENANT_IDLE_SECS", default_value_t = 60)]
    pub tenant_idle_secs: u64,
    /// Seconds a request waits for a database connection before a 503.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 5)]
    pub db_acquire_timeout_secs: u64,
    /// Directory attachment files are kept in (one folder per tenant, files named by
    /// their SHA-256); created if missing.
    #[arg(long, env = "ATTACHMENTS_DIR", default_value = ".nexus/attachments")]
    pub attachments_dir: std::path::PathBuf,
    /// Largest attachment accepted, in bytes (the plan's storage limit applies as well).
    #[arg(long, env = "ATTACHMENT_MAX_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub attachment_max_bytes: u64,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub internal: InternalArgs,
    #[command(flatten)]
    pub grants: GrantArgs,
}
