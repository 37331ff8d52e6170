//! tenant-resolver's settings: flags with environment fallbacks (see the README's table).

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use common::config::{AmqpArgs, AuthArgs, DbArgs, InternalArgs, ServerArgs, secret};
use secrecy::SecretString;

/// tenant-resolver: tenants, their databases and the migrations across them.
#[derive(Debug, Clone, Parser)]
#[command(name = "tenant-resolver", version, about)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8081")]
    pub bind_addr: SocketAddr,
    /// PostgreSQL URL of the service's own database (created if missing).
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/nexus_registry",
          value_parser = secret, hide_env_values = true)]
    pub database_url: SecretString,
    /// PostgreSQL clusters tenant databases are placed on, as `name=url` pairs separated
    /// by commas. Each URL names a role with CREATEDB and CREATEROLE; a new tenant goes to
    /// the cluster with the fewest tenants.
    #[arg(long, env = "TENANT_CLUSTERS", default_value = "main=postgres://postgres@127.0.0.1:5432",
          value_parser = secret, hide_env_values = true)]
    pub tenant_clusters: SecretString,
    /// Prefix of tenant database and role names (`tenant_` gives `tenant_acme`).
    #[arg(long, env = "TENANT_DB_PREFIX", default_value = "tenant_")]
    pub tenant_db_prefix: String,
    /// Key (base64 of 32 bytes) that encrypts tenant role passwords in the registry. Set
    /// a secret one in production; the default is for local development only.
    #[arg(long, env = "TENANT_SECRET_KEY", default_value = crate::crypto::DEV_SECRET_KEY,
          value_parser = secret, hide_env_values = true)]
    pub tenant_secret_key: SecretString,
    /// Largest number of connections one tenant's role may open.
    #[arg(long, env = "TENANT_CONNECTION_LIMIT", default_value_t = 20)]
    pub tenant_connection_limit: u32,
    /// A tenant's URL; `{slug}` is replaced by its slug.
    #[arg(
        long,
        env = "TENANT_URL_TEMPLATE",
        default_value = "http://{slug}.localhost:8080"
    )]
    pub tenant_url_template: String,
    /// Tenant databases migrated at once by `migrate`.
    #[arg(long, env = "MIGRATE_CONCURRENCY", default_value_t = 8)]
    pub migrate_concurrency: usize,
    /// Hours a deleted tenant's database is kept before it is dropped.
    #[arg(long, env = "TENANT_DELETE_GRACE_HOURS", default_value_t = 72)]
    pub tenant_delete_grace_hours: u32,
    /// Base URL of user-service (creates each new tenant's owner).
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    pub user_service_url: String,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub internal: InternalArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Apply pending `migrations/tenant/` to the template and every tenant database,
    /// then print a summary; exits non-zero when a tenant failed.
    Migrate,
}
