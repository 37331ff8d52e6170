//! Email delivery: sends the mails the inbox queued in each tenant's
//! `notification_mails`, at once or when a receiver's digest window closes, over SMTP
//! (`lettre`), beside the consumer and never in its way.
//!
//! The mailer keeps, in memory, when each tenant next has mail due: the inbox tells it
//! of every tenant whose batch queued mail, and of every tenant the first time this
//! process writes to it (mail left from before a restart is found then). At a tenant's
//! time it claims the due mails (a lease, so two instances never send one twice while
//! both run), looks the receivers' addresses up in user-service, sends, and marks each
//! mail sent, put off with exponential backoff, or given up on after
//! `MAIL_MAX_ATTEMPTS` (or at once for a permanent SMTP refusal, or a receiver who is no
//! longer a member), the last error kept in the row. No connection is held while it
//! waits or sends.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::db::directory::TenantDirectory;
use common::db::tenants::TenantConnection;
use common::internal::InternalToken;
use futures::StreamExt;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::Rng;
use secrecy::ExposeSecret;
use serde::Deserialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::MailArgs;
use crate::db;
use crate::db::mails::Claimed;
use crate::domain::email::{self, Letter, Notice};
use crate::domain::notification::Kind;
use crate::domain::unsubscribe::{Unsubscribe, UnsubscribeKey};
use crate::schedule::TenantSchedule;

/// Mails claimed from one tenant at a time.
const BATCH: i64 = 200;
/// How long a claimed mail is left to its sender before another try may take it.
const LEASE: Duration = Duration::from_secs(120);
/// Tenants whose mail is sent at the same time.
const TENANTS_AT_ONCE: usize = 4;
/// Mails of one tenant on their way to the SMTP server at the same time.
const SENDS_AT_ONCE: usize = 8;
/// The longest wait between two tries of a mail.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// A tenant whose mail could not be reached (database, user-service) is looked at again
/// after this.
const TENANT_RETRY: Duration = Duration::from_secs(5);

/// A receiver as user-service names them.
#[derive(Debug, Clone, Deserialize)]
struct Person {
    id: Uuid,
    #[serde(default)]
    name: String,
    email: String,
}

/// What became of one mail.
enum Outcome {
    Sent,
    /// It carried nothing (a digest whose notices were all redeliveries).
    Empty,
    RetryIn(Duration, String),
    GiveUp(String),
}

pub struct Mailer {
    directory: Arc<TenantDirectory>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    http: reqwest::Client,
    user_service_url: String,
    internal: InternalToken,
    unsubscribe: UnsubscribeKey,
    public_url: String,
    max_attempts: i32,
    retry_base: Duration,
    schedule: TenantSchedule,
}

impl Mailer {
    pub fn new(
        config: &MailArgs,
        directory: Arc<TenantDirectory>,
        http: reqwest::Client,
        internal: InternalToken,
    ) -> anyhow::Result<Self> {
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(config.smtp_url.expose_secret())
                .map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?
                .timeout(Some(Duration::from_secs(15)))
                .build();
        let from = config
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("MAIL_FROM {:?}: {e}", config.mail_from))?;
        Ok(Self {
            directory,
            transport,
            from,
            http,
            user_service_url: config.user_service_url.clone(),
            internal,
            unsubscribe: UnsubscribeKey::new(&config.unsubscribe_secret),
            public_url: config.public_url.trim_end_matches('/').to_owned(),
            max_attempts: i32::try_from(config.mail_max_attempts.max(1)).unwrap_or(i32::MAX),
            retry_base: Duration::from_millis(config.mail_retry_base_ms.max(1)),
            schedule: TenantSchedule::default(),
        })
    }

    /// The key unsubscribe links are signed with.
    pub fn unsubscribe_key(&self) -> &UnsubscribeKey {
        &self.unsubscribe
    }

    /// The inbox wrote `tenant`'s notifications: look at its mail now if it `queued`
    /// some, or if this process has not looked at it yet.
    pub fn touch(&self, tenant: Uuid, queued: bool) {
        self.schedule.touch(tenant, queued);
    }

    /// Sends every tenant's mail at its time, until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let this = &*self;
        while let Some(due) = self.schedule.next(&shutdown).await {
            futures::stream::iter(due)
                .for_each_concurrent(TENANTS_AT_ONCE, |tenant| async move {
                    match this.deliver(tenant).await {
                        Ok(next) => this.schedule.after(tenant, next),
                        Err(err) => {
                            tracing::warn!(%tenant, error = %err, "mail: will retry");
                            this.schedule.at(tenant, Instant::now() + TENANT_RETRY);
                        }
                    }
                })
                .await;
        }
    }

    /// Sends `tenant`'s due mail; when its next waiting mail is due.
    async fn deliver(&self, tenant: Uuid) -> anyhow::Result<Option<DateTime<Utc>>> {
        loop {
            let Some(mut conn) = self.connect(tenant).await? else {
                return Ok(None);
            };
            let claimed = db::mails::claim(&mut conn, BATCH, LEASE.as_secs_f64()).await?;
            drop(conn);
            let mails = group(claimed);
            if mails.is_empty() {
                break;
            }
            let full = mails.len() as i64 == BATCH;
            let outcomes = self.send_all(tenant, mails).await;
            let Some(mut conn) = self.connect(tenant).await? else {
                return Ok(None);
            };
            let mut done = Vec::new();
            for (mail, outcome) in outcomes {
                let counted = match outcome {
                    Outcome::Sent => "sent",
                    Outcome::Empty => "empty",
                    Outcome::RetryIn(delay, error) => {
                        let ms = delay.as_secs_f64() * 1000.0;
                        db::mails::retry_later(&mut conn, mail, ms, &error).await?;
                        "retried"
                    }
                    Outcome::GiveUp(error) => {
                        db::mails::give_up(&mut conn, mail, &error).await?;
                        "failed"
                    }
                };
                if matches!(counted, "sent" | "empty") {
                    done.push(mail);
                }
                metrics::counter!("notification_emails_total", "outcome" => counted).increment(1);
            }
            db::mails::sent(&mut conn, &done).await?;
            if !full {
                break;
            }
        }
        let Some(mut conn) = self.connect(tenant).await? else {
            return Ok(None);
        };
        Ok(db::mails::next_due(&mut conn).await?)
    }

    /// A connection to `tenant`'s database; `None` when the tenant is gone (it has no
    /// mail left to send). No connection is held across a send.
    async fn connect(&self, tenant: Uuid) -> anyhow::Result<Option<TenantConnection>> {
        crate::schedule::connect(&self.directory, tenant).await
    }

    /// Sends each mail (its notifications, `claimed` rows of one mail id); what became of
    /// each.
    async fn send_all(&self, tenant: Uuid, mails: Vec<Vec<Claimed>>) -> Vec<(Uuid, Outcome)> {
        let mut recipients: Vec<Uuid> = mails.iter().map(|m| m[0].recipient_id).collect();
        recipients.sort_unstable();
        recipients.dedup();
        let people: Vec<Person> = match common::internal::members(
            &self.http,
            &self.user_service_url,
            &self.internal,
            tenant,
            &recipients,
        )
        .await
        {
            Ok(people) => people,
            Err(err) => {
                let error = format!("user-service: {err}");
                return mails
                    .into_iter()
                    .map(|mail| {
                        let outcome = self.failed(mail[0].attempts, error.clone(), false);
                        (mail[0].mail_id, outcome)
                    })
                    .collect();
            }
        };
        futures::stream::iter(mails)
            .map(|mail| {
                let person = people.iter().find(|p| p.id == mail[0].recipient_id);
                async move {
                    let outcome = match person {
                        _ if mail[0].notification_id.is_none() => Outcome::Empty,
                        Some(person) => self.send(tenant, person, &mail).await,
                        None => Outcome::GiveUp("no longer a member of the tenant".into()),
                    };
                    (mail[0].mail_id, outcome)
                }
            })
            .buffer_unordered(SENDS_AT_ONCE)
            .collect()
            .await
    }

    async fn send(&self, tenant: Uuid, person: &Person, mail: &[Claimed]) -> Outcome {
        let mut kinds: Vec<Kind> = mail
            .iter()
            .filter_map(|m| Kind::parse(m.kind.as_deref()?))
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        let token = self.unsubscribe.sign(&Unsubscribe {
            tenant_id: tenant,
            user_id: person.id,
            kinds,
        });
        let link = format!(
            "{}/api/v1/notifications/unsubscribe?token={token}",
            self.public_url
        );
        let notices: Vec<Notice> = mail
            .iter()
            .map(|m| Notice {
                title: m.title.clone().unwrap_or_default(),
                body: m.body.clone().unwrap_or_default(),
                task: m
                    .task_key
                    .as_ref()
                    .map(|key| format!("{key} · {}", m.task_title.as_deref().unwrap_or(""))),
            })
            .collect();
        let letter = if mail[0].digest {
            email::digest(&notices, &link)
        } else {
            email::instant(&notices[0], &link)
        };
        let message = match self.message(person, letter, &link) {
            Ok(message) => message,
            Err(error) => return Outcome::GiveUp(error),
        };
        match self.transport.send(message).await {
            Ok(_) => Outcome::Sent,
            Err(err) => self.failed(mail[0].attempts, format!("SMTP: {err}"), err.is_permanent()),
        }
    }

    fn message(&self, person: &Person, letter: Letter, link: &str) -> Result<Message, String> {
        let address = person
            .email
            .parse()
            .map_err(|e| format!("the address {:?}: {e}", person.email))?;
        let name = (!person.name.is_empty()).then(|| person.name.clone());
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(name, address))
            .subject(letter.subject)
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{link}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ))
            .multipart(MultiPart::alternative_plain_html(letter.text, letter.html))
            .map_err(|e| format!("composing the mail: {e}"))
    }

    /// A failed try: given up on when it was the last (or `permanent`), else put off by
    /// the attempt's backoff.
    fn failed(&self, attempts: i32, error: String, permanent: bool) -> Outcome {
        if permanent || attempts >= self.max_attempts {
            tracing::warn!(attempts, error, "mail given up on");
            Outcome::GiveUp(error)
        } else {
            Outcome::RetryIn(backoff(self.retry_base, attempts), error)
        }
    }
}

/// The wait after the `attempts`-th failed try: the base doubled per try, at most an
/// hour, less up to a fifth at random so retries of many mails spread out.
fn backoff(base: Duration, attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let wait = base.saturating_mul(1 << doublings).min(MAX_BACKOFF);
    wait.mul_f64(1.0 - rand::thread_rng().gen_range(0.0..0.2))
}

/// Claimed rows (ordered by mail) as mails: each a non-empty run of one mail id.
fn group(claimed: Vec<Claimed>) -> Vec<Vec<Claimed>> {
    let mut mails: Vec<Vec<Claimed>> = Vec::new();
    for row in claimed {
        match mails.last_mut() {
            Some(mail) if mail[0].mail_id == row.mail_id => mail.push(row),
            _ => mails.push(vec![row]),
        }
    }
    mails
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_try_up_to_an_hour_with_jitter_below() {
        let base = Duration::from_secs(30);
        for (attempts, full) in [(1, 30), (2, 60), (3, 120), (8, 3600), (40, 3600)] {
            let wait = backoff(base, attempts);
            let full = Duration::from_secs(full);
            assert!(
                wait <= full && wait > full.mul_f64(0.8),
                "{attempts}: {wait:?}"
            );
        }
    }
}
