//! Webhook delivery: sends the deliveries the inbox stored in each tenant's
//! `webhook_deliveries` (in the same transaction as the event's notifications, so an
//! event acknowledged to the broker is never lost), beside the consumer and never in its
//! way.
//!
//! Like the mailer, the dispatcher keeps in memory when each tenant next has a delivery
//! due ([`TenantSchedule`]). At a tenant's time it claims the due deliveries (a lease, so
//! two instances never send one at once and a crash mid-send only delays it), at most
//! [`PER_ENDPOINT`] in flight per endpoint, and sends each in a task of its own: a slow
//! receiver holds only its own slots, never another endpoint's deliveries. Each attempt
//! is recorded, in batches by a recorder beside the senders (status, duration, the
//! answer's first KiB or the error); a failure is tried again on the schedule of
//! [`crate::domain::webhook::SCHEDULE`], a 410 disables the endpoint, and so does
//! failing without a success for `WEBHOOK_DISABLE_AFTER_HOURS`; those who manage
//! webhooks are then told (`webhook_disabled`). No database connection is held while a
//! request is out.
//!
//! Every request goes through the SSRF guard ([`common::egress`]): the URL is checked
//! before each attempt and each name is resolved and checked as the connection is made.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::auth::Perm;
use common::db::directory::TenantDirectory;
use common::egress::Egress;
use common::internal::InternalToken;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::Config;
use crate::db;
use crate::db::notifications::Pending;
use crate::db::webhooks::{Attempt, Claimed, NewDelivery, Settled, Subscription};
use crate::domain::event::Event;
use crate::domain::notification::{Kind, NewNotification};
use crate::domain::webhook::{self, Format, Verdict};
use crate::mailer::Mailer;
use crate::schedule::{self, TenantSchedule};

/// Deliveries of one endpoint on their way at the same time.
pub const PER_ENDPOINT: usize = 16;
/// Deliveries of one endpoint claimed at once (those past [`PER_ENDPOINT`] wait their
/// turn in this process, well inside their lease), so a busy endpoint is not claimed
/// for one delivery at a time.
const CLAIMED_PER_ENDPOINT: usize = 4 * PER_ENDPOINT;
/// Attempts recorded in one go (one transaction per tenant among them).
const RECORD_BATCH: usize = 500;
/// Deliveries claimed from one tenant at a time.
const BATCH: i64 = 200;
/// How long a claimed delivery is left to its sender before another try may take it
/// (longer than an attempt may take).
const LEASE_PAST_TIMEOUT: Duration = Duration::from_secs(60);
/// A tenant whose deliveries could not be reached (its database) is looked at again
/// after this.
const TENANT_RETRY: Duration = Duration::from_secs(5);
/// The most of an answer read (the rest is not waited for).
const MAX_ANSWER: usize = 64 * 1024;
/// The most of an answer kept in the delivery log.
const KEPT_ANSWER: usize = 1024;
/// How long a stopping dispatcher waits for the attempts in flight (the others are
/// tried again when their lease ends).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Someone told of a disabled endpoint.
#[derive(Debug, Deserialize)]
struct Person {
    id: Uuid,
}

/// One endpoint's deliveries in this process: how many are claimed, and the
/// [`PER_ENDPOINT`] slots they take turns in.
struct Claims {
    claimed: usize,
    slots: Arc<tokio::sync::Semaphore>,
}

/// An attempt made, waiting to be recorded.
struct Sent {
    tenant: Uuid,
    delivery: Claimed,
    at: chrono::DateTime<Utc>,
    duration_ms: i32,
    answer: Answer,
    verdict: Verdict,
}

/// What an attempt got.
struct Answer {
    status: Option<u16>,
    retry_after: Option<Duration>,
    body: String,
    error: Option<String>,
}

pub struct Dispatcher {
    directory: Arc<TenantDirectory>,
    client: reqwest::Client,
    egress: Egress,
    mailer: Arc<Mailer>,
    http: reqwest::Client,
    user_service_url: String,
    internal: InternalToken,
    scale: f64,
    disable_after: chrono::Duration,
    lease_secs: f64,
    /// `DIGEST_INTERVAL_SECS`, for a `webhook_disabled` notice someone takes in a digest.
    digest_secs: f64,
    schedule: TenantSchedule,
    /// Deliveries claimed and not yet recorded, per endpoint, and the slots they send
    /// through.
    in_flight: Mutex<HashMap<Uuid, Claims>>,
    attempts: TaskTracker,
    /// Attempts made, on their way to [`Dispatcher::record_all`].
    sent: mpsc::UnboundedSender<Sent>,
    /// The recorder's end, taken by [`Dispatcher::run`].
    recorded: Mutex<Option<mpsc::UnboundedReceiver<Sent>>>,
}

impl Dispatcher {
    /// The dispatcher of `config`'s `WEBHOOK_*` settings; `webhook_disabled` notices are
    /// addressed through user-service (`USER_SERVICE_URL`) and may join a digest
    /// (`DIGEST_INTERVAL_SECS`).
    pub fn new(
        settings: &Config,
        directory: Arc<TenantDirectory>,
        mailer: Arc<Mailer>,
        http: reqwest::Client,
        internal: InternalToken,
    ) -> anyhow::Result<Self> {
        let config = &settings.webhooks;
        let egress = Egress::new(config.webhook_allowed_networks.0.clone());
        let timeout = Duration::from_secs(config.webhook_timeout_secs.max(1));
        let client = egress.client(
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(10)))
                .user_agent("Nexus-Webhooks/1")
                .pool_max_idle_per_host(PER_ENDPOINT),
        )?;
        let hours = config.webhook_disable_after_hours.max(0.0);
        let (sent, recorded) = mpsc::unbounded_channel();
        Ok(Self {
            directory,
            client,
            egress,
            mailer,
            http,
            user_service_url: settings.mail.user_service_url.clone(),
            internal,
            scale: config.webhook_retry_scale.max(0.0),
            disable_after: chrono::Duration::milliseconds((hours * 3_600_000.0) as i64),
            // A claimed delivery may wait for the ones claimed before it (at most
            // CLAIMED_PER_ENDPOINT / PER_ENDPOINT attempts each) before its own.
            lease_secs: (timeout * (CLAIMED_PER_ENDPOINT / PER_ENDPOINT + 1) as u32
                + LEASE_PAST_TIMEOUT)
                .as_secs_f64(),
            digest_secs: settings.mail.digest_interval_secs as f64,
            schedule: TenantSchedule::default(),
            in_flight: Mutex::default(),
            attempts: TaskTracker::new(),
            sent,
            recorded: Mutex::new(Some(recorded)),
        })
    }

    /// The guard every receiver's URL passes.
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// `tenant` has deliveries due now if `queued`, or was never looked at.
    pub fn touch(&self, tenant: Uuid, queued: bool) {
        self.schedule.touch(tenant, queued);
    }

    /// Sends every tenant's deliveries at their time, until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(sent) = self.recorded.lock().expect("recorder lock").take() else {
            tracing::error!("webhooks: the dispatcher runs once");
            return;
        };
        let recording = CancellationToken::new();
        let recorder = tokio::spawn(Arc::clone(&self).record_all(sent, recording.clone()));
        while let Some(due) = self.schedule.next(&shutdown).await {
            for tenant in due {
                match Arc::clone(&self).dispatch(tenant).await {
                    Ok(next) => self.schedule.after(tenant, next),
                    Err(err) => {
                        tracing::warn!(%tenant, error = %err, "webhooks: will retry");
                        self.schedule.at(tenant, Instant::now() + TENANT_RETRY);
                    }
                }
            }
        }
        self.attempts.close();
        if tokio::time::timeout(STOP_GRACE, self.attempts.wait())
            .await
            .is_err()
        {
            tracing::info!(
                "webhooks: attempts still out at stop are tried again after their lease"
            );
        }
        recording.cancel();
        recorder.await.ok();
    }

    /// Claims `tenant`'s due deliveries and starts each; when its next one is due.
    async fn dispatch(
        self: Arc<Self>,
        tenant: Uuid,
    ) -> anyhow::Result<Option<chrono::DateTime<Utc>>> {
        let Some(mut conn) = schedule::connect(&self.directory, tenant).await? else {
            return Ok(None);
        };
        let slots = self.free_slots();
        let claimed = db::webhooks::claim(
            &mut conn,
            BATCH,
            self.lease_secs,
            &slots,
            CLAIMED_PER_ENDPOINT,
        )
        .await?;
        let busy = self.count_claimed(&claimed);
        let next = db::webhooks::next_due(&mut conn, &busy).await?;
        drop(conn);
        for delivery in claimed {
            let this = Arc::clone(&self);
            let slots = self.slots_of(delivery.endpoint_id);
            self.attempts.spawn(async move {
                let sent = {
                    let _slot = slots.acquire().await;
                    this.attempt(tenant, delivery).await
                };
                // The recorder lives as long as the dispatcher.
                let _ = this.sent.send(sent);
            });
        }
        Ok(next)
    }

    /// The endpoints with deliveries claimed here, and how many more each may claim.
    fn free_slots(&self) -> Vec<(Uuid, i32)> {
        let in_flight = self.in_flight.lock().expect("in-flight lock");
        in_flight
            .iter()
            .map(|(endpoint, c)| {
                let free = CLAIMED_PER_ENDPOINT.saturating_sub(c.claimed);
                (*endpoint, i32::try_from(free).unwrap_or(0))
            })
            .collect()
    }

    /// Counts `claimed` in: the endpoints left with nothing more to claim.
    fn count_claimed(&self, claimed: &[Claimed]) -> Vec<Uuid> {
        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
        for delivery in claimed {
            in_flight
                .entry(delivery.endpoint_id)
                .or_insert_with(|| Claims {
                    claimed: 0,
                    slots: Arc::new(tokio::sync::Semaphore::new(PER_ENDPOINT)),
                })
                .claimed += 1;
        }
        in_flight
            .iter()
            .filter(|(_, c)| c.claimed >= CLAIMED_PER_ENDPOINT)
            .map(|(endpoint, _)| *endpoint)
            .collect()
    }

    fn slots_of(&self, endpoint: Uuid) -> Arc<tokio::sync::Semaphore> {
        let in_flight = self.in_flight.lock().expect("in-flight lock");
        Arc::clone(&in_flight[&endpoint].slots)
    }

    /// One of `endpoint`'s deliveries is done: whether its queue is low enough to claim
    /// more (at most [`PER_ENDPOINT`] left, so its slots never run dry while a claim is
    /// made).
    fn release(&self, endpoint: Uuid) -> bool {
        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
        let Some(claims) = in_flight.get_mut(&endpoint) else {
            return true;
        };
        claims.claimed -= 1;
        let left = claims.claimed;
        if left == 0 {
            in_flight.remove(&endpoint);
        }
        left <= PER_ENDPOINT
    }

    /// One attempt of `delivery`, to be recorded.
    async fn attempt(&self, tenant: Uuid, delivery: Claimed) -> Sent {
        let at = Utc::now();
        let started = std::time::Instant::now();
        let answer = self.send(&delivery).await;
        let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let verdict = match answer.error {
            Some(_) => Verdict::Failed,
            None => webhook::verdict(answer.status),
        };
        metrics::counter!("webhook_attempts_total", "outcome" => match verdict {
            Verdict::Delivered => "delivered",
            Verdict::Gone => "gone",
            Verdict::Failed => "failed",
        })
        .increment(1);
        Sent {
            tenant,
            delivery,
            at,
            duration_ms,
            answer,
            verdict,
        }
    }

    /// Records what was sent, a batch at a time (one transaction per tenant), until
    /// `done` and nothing is left; then frees each delivery's place in its endpoint's
    /// queue.
    async fn record_all(
        self: Arc<Self>,
        mut sent: mpsc::UnboundedReceiver<Sent>,
        done: CancellationToken,
    ) {
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                biased;
                n = sent.recv_many(&mut batch, RECORD_BATCH) => if n == 0 { break },
                () = done.cancelled() => {
                    while let Ok(one) = sent.try_recv() {
                        batch.push(one);
                    }
                    if batch.is_empty() {
                        break;
                    }
                }
            }
            let mut tenants: BTreeMap<Uuid, Vec<Sent>> = BTreeMap::new();
            for one in batch.drain(..) {
                tenants.entry(one.tenant).or_default().push(one);
            }
            for (tenant, sent) in tenants {
                match self.record(tenant, &sent).await {
                    Ok(told) if told > 0 => self.mailer.touch(tenant, true),
                    Ok(_) => {}
                    // Not recorded: the leases run out and the deliveries are tried again.
                    Err(err) => tracing::warn!(%tenant, attempts = sent.len(), error = %err,
                        "webhooks: attempts could not be recorded; they will be tried again"),
                }
                for one in &sent {
                    if self.release(one.delivery.endpoint_id) {
                        // The endpoint's queue runs low: claim its next deliveries.
                        self.schedule.touch(tenant, true);
                    }
                }
            }
        }
    }

    /// Records `tenant`'s attempts in one transaction: each attempt, where each delivery
    /// stands, each endpoint's failing streak, and the endpoints that are disabled (those
    /// who manage webhooks told): how many were told.
    async fn record(&self, tenant: Uuid, sent: &[Sent]) -> anyhow::Result<usize> {
        let Some(conn) = schedule::connect(&self.directory, tenant).await? else {
            return Ok(0);
        };
        let mut tx = conn.begin().await?;
        let attempts: Vec<Attempt<'_>> = sent
            .iter()
            .map(|s| Attempt {
                delivery: s.delivery.id,
                attempt: s.delivery.attempts,
                at: s.at,
                status_code: s.answer.status.map(i32::from),
                duration_ms: s.duration_ms,
                response: &s.answer.body,
                error: s.answer.error.as_deref(),
            })
            .collect();
        db::webhooks::record_many(&mut tx, &attempts).await?;
        let mut settled = Vec::with_capacity(sent.len());
        // Each endpoint's last outcome in the batch, and its URL.
        let mut last: BTreeMap<Uuid, (Verdict, &str)> = BTreeMap::new();
        for s in sent {
            let wait = match s.verdict {
                Verdict::Delivered | Verdict::Gone => None,
                Verdict::Failed => webhook::next_wait(
                    s.delivery.attempts,
                    self.scale,
                    s.answer.status,
                    s.answer.retry_after,
                ),
            };
            let status = match (s.verdict, wait) {
                (Verdict::Delivered, _) => Settled::Succeeded,
                (_, Some(wait)) => Settled::RetryIn(wait.as_secs_f64() * 1000.0),
                (_, None) => Settled::Failed,
            };
            settled.push((s.delivery.id, status));
            last.insert(s.delivery.endpoint_id, (s.verdict, s.delivery.url.as_str()));
        }
        db::webhooks::settle(&mut tx, &settled).await?;
        let (ok, failing): (Vec<_>, Vec<_>) = last
            .iter()
            .partition(|(_, (verdict, _))| *verdict == Verdict::Delivered);
        let ok: Vec<Uuid> = ok.into_iter().map(|(e, _)| *e).collect();
        let failing: Vec<Uuid> = failing.into_iter().map(|(e, _)| *e).collect();
        db::webhooks::streak_over(&mut tx, &ok).await?;
        let since: HashMap<Uuid, chrono::DateTime<Utc>> = db::webhooks::streak(&mut tx, &failing)
            .await?
            .into_iter()
            .collect();
        let mut told = 0;
        for (endpoint, (verdict, url)) in &last {
            let why = match verdict {
                Verdict::Gone => Some(("gone", "it answered 410 Gone")),
                Verdict::Failed
                    if since
                        .get(endpoint)
                        .is_some_and(|since| Utc::now() - *since >= self.disable_after) =>
                {
                    Some(("failing", "it kept failing"))
                }
                _ => None,
            };
            if let Some((reason, why)) = why
                && db::webhooks::disable(&mut tx, *endpoint, reason).await?
            {
                told += self.tell(&mut tx, tenant, *endpoint, url, why).await?;
            }
        }
        tx.commit().await?;
        Ok(told)
    }

    /// Sends `delivery` once: what came back, or why nothing did.
    async fn send(&self, delivery: &Claimed) -> Answer {
        let failed = |error: String| Answer {
            status: None,
            retry_after: None,
            body: String::new(),
            error: Some(error),
        };
        let url = match self.egress.check_url(&delivery.url) {
            Ok(url) => url,
            Err(refusal) => return failed(format!("refused: {refusal}")),
        };
        let id = webhook::message_id(delivery.id);
        let timestamp = Utc::now().timestamp();
        let mut secrets = vec![delivery.secret.as_str()];
        secrets.extend(delivery.previous_secret.as_deref());
        let signature = webhook::signature_header(&secrets, &id, timestamp, &delivery.body);
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.body.clone())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(err) => return failed(common::egress::error_text(&err)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| webhook::parse_retry_after(v, Utc::now()));
        let mut bytes = Vec::new();
        let mut error = None;
        while bytes.len() < MAX_ANSWER {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(err) => {
                    // The status counts; an answer cut short is noted, not a failure.
                    error = Some(common::egress::error_text(&err));
                    break;
                }
            }
        }
        bytes.truncate(KEPT_ANSWER);
        let mut body = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(error) = error {
            body.push_str(&format!(" [answer cut short: {error}]"));
        }
        Answer {
            status: Some(status),
            retry_after,
            body,
            error: None,
        }
    }

    /// Tells those who manage webhooks that `endpoint` (to `url`) was disabled (`why`):
    /// how many were told.
    async fn tell(
        &self,
        conn: &mut sqlx::PgConnection,
        tenant: Uuid,
        endpoint: Uuid,
        url: &str,
        why: &str,
    ) -> anyhow::Result<usize> {
        let people: Vec<Person> = common::internal::holders(
            &self.http,
            &self.user_service_url,
            &self.internal,
            tenant,
            Perm::WebhooksManage,
        )
        .await?;
        let now = Utc::now();
        let event = Uuid::now_v7();
        let pending: Vec<Pending> = people
            .into_iter()
            .map(|person| Pending {
                event_id: event,
                occurred_at: now,
                actor_id: None,
                project_id: Uuid::nil(),
                task: None,
                notice: NewNotification {
                    recipient: person.id,
                    kind: Kind::WebhookDisabled,
                    title: format!("A webhook was disabled: {url}"),
                    body: format!(
                        "The webhook to {} was turned off because {why}. Turn it back on \
                         (PATCH /api/v1/webhooks/{} with enabled: true) and replay what it \
                         missed with POST /api/v1/webhooks/{}/recover.",
                        url, endpoint, endpoint
                    ),
                },
            })
            .collect();
        let stored = db::notifications::insert_many(conn, &pending, self.digest_secs).await?;
        Ok(stored.notifications.len())
    }
}

/// The deliveries a tenant's batch of `events` gives its endpoints `subscriptions`.
pub fn deliveries(events: &[&Event], subscriptions: &[Subscription]) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    for event in events {
        let envelope = &event.0;
        if !webhook::EVENT_TYPES.contains(&envelope.kind.as_str()) {
            continue;
        }
        for subscription in subscriptions {
            if !subscription
                .events
                .iter()
                .any(|pattern| webhook::matches(pattern, &envelope.kind))
            {
                continue;
            }
            let format = Format::parse(&subscription.format);
            out.push(NewDelivery {
                id: Uuid::now_v7(),
                endpoint_id: subscription.id,
                event_id: envelope.id,
                event_type: envelope.kind.clone(),
                body: webhook::body(
                    format,
                    &envelope.kind,
                    envelope.occurred_at,
                    envelope.actor_id,
                    &envelope.data,
                ),
                occurred_at: envelope.occurred_at,
            });
        }
    }
    out
}
