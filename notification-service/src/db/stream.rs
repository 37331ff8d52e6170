//! The live stream's tables (`migrations/tenant/0011_stream.sql`): the retained window of
//! what each tenant's stream sent, and the single-use tickets that open a stream.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::stream::{NewStreamEvent, StreamEvent};

/// Appends `rows` in order after whatever this tenant's stream holds, and returns those
/// that are new (a redelivered event's are there already), with their `seq`. Appends of
/// one tenant are serialised until the transaction ends, so `seq` order is commit order
/// and a reader who has seen `n` never finds an older row appear later.
pub async fn append(
    conn: &mut PgConnection,
    rows: &[NewStreamEvent],
) -> sqlx::Result<Vec<StreamEvent>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query!("select pg_advisory_xact_lock(hashtext('nexus.stream'))")
        .execute(&mut *conn)
        .await?;
    let column = |f: fn(&NewStreamEvent) -> Uuid| rows.iter().map(f).collect::<Vec<_>>();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    let tasks: Vec<Option<Uuid>> = rows.iter().map(|r| r.task_id).collect();
    let data: Vec<&str> = rows.iter().map(|r| r.data.as_str()).collect();
    let mut appended = sqlx::query_as!(
        StreamEvent,
        r#"insert into stream_events (event_id, recipient_id, kind, project_id, task_id, data)
           select u.event_id, u.recipient_id, u.kind, u.project_id, u.task_id, u.data
             from unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::text[])
                  with ordinality as u(event_id, recipient_id, kind, project_id, task_id, data, n)
            order by u.n
           on conflict (event_id, recipient_id) do nothing
           returning seq, recipient_id, kind, project_id, task_id, data"#,
        &column(|r| r.event_id),
        &column(|r| r.recipient),
        &kinds as &[&str],
        &column(|r| r.project_id),
        &tasks as &[Option<Uuid>],
        &data as &[&str],
    )
    .fetch_all(conn)
    .await?;
    appended.sort_unstable_by_key(|e| e.seq);
    Ok(appended)
}

/// Up to `limit` rows after `seq`, in order.
pub async fn after(
    conn: &mut PgConnection,
    seq: i64,
    limit: i64,
) -> sqlx::Result<Vec<StreamEvent>> {
    sqlx::query_as!(
        StreamEvent,
        "select seq, recipient_id, kind, project_id, task_id, data from stream_events
          where seq > $1 order by seq limit $2",
        seq,
        limit,
    )
    .fetch_all(conn)
    .await
}

/// The rows strictly between `after` and `before`, in order (a gap in what reached a
/// stream live).
pub async fn between(
    conn: &mut PgConnection,
    after: i64,
    before: i64,
) -> sqlx::Result<Vec<StreamEvent>> {
    sqlx::query_as!(
        StreamEvent,
        "select seq, recipient_id, kind, project_id, task_id, data from stream_events
          where seq > $1 and seq < $2 order by seq",
        after,
        before,
    )
    .fetch_all(conn)
    .await
}

/// Whether row `seq` is still in the window.
pub async fn holds(conn: &mut PgConnection, seq: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from stream_events where seq = $1) as "held!""#,
        seq
    )
    .fetch_one(conn)
    .await
}

/// The last row's `seq` (0 while the window is empty).
pub async fn last(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"select coalesce(max(seq), 0) as "seq!" from stream_events"#)
        .fetch_one(conn)
        .await
}

/// Drops rows older than `retention_secs` and lapsed tickets.
pub async fn prune(conn: &mut PgConnection, retention_secs: f64) -> sqlx::Result<u64> {
    let events = sqlx::query!(
        "delete from stream_events where at < now() - make_interval(secs => $1)",
        retention_secs,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!("delete from stream_tickets where expires_at < now()")
        .execute(conn)
        .await?;
    Ok(events.rows_affected())
}

/// The projects kept from members who are not in them (`visibility = 'members'`) that
/// `user` is not a member of.
pub async fn closed_projects(conn: &mut PgConnection, user: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "select p.id from projects p
          where p.visibility = 'members'
            and not exists (select 1 from project_members m
                             where m.project_id = p.id and m.user_id = $1)",
        user,
    )
    .fetch_all(conn)
    .await
}

/// A ticket's holder: the member, their role and the token that asked for it.
pub struct Ticket {
    pub user_id: Uuid,
    pub role: String,
    pub issued_at: i64,
    pub token_expires_at: i64,
}

/// Keeps a ticket (by its hash) for `ttl_secs`.
pub async fn issue_ticket(
    conn: &mut PgConnection,
    hash: &[u8],
    ticket: &Ticket,
    ttl_secs: f64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into stream_tickets (hash, user_id, role, issued_at, token_expires_at, expires_at)
         values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
        hash,
        ticket.user_id,
        ticket.role,
        ticket.issued_at,
        ticket.token_expires_at,
        ttl_secs,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the ticket of `hash` if it is here and current: a ticket opens one stream.
pub async fn redeem_ticket(conn: &mut PgConnection, hash: &[u8]) -> sqlx::Result<Option<Ticket>> {
    sqlx::query_as!(
        Ticket,
        "delete from stream_tickets where hash = $1 and expires_at > now()
         returning user_id, role, issued_at, token_expires_at",
        hash,
    )
    .fetch_optional(conn)
    .await
}
