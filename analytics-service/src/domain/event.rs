//! An event as analytics-service accepts it: a parsed envelope whose `data` has the fields
//! the counters and reports read, checked once at the edge so nothing later has to.

use chrono::{DateTime, NaiveDate, Utc};
use common::events::{Envelope, MAX_BATCH, Unreadable, keys};
use serde_json::Value;
use uuid::Uuid;

/// Why a message was refused (it goes to the dead-letter queue; retrying cannot help).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Invalid {
    #[error("not an event envelope: {0}")]
    Envelope(String),
    #[error("a batch of {0} events (1 to {MAX_BATCH} allowed)")]
    Batch(usize),
    #[error("unsupported envelope version {0}")]
    Version(u32),
    #[error("event type {0:?} is not `<aggregate>.<event>`")]
    Kind(String),
    #[error("{kind}: data.{field} {problem}")]
    Data {
        kind: String,
        field: &'static str,
        problem: &'static str,
    },
}

/// A metric kept per tenant and day in `counters` (and recomputed in `rollups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    TasksCreated,
    TasksCompleted,
    LinkClicks,
    MinutesLogged,
}

impl Metric {
    pub const ALL: [Self; 4] = [
        Self::TasksCreated,
        Self::TasksCompleted,
        Self::LinkClicks,
        Self::MinutesLogged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TasksCreated => "tasks_created",
            Self::TasksCompleted => "tasks_completed",
            Self::LinkClicks => "link_clicks",
            Self::MinutesLogged => "minutes_logged",
        }
    }
}

/// A valid event and the UTC day it counts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub envelope: Envelope,
    pub day: NaiveDate,
}

impl common::events::consumer::Consumable for Event {
    fn parse_message(body: &[u8]) -> Result<Vec<Self>, String> {
        Self::parse_message(body).map_err(|why| why.to_string())
    }

    fn envelope(&self) -> &Envelope {
        &self.envelope
    }
}

impl Event {
    /// Parses and checks a message: one envelope, or a batch (a JSON array of envelopes,
    /// `BATCH_CONTENT_TYPE`), all of whose events must be valid.
    pub fn parse_message(body: &[u8]) -> Result<Vec<Self>, Invalid> {
        common::events::envelopes(body)
            .map_err(|why| match why {
                Unreadable::Envelope(why) => Invalid::Envelope(why),
                Unreadable::Batch(n) => Invalid::Batch(n),
            })?
            .into_iter()
            .map(Self::check)
            .collect()
    }

    /// Parses and checks a message body holding one envelope.
    pub fn parse(body: &[u8]) -> Result<Self, Invalid> {
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|err| Invalid::Envelope(err.to_string()))?;
        Self::check(envelope)
    }

    fn check(envelope: Envelope) -> Result<Self, Invalid> {
        if envelope.version != 1 {
            return Err(Invalid::Version(envelope.version));
        }
        let kind_ok = envelope.kind.split_once('.').is_some_and(|(a, e)| {
            [a, e].iter().all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
            })
        });
        if !kind_ok || envelope.kind.len() > 64 {
            return Err(Invalid::Kind(envelope.kind));
        }
        check_data(&envelope.kind, &envelope.data)?;
        Ok(Self {
            day: envelope.occurred_at.date_naive(),
            envelope,
        })
    }

    pub fn tenant_id(&self) -> Uuid {
        self.envelope.tenant_id
    }

    pub fn occurred_at(&self) -> DateTime<Utc> {
        self.envelope.occurred_at
    }

    /// What this event adds to the tenant's counters on its day when it is new (task
    /// completions are counted separately, once per task and day: see [`Self::completion`]).
    pub fn increment(&self) -> Option<(Metric, i64)> {
        match self.envelope.kind.as_str() {
            keys::TASK_CREATED => Some((Metric::TasksCreated, 1)),
            keys::URL_ACCESSED => Some((Metric::LinkClicks, 1)),
            keys::TASK_TIME_LOGGED => Some((Metric::MinutesLogged, self.minutes())),
            _ => None,
        }
    }

    /// The task this event completes: a `task.status_changed` into a done column from a
    /// column that is not done (moves between two done columns complete nothing).
    pub fn completion(&self) -> Option<Uuid> {
        (self.envelope.kind == keys::TASK_STATUS_CHANGED && completes(&self.envelope.data))
            .then(|| uuid_field(&self.envelope.data, "task_id"))
            .flatten()
    }

    fn minutes(&self) -> i64 {
        self.envelope.data["minutes"].as_i64().unwrap_or(0)
    }
}

/// `done` is true and `was_done` is not (older producers do not send `was_done`).
pub fn completes(data: &Value) -> bool {
    data["done"].as_bool() == Some(true) && data["was_done"].as_bool() != Some(true)
}

pub fn uuid_field(data: &Value, field: &str) -> Option<Uuid> {
    data[field].as_str().and_then(|s| Uuid::parse_str(s).ok())
}

/// The fields the reports rely on, per event type; other types are stored as they come.
fn check_data(kind: &str, data: &Value) -> Result<(), Invalid> {
    let fail = |field, problem| Invalid::Data {
        kind: kind.to_owned(),
        field,
        problem,
    };
    if !data.is_object() {
        return Err(fail("", "must be an object"));
    }
    let uuid = |field: &'static str| {
        uuid_field(data, field)
            .map(drop)
            .ok_or_else(|| fail(field, "must be a UUID"))
    };
    match kind {
        keys::TASK_CREATED | keys::TASK_ASSIGNED => {
            uuid("task_id")?;
            uuid("project_id")?;
        }
        keys::TASK_STATUS_CHANGED => {
            uuid("task_id")?;
            uuid("project_id")?;
            if !data["done"].is_boolean() {
                return Err(fail("done", "must be true or false"));
            }
        }
        keys::TASK_TIME_LOGGED => {
            uuid("task_id")?;
            match data["minutes"].as_i64() {
                Some(m) if (0..=24 * 60 * 366).contains(&m) => {}
                _ => return Err(fail("minutes", "must be a whole number of minutes")),
            }
        }
        keys::URL_ACCESSED | keys::URL_CREATED | keys::URL_EXPIRED => match data["code"].as_str() {
            Some(code) if !code.is_empty() && code.len() <= 64 => {}
            _ => return Err(fail("code", "must be a link code")),
        },
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(kind: &str, data: Value) -> Vec<u8> {
        serde_json::to_vec(&Envelope::new(kind, Uuid::now_v7(), None, data)).unwrap()
    }

    #[test]
    fn a_move_between_two_done_columns_completes_nothing() {
        let task = Uuid::now_v7();
        let data = json!({"task_id": task, "project_id": task, "from": task, "to": task,
                          "done": true, "was_done": true});
        let event = Event::parse(&body(keys::TASK_STATUS_CHANGED, data)).unwrap();
        assert_eq!(event.completion(), None);
    }

    #[test]
    fn a_move_into_a_done_column_completes_the_task() {
        let task = Uuid::now_v7();
        let data = json!({"task_id": task, "project_id": task, "done": true, "was_done": false});
        let event = Event::parse(&body(keys::TASK_STATUS_CHANGED, data)).unwrap();
        assert_eq!(event.completion(), Some(task));
    }

    #[test]
    fn events_without_the_fields_reports_read_are_refused() {
        assert!(matches!(
            Event::parse(&body(
                keys::TASK_TIME_LOGGED,
                json!({"task_id": Uuid::now_v7(), "minutes": "ten"})
            )),
            Err(Invalid::Data {
                field: "minutes",
                ..
            })
        ));
        assert!(matches!(
            Event::parse(&body(keys::URL_ACCESSED, json!({}))),
            Err(Invalid::Data { field: "code", .. })
        ));
        assert!(matches!(
            Event::parse(b"{not json"),
            Err(Invalid::Envelope(_))
        ));
        assert!(matches!(
            Event::parse(&body("Bad Kind", json!({}))),
            Err(Invalid::Kind(_))
        ));
    }

    #[test]
    fn a_batch_message_is_its_events_and_one_bad_event_refuses_it_whole() {
        let data = |code: &str| json!({"code": code});
        let events: Vec<Envelope> = ["a", "b", "c"]
            .map(|c| Envelope::new(keys::URL_ACCESSED, Uuid::now_v7(), None, data(c)))
            .into();
        let parsed = Event::parse_message(&serde_json::to_vec(&events).unwrap()).unwrap();
        let ids: Vec<Uuid> = parsed.iter().map(|e| e.envelope.id).collect();
        assert_eq!(ids, events.iter().map(|e| e.id).collect::<Vec<_>>());
        let one = Event::parse_message(&serde_json::to_vec(&events[0]).unwrap()).unwrap();
        assert_eq!(one.len(), 1);

        let mut bad = events;
        bad[1].data = json!({});
        assert!(matches!(
            Event::parse_message(&serde_json::to_vec(&bad).unwrap()),
            Err(Invalid::Data { field: "code", .. })
        ));
        assert_eq!(Event::parse_message(b" []"), Err(Invalid::Batch(0)));
        assert!(matches!(
            Event::parse_message(b"[{}]"),
            Err(Invalid::Envelope(_))
        ));
    }

    #[test]
    fn unknown_event_types_are_kept_as_they_come() {
        let event = Event::parse(&body("user.created", json!({"user_id": 1}))).unwrap();
        assert_eq!(event.increment(), None);
    }
}
