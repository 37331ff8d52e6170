//! Outgoing webhooks as the Standard Webhooks specification has them
//! (<https://www.standardwebhooks.com>): the event types an endpoint may ask for, its
//! secret and the signature of each message, the body in either format, and when a
//! failed delivery is tried again.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use common::FieldError;
use common::events::keys;
use common::extract::{FieldErrors, Validate};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use utoipa::ToSchema;
use uuid::Uuid;

/// The event types an endpoint can receive (what notification-service consumes).
pub const EVENT_TYPES: [&str; 14] = [
    keys::USER_CREATED,
    keys::USER_UPDATED,
    keys::PROJECT_CREATED,
    keys::PROJECT_UPDATED,
    keys::PROJECT_USER_ADDED,
    keys::PROJECT_USER_REMOVED,
    keys::TASK_CREATED,
    keys::TASK_STATUS_CHANGED,
    keys::TASK_ASSIGNED,
    keys::TASK_UPDATED,
    keys::TASK_MOVED,
    keys::TASK_DELETED,
    keys::TASK_COMMENT_ADDED,
    keys::TASK_TIME_LOGGED,
];

/// The message `POST /api/v1/webhooks/{id}/test` sends, whatever the endpoint asked for.
pub const PING: &str = "ping";

/// The prefix of every secret, as the specification writes them.
pub const SECRET_PREFIX: &str = "whsec_";

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// The waits between attempts: the first attempt is at once, then one after each of
/// these (8 attempts in all); scaled by `WEBHOOK_RETRY_SCALE`.
pub const SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The longest `Retry-After` honoured (a longer one waits this long).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10 * 3600);

/// What the receiver gets: Standard Webhooks' `{type, timestamp, data}`, or a Slack
/// incoming webhook's `{text, blocks}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Standard,
    Slack,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Slack => "slack",
        }
    }

    pub fn parse(text: &str) -> Self {
        if text == "slack" {
            Self::Slack
        } else {
            Self::Standard
        }
    }
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// `http` or `https`; its host must not be, or resolve to, a private address.
    pub url: String,
    /// Event types (`task.moved`) or patterns (`task.*`, `*`).
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub format: Format,
}

/// Changes to an endpoint; what is left out stays. `enabled: true` turns a disabled
/// endpoint back on (its failing streak forgotten).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub format: Option<Format>,
    pub enabled: Option<bool>,
}

const MAX_URL: usize = 2048;
const MAX_EVENTS: usize = 50;
const MAX_DESCRIPTION: usize = 500;

fn check_events(errors: &mut FieldErrors, events: &[String]) {
    errors.check(!events.is_empty(), "events", "name at least one event type");
    errors.check(
        events.len() <= MAX_EVENTS,
        "events",
        "at most 50 event types",
    );
    for (i, pattern) in events.iter().enumerate() {
        if !EVENT_TYPES.iter().any(|t| matches(pattern, t)) {
            errors.push(
                &format!("events[{i}]"),
                format!(
                    "`{pattern}` matches no event type (types: {}; a pattern ends in `.*`, or is `*`)",
                    EVENT_TYPES.join(", ")
                ),
            );
        }
    }
}

impl Validate for NewEndpoint {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors.check(self.url.len() <= MAX_URL, "url", "at most 2048 characters");
        errors.check(
            self.description.chars().count() <= MAX_DESCRIPTION,
            "description",
            "at most 500 characters",
        );
        check_events(&mut errors, &self.events);
        errors.finish()
    }
}

impl Validate for EndpointChange {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        if let Some(url) = &self.url {
            errors.check(url.len() <= MAX_URL, "url", "at most 2048 characters");
        }
        if let Some(description) = &self.description {
            errors.check(
                description.chars().count() <= MAX_DESCRIPTION,
                "description",
                "at most 500 characters",
            );
        }
        if let Some(events) = &self.events {
            check_events(&mut errors, events);
        }
        errors.finish()
    }
}

/// Whether `pattern` (`task.moved`, `task.*`, `*`) takes events of type `kind`.
pub fn matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) if prefix.ends_with('.') => kind.starts_with(prefix),
        Some(_) => false,
        None => pattern == kind,
    }
}

/// A fresh secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::thread_rng().r#gen();
    format!("{SECRET_PREFIX}{}", BASE64.encode(bytes))
}

/// The `webhook-id` of a delivery: the same on every attempt.
pub fn message_id(delivery: Uuid) -> String {
    format!("msg_{}", delivery.simple())
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under `secret` (the bytes its
/// base64 after `whsec_` encodes).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = BASE64
        .decode(key)
        .unwrap_or_else(|_| key.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per secret that signs, space-separated.
pub fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The body of an event of `kind` for an endpoint of `format`.
pub fn body(
    format: Format,
    kind: &str,
    occurred_at: DateTime<Utc>,
    actor: Option<Uuid>,
    data: &Value,
) -> String {
    let mut data = data.clone();
    if let (Some(object), Some(actor)) = (data.as_object_mut(), actor) {
        object
            .entry("actor_id")
            .or_insert_with(|| Value::String(actor.to_string()));
    }
    let value = match format {
        Format::Standard => json!({
            "type": kind,
            "timestamp": occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": data,
        }),
        Format::Slack => {
            let text = slack_text(kind, &data);
            json!({
                "text": text,
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                    {"type": "context", "elements": [{"type": "mrkdwn",
                        "text": format!("`{kind}` at {}", occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true))}]}
                ],
            })
        }
    };
    value.to_string()
}

/// One line saying what happened, for Slack.
fn slack_text(kind: &str, data: &Value) -> String {
    let field = |name: &str| data.get(name).and_then(Value::as_str).unwrap_or("");
    let task = match (field("key"), field("title")) {
        ("", "") => field("task_id").to_owned(),
        (key, "") => key.to_owned(),
        ("", title) => format!("“{title}”"),
        (key, title) => format!("{key} “{title}”"),
    };
    match kind {
        PING => "Nexus: a test message from your webhook.".to_owned(),
        keys::TASK_CREATED => format!("Task created: {task}"),
        keys::TASK_ASSIGNED => format!("Task assigned: {task}"),
        keys::TASK_STATUS_CHANGED => format!("Task status changed: {task}"),
        keys::TASK_MOVED => format!("Task moved: {task}"),
        keys::TASK_UPDATED => format!("Task updated: {task}"),
        keys::TASK_DELETED => format!("Task deleted: {task}"),
        keys::TASK_COMMENT_ADDED => format!("New comment on {task}"),
        other => format!("Nexus: {other}"),
    }
}

/// What an attempt's answer (its status, none when there was no answer) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx.
    Delivered,
    /// 410: the receiver is gone for good; the endpoint is disabled.
    Gone,
    /// Anything else (3xx too: redirects are not followed).
    Failed,
}

pub fn verdict(status: Option<u16>) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        Some(410) => Verdict::Gone,
        _ => Verdict::Failed,
    }
}

/// When a delivery that failed its `attempt`-th try (1 for the first) is tried again:
/// the schedule's wait scaled by `scale`, with ±10 % jitter, or the receiver's
/// `Retry-After` (honoured on 429 and 503) when it is longer; none when that was the
/// last attempt.
pub fn next_wait(
    attempt: i32,
    scale: f64,
    status: Option<u16>,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
    let base = SCHEDULE.get(index)?.mul_f64(scale.max(0.0));
    let jitter = rand::thread_rng().gen_range(0.9..=1.1);
    let wait = base.mul_f64(jitter);
    Some(match (status, retry_after) {
        (Some(429 | 503), Some(after)) => wait.max(after.min(MAX_RETRY_AFTER)),
        _ => wait,
    })
}

/// A `Retry-After` value: delta-seconds, or an HTTP date (its distance from `now`).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_take_their_types() {
        assert!(matches("task.*", "task.moved"));
        assert!(matches("*", "user.created"));
        assert!(matches("task.moved", "task.moved"));
        assert!(!matches("task.*", "project.created"));
        assert!(!matches("task.mov*", "task.moved"));
        assert!(!matches("task.moved", "task.moved_again"));
        let bad = NewEndpoint {
            url: "https://example.com".into(),
            events: vec!["task.*".into(), "tsak.*".into(), "url.created".into()],
            description: String::new(),
            format: Format::Standard,
        }
        .validate()
        .expect_err("refused");
        let fields: Vec<&str> = bad.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["events[1]", "events[2]"]);
    }

    /// The example of the specification's reference libraries.
    #[test]
    fn the_signature_is_the_specifications() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let (old, new) = (new_secret(), new_secret());
        assert!(new.starts_with(SECRET_PREFIX) && new.len() > 40);
        let header = signature_header(&[&new, &old], "msg_1", 10, "{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [sign(&new, "msg_1", 10, "{}"), sign(&old, "msg_1", 10, "{}")]
        );
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn waits_follow_the_schedule_and_honour_retry_after() {
        let wait = next_wait(1, 1.0, Some(500), None).expect("a retry");
        assert!(wait >= Duration::from_millis(4500) && wait <= Duration::from_millis(5500));
        let wait = next_wait(3, 0.001, None, None).expect("a retry");
        assert!(wait >= Duration::from_millis(1620) && wait <= Duration::from_millis(1980));
        assert_eq!(
            next_wait(8, 1.0, Some(500), None),
            None,
            "8 attempts in all"
        );
        let after = Some(Duration::from_secs(2));
        let wait = next_wait(1, 0.001, Some(429), after).expect("a retry");
        assert_eq!(wait, Duration::from_secs(2));
        let wait = next_wait(1, 0.001, Some(500), after).expect("a retry");
        assert!(wait < Duration::from_millis(10), "only 429 and 503");
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Mon, 07 Dec 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn answers_are_judged_by_status() {
        assert_eq!(verdict(Some(204)), Verdict::Delivered);
        assert_eq!(verdict(Some(302)), Verdict::Failed);
        assert_eq!(verdict(Some(410)), Verdict::Gone);
        assert_eq!(verdict(None), Verdict::Failed);
    }

    #[test]
    fn bodies_in_both_formats() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let data = json!({"task_id": "t1", "key": "WEB-1", "title": "Ship"});
        let standard: Value =
            serde_json::from_str(&body(Format::Standard, "task.moved", at, None, &data)).unwrap();
        assert_eq!(standard["type"], "task.moved");
        assert_eq!(standard["timestamp"], "2026-12-07T10:00:00.000Z");
        assert_eq!(standard["data"]["key"], "WEB-1");
        let slack: Value =
            serde_json::from_str(&body(Format::Slack, "task.moved", at, None, &data)).unwrap();
        assert_eq!(slack["text"], "Task moved: WEB-1 “Ship”");
        assert_eq!(slack["blocks"][0]["text"]["text"], slack["text"]);
    }
}
