//! The `links` table.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::{Target, TargetKind};

/// One row of `links`.
#[derive(Debug, Clone)]
pub struct LinkRow {
    pub code: String,
    pub tenant_id: Uuid,
    pub tenant_slug: String,
    pub created_by: Uuid,
    pub target_type: String,
    pub target_id: Uuid,
    pub password_hash: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub max_visits: Option<i64>,
    pub visits: i64,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl LinkRow {
    pub fn target(&self) -> Target {
        Target {
            kind: TargetKind::parse(&self.target_type).unwrap_or(TargetKind::Task),
            id: self.target_id,
        }
    }
}

/// What a new link is made of.
pub struct NewLink<'a> {
    pub code: &'a str,
    pub tenant_id: Uuid,
    pub tenant_slug: &'a str,
    pub created_by: Uuid,
    pub target: Target,
    pub password_hash: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
    pub max_visits: Option<i64>,
}

/// Inserts the link; `Ok(None)` when the code is taken (the caller draws another).
pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    link: &NewLink<'_>,
) -> sqlx::Result<Option<LinkRow>> {
    sqlx::query_as!(
        LinkRow,
        "insert into links (code, tenant_id, tenant_slug, created_by, target_type, target_id,
                            password_hash, expires_at, max_visits)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         on conflict (code) do nothing
         returning code, tenant_id, tenant_slug, created_by, target_type, target_id,
                   password_hash, expires_at, max_visits, visits, disabled, created_at,
                   updated_at, version",
        link.code,
        link.tenant_id,
        link.tenant_slug,
        link.created_by,
        link.target.kind.as_str(),
        link.target.id,
        link.password_hash,
        link.expires_at,
        link.max_visits,
    )
    .fetch_optional(&mut **tx)
    .await
}

/// Any tenant's link by code (the public redirect).
pub async fn by_code(db: impl PgExecutor<'_>, code: &str) -> sqlx::Result<Option<LinkRow>> {
    sqlx::query_as!(
        LinkRow,
        "select code, tenant_id, tenant_slug, created_by, target_type, target_id, password_hash,
                expires_at, max_visits, visits, disabled, created_at, updated_at, version
         from links
         where code = $1",
        code,
    )
    .fetch_optional(db)
    .await
}

/// A link of `tenant` by code; another tenant's code is simply not found.
pub async fn of_tenant(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    code: &str,
) -> sqlx::Result<Option<LinkRow>> {
    sqlx::query_as!(
        LinkRow,
        "select code, tenant_id, tenant_slug, created_by, target_type, target_id, password_hash,
                expires_at, max_visits, visits, disabled, created_at, updated_at, version
         from links
         where tenant_id = $1 and code = $2",
        tenant,
        code,
    )
    .fetch_optional(db)
    .await
}

/// Position in a list: (created_at, code) of the last item seen.
pub type Cursor = (DateTime<Utc>, String);

/// Up to `limit` links of `tenant` (of `creator` only, when given), newest first,
/// after `cursor`.
pub async fn list(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    creator: Option<Uuid>,
    cursor: Option<&Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<LinkRow>> {
    sqlx::query_as!(
        LinkRow,
        "select code, tenant_id, tenant_slug, created_by, target_type, target_id, password_hash,
                expires_at, max_visits, visits, disabled, created_at, updated_at, version
         from links
         where tenant_id = $1
           and ($2::uuid is null or created_by = $2)
           and ($3::timestamptz is null or (created_at, code) < ($3, $4::text))
         order by created_at desc, code desc
         limit $5",
        tenant,
        creator,
        cursor.map(|c| c.0),
        cursor.map(|c| c.1.as_str()),
        limit,
    )
    .fetch_all(db)
    .await
}

/// The changes of a `PATCH`, already resolved (`None`: leave as is).
#[derive(Debug, Default)]
pub struct Changes {
    pub expires_at: Option<DateTime<Utc>>,
    pub password_hash: Option<Option<String>>,
    pub max_visits: Option<Option<i64>>,
    pub disabled: Option<bool>,
}

/// Applies `changes` and raises the version; `None` when the tenant has no such link, or
/// when `expected` is given and the link is no longer at that version.
pub async fn update(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    code: &str,
    changes: &Changes,
    expected: Option<i32>,
) -> sqlx::Result<Option<LinkRow>> {
    sqlx::query_as!(
        LinkRow,
        "update links set
             expires_at = coalesce($3, expires_at),
             password_hash = case when $4 then $5 else password_hash end,
             max_visits = case when $6 then $7 else max_visits end,
             disabled = coalesce($8, disabled),
             -- A link brought back to life may expire again, and say so again.
             expired_event_at = null,
             updated_at = now(),
             version = version + 1
         where tenant_id = $1 and code = $2 and ($9::integer is null or version = $9)
         returning code, tenant_id, tenant_slug, created_by, target_type, target_id,
                   password_hash, expires_at, max_visits, visits, disabled, created_at,
                   updated_at, version",
        tenant,
        code,
        changes.expires_at,
        changes.password_hash.is_some(),
        changes.password_hash.as_ref().and_then(Option::as_deref),
        changes.max_visits.is_some(),
        changes.max_visits.flatten(),
        changes.disabled,
        expected,
    )
    .fetch_optional(db)
    .await
}

pub async fn delete(db: impl PgExecutor<'_>, tenant: Uuid, code: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from links where tenant_id = $1 and code = $2",
        tenant,
        code,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the link's `url.expired` event as recorded; false when it already was (by
/// this or another instance), so each link says it once.
pub async fn mark_expired_event(
    tx: &mut Transaction<'_, Postgres>,
    code: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update links set expired_event_at = now() where code = $1 and expired_event_at is null",
        code,
    )
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The visits of a link written to the database so far (the redirect counts in memory
/// first and writes in batches); `None` for an unknown code.
pub async fn visits_written(db: impl PgExecutor<'_>, code: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!("select visits from links where code = $1", code)
        .fetch_optional(db)
        .await
}
