//! The consumer's sink: each batch of events is grouped by tenant, and each tenant's
//! events become notifications in one transaction on that tenant's database (through
//! `common::db::directory`). A redelivered event adds nothing (one notification per event
//! per receiver, a unique key). An unknown or deleted tenant's events are dropped (there is
//! no one to tell); while a tenant's database cannot be reached the batch is held and
//! retried, so a restart of PostgreSQL loses nothing; a suspended tenant, or one whose
//! writes keep failing, has its events dead-lettered after the consumer's attempts
//! (kept there for a replay), without holding up the others.

use std::collections::BTreeMap;
use std::sync::Arc;

use common::ApiError;
use common::db::directory::TenantDirectory;
use common::events::consumer::{Sink, Written};
use common::events::keys;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db;
use crate::db::notifications::Pending;
use crate::domain::event::Event;
use crate::domain::fanout::{self, TASK_EVENTS};
use crate::domain::notification::{Kind, NewNotification, TaskRef};
use crate::mailer::Mailer;

#[derive(Clone)]
pub struct Inbox {
    pub directory: Arc<TenantDirectory>,
    /// Told of each tenant whose batch queued mail (and of each tenant the first time
    /// this process writes to it, for mail left from before a restart).
    pub mailer: Arc<Mailer>,
    /// Seconds a new digest window stays open (`DIGEST_INTERVAL_SECS`).
    pub digest_secs: f64,
}

/// What one event did, before its notifications are stored.
enum Outcome {
    /// It changed who is told, or had no one to tell.
    Done,
    /// It tells someone: done if any of its notifications is new, else a redelivery.
    Tells(Uuid),
}

impl Sink for Inbox {
    type Event = Event;

    async fn write(&self, events: &[Event]) -> anyhow::Result<Written> {
        let mut tenants: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
        for (i, event) in events.iter().enumerate() {
            tenants.entry(event.0.tenant_id).or_default().push(i);
        }
        let mut written = Written::default();
        for (tenant, indexes) in tenants {
            let conn = match self.directory.connect(tenant).await {
                Ok(conn) => conn,
                Err(ApiError::NotFound(_)) => {
                    tracing::debug!(%tenant, "events of a tenant that is gone; dropped");
                    written.inserted += indexes.len();
                    continue;
                }
                // The database or tenant-resolver cannot be reached: hold the batch.
                Err(err @ ApiError::Unavailable { .. }) => {
                    anyhow::bail!("tenant {tenant}'s database: {err}")
                }
                // Suspended, or anything else that waiting will not mend: retried, then
                // dead-lettered (kept for a replay) without holding up other tenants.
                Err(err) => {
                    tracing::warn!(%tenant, error = %err, "a tenant's events cannot be written");
                    written.refused.extend(indexes);
                    continue;
                }
            };
            let outcome = async {
                let mut tx = conn.begin().await?;
                let mut outcomes = Vec::with_capacity(indexes.len());
                let mut pending = Vec::new();
                for &i in &indexes {
                    outcomes.push(apply(&mut tx, &events[i], &mut pending).await?);
                }
                // One statement for all the tenant's new notifications of this batch
                // (and the mails they queue).
                let stored =
                    db::notifications::insert_many(&mut tx, &pending, self.digest_secs).await?;
                tx.commit().await?;
                metrics::counter!("notifications_created_total")
                    .increment(stored.events.len() as u64);
                sqlx::Result::Ok((outcomes, stored))
            }
            .await;
            match outcome {
                Ok((outcomes, stored)) => {
                    self.mailer.touch(tenant, stored.mails > 0);
                    let mut told = stored.events;
                    told.sort_unstable();
                    for outcome in outcomes {
                        match outcome {
                            Outcome::Tells(event) if told.binary_search(&event).is_err() => {
                                written.duplicates += 1;
                            }
                            Outcome::Done | Outcome::Tells(_) => written.inserted += 1,
                        }
                    }
                }
                Err(err @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)) => {
                    anyhow::bail!("tenant {tenant}'s database: {err}")
                }
                Err(err) => {
                    tracing::warn!(%tenant, error = %err, "writing a tenant's notifications failed");
                    written.refused.extend(indexes);
                }
            }
        }
        Ok(written)
    }
}

/// Applies one event to its tenant's database; the notifications it gives are added to
/// `pending`, stored with the rest of the batch.
async fn apply(
    conn: &mut PgConnection,
    event: &Event,
    pending: &mut Vec<Pending>,
) -> sqlx::Result<Outcome> {
    let user = event.uuid("user_id");
    let project = event.uuid("project_id");
    match (event.kind(), user, project) {
        (keys::USER_UPDATED, Some(user), _) if event.flag("removed") => {
            db::exclusions::add(conn, user, Uuid::nil()).await?;
        }
        (keys::USER_CREATED, Some(user), _) => {
            db::exclusions::remove(conn, user, Uuid::nil()).await?;
        }
        (keys::PROJECT_USER_REMOVED, Some(user), Some(project)) => {
            db::exclusions::add(conn, user, project).await?;
        }
        (keys::PROJECT_USER_ADDED, Some(user), Some(project)) => {
            db::exclusions::remove(conn, user, project).await?;
            return invite(conn, event, user, project, pending).await;
        }
        (kind, _, _) if TASK_EVENTS.contains(&kind) => return tell(conn, event, pending).await,
        _ => {}
    }
    Ok(Outcome::Done)
}

/// The notifications a task event gives, less those of members removed from the tenant
/// or the project and of kinds kept out of a member's inbox.
async fn tell(
    conn: &mut PgConnection,
    event: &Event,
    pending: &mut Vec<Pending>,
) -> sqlx::Result<Outcome> {
    let Some(task_id) = event.uuid("task_id") else {
        return Ok(Outcome::Done);
    };
    let column = (event.kind() == keys::TASK_STATUS_CHANGED)
        .then(|| event.uuid("to"))
        .flatten();
    let Some((project_id, facts)) =
        db::tasks::facts(conn, task_id, column, event.uuid("comment_id")).await?
    else {
        // Deleted since: nothing to tell about.
        return Ok(Outcome::Done);
    };
    let notices = fanout::notices(event, &facts);
    if notices.is_empty() {
        return Ok(Outcome::Done);
    }
    let recipients: Vec<Uuid> = notices.iter().map(|n| n.recipient).collect();
    let left_out = db::exclusions::left_out(conn, &recipients, project_id).await?;
    let told: Vec<NewNotification> = notices
        .into_iter()
        .filter(|n| {
            !left_out.iter().any(|(user, kind)| {
                *user == n.recipient && kind.as_deref().is_none_or(|k| k == n.kind.as_str())
            })
        })
        .collect();
    if told.is_empty() {
        return Ok(Outcome::Done);
    }
    let task = TaskRef {
        id: task_id,
        key: facts.key,
        title: facts.title,
    };
    pending.extend(told.into_iter().map(|notice| Pending {
        event_id: event.0.id,
        occurred_at: event.0.occurred_at,
        actor_id: event.0.actor_id,
        project_id,
        task: Some(task.clone()),
        notice,
    }));
    Ok(Outcome::Tells(event.0.id))
}

/// `invited`: a member added to a project by someone else is told, unless they chose
/// to keep the kind out of their inbox.
async fn invite(
    conn: &mut PgConnection,
    event: &Event,
    user: Uuid,
    project: Uuid,
    pending: &mut Vec<Pending>,
) -> sqlx::Result<Outcome> {
    if event.0.actor_id == Some(user) {
        return Ok(Outcome::Done);
    }
    let Some((name, key)) = db::tasks::project(conn, project).await? else {
        return Ok(Outcome::Done);
    };
    let left_out = db::exclusions::left_out(conn, &[user], project).await?;
    if left_out
        .iter()
        .any(|(_, kind)| kind.as_deref().is_none_or(|k| k == Kind::Invited.as_str()))
    {
        return Ok(Outcome::Done);
    }
    pending.push(Pending {
        event_id: event.0.id,
        occurred_at: event.0.occurred_at,
        actor_id: event.0.actor_id,
        project_id: project,
        task: None,
        notice: NewNotification {
            recipient: user,
            kind: Kind::Invited,
            title: format!("You were added to {name} ({key})"),
            body: String::new(),
        },
    });
    Ok(Outcome::Tells(event.0.id))
}
