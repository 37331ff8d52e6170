//! The `notification_emails` table: mails waiting to be sent (queued with their
//! notifications by [`super::notifications::insert_many`]), claimed by the mailer, then
//! marked sent, put off with backoff, or given up on.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A due notification claimed for sending, with what its mail says.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub notification_id: Uuid,
    pub recipient_id: Uuid,
    pub digest: bool,
    /// This try's number (1 for the first).
    pub attempts: i32,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub task_key: Option<String>,
    pub task_title: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Claims up to `limit` due mails: each is tried once more, and is not due again for
/// `lease_secs` (so another instance, or this one after a crash mid-send, tries it again
/// only then).
pub async fn claim(
    conn: &mut PgConnection,
    limit: i64,
    lease_secs: f64,
) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as!(
        Claimed,
        r#"with due as (
             select notification_id from notification_emails
              where sent_at is null and failed_at is null and next_attempt_at <= now()
              order by next_attempt_at
              limit $1
                for update skip locked
           ), claimed as (
             update notification_emails e
                set attempts = e.attempts + 1,
                    next_attempt_at = now() + make_interval(secs => $2)
               from due
              where e.notification_id = due.notification_id
             returning e.notification_id, e.recipient_id, e.digest, e.attempts
           )
           select c.notification_id as "notification_id!", c.recipient_id as "recipient_id!",
                  c.digest as "digest!", c.attempts as "attempts!", n.kind, n.title, n.body,
                  n.task_key, n.task_title, n.created_at
             from claimed c
             join notifications n on n.id = c.notification_id
            order by n.created_at"#,
        limit,
        lease_secs,
    )
    .fetch_all(conn)
    .await
}

/// `notifications`' mails went out.
pub async fn sent(conn: &mut PgConnection, notifications: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query!(
        "update notification_emails set sent_at = now(), last_error = null
          where notification_id = any($1)",
        notifications,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// `notifications`' mail failed; it is tried again in `delay_ms`.
pub async fn retry_later(
    conn: &mut PgConnection,
    notifications: &[Uuid],
    delay_ms: f64,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update notification_emails
            set next_attempt_at = now() + make_interval(secs => $2::float8 / 1000), last_error = $3
          where notification_id = any($1)",
        notifications,
        delay_ms,
        error,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// `notifications`' mail is given up on; the error is kept.
pub async fn give_up(
    conn: &mut PgConnection,
    notifications: &[Uuid],
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update notification_emails set failed_at = now(), last_error = $2
          where notification_id = any($1)",
        notifications,
        error,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// When the next waiting mail is due, if any is waiting.
pub async fn next_due(conn: &mut PgConnection) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "select min(next_attempt_at) from notification_emails
          where sent_at is null and failed_at is null"
    )
    .fetch_one(conn)
    .await
}

/// Where one notification's mail stands.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub attempts: i32,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// The mail of `notification`, if one was queued.
pub async fn delivery(
    conn: &mut PgConnection,
    notification: Uuid,
) -> sqlx::Result<Option<Delivery>> {
    sqlx::query_as!(
        Delivery,
        "select attempts, sent_at, failed_at, last_error from notification_emails
          where notification_id = $1",
        notification,
    )
    .fetch_optional(conn)
    .await
}
