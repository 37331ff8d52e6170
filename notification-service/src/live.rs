//! The live stream's hub in each instance: what the consumer appended to a tenant's
//! window (wherever it ran) reaches every instance through a fanout on the broker, and
//! each instance hands it to its own open streams of that tenant.
//!
//! The window in the tenant's database is the record (resume, gaps); the fanout only says
//! "this just happened". A stream that misses a message (a lag, a broker reconnect, two
//! instances' messages crossing) sees a gap in `seq` at the next one and reads the gap from
//! the window, so what it sends stays whole and in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::events::Broker;
use common::events::fanout::Fanout;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::notifications::Pending;
use crate::domain::event::Event;
use crate::domain::notification::Notification;
use crate::domain::stream::{
    ACCESS_EVENTS, Batch, Item, NOTIFICATION_CREATED, NewStreamEvent, PROJECT_EVENTS,
};

/// Batches a slow stream may fall behind before it catches up from the window.
const BACKLOG: usize = 64;
/// How often this instance prunes one tenant's window (on that tenant's writes), at most.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

pub struct Hub {
    fanout: Fanout,
    tenants: std::sync::Mutex<HashMap<Uuid, broadcast::Sender<Arc<Batch>>>>,
    pruned: std::sync::Mutex<HashMap<Uuid, Instant>>,
    /// A window of a few seconds (tests) is pruned as often; an hour's once a minute.
    prune_every: Duration,
    listening: AtomicBool,
}

impl Hub {
    /// `retention`: how long the window keeps an event (`STREAM_RETENTION_SECS`).
    pub fn new(broker: Broker, retention: Duration) -> Self {
        Self {
            fanout: Fanout::new(broker, "stream"),
            tenants: std::sync::Mutex::default(),
            pruned: std::sync::Mutex::default(),
            prune_every: retention.clamp(Duration::from_secs(1), PRUNE_EVERY),
            listening: AtomicBool::new(false),
        }
    }

    /// Whether this instance is subscribed to the fanout (readiness).
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Tells every instance's streams of `batch.tenant` (after its transaction committed).
    pub async fn publish(&self, batch: &Batch) {
        let published = match serde_json::to_vec(batch) {
            Ok(body) => self.fanout.publish(&body).await,
            Err(err) => Err(err.into()),
        };
        let outcome = if let Err(err) = published {
            // The streams find the gap at their next event, or on resume.
            tracing::warn!(tenant = %batch.tenant, error = %err, "a stream batch was not published");
            "failed"
        } else {
            "published"
        };
        metrics::counter!("notification_stream_batches_total", "outcome" => outcome).increment(1);
    }

    /// The batches of `tenant` from now on.
    pub fn subscribe(&self, tenant: Uuid) -> broadcast::Receiver<Arc<Batch>> {
        let mut tenants = self.tenants.lock().expect("hub lock");
        tenants
            .entry(tenant)
            .or_insert_with(|| broadcast::channel(BACKLOG).0)
            .subscribe()
    }

    fn deliver(&self, batch: Batch) {
        let mut tenants = self.tenants.lock().expect("hub lock");
        let Some(sender) = tenants.get(&batch.tenant) else {
            return;
        };
        let tenant = batch.tenant;
        if sender.send(Arc::new(batch)).is_err() {
            // No stream of the tenant is open here any more.
            tenants.remove(&tenant);
        }
    }

    /// Whether `tenant`'s window is due for pruning by this instance (and notes that it is
    /// being pruned now).
    pub fn prune_due(&self, tenant: Uuid) -> bool {
        let mut pruned = self.pruned.lock().expect("hub lock");
        let now = Instant::now();
        match pruned.get(&tenant) {
            Some(at) if now.duration_since(*at) < self.prune_every => false,
            _ => {
                pruned.insert(tenant, now);
                true
            }
        }
    }

    /// Listens on the fanout until `shutdown`, subscribing again after a broken connection.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.fanout.subscribe().await {
                Ok(mut bodies) => {
                    self.listening.store(true, Ordering::Release);
                    loop {
                        let body = tokio::select! {
                            () = shutdown.cancelled() => return,
                            body = bodies.next() => body,
                        };
                        let Some(body) = body else { break };
                        match serde_json::from_slice::<Batch>(&body) {
                            Ok(batch) => self.deliver(batch),
                            Err(err) => tracing::warn!(error = %err, "an unreadable stream batch"),
                        }
                    }
                    self.listening.store(false, Ordering::Release);
                    tracing::warn!("the stream fanout closed; subscribing again");
                }
                Err(err) => tracing::warn!(error = %err, "cannot subscribe to the stream fanout"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// The window's rows of a tenant's batch, in the order of its events: each project event,
/// then the notifications it gave (`stored`: the new ones' ids and places in `pending`),
/// a `notification.created` for each receiver with the notification as the inbox shows it;
/// and what the events change for open streams (who reads which project, who left).
pub fn of_batch(
    events: &[&Event],
    pending: &[Pending],
    stored: &[(Uuid, usize)],
) -> (Vec<NewStreamEvent>, Vec<Item>) {
    let mut told: HashMap<Uuid, Vec<NewStreamEvent>> = HashMap::new();
    for &(id, at) in stored {
        if let Some(p) = pending.get(at)
            && let Some(row) = notification(id, p)
        {
            told.entry(p.event_id).or_default().push(row);
        }
    }
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for event in events {
        let kind = event.kind();
        if PROJECT_EVENTS.contains(&kind) {
            match event.uuid("project_id") {
                Some(project_id) => rows.push(NewStreamEvent {
                    event_id: event.0.id,
                    recipient: Uuid::nil(),
                    kind: kind.to_owned(),
                    project_id,
                    task_id: event.uuid("task_id"),
                    data: event.0.data.to_string(),
                }),
                None => {
                    tracing::warn!(kind, id = %event.0.id, "a task event without its project; not streamed");
                }
            }
        } else if ACCESS_EVENTS.contains(&kind) {
            if !items.iter().any(|i| matches!(i, Item::Access)) {
                items.push(Item::Access);
            }
        } else if kind == common::events::keys::USER_UPDATED
            && event.flag("removed")
            && let Some(user) = event.uuid("user_id")
        {
            items.push(Item::Removed { user });
        }
        rows.extend(told.remove(&event.0.id).unwrap_or_default());
    }
    (rows, items)
}

/// The `notification.created` row of notification `id`, stored from `p`.
fn notification(id: Uuid, p: &Pending) -> Option<NewStreamEvent> {
    let shown = Notification {
        id,
        kind: p.notice.kind.as_str().to_owned(),
        title: p.notice.title.clone(),
        body: p.notice.body.clone(),
        task: p.task.clone(),
        project_id: Some(p.project_id),
        actor_id: p.actor_id,
        created_at: p.occurred_at,
        read_at: None,
        snoozed_until: None,
        archived_at: None,
    };
    Some(NewStreamEvent {
        event_id: p.event_id,
        recipient: p.notice.recipient,
        kind: NOTIFICATION_CREATED.to_owned(),
        project_id: p.project_id,
        task_id: p.task.as_ref().map(|t| t.id),
        data: serde_json::to_string(&shown).ok()?,
    })
}
