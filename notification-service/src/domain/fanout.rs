//! Who is told of an event, and what: the subscribers of a task are its reporter, its
//! assignee, everyone who commented on it and its explicit watchers (an explicit
//! unwatch silences any of them); the actor is never told of their own change; a
//! mentioned member gets `mentioned` instead of the general `comment_added`; a new
//! assignee is told even when not subscribed.

use std::collections::BTreeSet;

use common::events::keys;
use uuid::Uuid;

use super::event::Event;
use super::notification::{Kind, NewNotification};

/// What the tenant's database says about the task an event is about.
#[derive(Debug, Clone, Default)]
pub struct TaskFacts {
    pub key: String,
    pub title: String,
    pub reporter: Option<Uuid>,
    pub assignee: Option<Uuid>,
    pub commenters: Vec<Uuid>,
    /// Explicit watches: `(user, watching)`.
    pub watches: Vec<(Uuid, bool)>,
    /// The column a status change moved the task into.
    pub column: Option<String>,
    /// The start of the comment a `task.comment_added` is about.
    pub comment: Option<String>,
}

impl TaskFacts {
    /// The task's subscribers.
    pub fn subscribers(&self) -> BTreeSet<Uuid> {
        let mut people: BTreeSet<Uuid> = self
            .reporter
            .into_iter()
            .chain(self.assignee)
            .chain(self.commenters.iter().copied())
            .collect();
        for &(user, watching) in &self.watches {
            if watching {
                people.insert(user);
            } else {
                people.remove(&user);
            }
        }
        people
    }
}

/// Who is not told what: members removed from the tenant (scope nil) or from a project,
/// and the kinds members keep out of their inbox.
#[derive(Debug, Clone, Default)]
pub struct LeftOut {
    /// `(user, scope)`: the project they were removed from, or nil for the tenant.
    pub removed: Vec<(Uuid, Uuid)>,
    /// `(user, kind)`: a kind they keep out of their inbox.
    pub hidden: Vec<(Uuid, String)>,
}

impl LeftOut {
    /// Whether `user` is told a notice of `kind` about `project`.
    pub fn keeps(&self, user: Uuid, project: Uuid, kind: Kind) -> bool {
        let removed = self
            .removed
            .iter()
            .any(|&(u, scope)| u == user && (scope.is_nil() || scope == project));
        let hidden = self
            .hidden
            .iter()
            .any(|(u, k)| *u == user && k == kind.as_str());
        !removed && !hidden
    }
}

/// The event kinds that make notifications (each about one task).
pub const TASK_EVENTS: [&str; 4] = [
    keys::TASK_CREATED,
    keys::TASK_ASSIGNED,
    keys::TASK_STATUS_CHANGED,
    keys::TASK_COMMENT_ADDED,
];

/// The notifications `event` gives, before removed members are left out.
pub fn notices(event: &Event, task: &TaskFacts) -> Vec<NewNotification> {
    let actor = event.0.actor_id;
    let not_actor = |user: &Uuid| Some(*user) != actor;
    let notice = |recipient: Uuid, kind: Kind, title: String, body: &str| NewNotification {
        recipient,
        kind,
        title,
        body: body.to_owned(),
    };
    let key = &task.key;
    match event.kind() {
        keys::TASK_CREATED | keys::TASK_ASSIGNED => {
            let assignee = if event.kind() == keys::TASK_CREATED {
                event.uuid("assignee_id")
            } else {
                event.uuid("to")
            };
            assignee
                .filter(not_actor)
                .map(|user| {
                    notice(
                        user,
                        Kind::TaskAssigned,
                        format!("{key} was assigned to you"),
                        &task.title,
                    )
                })
                .into_iter()
                .collect()
        }
        keys::TASK_STATUS_CHANGED => {
            let column = task.column.as_deref().unwrap_or("another column");
            task.subscribers()
                .into_iter()
                .filter(not_actor)
                .map(|user| {
                    notice(
                        user,
                        Kind::TaskStatusChanged,
                        format!("{key} moved to {column}"),
                        &task.title,
                    )
                })
                .collect()
        }
        keys::TASK_COMMENT_ADDED => {
            let text = task.comment.as_deref().unwrap_or_default();
            let mentioned: BTreeSet<Uuid> = event
                .uuids("mentions")
                .into_iter()
                .filter(not_actor)
                .collect();
            let mentions = mentioned.iter().map(|&user| {
                notice(
                    user,
                    Kind::Mentioned,
                    format!("You were mentioned on {key}"),
                    text,
                )
            });
            let others = task
                .subscribers()
                .into_iter()
                .filter(|user| not_actor(user) && !mentioned.contains(user))
                .map(|user| {
                    notice(
                        user,
                        Kind::CommentAdded,
                        format!("New comment on {key}"),
                        text,
                    )
                });
            mentions.chain(others).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use common::events::Envelope;
    use serde_json::json;

    use super::*;

    fn event(kind: &str, actor: Uuid, data: serde_json::Value) -> Event {
        Event(Envelope::new(kind, Uuid::now_v7(), Some(actor), data))
    }

    fn people(n: usize) -> Vec<Uuid> {
        (0..n).map(|_| Uuid::now_v7()).collect()
    }

    fn told(notices: &[NewNotification]) -> Vec<(Uuid, Kind)> {
        let mut told: Vec<_> = notices.iter().map(|n| (n.recipient, n.kind)).collect();
        told.sort();
        told
    }

    #[test]
    fn an_assignment_tells_the_new_assignee_only_and_never_the_actor() {
        let [a, b] = people(2).try_into().unwrap();
        let task = TaskFacts {
            key: "WEB-1".into(),
            reporter: Some(a),
            ..TaskFacts::default()
        };
        let to_b = event(keys::TASK_ASSIGNED, a, json!({"to": b}));
        assert_eq!(told(&notices(&to_b, &task)), [(b, Kind::TaskAssigned)]);
        let to_self = event(keys::TASK_ASSIGNED, a, json!({"to": a}));
        assert!(notices(&to_self, &task).is_empty());
        let unassigned = event(keys::TASK_ASSIGNED, a, json!({"to": null}));
        assert!(notices(&unassigned, &task).is_empty());
        let created = event(keys::TASK_CREATED, a, json!({"assignee_id": b}));
        assert_eq!(told(&notices(&created, &task)), [(b, Kind::TaskAssigned)]);
    }

    #[test]
    fn a_mention_replaces_the_general_notice_and_watches_count() {
        let [reporter, assignee, commenter, watcher, mentioned, unwatcher] =
            people(6).try_into().unwrap();
        let task = TaskFacts {
            key: "WEB-2".into(),
            reporter: Some(reporter),
            assignee: Some(assignee),
            commenters: vec![commenter, unwatcher],
            watches: vec![(watcher, true), (unwatcher, false)],
            ..TaskFacts::default()
        };
        let comment = event(
            keys::TASK_COMMENT_ADDED,
            commenter,
            json!({"mentions": [mentioned, assignee, commenter]}),
        );
        let mut expected = vec![
            (mentioned, Kind::Mentioned),
            (assignee, Kind::Mentioned),
            (reporter, Kind::CommentAdded),
            (watcher, Kind::CommentAdded),
        ];
        expected.sort();
        assert_eq!(told(&notices(&comment, &task)), expected);
    }

    #[test]
    fn removed_members_and_hidden_kinds_are_left_out_where_they_apply() {
        let [gone, moved, quiet, told] = people(4).try_into().unwrap();
        let [here, elsewhere] = people(2).try_into().unwrap();
        let left = LeftOut {
            removed: vec![(gone, Uuid::nil()), (moved, elsewhere)],
            hidden: vec![(quiet, "comment_added".into())],
        };
        assert!(!left.keeps(gone, here, Kind::TaskAssigned));
        assert!(left.keeps(moved, here, Kind::TaskAssigned));
        assert!(!left.keeps(moved, elsewhere, Kind::TaskAssigned));
        assert!(!left.keeps(quiet, here, Kind::CommentAdded));
        assert!(left.keeps(quiet, here, Kind::Mentioned));
        assert!(left.keeps(told, here, Kind::CommentAdded));
    }

    #[test]
    fn a_status_change_tells_every_subscriber_but_the_actor() {
        let [reporter, assignee, watcher] = people(3).try_into().unwrap();
        let task = TaskFacts {
            key: "WEB-3".into(),
            reporter: Some(reporter),
            assignee: Some(assignee),
            watches: vec![(watcher, true)],
            column: Some("Done".into()),
            ..TaskFacts::default()
        };
        let moved = event(keys::TASK_STATUS_CHANGED, assignee, json!({}));
        let all = notices(&moved, &task);
        let mut expected = vec![
            (reporter, Kind::TaskStatusChanged),
            (watcher, Kind::TaskStatusChanged),
        ];
        expected.sort();
        assert_eq!(told(&all), expected);
        assert_eq!(all[0].title, "WEB-3 moved to Done");
    }
}
