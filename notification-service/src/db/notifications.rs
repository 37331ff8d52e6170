//! The `notifications` table: each member's inbox.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::notification::{Kind, NewNotification, Notification, TaskRef};
use crate::domain::preference::Preference;

/// A stored notification.
pub struct Row {
    pub id: Uuid,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub task_id: Option<Uuid>,
    pub task_key: Option<String>,
    pub task_title: Option<String>,
    pub project_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
    pub snoozed_until: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
}

impl From<Row> for Notification {
    fn from(row: Row) -> Self {
        let task = match (row.task_id, row.task_key, row.task_title) {
            (Some(id), Some(key), Some(title)) => Some(TaskRef { id, key, title }),
            _ => None,
        };
        Self {
            id: row.id,
            kind: row.kind,
            title: row.title,
            body: row.body,
            task,
            project_id: row.project_id,
            actor_id: row.actor_id,
            created_at: row.created_at,
            read_at: row.read_at,
            snoozed_until: row.snoozed_until,
            archived_at: row.archived_at,
        }
    }
}

/// A notification to store: what it says and where it comes from.
pub struct Pending {
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    /// The project it is about (nil for none: a tenant-wide notice).
    pub project_id: Uuid,
    /// The task it is about (none for a project's).
    pub task: Option<TaskRef>,
    pub notice: NewNotification,
}

/// What [`insert_many`] stored.
#[derive(Debug, Default)]
pub struct Stored {
    /// The events that told someone new (an event whose receivers were all told already
    /// is a redelivery).
    pub events: Vec<Uuid>,
    /// Mails queued or added to (`notification_mails`).
    pub mails: i64,
    /// The notifications stored (an id and its place in what was given), in that order.
    pub notifications: Vec<(Uuid, usize)>,
}

/// Stores `pending` in one statement, and puts each new one its receiver wants by email
/// (their choice for its kind, else the kind's default) in a mail: one of its own, due
/// now, or the receiver's open digest (opened now if they have none, due `digest_secs`
/// later).
pub async fn insert_many(
    conn: &mut PgConnection,
    pending: &[Pending],
    digest_secs: f64,
) -> sqlx::Result<Stored> {
    if pending.is_empty() {
        return Ok(Stored::default());
    }
    let column = |f: fn(&Pending) -> Uuid| pending.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&Pending) -> &str| pending.iter().map(f).collect::<Vec<_>>();
    let task = |f: fn(&TaskRef) -> &str| {
        pending
            .iter()
            .map(|p| p.task.as_ref().map(f))
            .collect::<Vec<_>>()
    };
    let ids: Vec<Uuid> = pending
        .iter()
        .map(|p| common::events::uuid_v7_at(p.occurred_at))
        .collect();
    let times: Vec<DateTime<Utc>> = pending.iter().map(|p| p.occurred_at).collect();
    let task_ids: Vec<Option<Uuid>> = pending
        .iter()
        .map(|p| p.task.as_ref().map(|t| t.id))
        .collect();
    let defaults: Vec<Preference> = Kind::ALL.map(Preference::default_for).to_vec();
    let rows = sqlx::query!(
        r#"with new as (
             select u.*, coalesce(p.email, d.email) as email
               from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                           $6::text[], $7::uuid[], $8::text[], $9::text[], $10::uuid[],
                           $11::uuid[], $12::timestamptz[])
                    as u(id, recipient, event, kind, title, body, task, key, task_title,
                         project, actor, at)
               join unnest($13::text[], $14::text[]) as d(kind, email) on d.kind = u.kind
               left join notification_preferences p
                      on p.user_id = u.recipient and p.kind = u.kind
           ), windows as (
             insert into notification_mails (id, recipient_id, digest, next_attempt_at)
             select gen_random_uuid(), r.recipient, true, now() + make_interval(secs => $15)
               from (select distinct recipient from new where email = 'digest') r
             on conflict (recipient_id)
                where digest and attempts = 0 and sent_at is null and failed_at is null
             do update set recipient_id = excluded.recipient_id
             returning id, recipient_id
           ), inserted as (
             insert into notifications (id, recipient_id, event_id, kind, title, body, task_id,
                                        task_key, task_title, project_id, actor_id, created_at,
                                        mail_id)
             select n.id, n.recipient, n.event, n.kind, n.title, n.body, n.task, n.key,
                    n.task_title,
                    nullif(n.project, '00000000-0000-0000-0000-000000000000'),
                    nullif(n.actor, '00000000-0000-0000-0000-000000000000'), n.at,
                    case n.email when 'instant' then n.id when 'digest' then w.id end
               from new n
               left join windows w on w.recipient_id = n.recipient and n.email = 'digest'
             on conflict (event_id, recipient_id) do nothing
             returning id, recipient_id, event_id, mail_id = id as instant
           ), instant as (
             insert into notification_mails (id, recipient_id, digest, next_attempt_at)
             select id, recipient_id, false, now() from inserted where instant
             returning 1
           )
           select id, event_id,
                  (select count(*) from instant) + (select count(*) from windows) as "mails!"
             from inserted"#,
        &ids,
        &column(|p| p.notice.recipient),
        &column(|p| p.event_id),
        &text(|p| p.notice.kind.as_str()) as &[&str],
        &text(|p| &p.notice.title) as &[&str],
        &text(|p| &p.notice.body) as &[&str],
        &task_ids as &[Option<Uuid>],
        &task(|t| &t.key) as &[Option<&str>],
        &task(|t| &t.title) as &[Option<&str>],
        &column(|p| p.project_id),
        &column(|p| p.actor_id.unwrap_or_default()),
        &times,
        &defaults.iter().map(|d| d.kind.as_str()).collect::<Vec<_>>() as &[&str],
        &defaults
            .iter()
            .map(|d| d.email.as_str())
            .collect::<Vec<_>>() as &[&str],
        digest_secs,
    )
    .fetch_all(conn)
    .await?;
    let place: std::collections::HashMap<Uuid, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut notifications: Vec<(Uuid, usize)> = rows
        .iter()
        .filter_map(|r| Some((r.id, *place.get(&r.id)?)))
        .collect();
    notifications.sort_unstable_by_key(|(_, at)| *at);
    Ok(Stored {
        mails: rows.first().map_or(0, |r| r.mails),
        events: rows.into_iter().map(|r| r.event_id).collect(),
        notifications,
    })
}

/// What a page of the inbox shows.
pub struct Filter<'a> {
    pub unread_only: bool,
    pub kind: Option<&'a str>,
    pub archived: bool,
    /// Notifications older than this one (the cursor).
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// A page of `user`'s inbox, newest first. Snoozed notifications are left out until
/// their time; archived ones show only in the archive.
pub async fn list(
    conn: &mut PgConnection,
    user: Uuid,
    filter: &Filter<'_>,
) -> sqlx::Result<Vec<Row>> {
    sqlx::query_as!(
        Row,
        "select id, kind, title, body, task_id, task_key, task_title, project_id, actor_id,
                created_at, read_at, snoozed_until, archived_at
           from notifications
          where recipient_id = $1
            and (not $2 or read_at is null)
            and ($3::text is null or kind = $3)
            and (archived_at is not null) = $4
            and (snoozed_until is null or snoozed_until <= now())
            and ($5::uuid is null or id < $5)
          order by id desc
          limit $6",
        user,
        filter.unread_only,
        filter.kind,
        filter.archived,
        filter.before,
        filter.limit,
    )
    .fetch_all(conn)
    .await
}

/// `user`'s unread notifications in the inbox (not archived, not snoozed).
pub async fn unread_count(conn: &mut PgConnection, user: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from notifications
            where recipient_id = $1 and read_at is null and archived_at is null
              and (snoozed_until is null or snoozed_until <= now())"#,
        user,
    )
    .fetch_one(conn)
    .await
}

/// What a change to one notification does.
#[derive(Debug, Clone, Copy)]
pub enum Mark {
    Read,
    Unread,
    Archive,
    Snooze(DateTime<Utc>),
}

/// Applies `mark` to `user`'s notification `id`; `None` when they have no such one.
pub async fn mark(
    conn: &mut PgConnection,
    user: Uuid,
    id: Uuid,
    mark: Mark,
) -> sqlx::Result<Option<Row>> {
    let (read, unread, archive, snooze) = match mark {
        Mark::Read => (true, false, false, None),
        Mark::Unread => (false, true, false, None),
        Mark::Archive => (false, false, true, None),
        Mark::Snooze(until) => (false, false, false, Some(until)),
    };
    sqlx::query_as!(
        Row,
        "update notifications
            set read_at = case when $3 then coalesce(read_at, now())
                               when $4 then null else read_at end,
                archived_at = case when $5 then coalesce(archived_at, now()) else archived_at end,
                snoozed_until = coalesce($6, snoozed_until)
          where id = $1 and recipient_id = $2
         returning id, kind, title, body, task_id, task_key, task_title, project_id, actor_id,
                   created_at, read_at, snoozed_until, archived_at",
        id,
        user,
        read,
        unread,
        archive,
        snooze,
    )
    .fetch_optional(conn)
    .await
}

/// Marks every unread notification of `user` read; how many there were.
pub async fn read_all(conn: &mut PgConnection, user: Uuid) -> sqlx::Result<u64> {
    Ok(sqlx::query!(
        "update notifications set read_at = now() where recipient_id = $1 and read_at is null",
        user,
    )
    .execute(conn)
    .await?
    .rows_affected())
}
