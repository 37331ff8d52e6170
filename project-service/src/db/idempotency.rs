//! `Idempotency-Key` on creates (the `idempotency_keys` table): the first answer is kept
//! in the create's transaction, and a retry with the same key by the same user gets it
//! again.

use axum::http::StatusCode;
use common::ApiError;
use common::auth::AuthUser;
use common::db::ConstraintExt;
use serde_json::Value;
use sqlx::PgConnection;

pub use common::extract::idempotency_key as key;

/// The answer an earlier create with this caller's `key` gave, if any.
pub async fn replay(
    conn: &mut PgConnection,
    user: &AuthUser,
    key: &str,
) -> sqlx::Result<Option<(StatusCode, Value)>> {
    let found = sqlx::query!(
        "select status, body from idempotency_keys where user_id = $1 and key = $2",
        user.user_id,
        key,
    )
    .fetch_optional(conn)
    .await?;
    Ok(found.map(|row| {
        let status = u16::try_from(row.status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        (status, row.body)
    }))
}

/// Keeps a create's answer under its key, in the create's transaction. A concurrent
/// create with the same key fails here on the primary key (409), and its caller's retry
/// replays.
pub async fn remember(
    conn: &mut PgConnection,
    user: &AuthUser,
    key: &str,
    status: StatusCode,
    body: &Value,
) -> Result<(), ApiError> {
    sqlx::query!(
        "insert into idempotency_keys (key, user_id, status, body) values ($1, $2, $3, $4)",
        key,
        user.user_id,
        i32::from(status.as_u16()),
        body,
    )
    .execute(conn)
    .await
    .on_constraint("idempotency_keys_pkey", || {
        ApiError::Conflict("A request with this Idempotency-Key is being handled; retry it.".into())
    })?;
    Ok(())
}
