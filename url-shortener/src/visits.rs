//! Counted visits leave the redirect path at once: the handler pushes them onto a channel
//! and a background flusher writes them in batches (counts and `url.accessed` events in
//! one transaction, through the outbox, so a broker outage loses none). A failed write is
//! retried with the same batch; on shutdown whatever is pending is written before the
//! process exits.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};

use chrono::{DateTime, Utc};
use common::events::{Envelope, keys};
use rand::RngCore;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::config::Config;
use crate::db;
use crate::domain::visitor::{AgentClass, client_ip, referrer_host, visitor_hash};

/// One successful redirect, as the request left it: header values are shared with the
/// request (no copy on the redirect path), and the address and agent stay in memory only
/// until the flusher hashes them.
pub struct Visit {
    pub code: Arc<str>,
    pub tenant_id: Uuid,
    pub at: DateTime<Utc>,
    pub peer: IpAddr,
    pub forwarded_for: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub referer: Option<HeaderValue>,
}

impl Visit {
    /// Takes what a visit records from the request's headers.
    pub fn new(code: Arc<str>, tenant_id: Uuid, peer: IpAddr, headers: &HeaderMap) -> Self {
        Self {
            code,
            tenant_id,
            at: Utc::now(),
            peer,
            forwarded_for: headers.get("x-forwarded-for").cloned(),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            referer: headers.get(header::REFERER).cloned(),
        }
    }

    /// The same from header values read off the wire (the redirect lane's request head).
    pub fn from_fields(
        code: Arc<str>,
        tenant_id: Uuid,
        peer: IpAddr,
        [forwarded_for, user_agent, referer]: [Option<&[u8]>; 3],
    ) -> Self {
        let value = |bytes: Option<&[u8]>| bytes.and_then(|b| HeaderValue::from_bytes(b).ok());
        Self {
            code,
            tenant_id,
            at: Utc::now(),
            peer,
            forwarded_for: value(forwarded_for),
            user_agent: value(user_agent),
            referer: value(referer),
        }
    }
}

fn text(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}

/// Where handlers put visits; cheap to clone.
#[derive(Clone)]
pub struct VisitSink(mpsc::UnboundedSender<Visit>);

impl VisitSink {
    pub fn record(&self, visit: Visit) {
        if self.0.send(visit).is_err() {
            tracing::error!("visit flusher is gone; a visit was not recorded");
        }
    }
}

pub struct Flusher {
    rx: mpsc::UnboundedReceiver<Visit>,
    pool: PgPool,
    interval: Duration,
    batch_size: usize,
    salt: Arc<[u8]>,
}

/// The sink handlers use and the flusher to spawn.
pub fn channel(pool: PgPool, config: &Config) -> (VisitSink, Flusher) {
    let (tx, rx) = mpsc::unbounded_channel();
    let salt = config.visitor_hash_salt.as_ref().map_or_else(
        || {
            let mut salt = vec![0; 32];
            rand::thread_rng().fill_bytes(&mut salt);
            salt
        },
        |s| s.expose_secret().as_bytes().to_vec(),
    );
    let salt: Arc<[u8]> = salt.into();
    let flusher = Flusher {
        rx,
        pool,
        interval: Duration::from_millis(config.visit_flush_interval_ms.max(1)),
        batch_size: config.visit_batch_size.max(1),
        salt,
    };
    (VisitSink(tx), flusher)
}

impl Flusher {
    /// Runs until every sink is dropped (the server has stopped) and all is written.
    pub async fn run(mut self) {
        let mut batch = Vec::with_capacity(self.batch_size.min(4096));
        loop {
            if self.rx.recv_many(&mut batch, self.batch_size).await == 0 {
                break;
            }
            // Gather for one interval (or until the batch is full) to write less often.
            let deadline = tokio::time::Instant::now() + self.interval;
            while batch.len() < self.batch_size {
                let room = self.batch_size - batch.len();
                match tokio::time::timeout_at(deadline, self.rx.recv_many(&mut batch, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            self.write(&mut batch).await;
        }
        tracing::info!("visit flusher stopped");
    }

    /// Writes `batch`, retrying with backoff until it is written. Hashing visitors and
    /// encoding their events (milliseconds for a full batch) runs on a blocking thread, so
    /// the redirects on the async threads are not held up meanwhile.
    async fn write(&self, batch: &mut Vec<Visit>) {
        let visits = std::mem::take(batch);
        let salt = Arc::clone(&self.salt);
        let (counts, messages, count) =
            match tokio::task::spawn_blocking(move || prepare(&salt, &visits)).await {
                Ok(prepared) => prepared,
                Err(err) => {
                    tracing::error!(error = %err, "preparing visits failed; they are lost");
                    return;
                }
            };
        let mut backoff = Duration::from_millis(100);
        loop {
            match db::visits::record(&self.pool, &counts, &messages).await {
                Ok(()) => {
                    tracing::debug!(visits = count, "visits written");
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, visits = count, "writing visits failed; will retry");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// A batch's counts per code, its `url.accessed` events encoded as batch messages, and
/// how many visits it holds.
fn prepare(salt: &[u8], batch: &[Visit]) -> (Vec<(String, i64)>, Vec<String>, usize) {
    let mut counts: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    let mut events = Vec::with_capacity(batch.len());
    for visit in batch {
        *counts.entry(&visit.code).or_default() += 1;
        let user_agent = text(visit.user_agent.as_ref()).unwrap_or_default();
        let ip = client_ip(text(visit.forwarded_for.as_ref()), visit.peer);
        let data = serde_json::json!({
            "code": &*visit.code,
            "referrer_host": text(visit.referer.as_ref()).and_then(referrer_host),
            "agent_class": AgentClass::of(user_agent).as_str(),
            "visitor_hash": visitor_hash(salt, visit.at.date_naive(), &ip, user_agent),
        });
        let mut event = Envelope::new(keys::URL_ACCESSED, visit.tenant_id, None, data);
        event.occurred_at = visit.at;
        events.push(event);
    }
    let messages = events
        .chunks(db::visits::EVENTS_PER_MESSAGE)
        .map(|chunk| serde_json::to_string(chunk).expect("envelopes encode"))
        .collect();
    let counts = counts.into_iter().map(|(c, n)| (c.to_owned(), n)).collect();
    (counts, messages, batch.len())
}
