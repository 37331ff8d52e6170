//! `Idempotency-Key` on creates: the first answer is kept (in the create's transaction)
//! and a retry with the same key from the same user gets it again.

use axum::http::StatusCode;
use common::ApiError;
use common::auth::AuthUser;
use common::db::ConstraintExt;
use serde_json::Value;
use sqlx::{Postgres, Transaction};

pub use common::extract::idempotency_key as key;

/// The primary key (`tenant_id, user_id, key`; PostgreSQL's default name for it) a
/// second create with the same key violates.
pub const KEY: &str = "idempotency_keys_pkey";

/// The answer an earlier create with this key gave, if any.
pub async fn replay(
    db: &sqlx::PgPool,
    user: &AuthUser,
    key: &str,
) -> Result<Option<(StatusCode, Value)>, ApiError> {
    let found = sqlx::query!(
        "select status, body from idempotency_keys
         where tenant_id = $1 and user_id = $2 and key = $3",
        user.tenant_id,
        user.user_id,
        key,
    )
    .fetch_optional(db)
    .await?;
    Ok(found.map(|row| {
        let status = u16::try_from(row.status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        (status, row.body)
    }))
}

/// Keeps the answer under the key. A concurrent create with the same key fails here on
/// [`KEY`] (409), and its caller's retry replays.
pub async fn remember(
    tx: &mut Transaction<'_, Postgres>,
    user: &AuthUser,
    key: &str,
    status: StatusCode,
    body: &Value,
) -> Result<(), ApiError> {
    sqlx::query!(
        "insert into idempotency_keys (tenant_id, user_id, key, status, body)
         values ($1, $2, $3, $4, $5)",
        user.tenant_id,
        user.user_id,
        key,
        i32::from(status.as_u16()),
        body,
    )
    .execute(&mut **tx)
    .await
    .on_constraint(KEY, || {
        ApiError::Conflict("A request with this Idempotency-Key is being handled; retry it.".into())
    })?;
    Ok(())
}
