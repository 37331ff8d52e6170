//! The webhook tables (`migrations/tenant/0012_webhooks.sql`): the tenant's endpoints,
//! their deliveries (stored with the event's notifications, before any attempt) and
//! each attempt.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// An endpoint as stored.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub format: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new endpoint's columns.
pub struct NewEndpoint<'a> {
    pub id: Uuid,
    pub url: &'a str,
    pub events: &'a [String],
    pub description: &'a str,
    pub format: &'a str,
    pub secret: &'a str,
    pub created_by: Uuid,
}

pub async fn insert(conn: &mut PgConnection, new: &NewEndpoint<'_>) -> sqlx::Result<Endpoint> {
    sqlx::query_as!(
        Endpoint,
        "insert into webhook_endpoints (id, url, events, description, format, secret, created_by)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning id, url, events, description, format, enabled, disabled_reason,
                   failing_since, created_by, created_at, updated_at",
        new.id,
        new.url,
        new.events,
        new.description,
        new.format,
        new.secret,
        new.created_by,
    )
    .fetch_one(conn)
    .await
}

/// Every endpoint, oldest first.
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<Endpoint>> {
    sqlx::query_as!(
        Endpoint,
        "select id, url, events, description, format, enabled, disabled_reason, failing_since,
                created_by, created_at, updated_at
           from webhook_endpoints order by id",
    )
    .fetch_all(conn)
    .await
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as!(
        Endpoint,
        "select id, url, events, description, format, enabled, disabled_reason, failing_since,
                created_by, created_at, updated_at
           from webhook_endpoints where id = $1",
        id,
    )
    .fetch_optional(conn)
    .await
}

/// Changes to an endpoint (`None` keeps a column). Turning it on forgets why it was off
/// and its failing streak; turning it off is `manual`.
pub struct Change<'a> {
    pub url: Option<&'a str>,
    pub events: Option<&'a [String]>,
    pub description: Option<&'a str>,
    pub format: Option<&'a str>,
    pub enabled: Option<bool>,
}

pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    change: &Change<'_>,
) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as!(
        Endpoint,
        "update webhook_endpoints
            set url = coalesce($2, url),
                events = coalesce($3, events),
                description = coalesce($4, description),
                format = coalesce($5, format),
                enabled = coalesce($6, enabled),
                disabled_reason = case when $6 is null then disabled_reason
                                       when $6 then null else 'manual' end,
                failing_since = case when $6 then null else failing_since end,
                updated_at = now()
          where id = $1
         returning id, url, events, description, format, enabled, disabled_reason,
                   failing_since, created_by, created_at, updated_at",
        id,
        change.url,
        change.events,
        change.description,
        change.format,
        change.enabled,
    )
    .fetch_optional(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!("delete from webhook_endpoints where id = $1", id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Makes `secret` the endpoint's; the one it replaces keeps signing for `overlap_secs`.
pub async fn rotate(
    conn: &mut PgConnection,
    id: Uuid,
    secret: &str,
    overlap_secs: f64,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update webhook_endpoints
            set previous_secret = secret,
                previous_secret_until = now() + make_interval(secs => $3),
                secret = $2, updated_at = now()
          where id = $1",
        id,
        secret,
        overlap_secs,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Turns the endpoint off for `reason`, its waiting deliveries failed (a `recover`
/// replays them): whether it was on.
pub async fn disable(conn: &mut PgConnection, id: Uuid, reason: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update webhook_endpoints set enabled = false, disabled_reason = $2, updated_at = now()
          where id = $1 and enabled",
        id,
        reason,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "update webhook_deliveries set status = 'failed', next_attempt_at = null
          where endpoint_id = $1 and status = 'pending'",
        id,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// What the consumer matches events against: the enabled endpoints.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: Uuid,
    pub events: Vec<String>,
    pub format: String,
}

pub async fn subscriptions(conn: &mut PgConnection) -> sqlx::Result<Vec<Subscription>> {
    sqlx::query_as!(
        Subscription,
        "select id, events, format from webhook_endpoints where enabled order by id",
    )
    .fetch_all(conn)
    .await
}

/// A delivery about to be stored.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub body: String,
    pub occurred_at: DateTime<Utc>,
}

/// Stores deliveries due now; one already stored for the same event and endpoint (a
/// redelivered event) is left as it is. How many are new.
pub async fn enqueue(conn: &mut PgConnection, deliveries: &[NewDelivery]) -> sqlx::Result<u64> {
    if deliveries.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
    let endpoints: Vec<Uuid> = deliveries.iter().map(|d| d.endpoint_id).collect();
    let events: Vec<Uuid> = deliveries.iter().map(|d| d.event_id).collect();
    let types: Vec<String> = deliveries.iter().map(|d| d.event_type.clone()).collect();
    let bodies: Vec<String> = deliveries.iter().map(|d| d.body.clone()).collect();
    let times: Vec<DateTime<Utc>> = deliveries.iter().map(|d| d.occurred_at).collect();
    let done = sqlx::query!(
        "insert into webhook_deliveries
                (id, endpoint_id, event_id, event_type, body, occurred_at, next_attempt_at)
         select id, endpoint, event, kind, body, at, now()
           from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                       $6::timestamptz[]) as d(id, endpoint, event, kind, body, at)
         on conflict (endpoint_id, event_id) do nothing",
        &ids,
        &endpoints,
        &events,
        &types,
        &bodies,
        &times,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A delivery claimed for an attempt, with what sending it needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub url: String,
    pub secret: String,
    /// The rotated-out secret while it still signs.
    pub previous_secret: Option<String>,
    pub body: String,
    pub occurred_at: DateTime<Utc>,
    /// This attempt's number (1 for the first).
    pub attempts: i32,
}

/// Claims up to `limit` due deliveries of enabled endpoints (oldest first per endpoint):
/// at most its free slots of an endpoint in `slots`, `per_endpoint` of any other. Each is
/// tried once more and is not due again for `lease_secs` (so another instance, or this
/// one after a crash mid-send, tries it again only then).
pub async fn claim(
    conn: &mut PgConnection,
    limit: i64,
    lease_secs: f64,
    slots: &[(Uuid, i32)],
    per_endpoint: usize,
) -> sqlx::Result<Vec<Claimed>> {
    let endpoints: Vec<Uuid> = slots.iter().map(|(e, _)| *e).collect();
    let free: Vec<i32> = slots.iter().map(|(_, n)| *n).collect();
    sqlx::query_as!(
        Claimed,
        r#"with slots as (
             select e.id as endpoint, coalesce(f.slots, $5) as n
               from webhook_endpoints e
               left join unnest($3::uuid[], $4::int4[]) as f(endpoint, slots)
                      on f.endpoint = e.id
              where e.enabled
           ), due as (
             select d.id from slots s
              cross join lateral (
                select d.id from webhook_deliveries d
                 where d.endpoint_id = s.endpoint and d.status = 'pending'
                   and d.next_attempt_at <= now()
                 order by d.next_attempt_at
                 limit s.n
                   for update skip locked
              ) d
              limit $1
           ), claimed as (
             update webhook_deliveries d
                set attempts = d.attempts + 1,
                    next_attempt_at = now() + make_interval(secs => $2)
               from due
              where d.id = due.id
             returning d.id, d.endpoint_id, d.body, d.occurred_at, d.attempts
           )
           select c.id as "id!", c.endpoint_id as "endpoint_id!", e.url, e.secret,
                  case when e.previous_secret_until > now() then e.previous_secret end
                      as previous_secret,
                  c.body as "body!", c.occurred_at as "occurred_at!",
                  c.attempts as "attempts!"
             from claimed c join webhook_endpoints e on e.id = c.endpoint_id
            order by c.id"#,
        limit,
        lease_secs,
        &endpoints,
        &free,
        per_endpoint as i32,
    )
    .fetch_all(conn)
    .await
}

/// One attempt's outcome.
pub struct Attempt<'a> {
    pub delivery: Uuid,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub duration_ms: i32,
    pub response: &'a str,
    pub error: Option<&'a str>,
}

/// Records attempts (a redelivered record adds nothing).
pub async fn record_many(conn: &mut PgConnection, attempts: &[Attempt<'_>]) -> sqlx::Result<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    let deliveries: Vec<Uuid> = attempts.iter().map(|a| a.delivery).collect();
    let numbers: Vec<i32> = attempts.iter().map(|a| a.attempt).collect();
    let times: Vec<DateTime<Utc>> = attempts.iter().map(|a| a.at).collect();
    let codes: Vec<Option<i32>> = attempts.iter().map(|a| a.status_code).collect();
    let durations: Vec<i32> = attempts.iter().map(|a| a.duration_ms).collect();
    let responses: Vec<&str> = attempts.iter().map(|a| a.response).collect();
    let errors: Vec<Option<&str>> = attempts.iter().map(|a| a.error).collect();
    sqlx::query!(
        "insert into webhook_attempts
                (delivery_id, attempt, at, status_code, duration_ms, response, error)
         select * from unnest($1::uuid[], $2::int4[], $3::timestamptz[], $4::int4[],
                              $5::int4[], $6::text[], $7::text[])
         on conflict (delivery_id, attempt) do nothing",
        &deliveries,
        &numbers,
        &times,
        &codes as &[Option<i32>],
        &durations,
        &responses as &[&str],
        &errors as &[Option<&str>],
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Where a delivery stands after an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Settled {
    Succeeded,
    /// Tried again in this many milliseconds.
    RetryIn(f64),
    /// Failed for good (the schedule is over, or the endpoint is gone).
    Failed,
}

/// Sets where each delivery stands.
pub async fn settle(conn: &mut PgConnection, settled: &[(Uuid, Settled)]) -> sqlx::Result<()> {
    if settled.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = settled.iter().map(|(id, _)| *id).collect();
    let statuses: Vec<&str> = settled
        .iter()
        .map(|(_, s)| match s {
            Settled::Succeeded => "succeeded",
            Settled::RetryIn(_) => "pending",
            Settled::Failed => "failed",
        })
        .collect();
    let waits: Vec<Option<f64>> = settled
        .iter()
        .map(|(_, s)| match s {
            Settled::RetryIn(ms) => Some(*ms),
            _ => None,
        })
        .collect();
    sqlx::query!(
        "update webhook_deliveries d
            set status = u.status,
                next_attempt_at = now() + make_interval(secs => u.wait / 1000)
           from unnest($1::uuid[], $2::text[], $3::float8[]) as u(id, status, wait)
          where d.id = u.id",
        &ids,
        &statuses as &[&str],
        &waits as &[Option<f64>],
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// `endpoints` delivered: their failing streaks are over.
pub async fn streak_over(conn: &mut PgConnection, endpoints: &[Uuid]) -> sqlx::Result<()> {
    if endpoints.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "update webhook_endpoints set failing_since = null
          where id = any($1) and failing_since is not null",
        endpoints,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// `endpoints` failed: each one's failing streak starts now unless it was failing
/// already; when each streak started.
pub async fn streak(
    conn: &mut PgConnection,
    endpoints: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, DateTime<Utc>)>> {
    if endpoints.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query!(
        r#"update webhook_endpoints set failing_since = coalesce(failing_since, now())
            where id = any($1) returning id, failing_since as "since!""#,
        endpoints,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.since)).collect())
}

/// When the next waiting delivery of an enabled endpoint other than `busy` is due, if
/// one is waiting (a busy endpoint's turn comes when a slot of it frees).
pub async fn next_due(
    conn: &mut PgConnection,
    busy: &[Uuid],
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "select min(d.next_attempt_at) from webhook_deliveries d
           join webhook_endpoints e on e.id = d.endpoint_id and e.enabled
          where d.status = 'pending' and d.endpoint_id <> all($1)",
        busy,
    )
    .fetch_one(conn)
    .await
}

/// A delivery as its log shows it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The endpoint's deliveries, newest first, before `before` (a delivery id), of `status`
/// when one is named.
pub async fn deliveries(
    conn: &mut PgConnection,
    endpoint: Uuid,
    before: Option<Uuid>,
    status: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as!(
        Delivery,
        "select id, event_id, event_type, status, attempts, next_attempt_at, created_at
           from webhook_deliveries
          where endpoint_id = $1 and ($2::uuid is null or id < $2)
            and ($3::text is null or status = $3)
          order by id desc
          limit $4",
        endpoint,
        before,
        status,
        limit,
    )
    .fetch_all(conn)
    .await
}

/// One attempt as the log shows it.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub duration_ms: i32,
    pub response: String,
    pub error: Option<String>,
}

/// The attempts of `deliveries`, in order.
pub async fn attempts(
    conn: &mut PgConnection,
    deliveries: &[Uuid],
) -> sqlx::Result<Vec<AttemptRow>> {
    sqlx::query_as!(
        AttemptRow,
        "select delivery_id, attempt, at, status_code, duration_ms, response, error
           from webhook_attempts where delivery_id = any($1)
          order by delivery_id, attempt",
        deliveries,
    )
    .fetch_all(conn)
    .await
}

/// Makes one of the endpoint's deliveries due now (whatever became of it): whether it
/// is the endpoint's.
pub async fn retry(conn: &mut PgConnection, endpoint: Uuid, delivery: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update webhook_deliveries set status = 'pending', next_attempt_at = now()
          where id = $1 and endpoint_id = $2",
        delivery,
        endpoint,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Makes the endpoint's failed deliveries made since `since` due now: how many.
pub async fn recover(
    conn: &mut PgConnection,
    endpoint: Uuid,
    since: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "update webhook_deliveries set status = 'pending', next_attempt_at = now()
          where endpoint_id = $1 and status = 'failed' and created_at >= $2",
        endpoint,
        since,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
