//! The live stream's events and who sees which (`docs/DESIGN.md`, Live stream).
//!
//! A stream event is a project's event (every reader of the project sees it) or a
//! member's own `notification.created`. Its `seq` in the tenant's window is its SSE
//! `id:`, its routing key the `event:`, and `data:` the envelope's data with `project_id`.

use std::collections::HashSet;

use axum::response::sse;
use common::auth::access::{MEMBERS, may_read_project};
use common::auth::{Perm, Role};
use common::events::keys;
use common::grant::SharedTarget;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The `event:` of a member's new notification.
pub const NOTIFICATION_CREATED: &str = "notification.created";
/// The `event:` that tells a client its `Last-Event-ID` is older than the window: it
/// reloads what it shows and listens from now on.
pub const RESET: &str = "reset";

/// The project events a stream carries.
pub const PROJECT_EVENTS: [&str; 7] = [
    keys::TASK_CREATED,
    keys::TASK_UPDATED,
    keys::TASK_MOVED,
    keys::TASK_STATUS_CHANGED,
    keys::TASK_ASSIGNED,
    keys::TASK_DELETED,
    keys::TASK_COMMENT_ADDED,
];

/// The events that may change who reads which project.
pub const ACCESS_EVENTS: [&str; 4] = [
    keys::PROJECT_CREATED,
    keys::PROJECT_UPDATED,
    keys::PROJECT_USER_ADDED,
    keys::PROJECT_USER_REMOVED,
];

/// A row of the window to append.
#[derive(Debug, Clone)]
pub struct NewStreamEvent {
    pub event_id: Uuid,
    /// Nil for a project's event.
    pub recipient: Uuid,
    pub kind: String,
    pub project_id: Uuid,
    pub task_id: Option<Uuid>,
    pub data: String,
}

/// A row of the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEvent {
    pub seq: i64,
    pub recipient_id: Uuid,
    pub kind: String,
    pub project_id: Uuid,
    pub task_id: Option<Uuid>,
    pub data: String,
}

impl StreamEvent {
    /// The SSE frame.
    pub fn frame(&self) -> sse::Event {
        sse::Event::default()
            .id(self.seq.to_string())
            .event(&self.kind)
            .data(&self.data)
    }

    /// The frame a share page gets: which task changed and how, nothing of its content
    /// (the page reads it again through its grant).
    pub fn shared_frame(&self) -> sse::Event {
        let data = serde_json::json!({"task_id": self.task_id, "project_id": self.project_id});
        sse::Event::default()
            .id(self.seq.to_string())
            .event(&self.kind)
            .data(data.to_string())
    }
}

/// What one batch of the consumer tells the streams of a tenant, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Item {
    Event(StreamEvent),
    /// Who reads which project may have changed.
    Access,
    /// A member left the tenant: their streams end.
    Removed {
        user: Uuid,
    },
}

/// One tenant's items of one consumer batch, as published on the fanout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    pub tenant: Uuid,
    pub items: Vec<Item>,
}

/// Whom a stream is for.
#[derive(Debug, Clone)]
pub enum Audience {
    /// A member with a role; `closed`: the projects they may not read.
    Member {
        user: Uuid,
        role: Role,
        closed: HashSet<Uuid>,
    },
    /// A share page: the one task (or project) its grant names.
    Share(SharedTarget),
}

impl Audience {
    /// Whether the member's role reads closed projects anyway (they need no list).
    pub fn sees_every_project(role: Role) -> bool {
        may_read_project(|p| role.permissions().contains(&p), MEMBERS, false)
    }

    /// Whether this audience gets `event`.
    pub fn sees(&self, event: &StreamEvent) -> bool {
        match self {
            Self::Member { user, role, closed } => {
                if !event.recipient_id.is_nil() {
                    return event.recipient_id == *user;
                }
                role.permissions().contains(&Perm::TasksRead) && !closed.contains(&event.project_id)
            }
            Self::Share(target) => {
                event.recipient_id.is_nil()
                    && match target {
                        SharedTarget::Task(task) => event.task_id == Some(*task),
                        SharedTarget::Project(project) => event.project_id == *project,
                    }
            }
        }
    }

    pub fn frame(&self, event: &StreamEvent) -> sse::Event {
        match self {
            Self::Member { .. } => event.frame(),
            Self::Share(_) => event.shared_frame(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(project: Uuid, task: Option<Uuid>, recipient: Uuid) -> StreamEvent {
        StreamEvent {
            seq: 1,
            recipient_id: recipient,
            kind: keys::TASK_MOVED.into(),
            project_id: project,
            task_id: task,
            data: "{}".into(),
        }
    }

    #[test]
    fn members_see_readable_projects_and_their_own_notifications_only() {
        let (ann, bob, open, closed, task) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let member = Audience::Member {
            user: ann,
            role: Role::Member,
            closed: HashSet::from([closed]),
        };
        assert!(member.sees(&event(open, Some(task), Uuid::nil())));
        assert!(!member.sees(&event(closed, Some(task), Uuid::nil())));
        assert!(member.sees(&event(open, None, ann)), "her notification");
        assert!(!member.sees(&event(open, None, bob)), "his notification");
        assert!(Audience::sees_every_project(Role::Manager));
        assert!(!Audience::sees_every_project(Role::Member));
    }

    #[test]
    fn a_share_page_sees_its_task_alone_and_no_notification() {
        let (project, task, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let share = Audience::Share(SharedTarget::Task(task));
        assert!(share.sees(&event(project, Some(task), Uuid::nil())));
        assert!(!share.sees(&event(project, Some(other), Uuid::nil())));
        assert!(!share.sees(&event(project, Some(task), Uuid::now_v7())));
    }
}
