//! The activity log: every change to a project, who made it, and the fields before and
//! after.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// One change to record, in the change's transaction ([`crate::tenant::TenantTx::record`]
/// adds the actor).
#[derive(Debug)]
pub struct Change<'a> {
    pub project: Uuid,
    /// The task changed, if the change is to one that still exists afterwards.
    pub task: Option<Uuid>,
    /// What happened, e.g. `task.moved`.
    pub action: &'a str,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl<'a> Change<'a> {
    /// A change to the project itself (or to something of it that is gone afterwards).
    pub fn project(project: Uuid, action: &'a str) -> Self {
        Self {
            project,
            task: None,
            action,
            before: None,
            after: None,
        }
    }

    /// A change to one of the project's tasks.
    pub fn task(project: Uuid, task: Uuid, action: &'a str) -> Self {
        Self {
            task: Some(task),
            ..Self::project(project, action)
        }
    }

    /// What it was before.
    #[must_use]
    pub fn before(self, value: impl Serialize) -> Self {
        Self {
            before: Some(json!(value)),
            ..self
        }
    }

    /// What it is after.
    #[must_use]
    pub fn after(self, value: impl Serialize) -> Self {
        Self {
            after: Some(json!(value)),
            ..self
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Activity {
    pub id: Uuid,
    pub task_id: Option<Uuid>,
    pub actor_id: Uuid,
    pub action: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ActivityFilter {
    /// Only this task's changes.
    pub task_id: Option<Uuid>,
    pub limit: Option<i64>,
    pub cursor: Option<Uuid>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityPage {
    pub items: Vec<Activity>,
    pub next_cursor: Option<Uuid>,
}
