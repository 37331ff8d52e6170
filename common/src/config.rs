//! Settings shared by several services, as clap argument groups a service flattens into
//! its own `Config`. Every setting is a flag with an environment fallback and a doc
//! comment that becomes its `--help` text, the README's config table and `.env.example`
//! (`cargo xtask docs` writes both; a test fails when they drift).

use std::convert::Infallible;

use clap::Args;
use secrecy::SecretString;

use crate::client::TrustedProxies;
use crate::telemetry::LogFormat;

/// HTTP server and logging settings every service has.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Log filter in `tracing` EnvFilter syntax.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info,sqlx=warn")]
    pub log_filter: String,
    /// Log format: auto (JSON unless on a terminal), json or text.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// Seconds a request may take before it is answered with 503.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    pub body_limit_bytes: usize,
    /// Seconds to drain in-flight requests and workers after SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    /// Peers whose X-Forwarded-For is believed (comma-separated CIDRs or addresses; `none`
    /// trusts nobody). The client is the first hop, from the right, that is not one of them.
    /// At the gateway, list only the load balancers in front of it.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = crate::client::DEFAULT_TRUSTED_PROXIES)]
    pub trusted_proxies: TrustedProxies,
    /// Largest request head (request line and header fields) in bytes; a longer one is
    /// answered 431.
    #[arg(long, env = "MAX_HEAD_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::builder::TypedValueParser::map(
              clap::value_parser!(u32).range(1024..), |n| n as usize))]
    pub max_head_bytes: usize,
    /// Seconds a request head may take from its first byte to its end; a slower one is
    /// answered 408 and its connection closed (idle keep-alive time is not counted).
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_secs: u64,
}

impl ServerArgs {
    pub fn shutdown_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The head limits every listener keeps (see [`crate::edge`]); no idle timeout.
    pub fn edge(&self) -> crate::edge::Edge {
        crate::edge::Edge {
            max_head: self.max_head_bytes,
            head_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            idle: None,
        }
    }
}

/// Password hashing settings of services that hash passwords (`common::password`).
#[derive(Debug, Clone, Args)]
pub struct PasswordArgs {
    /// Threads that hash passwords, each keeping its own 19 MiB of argon2 memory (0: one
    /// per available core). Bounds hashing memory to this many times 19 MiB.
    #[arg(long, env = "PASSWORD_HASH_WORKERS", default_value_t = 0)]
    pub password_hash_workers: usize,
    /// Milliseconds a password check may wait for a free hashing thread; past that the
    /// request is answered 503 with Retry-After.
    #[arg(long, env = "PASSWORD_HASH_QUEUE_MS", default_value_t = 3000)]
    pub password_hash_queue_ms: u64,
}

/// PostgreSQL pool settings.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Largest number of connections in the service's pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// Seconds to keep retrying the first connection at start-up.
    #[arg(long, env = "DB_CONNECT_TIMEOUT_SECS", default_value_t = 30)]
    pub db_connect_timeout_secs: u64,
}

/// Settings of services that keep tenant data in the tenants' databases
/// (`common::db::directory`, `common::db::tenants`).
#[derive(Debug, Clone, Args)]
pub struct TenantDbArgs {
    /// Base URL of tenant-resolver (where each tenant's database is found).
    #[arg(
        long,
        env = "TENANT_RESOLVER_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub tenant_resolver_url: String,
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
}

impl TenantDbArgs {
    pub fn limits(&self) -> crate::db::tenants::Limits {
        let timeout = std::time::Duration::from_secs(self.db_acquire_timeout_secs);
        crate::db::tenants::Limits {
            per_cluster: self.db_max_connections,
            idle: std::time::Duration::from_secs(self.tenant_idle_secs),
            acquire_timeout: timeout,
            connect_timeout: timeout,
        }
    }
}

/// RabbitMQ settings of services that publish or consume events.
#[derive(Debug, Clone, Args)]
pub struct AmqpArgs {
    /// RabbitMQ URL.
    #[arg(long, env = "AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
          value_parser = secret, hide_env_values = true)]
    pub amqp_url: SecretString,
    /// Topic exchange all events are published to.
    #[arg(long, env = "EVENTS_EXCHANGE", default_value = crate::events::EXCHANGE)]
    pub events_exchange: String,
}

/// clap value parser for secrets: they are wrapped at once so they never reach a log.
pub fn secret(value: &str) -> Result<SecretString, Infallible> {
    Ok(SecretString::from(value.to_owned()))
}

/// One setting as the docs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub env: String,
    pub flag: String,
    pub default: Option<String>,
    pub help: String,
    pub secret: bool,
}

/// The settings of a service's `Config`, read from its clap command, in declaration order.
pub fn settings(command: &clap::Command) -> Vec<Setting> {
    command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?.to_owned();
            let default = arg
                .get_default_values()
                .first()
                .and_then(|v| v.to_str())
                .map(str::to_owned);
            Some(Setting {
                env,
                flag: arg.get_long().map(|l| format!("--{l}")).unwrap_or_default(),
                default,
                help: arg
                    .get_help()
                    .map(|h| h.to_string().replace('\n', " "))
                    .unwrap_or_default(),
                secret: arg.is_hide_env_values_set(),
            })
        })
        .collect()
}

/// Token verification settings of services that accept user tokens.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// Where user-service publishes the token-signing public keys (JWKS).
    #[arg(
        long,
        env = "JWKS_URL",
        default_value = "http://127.0.0.1:8082/.well-known/jwks.json"
    )]
    pub jwks_url: String,
}

/// The development default of `INTERNAL_TOKEN`; services warn when they run with it.
pub const DEV_INTERNAL_TOKEN: &str = "nexus-dev-internal-token";

/// The shared secret guarding `/internal/...` endpoints between services.
#[derive(Debug, Clone, Args)]
pub struct InternalArgs {
    /// Bearer token of service-to-service `/internal/...` calls. Set a long random value in
    /// production; the default is for local development only.
    #[arg(long, env = "INTERNAL_TOKEN", default_value = DEV_INTERNAL_TOKEN,
          value_parser = secret, hide_env_values = true)]
    pub internal_token: SecretString,
}

impl InternalArgs {
    /// Logs a warning when the development token is in use, and an error when the token
    /// cannot travel as a bearer token (`common::auth::bearer_token` would refuse it).
    pub fn warn_if_default(&self) {
        use secrecy::ExposeSecret;
        let token = self.internal_token.expose_secret();
        if token == DEV_INTERNAL_TOKEN {
            tracing::warn!(
                "INTERNAL_TOKEN is the development default; set a secret one in production"
            );
        }
        if !crate::auth::is_token68(token) {
            tracing::error!(
                "INTERNAL_TOKEN has characters a bearer token cannot carry (use letters, \
                 digits and - . _ ~ + /); internal calls with it will be refused"
            );
        }
    }
}
