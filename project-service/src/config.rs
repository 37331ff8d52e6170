//! project-service's settings: flags with environment fallbacks (see the README's table).

use std::net::SocketAddr;

use clap::Parser;
use common::config::{AmqpArgs, AuthArgs, InternalArgs, ServerArgs, TenantDbArgs};
use common::grant::GrantArgs;

/// project-service: projects, boards, tasks, comments and time, each tenant in its own database.
#[derive(Debug, Clone, Parser)]
#[command(name = "project-service", version, about)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8083")]
    pub bind_addr: SocketAddr,
    /// Base URL of user-service (mentions are resolved to members there).
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    pub user_service_url: String,
    /// Directory attachment files are kept in (one folder per tenant, files named by
    /// their SHA-256); created if missing.
    #[arg(long, env = "ATTACHMENTS_DIR", default_value = ".nexus/attachments")]
    pub attachments_dir: std::path::PathBuf,
    /// Largest attachment accepted, in bytes (the plan's storage limit applies as well).
    #[arg(long, env = "ATTACHMENT_MAX_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub attachment_max_bytes: u64,
    #[command(flatten)]
    pub tenant_db: TenantDbArgs,
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
