//! The consumer's sink: each batch of events is grouped by tenant, and each tenant's
//! events become notifications in one transaction on that tenant's database (through
//! `common::db::directory`); tenants are written side by side. A redelivered event adds
//! nothing (one notification per event per receiver, a unique key). An unknown or deleted
//! tenant's events are dropped (there is no one to tell); while a tenant's database cannot
//! be reached the batch is held and retried, so a restart of PostgreSQL loses nothing; a
//! suspended tenant, or one whose writes keep failing, has its events dead-lettered after
//! the consumer's attempts (kept there for a replay), without holding up the others.
//!
//! Within a tenant, the task events between two membership changes are one run: the
//! facts of all their tasks are read in one statement and who is left out in another,
//! and every notification of the batch is stored by one more; a membership change
//! (a removal, a return) is applied in its place between runs, so what follows it sees it.

use std::collections::BTreeMap;
use std::sync::Arc;

use common::ApiError;
use common::db::directory::TenantDirectory;
use common::events::consumer::{Sink, Written};
use common::events::keys;
use futures::StreamExt;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db;
use crate::db::notifications::Pending;
use crate::db::tasks::FactsQuery;
use crate::domain::event::Event;
use crate::domain::fanout::{self, TASK_EVENTS};
use crate::domain::notification::{Kind, NewNotification, TaskRef};
use crate::domain::stream::{Batch, Item};
use crate::live::{self, Hub};
use crate::mailer::Mailer;
use crate::webhooks::{self, Dispatcher};

/// Tenants of one batch written at the same time (each on its own connection).
const TENANTS_AT_ONCE: usize = 4;

#[derive(Clone)]
pub struct Inbox {
    pub directory: Arc<TenantDirectory>,
    /// Told of each tenant whose batch queued mail (and of each tenant the first time
    /// this process writes to it, for mail left from before a restart).
    pub mailer: Arc<Mailer>,
    /// Told of each tenant whose batch stored webhook deliveries (and of each tenant the
    /// first time, for deliveries left from before a restart).
    pub webhooks: Arc<Dispatcher>,
    /// Seconds a new digest window stays open (`DIGEST_INTERVAL_SECS`).
    pub digest_secs: f64,
    /// Told of what each tenant's batch appended to its live stream.
    pub hub: Arc<Hub>,
    /// Seconds the stream's window keeps an event (`STREAM_RETENTION_SECS`).
    pub retention_secs: f64,
}

/// What one event did, before its notifications are stored.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// It changed who is told, or had no one to tell.
    Done,
    /// It tells someone: done if any of its notifications is new, else a redelivery.
    Tells(Uuid),
}

/// What became of one tenant's events.
enum TenantResult {
    Written(Written),
    /// Its database cannot be reached: the whole batch is held.
    Hold(anyhow::Error),
}

impl Sink for Inbox {
    type Event = Event;

    async fn write(&self, events: &[Event]) -> anyhow::Result<Written> {
        let mut tenants: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
        for (i, event) in events.iter().enumerate() {
            tenants.entry(event.0.tenant_id).or_default().push(i);
        }
        let results: Vec<TenantResult> = futures::stream::iter(tenants)
            .map(|(tenant, indexes)| self.write_tenant(events, tenant, indexes))
            .buffer_unordered(TENANTS_AT_ONCE)
            .collect()
            .await;
        let mut written = Written::default();
        for result in results {
            match result {
                TenantResult::Written(w) => {
                    written.inserted += w.inserted;
                    written.duplicates += w.duplicates;
                    written.refused.extend(w.refused);
                }
                TenantResult::Hold(err) => return Err(err),
            }
        }
        Ok(written)
    }
}

impl Inbox {
    /// `tenant`'s events (`indexes` into `events`) in one transaction.
    async fn write_tenant(
        &self,
        events: &[Event],
        tenant: Uuid,
        indexes: Vec<usize>,
    ) -> TenantResult {
        let mut written = Written::default();
        let conn = match self.directory.connect(tenant).await {
            Ok(conn) => conn,
            Err(ApiError::NotFound(_)) => {
                tracing::debug!(%tenant, "events of a tenant that is gone; dropped");
                written.inserted += indexes.len();
                return TenantResult::Written(written);
            }
            // The database or tenant-resolver cannot be reached: hold the batch.
            Err(err @ ApiError::Unavailable { .. }) => {
                return TenantResult::Hold(anyhow::anyhow!("tenant {tenant}'s database: {err}"));
            }
            // Suspended, or anything else that waiting will not mend: retried, then
            // dead-lettered (kept for a replay) without holding up other tenants.
            Err(err) => {
                tracing::warn!(%tenant, error = %err, "a tenant's events cannot be written");
                written.refused.extend(indexes);
                return TenantResult::Written(written);
            }
        };
        let mine: Vec<&Event> = indexes.iter().map(|&i| &events[i]).collect();
        let outcome = async {
            let mut tx = conn.begin().await?;
            let mut outcomes = vec![Outcome::Done; mine.len()];
            let mut pending = Vec::new();
            let mut run: Vec<usize> = Vec::new();
            for (at, event) in mine.iter().enumerate() {
                if TASK_EVENTS.contains(&event.kind()) {
                    run.push(at);
                    continue;
                }
                tell(&mut tx, &mine, &run, &mut outcomes, &mut pending).await?;
                run.clear();
                outcomes[at] = apply(&mut tx, event, &mut pending).await?;
            }
            tell(&mut tx, &mine, &run, &mut outcomes, &mut pending).await?;
            // One statement for all the tenant's new notifications of this batch (and the
            // mails they queue).
            let stored =
                db::notifications::insert_many(&mut tx, &pending, self.digest_secs).await?;
            // The live stream's window: the batch's project events, each followed by the
            // notifications it gave.
            let (rows, mut items) = live::of_batch(&mine, &pending, &stored.notifications);
            let appended = db::stream::append(&mut tx, &rows).await?;
            // The webhook deliveries of the batch's events, stored before any attempt.
            let subscriptions = db::webhooks::subscriptions(&mut tx).await?;
            let deliveries = webhooks::deliveries(&mine, &subscriptions);
            let queued = db::webhooks::enqueue(&mut tx, &deliveries).await?;
            if self.hub.prune_due(tenant) {
                db::stream::prune(&mut tx, self.retention_secs).await?;
            }
            tx.commit().await?;
            metrics::counter!("notifications_created_total").increment(stored.events.len() as u64);
            items.extend(appended.into_iter().map(Item::Event));
            sqlx::Result::Ok((outcomes, stored, items, queued))
        }
        .await;
        match outcome {
            Ok((outcomes, stored, items, queued)) => {
                if !items.is_empty() {
                    self.hub.publish(&Batch { tenant, items }).await;
                }
                self.mailer.touch(tenant, stored.mails > 0);
                self.webhooks.touch(tenant, queued > 0);
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
                TenantResult::Written(written)
            }
            Err(err @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)) => {
                TenantResult::Hold(anyhow::anyhow!("tenant {tenant}'s database: {err}"))
            }
            Err(err) => {
                tracing::warn!(%tenant, error = %err, "writing a tenant's notifications failed");
                written.refused.extend(indexes);
                TenantResult::Written(written)
            }
        }
    }
}

/// Applies a membership event to its tenant's database (a project's `invited` notice is
/// added to `pending`, stored with the rest of the batch).
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
        _ => {}
    }
    Ok(Outcome::Done)
}

/// The notifications a run of task events (`run`, positions in `events`) gives, less
/// those of members removed from the tenant or the project and of kinds kept out of a
/// member's inbox; each event's outcome goes to `outcomes` at its position.
async fn tell(
    conn: &mut PgConnection,
    events: &[&Event],
    run: &[usize],
    outcomes: &mut [Outcome],
    pending: &mut Vec<Pending>,
) -> sqlx::Result<()> {
    let asked: Vec<(usize, FactsQuery)> = run
        .iter()
        .filter_map(|&at| {
            let event = events[at];
            let task = event.uuid("task_id")?;
            let column = (event.kind() == keys::TASK_STATUS_CHANGED)
                .then(|| event.uuid("to"))
                .flatten();
            let comment = event.uuid("comment_id");
            Some((
                at,
                FactsQuery {
                    task,
                    column,
                    comment,
                },
            ))
        })
        .collect();
    if asked.is_empty() {
        return Ok(());
    }
    let queries: Vec<FactsQuery> = asked.iter().map(|(_, q)| *q).collect();
    let facts = db::tasks::facts(conn, &queries).await?;
    // Deleted tasks have nothing to tell about.
    let notices: Vec<_> = asked
        .iter()
        .zip(facts)
        .filter_map(|((at, query), facts)| {
            let (project, facts) = facts?;
            let notices = fanout::notices(events[*at], &facts);
            Some((*at, query.task, project, facts, notices))
        })
        .filter(|(.., notices)| !notices.is_empty())
        .collect();
    let mut users: Vec<Uuid> = notices
        .iter()
        .flat_map(|(.., n)| n.iter().map(|n| n.recipient))
        .collect();
    users.sort_unstable();
    users.dedup();
    let mut projects: Vec<Uuid> = notices.iter().map(|(_, _, p, ..)| *p).collect();
    projects.sort_unstable();
    projects.dedup();
    if users.is_empty() {
        return Ok(());
    }
    let left_out = db::exclusions::left_out(conn, &users, &projects).await?;
    for (at, task_id, project_id, facts, notices) in notices {
        let event = events[at];
        let told: Vec<NewNotification> = notices
            .into_iter()
            .filter(|n| left_out.keeps(n.recipient, project_id, n.kind))
            .collect();
        if told.is_empty() {
            continue;
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
        outcomes[at] = Outcome::Tells(event.0.id);
    }
    Ok(())
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
    let left_out = db::exclusions::left_out(conn, &[user], &[project]).await?;
    if !left_out.keeps(user, project, Kind::Invited) {
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
