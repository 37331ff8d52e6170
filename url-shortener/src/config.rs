//! url-shortener's settings: flags with environment fallbacks (see the README's table).

use std::net::SocketAddr;

use clap::Parser;
use common::config::{AmqpArgs, AuthArgs, DbArgs, PasswordArgs, ServerArgs};
use common::grant::GrantArgs;
use secrecy::SecretString;

/// url-shortener: expiring, password-protected share links and their redirects.
#[derive(Debug, Clone, Parser)]
#[command(name = "url-shortener", version, about)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8084")]
    pub bind_addr: SocketAddr,
    /// PostgreSQL URL of the service's own database (created if missing).
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/nexus_shortener",
          value_parser = common::config::secret, hide_env_values = true)]
    pub database_url: SecretString,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub grant: GrantArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Base URL(s) of project-service. url-shortener asks the first whether a link's
    /// target exists in the caller's tenant (with the caller's own credentials); the
    /// gateway takes several, comma-separated.
    #[arg(
        long,
        env = "PROJECT_SERVICE_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    pub project_service_url: String,
    /// Base URL of a tenant's host, `{slug}` replaced by the tenant's slug; a redirect goes
    /// to this plus `/shared/tasks/{id}?grant=…` (as tenant-resolver's template).
    #[arg(
        long,
        env = "TENANT_URL_TEMPLATE",
        default_value = "http://{slug}.localhost:8080"
    )]
    pub tenant_url_template: String,
    /// Public base of short links: `short_url` is this plus `/s/{code}`.
    #[arg(long, env = "SHORT_URL_BASE", default_value = "http://localhost:8080")]
    pub short_url_base: String,
    /// Seconds a share grant handed out by a redirect stays valid.
    #[arg(long, env = "GRANT_TTL_SECS", default_value_t = 300)]
    pub grant_ttl_secs: u64,
    /// Milliseconds between writes of counted visits (and their `url.accessed` events).
    #[arg(long, env = "VISIT_FLUSH_INTERVAL_MS", default_value_t = 500)]
    pub visit_flush_interval_ms: u64,
    /// Most visits written in one transaction.
    #[arg(long, env = "VISIT_BATCH_SIZE", default_value_t = 5000)]
    pub visit_batch_size: usize,
    /// Salt of visitor hashes (mixed with the UTC date, so hashes rotate daily). Unset: a
    /// random salt per process; set one shared value when several instances run.
    #[arg(long, env = "VISITOR_HASH_SALT", value_parser = common::config::secret,
          hide_env_values = true)]
    pub visitor_hash_salt: Option<SecretString>,
    /// Password attempts allowed per address and link in each throttle window.
    #[arg(long, env = "PASSWORD_ATTEMPTS_PER_ADDRESS", default_value_t = 5)]
    pub password_attempts_per_address: u32,
    /// Password attempts allowed per link (from all addresses) in each throttle window.
    #[arg(long, env = "PASSWORD_ATTEMPTS_PER_LINK", default_value_t = 50)]
    pub password_attempts_per_link: u32,
    /// Seconds of the password throttle window (attempts refill evenly over it).
    #[arg(long, env = "PASSWORD_THROTTLE_WINDOW_SECS", default_value_t = 900)]
    pub password_throttle_window_secs: u64,
    /// Most links held in the redirect cache.
    #[arg(long, env = "LINK_CACHE_SIZE", default_value_t = 100_000)]
    pub link_cache_size: u64,
    /// Seconds a cached link is trusted: the longest a change made through another
    /// instance takes to show here (changes through this instance show at once).
    #[arg(long, env = "LINK_CACHE_TTL_SECS", default_value_t = 30)]
    pub link_cache_ttl_secs: u64,
    /// Serve plain cached opens of `/s/{code}` on the redirect lane, url-shortener's own
    /// HTTP/1.1 loop; `false`: hyper and the router serve every connection (what
    /// `cargo xtask bench redirect` measures the lane against).
    #[arg(long, env = "REDIRECT_LANE", default_value_t = true, action = clap::ArgAction::Set)]
    pub redirect_lane: bool,
}

impl Config {
    /// The tenant's base URL from the template.
    pub fn tenant_url(&self, slug: &str) -> String {
        self.tenant_url_template.replace("{slug}", slug)
    }

    /// The project-service instance to ask about link targets.
    pub fn project_service(&self) -> &str {
        self.project_service_url
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .trim_end_matches('/')
    }

    pub fn short_url(&self, code: &str) -> String {
        format!("{}/s/{code}", self.short_url_base.trim_end_matches('/'))
    }
}
