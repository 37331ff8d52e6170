//! An event as notification-service reads it: an envelope of version 1.

use common::events::Envelope;
use common::events::consumer::Consumable;
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Event(pub Envelope);

impl Consumable for Event {
    fn parse_message(body: &[u8]) -> Result<Vec<Self>, String> {
        common::events::envelopes(body)
            .map_err(|why| why.to_string())?
            .into_iter()
            .map(|envelope| match envelope.version {
                1 => Ok(Self(envelope)),
                other => Err(format!("unsupported envelope version {other}")),
            })
            .collect()
    }

    fn envelope(&self) -> &Envelope {
        &self.0
    }
}

impl Event {
    pub fn kind(&self) -> &str {
        &self.0.kind
    }

    /// `data.<field>` as a UUID, when it is one.
    pub fn uuid(&self, field: &str) -> Option<Uuid> {
        self.0.data.get(field)?.as_str()?.parse().ok()
    }

    /// `data.<field>` as a list of UUIDs (what is not one is left out).
    pub fn uuids(&self, field: &str) -> Vec<Uuid> {
        self.0
            .data
            .get(field)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn flag(&self, field: &str) -> bool {
        self.0.data.get(field).and_then(Value::as_bool) == Some(true)
    }
}
