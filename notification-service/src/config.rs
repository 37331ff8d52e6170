//! notification-service's settings: flags with environment fallbacks (see the README's table).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use common::config::{AmqpArgs, AuthArgs, InternalArgs, ServerArgs, TenantDbArgs};
use common::grant::GrantArgs;
use secrecy::SecretString;

/// notification-service: each member's inbox of what happened to the tasks they follow,
/// fed by the events, kept in the tenant's database.
#[derive(Debug, Clone, Parser)]
#[command(name = "notification-service", version, about)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8086")]
    pub bind_addr: SocketAddr,
    /// Durable queue notification-service consumes, bound to the task, project and user
    /// events.
    #[arg(
        long = "notification-queue",
        env = "NOTIFICATION_QUEUE",
        default_value = "notifications.events"
    )]
    pub queue: String,
    /// Dead-letter queue (and exchange) for messages that cannot be parsed or stored.
    #[arg(
        long = "notification-dead-letter-queue",
        env = "NOTIFICATION_DEAD_LETTER_QUEUE",
        default_value = "notifications.events.dead"
    )]
    pub dead_letter_queue: String,
    /// Unacknowledged messages the broker may hand the consumer at once (AMQP prefetch).
    #[arg(
        long = "notification-prefetch",
        env = "NOTIFICATION_PREFETCH",
        default_value_t = 1000
    )]
    pub prefetch: u16,
    /// Largest number of events turned into notifications in one batch.
    #[arg(
        long = "notification-batch-size",
        env = "NOTIFICATION_BATCH_SIZE",
        default_value_t = 500
    )]
    pub batch_size: usize,
    /// Milliseconds a partly filled batch waits for more events before it is written.
    #[arg(
        long = "notification-flush-interval-ms",
        env = "NOTIFICATION_FLUSH_INTERVAL_MS",
        default_value_t = 20
    )]
    pub flush_interval_ms: u64,
    /// Times a tenant's events whose write fails are tried before they are dead-lettered.
    #[arg(
        long = "notification-max-attempts",
        env = "NOTIFICATION_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub max_attempts: u32,
    #[command(flatten)]
    pub mail: MailArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
    #[command(flatten)]
    pub grant: GrantArgs,
    #[command(flatten)]
    pub tenant_db: TenantDbArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,
    #[command(flatten)]
    pub internal: InternalArgs,
}

/// How notifications leave by email.
#[derive(Debug, Clone, clap::Args)]
pub struct MailArgs {
    /// SMTP server mails are sent through: `smtp://host:port` (plain, for a local catcher),
    /// `smtp://host:port?tls=required` (STARTTLS) or `smtps://user:pass@host` (TLS).
    #[arg(long, env = "SMTP_URL", default_value = "smtp://127.0.0.1:1025",
          value_parser = common::config::secret, hide_env_values = true)]
    pub smtp_url: SecretString,
    /// The `From` of every mail.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "Nexus <notifications@nexus.localhost>"
    )]
    pub mail_from: String,
    /// Seconds a receiver's digest collects notices before it is sent as one mail (the
    /// window opens with the first notice).
    #[arg(long, env = "DIGEST_INTERVAL_SECS", default_value_t = 3600)]
    pub digest_interval_secs: u64,
    /// Times a mail is tried before it is given up on (kept, with the last error).
    #[arg(long, env = "MAIL_MAX_ATTEMPTS", default_value_t = 8)]
    pub mail_max_attempts: u32,
    /// Milliseconds before a failed mail is tried again, doubled with each attempt (with
    /// jitter, at most an hour).
    #[arg(long, env = "MAIL_RETRY_BASE_MS", default_value_t = 30_000)]
    pub mail_retry_base_ms: u64,
    /// Public base URL of the gateway: unsubscribe links are this plus
    /// `/api/v1/notifications/unsubscribe?token=…`.
    #[arg(long, env = "PUBLIC_URL", default_value = "http://localhost:8080")]
    pub public_url: String,
    /// Secret unsubscribe links are signed with. Set a long random value in production;
    /// the default is for local development only.
    #[arg(long, env = "UNSUBSCRIBE_SECRET", default_value = DEV_UNSUBSCRIBE_SECRET,
          value_parser = common::config::secret, hide_env_values = true)]
    pub unsubscribe_secret: SecretString,
    /// user-service's base URL (receivers' addresses, from `/internal/users`).
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    pub user_service_url: String,
}

/// The live stream (`GET /api/v1/stream`).
#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// Seconds the stream's window keeps an event: a client that comes back with an older
    /// `Last-Event-ID` gets a `reset` instead of what it missed.
    #[arg(long, env = "STREAM_RETENTION_SECS", default_value_t = 3600)]
    pub stream_retention_secs: u64,
    /// Seconds a ticket from `POST /api/v1/stream/tickets` may open a stream.
    #[arg(long, env = "STREAM_TICKET_TTL_SECS", default_value_t = 60)]
    pub stream_ticket_ttl_secs: u64,
    /// Milliseconds between polls of user-service's access-token revocations (removed
    /// members, changed roles): the longest such a token keeps working.
    #[arg(long, env = "REVOCATION_POLL_MS", default_value_t = 1000)]
    pub revocation_poll_ms: u64,
}

/// Outgoing webhooks.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Networks webhook receivers may be in although they are loopback, private or
    /// link-local (CIDRs or addresses, comma-separated; empty: none). `cargo xtask up`
    /// sets loopback for local development.
    #[arg(long, env = "WEBHOOK_ALLOWED_NETWORKS", default_value = "",
          value_parser = allowed_networks)]
    pub webhook_allowed_networks: AllowedNetworks,
    /// Multiplies the waits between a delivery's attempts (5 s, 5 min, 30 min, 2 h, 5 h,
    /// 10 h, 10 h); below 1 only for tests.
    #[arg(long, env = "WEBHOOK_RETRY_SCALE", default_value_t = 1.0)]
    pub webhook_retry_scale: f64,
    /// Hours an endpoint may fail without a success before it is disabled (and those who
    /// manage webhooks are told).
    #[arg(long, env = "WEBHOOK_DISABLE_AFTER_HOURS", default_value_t = 120.0)]
    pub webhook_disable_after_hours: f64,
    /// Seconds an attempt may take, connection to last byte of the answer.
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECS", default_value_t = 15)]
    pub webhook_timeout_secs: u64,
}

/// A parsed `WEBHOOK_ALLOWED_NETWORKS`.
#[derive(Debug, Clone, Default)]
pub struct AllowedNetworks(pub Vec<ipnet::IpNet>);

fn allowed_networks(list: &str) -> Result<AllowedNetworks, String> {
    common::egress::Egress::parse_allowed(list).map(AllowedNetworks)
}

/// The development default of `UNSUBSCRIBE_SECRET`; the service warns when it runs with it.
pub const DEV_UNSUBSCRIBE_SECRET: &str = "nexus-dev-unsubscribe-secret";

/// The routing keys notification-service reads.
pub const BINDINGS: [&str; 3] = ["task.#", "project.#", "user.#"];

impl Config {
    /// The events consumer's settings.
    pub fn consumer_settings(&self) -> common::events::consumer::Settings {
        common::events::consumer::Settings {
            queue: self.queue.clone(),
            dead_letter_queue: self.dead_letter_queue.clone(),
            bindings: BINDINGS.map(str::to_owned).to_vec(),
            prefetch: self.prefetch,
            batch_size: self.batch_size.max(1),
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            max_attempts: self.max_attempts.max(1),
        }
    }
}
