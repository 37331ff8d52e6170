//! The `notification_mails` table: mails waiting to be sent (made with their
//! notifications by [`super::notifications::insert_many`]), claimed by the mailer, then
//! marked sent, put off with backoff, or given up on.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// One notification of a claimed mail (a mail with none, a digest whose notices were all
/// redeliveries, comes back once with `notification_id` empty).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub mail_id: Uuid,
    pub recipient_id: Uuid,
    pub digest: bool,
    /// This try's number (1 for the first).
    pub attempts: i32,
    pub notification_id: Option<Uuid>,
    pub kind: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub task_key: Option<String>,
    pub task_title: Option<String>,
}

/// Claims up to `limit` due mails, with their notifications (oldest first): each is tried
/// once more, and is not due again for `lease_secs` (so another instance, or this one
/// after a crash mid-send, tries it again only then).
pub async fn claim(
    conn: &mut PgConnection,
    limit: i64,
    lease_secs: f64,
) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as!(
        Claimed,
        r#"with due as (
             select id from notification_mails
              where sent_at is null and failed_at is null and next_attempt_at <= now()
              order by next_attempt_at
              limit $1
                for update skip locked
           ), claimed as (
             update notification_mails m
                set attempts = m.attempts + 1,
                    next_attempt_at = now() + make_interval(secs => $2)
               from due
              where m.id = due.id
             returning m.id, m.recipient_id, m.digest, m.attempts
           )
           select c.id as "mail_id!", c.recipient_id as "recipient_id!", c.digest as "digest!",
                  c.attempts as "attempts!", n.id as "notification_id?", n.kind as "kind?",
                  n.title as "title?", n.body as "body?", n.task_key, n.task_title
             from claimed c
             left join notifications n on n.mail_id = c.id and n.recipient_id = c.recipient_id
            order by c.id, n.created_at"#,
        limit,
        lease_secs,
    )
    .fetch_all(conn)
    .await
}

/// `mails` went out (or had nothing to carry).
pub async fn sent(conn: &mut PgConnection, mails: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query!(
        "update notification_mails set sent_at = now(), last_error = null where id = any($1)",
        mails,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// `mail` failed; it is tried again in `delay_ms`.
pub async fn retry_later(
    conn: &mut PgConnection,
    mail: Uuid,
    delay_ms: f64,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update notification_mails
            set next_attempt_at = now() + make_interval(secs => $2::float8 / 1000), last_error = $3
          where id = $1",
        mail,
        delay_ms,
        error,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// `mail` is given up on; the error is kept.
pub async fn give_up(conn: &mut PgConnection, mail: Uuid, error: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update notification_mails set failed_at = now(), last_error = $2 where id = $1",
        mail,
        error,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// When the next waiting mail is due, if any is waiting.
pub async fn next_due(conn: &mut PgConnection) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "select min(next_attempt_at) from notification_mails
          where sent_at is null and failed_at is null"
    )
    .fetch_one(conn)
    .await
}

/// Where a mail stands.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub digest: bool,
    pub attempts: i32,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// The mail that carries `user`'s notification `notification`, if it is emailed.
pub async fn of_notification(
    conn: &mut PgConnection,
    user: Uuid,
    notification: Uuid,
) -> sqlx::Result<Option<Delivery>> {
    sqlx::query_as!(
        Delivery,
        "select m.digest, m.attempts, m.sent_at, m.failed_at, m.last_error
           from notifications n join notification_mails m on m.id = n.mail_id
          where n.recipient_id = $1 and n.id = $2",
        user,
        notification,
    )
    .fetch_optional(conn)
    .await
}
