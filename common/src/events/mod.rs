//! Domain events: the envelope every service publishes, the routing keys, the broker
//! connection with publisher confirms, the transactional outbox relay, and the consumer.

mod broker;
pub mod consumer;
pub mod fanout;
pub mod outbox;

pub use broker::{Broker, Message};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A UUIDv7 of `at` (to the millisecond), its other 74 bits random: unique without a
/// shared counter, and ordered by time like any v7.
pub fn uuid_v7_at(at: DateTime<Utc>) -> Uuid {
    let seconds = u64::try_from(at.timestamp()).unwrap_or(0);
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        seconds,
        at.timestamp_subsec_nanos(),
    ))
}

/// The `version` of the envelope every producer writes.
pub const ENVELOPE_VERSION: u32 = 1;

/// The topic exchange every event goes to.
pub const EXCHANGE: &str = "nexus.events";

/// The content type of a message that carries one event: its envelope.
pub const EVENT_CONTENT_TYPE: &str = "application/json";

/// The content type of a message that carries several events of one routing key: a JSON
/// array of envelopes, each with its own id (consumers deduplicate by those). High-volume
/// producers (url-shortener's `url.accessed`) send their events this way, so the broker
/// and the outbox handle one message per batch, not one per event.
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.nexus.event-batch+json";

/// Routing keys (`<aggregate>.<event>`), which are also the envelope's `type`.
pub mod keys {
    pub const TENANT_CREATED: &str = "tenant.created";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_UPDATED: &str = "user.updated";
    pub const USER_PERMISSION_CHANGED: &str = "user.permission_changed";
    pub const PROJECT_CREATED: &str = "project.created";
    pub const PROJECT_UPDATED: &str = "project.updated";
    pub const PROJECT_USER_ADDED: &str = "project.user_added";
    pub const PROJECT_USER_REMOVED: &str = "project.user_removed";
    pub const TASK_CREATED: &str = "task.created";
    pub const TASK_STATUS_CHANGED: &str = "task.status_changed";
    pub const TASK_ASSIGNED: &str = "task.assigned";
    pub const TASK_UPDATED: &str = "task.updated";
    pub const TASK_MOVED: &str = "task.moved";
    pub const TASK_DELETED: &str = "task.deleted";
    pub const TASK_COMMENT_ADDED: &str = "task.comment_added";
    pub const TASK_TIME_LOGGED: &str = "task.time_logged";
    pub const TASK_ATTACHMENT_ADDED: &str = "task.attachment_added";
    pub const URL_CREATED: &str = "url.created";
    pub const URL_ACCESSED: &str = "url.accessed";
    pub const URL_EXPIRED: &str = "url.expired";
}

/// `{ id, type, version, tenant_id, occurred_at, actor_id, data }`, as in the contract.
///
/// `data` is a JSON value as consumers read it; a producer of many events of one shape
/// may give its own `Serialize` type instead, which encodes the same without building a
/// `serde_json::Value` per event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<D = serde_json::Value> {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    pub tenant_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub data: D,
}

impl<D> Envelope<D> {
    /// A new event of `kind` (a routing key from [`keys`]) with a fresh UUIDv7 id.
    pub fn new(kind: &str, tenant_id: Uuid, actor_id: Option<Uuid>, data: D) -> Self {
        Self::with_id(Uuid::now_v7(), Utc::now(), kind, tenant_id, actor_id, data)
    }

    /// The same for an event that occurred at `occurred_at` (recorded later, in a batch);
    /// its UUIDv7 id is of that time too, so no clock is read per event.
    pub fn at(
        occurred_at: DateTime<Utc>,
        kind: &str,
        tenant_id: Uuid,
        actor_id: Option<Uuid>,
        data: D,
    ) -> Self {
        Self::with_id(
            uuid_v7_at(occurred_at),
            occurred_at,
            kind,
            tenant_id,
            actor_id,
            data,
        )
    }

    fn with_id(
        id: Uuid,
        occurred_at: DateTime<Utc>,
        kind: &str,
        tenant_id: Uuid,
        actor_id: Option<Uuid>,
        data: D,
    ) -> Self {
        Self {
            id,
            kind: kind.to_owned(),
            version: ENVELOPE_VERSION,
            tenant_id,
            occurred_at,
            actor_id,
            data,
        }
    }

    pub fn routing_key(&self) -> &str {
        &self.kind
    }
}

/// Most events one batch message may carry (producers send up to 1,000).
pub const MAX_BATCH: usize = 10_000;

/// Why a message body holds no events a consumer can read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unreadable {
    #[error("not an event envelope: {0}")]
    Envelope(String),
    #[error("a batch of {0} events (1 to {MAX_BATCH} allowed)")]
    Batch(usize),
}

/// The envelopes of a message body: one envelope, or a batch ([`BATCH_CONTENT_TYPE`], a
/// non-empty JSON array of envelopes).
pub fn envelopes(body: &[u8]) -> Result<Vec<Envelope>, Unreadable> {
    let unreadable = |err: serde_json::Error| Unreadable::Envelope(err.to_string());
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return Ok(vec![serde_json::from_slice(body).map_err(unreadable)?]);
    }
    let envelopes: Vec<Envelope> = serde_json::from_slice(body).map_err(unreadable)?;
    if envelopes.is_empty() || envelopes.len() > MAX_BATCH {
        return Err(Unreadable::Batch(envelopes.len()));
    }
    Ok(envelopes)
}
