//! The public API: projects, boards and tasks of the caller's tenant, each tenant in its
//! own database.

pub mod attachments;
pub mod columns;
pub mod comments;
pub mod members;
pub mod projects;
pub mod shared;
pub mod tasks;
pub mod time;

use axum::Router;
use axum::routing::{get, post};
use common::ApiError;
use common::auth::AuthUser;
use common::events::Envelope;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::pools::Lease;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects",
            post(projects::create).get(projects::list),
        )
        .route(
            "/api/v1/projects/{id}",
            get(projects::get_one)
                .patch(projects::update)
                .delete(projects::remove),
        )
        .route("/api/v1/projects/{id}/board", get(projects::board))
        .route(
            "/api/v1/projects/{id}/activity",
            get(projects::activity_log),
        )
        .route("/api/v1/projects/{id}/members", get(members::list))
        .route(
            "/api/v1/projects/{id}/members/{user_id}",
            axum::routing::put(members::put).delete(members::remove),
        )
        .route("/api/v1/projects/{id}/columns", post(columns::create))
        .route(
            "/api/v1/projects/{id}/columns/{column_id}",
            axum::routing::patch(columns::update).delete(columns::remove),
        )
        .route(
            "/api/v1/projects/{id}/tasks",
            post(tasks::create).get(tasks::list),
        )
        .route("/api/v1/tasks/{id}/progress", get(tasks::progress))
        .route(
            "/api/v1/tasks/{id}/worklogs",
            post(time::create).get(time::list),
        )
        .route(
            "/api/v1/tasks/{id}/worklogs/{log_id}",
            axum::routing::delete(time::remove),
        )
        .route(
            "/api/v1/tasks/{id}/comments",
            post(comments::create).get(comments::list),
        )
        .route(
            "/api/v1/tasks/{id}/comments/{comment_id}",
            axum::routing::patch(comments::update).delete(comments::remove),
        )
        .route(
            "/api/v1/tasks/{id}/attachments",
            post(attachments::upload)
                .get(attachments::list)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/tasks/{id}/attachments/{attachment_id}",
            get(attachments::download).delete(attachments::remove),
        )
        .route("/shared/tasks/{id}", get(shared::task))
        .route("/shared/projects/{id}", get(shared::project))
        .route("/api/v1/tasks/{id}/timer/start", post(time::start))
        .route("/api/v1/tasks/{id}/timer/stop", post(time::stop))
        .route("/api/v1/tasks/{id}/time", get(time::task_time))
        .route("/api/v1/projects/{id}/time", get(time::project_time))
        .route("/api/v1/projects/{id}/worklogs.csv", get(time::export))
        .route(
            "/api/v1/tasks/{id}",
            get(tasks::get_one)
                .patch(tasks::update)
                .delete(tasks::remove),
        )
        .route("/api/v1/tasks/{id}/move", post(tasks::move_task))
}

/// The caller's tenant database. The tenant is the token's (`AuthUser` has checked it
/// against the gateway's `X-Tenant-Id`), so a token can only ever reach its own data.
pub async fn tenant_db(state: &AppState, user: &AuthUser) -> Result<Lease, ApiError> {
    state.pools.lease(user.tenant_id).await
}

/// Records a change in the activity log, in the change's transaction.
pub async fn activity(
    conn: &mut PgConnection,
    user: &AuthUser,
    project: Uuid,
    task: Option<Uuid>,
    action: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), ApiError> {
    sqlx::query(
        "insert into activity (id, project_id, task_id, actor_id, action, before, after)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::now_v7())
    .bind(project)
    .bind(task)
    .bind(user.user_id)
    .bind(action)
    .bind(before)
    .bind(after)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes an event to the tenant's outbox, in the change's transaction.
pub async fn emit(
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

pub use common::extract::{idempotency_key, if_match};

/// The answer a create with this caller's `key` gave before, if any.
pub async fn replay(
    conn: &mut PgConnection,
    user: &AuthUser,
    key: &str,
) -> Result<Option<(axum::http::StatusCode, Value)>, ApiError> {
    let found: Option<(i32, Value)> =
        sqlx::query_as("select status, body from idempotency_keys where user_id = $1 and key = $2")
            .bind(user.user_id)
            .bind(key)
            .fetch_optional(conn)
            .await?;
    Ok(found.map(|(status, body)| {
        let status = u16::try_from(status)
            .ok()
            .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
            .unwrap_or(axum::http::StatusCode::OK);
        (status, body)
    }))
}

/// Keeps a create's answer under its key, in the create's transaction. A concurrent
/// create with the same key fails here on the primary key, and its caller replays.
pub async fn remember(
    conn: &mut PgConnection,
    user: &AuthUser,
    key: &str,
    status: axum::http::StatusCode,
    body: &Value,
) -> Result<(), ApiError> {
    sqlx::query(
        "insert into idempotency_keys (key, user_id, status, body) values ($1, $2, $3, $4)",
    )
    .bind(key)
    .bind(user.user_id)
    .bind(i32::from(status.as_u16()))
    .bind(body)
    .execute(conn)
    .await
    .map_err(|err| match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => ApiError::Conflict(
            "A request with this Idempotency-Key is being handled; retry it.".into(),
        ),
        _ => err.into(),
    })?;
    Ok(())
}

/// The project of a task, or 404.
pub async fn project_of(conn: &mut PgConnection, task: Uuid) -> Result<Uuid, ApiError> {
    sqlx::query_scalar("select project_id from tasks where id = $1")
        .bind(task)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::NotFound("There is no such task.".into()))
}

#[derive(serde::Deserialize)]
struct Lookup {
    limits: PlanLimits,
}

/// The limits of a tenant's plan (`None`: unlimited).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct PlanLimits {
    pub projects: Option<i64>,
    pub storage_bytes: Option<i64>,
}

/// The caller's plan limits, from tenant-resolver.
pub async fn plan_limits(state: &AppState, slug: &str) -> Result<PlanLimits, ApiError> {
    let url = format!(
        "{}/internal/tenants/by-slug/{slug}",
        state.config.tenant_resolver_url.trim_end_matches('/')
    );
    let lookup: Lookup =
        internal_get(state, state.http.get(url), "The organisation's plan").await?;
    Ok(lookup.limits)
}

/// GETs another service's internal endpoint as JSON. Any failure is a 503 saying that
/// `what` cannot be checked right now (the cause goes to the log).
pub async fn internal_get<T: serde::de::DeserializeOwned>(
    state: &AppState,
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<T, ApiError> {
    let unavailable = |e: reqwest::Error| {
        tracing::warn!(error = %e, what, "internal call failed");
        ApiError::Unavailable {
            retry_after: 5,
            detail: format!("{what} cannot be checked right now."),
        }
    };
    request
        .header(reqwest::header::AUTHORIZATION, state.internal.bearer())
        .send()
        .await
        .map_err(unavailable)?
        .error_for_status()
        .map_err(unavailable)?
        .json()
        .await
        .map_err(unavailable)
}
