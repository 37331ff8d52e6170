//! A notification as the inbox shows it, and the kinds there are.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// What a notification is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A task was assigned to the receiver.
    TaskAssigned,
    /// A task the receiver follows moved to another column.
    TaskStatusChanged,
    /// Someone commented on a task the receiver follows.
    CommentAdded,
    /// A comment mentions the receiver (instead of `comment_added`).
    Mentioned,
    /// The receiver was added to a project.
    Invited,
    /// A webhook endpoint was turned off (told to those who manage webhooks).
    WebhookDisabled,
}

impl Kind {
    pub const ALL: [Self; 6] = [
        Self::TaskAssigned,
        Self::TaskStatusChanged,
        Self::CommentAdded,
        Self::Mentioned,
        Self::Invited,
        Self::WebhookDisabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskAssigned => "task_assigned",
            Self::TaskStatusChanged => "task_status_changed",
            Self::CommentAdded => "comment_added",
            Self::Mentioned => "mentioned",
            Self::Invited => "invited",
            Self::WebhookDisabled => "webhook_disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// The task a notification is about, as it was when the notification was made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskRef {
    pub id: Uuid,
    /// `WEB-42`.
    pub key: String,
    pub title: String,
}

/// One notification of the caller's inbox.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Notification {
    pub id: Uuid,
    #[schema(value_type = String)]
    pub kind: String,
    pub title: String,
    pub body: String,
    pub task: Option<TaskRef>,
    pub project_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
    /// Hidden from the inbox until then.
    pub snoozed_until: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
}

/// A notification about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub recipient: Uuid,
    pub kind: Kind,
    pub title: String,
    pub body: String,
}
