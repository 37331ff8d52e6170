//! user-service's settings: flags with environment fallbacks (see the README's table).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use common::config::{AmqpArgs, DbArgs, InternalArgs, PasswordArgs, ServerArgs, secret};
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
          value_parser = secret, hide_env_values = true)]
    pub database_url: SecretString,
    /// Folder of the Ed25519 token-signing keys (`<kid>.pem`, PKCS#8); the newest kid signs,
    /// all are published in the JWKS.
    #[arg(long, env = "SIGNING_KEYS_DIR", default_value = ".nexus/keys")]
    pub signing_keys_dir: PathBuf,
    /// Generate a signing key when the folder has none (development).
    #[arg(long, env = "GENERATE_SIGNING_KEY", default_value_t = true, action = clap::ArgAction::Set)]
    pub generate_signing_key: bool,
    /// Days a refresh token lives (each use rotates it).
    #[arg(long, env = "REFRESH_TOKEN_TTL_DAYS", default_value_t = 30)]
    pub refresh_token_ttl_days: u32,
    /// Seconds in which a retried refresh gets the same successor instead of counting as reuse.
    #[arg(long, env = "REFRESH_GRACE_SECS", default_value_t = 10)]
    pub refresh_grace_secs: u64,
    /// Seconds a failed-login counter lasts.
    #[arg(long, env = "LOGIN_THROTTLE_WINDOW_SECS", default_value_t = 900)]
    pub login_throttle_window_secs: u64,
    /// Failed logins allowed per account and address in a window.
    #[arg(long, env = "LOGIN_MAX_FAILURES_PER_ADDRESS", default_value_t = 10)]
    pub login_max_failures_per_address: u32,
    /// Failed logins allowed per account in a window, from all addresses together.
    #[arg(long, env = "LOGIN_MAX_FAILURES_PER_ACCOUNT", default_value_t = 50)]
    pub login_max_failures_per_account: u32,
    /// Failed logins allowed per address in a window, over all accounts.
    #[arg(long, env = "LOGIN_MAX_FAILURES_PER_IP", default_value_t = 200)]
    pub login_max_failures_per_ip: u32,
    /// Hours an invite stays valid.
    #[arg(long, env = "INVITE_TTL_HOURS", default_value_t = 72)]
    pub invite_ttl_hours: u32,
    /// Base URL of tenant-resolver (plan limits for invites).
    #[arg(
        long,
        env = "TENANT_RESOLVER_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub tenant_resolver_url: String,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,
    #[command(flatten)]
    pub internal: InternalArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
}
