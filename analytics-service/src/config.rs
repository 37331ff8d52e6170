//! analytics-service's settings: flags with environment fallbacks (see the README's table).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use common::config::{AmqpArgs, AuthArgs, ServerArgs};
use secrecy::SecretString;

/// analytics-service: the event store, counters and dashboards, fed from RabbitMQ into MongoDB.
#[derive(Debug, Clone, Parser)]
#[command(name = "analytics-service", version, about)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8085")]
    pub bind_addr: SocketAddr,
    /// MongoDB URL.
    #[arg(long, env = "MONGODB_URL", default_value = "mongodb://127.0.0.1:27017",
          value_parser = common::config::secret, hide_env_values = true)]
    pub mongodb_url: SecretString,
    /// MongoDB database holding events, counters and rollups.
    #[arg(long, env = "MONGODB_DATABASE", default_value = "nexus_analytics")]
    pub mongodb_database: String,
    /// Durable queue analytics-service consumes, bound to every routing key (`#`).
    #[arg(
        long = "analytics-queue",
        env = "ANALYTICS_QUEUE",
        default_value = "analytics.events"
    )]
    pub queue: String,
    /// Dead-letter queue (and exchange) for messages that cannot be parsed or stored.
    #[arg(
        long = "analytics-dead-letter-queue",
        env = "ANALYTICS_DEAD_LETTER_QUEUE",
        default_value = "analytics.events.dead"
    )]
    pub dead_letter_queue: String,
    /// Unacknowledged messages the broker may hand the consumer at once (AMQP prefetch).
    #[arg(
        long = "analytics-prefetch",
        env = "ANALYTICS_PREFETCH",
        default_value_t = 500
    )]
    pub prefetch: u16,
    /// Largest number of events written to MongoDB in one batch.
    #[arg(
        long = "analytics-batch-size",
        env = "ANALYTICS_BATCH_SIZE",
        default_value_t = 200
    )]
    pub batch_size: usize,
    /// Milliseconds a partly filled batch waits for more events before it is written.
    #[arg(
        long = "analytics-flush-interval-ms",
        env = "ANALYTICS_FLUSH_INTERVAL_MS",
        default_value_t = 200
    )]
    pub flush_interval_ms: u64,
    /// Times an event whose write MongoDB rejects is tried before it is dead-lettered.
    #[arg(
        long = "analytics-max-attempts",
        env = "ANALYTICS_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub max_attempts: u32,
    /// Days raw events are kept (a TTL index on `occurred_at`); counters and rollups stay.
    #[arg(
        long = "analytics-retention-days",
        env = "ANALYTICS_RETENTION_DAYS",
        default_value_t = 400
    )]
    pub retention_days: u32,
    /// Seconds between runs of the job that recomputes rollups and repairs counters.
    #[arg(
        long = "analytics-rollup-interval-secs",
        env = "ANALYTICS_ROLLUP_INTERVAL_SECS",
        default_value_t = 60
    )]
    pub rollup_interval_secs: u64,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,
}

impl Config {
    /// The events consumer's settings: the analytics queue, bound to every event.
    pub fn consumer_settings(&self) -> common::events::consumer::Settings {
        common::events::consumer::Settings {
            queue: self.queue.clone(),
            dead_letter_queue: self.dead_letter_queue.clone(),
            bindings: vec!["#".to_owned()],
            prefetch: self.prefetch,
            batch_size: self.batch_size.max(1),
            flush_interval: self.flush_interval(),
            max_attempts: self.max_attempts.max(1),
        }
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }

    pub fn rollup_interval(&self) -> Duration {
        Duration::from_secs(self.rollup_interval_secs.max(1))
    }
}
