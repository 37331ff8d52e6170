//! The caller's notifications: a page of the inbox, the unread count, and marking one or
//! all of them read, unread, archived or snoozed.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use common::auth::AuthUser;
use common::error::Problem;
use common::extract::{FieldErrors, Json, Query, ValidJson, Validate};
use common::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::db;
use crate::db::notifications::{Filter, Mark};
use crate::domain::notification::{Kind, Notification};

/// This resource's routes, under `/api/v1/notifications`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(list))
        .route("/unread-count", get(unread_count))
        .route("/read-all", post(read_all))
        .route("/{id}/read", post(read))
        .route("/{id}/unread", post(unread))
        .route("/{id}/archive", post(archive))
        .route("/{id}/snooze", post(snooze))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InboxFilter {
    /// Only unread notifications.
    pub unread: Option<bool>,
    /// Only this kind (`task_assigned`, `task_status_changed`, `comment_added`, `mentioned`).
    pub kind: Option<String>,
    /// The archive instead of the inbox.
    pub archived: Option<bool>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
    /// 1 to 100 (default 50).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboxPage {
    pub items: Vec<Notification>,
    pub next_cursor: Option<Uuid>,
    pub unread_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadCount {
    pub unread_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadAll {
    /// How many notifications were marked read.
    pub updated: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Snooze {
    /// When the notification shows again (RFC 3339, in the future, within a year).
    pub until: DateTime<Utc>,
}

impl Validate for Snooze {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let now = Utc::now();
        let mut errors = FieldErrors::new();
        errors.check(self.until > now, "until", "must be in the future");
        errors.check(
            self.until <= now + chrono::Duration::days(366),
            "until",
            "must be within a year",
        );
        errors.finish()
    }
}

/// A page of the caller's notifications, newest first, with their unread count.
/// Snoozed notifications are hidden until their time, archived ones shown only with
/// `archived=true`.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(InboxFilter),
    responses((status = 200, body = InboxPage), (status = 400, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(filter): Query<InboxFilter>,
) -> Result<Json<InboxPage>, ApiError> {
    let limit = filter.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 100.".into(),
        ));
    }
    let kind = match filter.kind.as_deref() {
        Some(text) => Some(Kind::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!("There is no notification kind {text:?}."))
        })?),
        None => None,
    };
    let mut conn = state.databases.connect(user.tenant_id).await?;
    let rows = db::notifications::list(
        &mut conn,
        user.user_id,
        &Filter {
            unread_only: filter.unread.unwrap_or(false),
            kind: kind.map(Kind::as_str),
            archived: filter.archived.unwrap_or(false),
            before: filter.cursor,
            limit: limit + 1,
        },
    )
    .await?;
    let (rows, next_cursor) = common::paging::page(rows, limit, |n| n.id);
    let unread_count = db::notifications::unread_count(&mut conn, user.user_id).await?;
    Ok(Json(InboxPage {
        items: rows.into_iter().map(Notification::from).collect(),
        next_cursor,
        unread_count,
    }))
}

/// How many of the caller's notifications are unread (archived and snoozed ones aside).
#[utoipa::path(get, path = "/api/v1/notifications/unread-count", tag = "notifications",
    responses((status = 200, body = UnreadCount)))]
pub async fn unread_count(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<UnreadCount>, ApiError> {
    let mut conn = state.databases.connect(user.tenant_id).await?;
    let unread_count = db::notifications::unread_count(&mut conn, user.user_id).await?;
    Ok(Json(UnreadCount { unread_count }))
}

/// Marks every unread notification of the caller read.
#[utoipa::path(post, path = "/api/v1/notifications/read-all", tag = "notifications",
    responses((status = 200, body = ReadAll)))]
pub async fn read_all(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<ReadAll>, ApiError> {
    let mut conn = state.databases.connect(user.tenant_id).await?;
    let updated = db::notifications::read_all(&mut conn, user.user_id).await?;
    Ok(Json(ReadAll { updated }))
}

async fn apply(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    mark: Mark,
) -> Result<Json<Notification>, ApiError> {
    let mut conn = state.databases.connect(user.tenant_id).await?;
    db::notifications::mark(&mut conn, user.user_id, id, mark)
        .await?
        .map(|row| Json(row.into()))
        .ok_or_else(|| ApiError::NotFound("You have no such notification.".into()))
}

/// Marks one of the caller's notifications read.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "notifications",
    responses((status = 200, body = Notification), (status = 404, body = Problem)))]
pub async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Notification>, ApiError> {
    apply(&state, &user, id, Mark::Read).await
}

/// Marks one of the caller's notifications unread.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/unread", tag = "notifications",
    responses((status = 200, body = Notification), (status = 404, body = Problem)))]
pub async fn unread(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Notification>, ApiError> {
    apply(&state, &user, id, Mark::Unread).await
}

/// Moves one of the caller's notifications to the archive.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/archive", tag = "notifications",
    responses((status = 200, body = Notification), (status = 404, body = Problem)))]
pub async fn archive(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Notification>, ApiError> {
    apply(&state, &user, id, Mark::Archive).await
}

/// Hides one of the caller's notifications until `until`.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/snooze", tag = "notifications",
    request_body = Snooze,
    responses((status = 200, body = Notification), (status = 400, body = Problem),
        (status = 404, body = Problem)))]
pub async fn snooze(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    ValidJson(req): ValidJson<Snooze>,
) -> Result<Json<Notification>, ApiError> {
    apply(&state, &user, id, Mark::Snooze(req.until)).await
}
