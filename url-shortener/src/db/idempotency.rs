//! `Idempotency-Key` on creates: the first answer is kept (in the create's transaction)
//! and a retry with the same key from the same user gets it again.

use axum::http::StatusCode;
use common::ApiError;
use common::auth::AuthUser;
use serde_json::Value;
use sqlx::{Postgres, Transaction};

pub use common::extract::idempotency_key as key;

/// The answer an earlier create with this key gave, if any.
pub async fn replay(
    db: &sqlx::PgPool,
    user: &AuthUser,
    key: &str,
) -> Result<Option<(StatusCode, Value)>, ApiError> {
    let found: Option<(i32, Value)> = sqlx::query_as(
        "select status, body from idempotency_keys
         where tenant_id = $1 and user_id = $2 and key = $3",
    )
    .bind(user.tenant_id)
    .bind(user.user_id)
    .bind(key)
    .fetch_optional(db)
    .await?;
    Ok(found.map(|(status, body)| {
        let status = u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        (status, body)
    }))
}

/// Keeps the answer under the key. A concurrent create with the same key fails here on
/// the primary key (409), and its caller's retry replays.
pub async fn remember(
    tx: &mut Transaction<'_, Postgres>,
    user: &AuthUser,
    key: &str,
    status: StatusCode,
    body: &Value,
) -> Result<(), ApiError> {
    sqlx::query(
        "insert into idempotency_keys (tenant_id, user_id, key, status, body)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(user.tenant_id)
    .bind(user.user_id)
    .bind(key)
    .bind(i32::from(status.as_u16()))
    .bind(body)
    .execute(&mut **tx)
    .await
    .map_err(|err| match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => ApiError::Conflict(
            "A request with this Idempotency-Key is being handled; retry it.".into(),
        ),
        _ => err.into(),
    })?;
    Ok(())
}
