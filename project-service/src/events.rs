//! The events a write publishes: enveloped with the caller as actor and the request's id,
//! written to the tenant's outbox in the write's transaction
//! ([`crate::tenant::TenantTx::emit`]); the relay ([`crate::relay`]) publishes them once
//! the transaction commits.

use common::ApiError;
use common::auth::AuthUser;
use common::events::Envelope;
use serde_json::Value;
use sqlx::PgConnection;

/// Writes a `kind` event with `data`, by `user`, to the outbox.
pub async fn enqueue(
    conn: &mut PgConnection,
    user: &AuthUser,
    kind: &str,
    data: Value,
) -> Result<(), ApiError> {
    let event = Envelope::new(kind, user.tenant_id, Some(user.user_id), data);
    let request_id = common::telemetry::current_request_id();
    common::events::outbox::enqueue(conn, &event, request_id.as_deref()).await?;
    Ok(())
}
