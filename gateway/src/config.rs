//! gateway's settings: flags with environment fallbacks (see the README's table).

use std::net::SocketAddr;

use clap::Parser;
use common::config::{AuthArgs, InternalArgs, ServerArgs};

/// gateway: the single entry point. Tenant from the Host, token checks, rate limits,
/// circuit breakers, routing to the services.
#[derive(Debug, Clone, Parser)]
#[command(name = "gateway", version, about)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8080")]
    pub bind_addr: SocketAddr,
    /// The apex domain: `<BASE_DOMAIN>` serves signup and docs, `<slug>.<BASE_DOMAIN>` a tenant.
    #[arg(long, env = "BASE_DOMAIN", default_value = "localhost")]
    pub base_domain: String,
    /// Base URL(s) of tenant-resolver, comma-separated for several instances.
    #[arg(
        long,
        env = "TENANT_RESOLVER_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub tenant_resolver_url: String,
    /// Base URL(s) of user-service.
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    pub user_service_url: String,
    /// Base URL(s) of project-service.
    #[arg(
        long,
        env = "PROJECT_SERVICE_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    pub project_service_url: String,
    /// Base URL(s) of url-shortener.
    #[arg(
        long,
        env = "URL_SHORTENER_URL",
        default_value = "http://127.0.0.1:8084"
    )]
    pub url_shortener_url: String,
    /// Base URL(s) of analytics-service.
    #[arg(
        long,
        env = "ANALYTICS_SERVICE_URL",
        default_value = "http://127.0.0.1:8085"
    )]
    pub analytics_service_url: String,
    /// Base URL(s) of notification-service.
    #[arg(
        long,
        env = "NOTIFICATION_SERVICE_URL",
        default_value = "http://127.0.0.1:8086"
    )]
    pub notification_service_url: String,
    /// Seconds an upstream may take to answer before the gateway answers 504.
    #[arg(long, env = "UPSTREAM_TIMEOUT_SECS", default_value_t = 15)]
    pub upstream_timeout_secs: u64,
    /// Seconds a resolved tenant is cached (unknown ones: a fifth of that).
    #[arg(long, env = "TENANT_CACHE_TTL_SECS", default_value_t = 30)]
    pub tenant_cache_ttl_secs: u64,
    /// Largest body of an attachment upload (`POST /api/v1/tasks/{id}/attachments`), in
    /// bytes; other requests are held to BODY_LIMIT_BYTES. Keep it at or above
    /// project-service's ATTACHMENT_MAX_BYTES plus a little for the form.
    #[arg(long, env = "UPLOAD_LIMIT_BYTES", default_value_t = 26 * 1024 * 1024)]
    pub upload_limit_bytes: usize,
    /// Milliseconds between polls of user-service's access-token revocations (removed
    /// members, changed roles): the longest such a token keeps working.
    #[arg(long, env = "REVOCATION_POLL_MS", default_value_t = 1000)]
    pub revocation_poll_ms: u64,
    /// Event streams (`/api/v1/stream`) one user may hold open at once through this
    /// gateway; past it a new one is refused with 429.
    #[arg(long, env = "STREAMS_PER_USER", default_value_t = 8)]
    pub streams_per_user: usize,
    /// Event streams one tenant may hold open at once through this gateway (its users'
    /// and its share pages'); past it a new one is refused with 429.
    #[arg(long, env = "STREAMS_PER_TENANT", default_value_t = 2000)]
    pub streams_per_tenant: usize,
    /// Requests per minute per tenant and user on authenticated routes.
    #[arg(long, env = "RATE_LIMIT_USER_PER_MIN", default_value_t = 1200)]
    pub rate_limit_user_per_min: u32,
    /// Requests per minute per client address on public routes (login, signup, `/s/`).
    #[arg(long, env = "RATE_LIMIT_IP_PER_MIN", default_value_t = 120)]
    pub rate_limit_ip_per_min: u32,
    /// Consecutive failures (errors, timeouts, 5xx) that open an upstream's circuit.
    #[arg(long, env = "BREAKER_FAILURES", default_value_t = 5)]
    pub breaker_failures: u32,
    /// Seconds an open circuit waits before letting one probe through.
    #[arg(long, env = "BREAKER_COOLDOWN_SECS", default_value_t = 10)]
    pub breaker_cooldown_secs: u64,
    /// Browser origins allowed to call the API (CORS), comma-separated; empty allows none.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "")]
    pub cors_allowed_origins: String,
    /// Serve plain HTTP/1.1 proxied requests on the gateway's own loop (the fast lane);
    /// false sends every connection to hyper and the router (the general path).
    #[arg(long, env = "FAST_LANE", default_value_t = true, action = clap::ArgAction::Set)]
    pub fast_lane: bool,
    /// Worker threads, each with its own single-threaded runtime (0: one per available core).
    #[arg(long, env = "WORKERS", default_value_t = 0)]
    pub workers: usize,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub internal: InternalArgs,
}
