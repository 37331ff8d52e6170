//! `access_revocations`: members whose access tokens issued before a moment are void
//! (removed, or their role changed). The gateway polls them; a day's worth is kept.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// One revocation as the gateway reads it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Revocation {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    /// Access tokens of this member issued before this moment (Unix seconds) are void.
    pub revoked_before: i64,
}

/// Ends a member's access tokens issued until now, in one tenant (and prunes what is
/// older than a day).
pub async fn record(conn: &mut PgConnection, user: Uuid, tenant: Uuid) -> sqlx::Result<()> {
    sqlx::query!("delete from access_revocations where created_at < now() - interval '1 day'")
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "insert into access_revocations (tenant_id, user_id) values ($1, $2)",
        tenant,
        user,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The end (Unix seconds, rounded up) of the member's latest revocation of the last two
/// seconds, if any: a token issued within that second must be dated after it.
pub async fn recent_until(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    user: Uuid,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        "select ceil(extract(epoch from max(revoked_before)))::bigint from access_revocations
         where tenant_id = $1 and user_id = $2 and revoked_before > now() - interval '2 seconds'",
        tenant,
        user,
    )
    .fetch_one(db)
    .await
}

/// Up to 1,000 revocations after the cursor `after` (without one: of the last 20
/// minutes), each with its cursor, in order.
pub async fn after(
    db: impl PgExecutor<'_>,
    after: Option<i64>,
) -> sqlx::Result<Vec<(i64, Revocation)>> {
    let rows = sqlx::query!(
        r#"select seq, tenant_id, user_id,
                  ceil(extract(epoch from revoked_before))::bigint as "revoked_before!"
           from access_revocations
           where case when $1::bigint is null then created_at > now() - interval '20 minutes'
                      else seq > $1 end
           order by seq limit 1000"#,
        after,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let revocation = Revocation {
                tenant_id: row.tenant_id,
                user_id: row.user_id,
                revoked_before: row.revoked_before,
            };
            (row.seq, revocation)
        })
        .collect())
}

/// The cursor of the latest revocation (0 when there is none).
pub async fn latest_cursor(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"select coalesce(max(seq), 0) as "seq!" from access_revocations"#)
        .fetch_one(db)
        .await
}
