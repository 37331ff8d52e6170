//! notification-service's settings: flags with environment fallbacks (see the README's table).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use common::config::{AmqpArgs, AuthArgs, InternalArgs, ServerArgs, TenantDbArgs};

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
        default_value_t = 200
    )]
    pub prefetch: u16,
    /// Largest number of events turned into notifications in one batch.
    #[arg(
        long = "notification-batch-size",
        env = "NOTIFICATION_BATCH_SIZE",
        default_value_t = 100
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
