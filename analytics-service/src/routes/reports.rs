//! `GET /api/v1/analytics/{overview,links/{code},tasks}` (permission `analytics.read`).
//! The tenant is the token's `tid`; no parameter can name another.

use axum::Json;
use axum::extract::{Path, State};
use chrono::Utc;
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::Problem;
use common::events::keys;
use common::extract::Query;

use crate::AppState;
use crate::domain::range::{Range, RangeQuery};
use crate::domain::report::{Burnup, Clicks, LinkStats, Overview, Statuses, TaskHistory};

/// Tasks created and completed, minutes logged and link clicks per day, with the status
/// mix, cycle time, top links and top referrers of the range.
#[utoipa::path(get, path = "/api/v1/analytics/overview", tag = "analytics", params(RangeQuery),
    responses((status = 200, body = Overview), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %user.tenant_id), err)]
pub async fn overview(
    State(state): State<AppState>,
    user: AuthUser,
    Query(query): Query<RangeQuery>,
) -> Result<Json<Overview>, ApiError> {
    Ok(Json(overview_of(&state, &user, &query).await?))
}

/// The overview of the caller's tenant (shared with the dashboard).
pub async fn overview_of(
    state: &AppState,
    user: &AuthUser,
    query: &RangeQuery,
) -> Result<Overview, ApiError> {
    user.require(Perm::AnalyticsRead)?;
    let range = Range::parse(query, Utc::now().date_naive())?;
    let tenant = user.tenant_id;
    let mut statuses = Statuses::default();
    let (counters, rolled, ()) = tokio::try_join!(
        state.store.counters_in(tenant, &range),
        state.store.rolled_up(tenant, &range),
        state.store.task_events(
            tenant,
            &[keys::TASK_CREATED, keys::TASK_STATUS_CHANGED],
            &range,
            true,
            |e| statuses.add(&e),
        ),
    )?;
    Ok(Overview::build(&range, &counters, rolled, statuses))
}

/// One link's clicks per day, referrers, browsers vs bots and unique visitors. A code the
/// caller's organisation never had is 404.
#[utoipa::path(get, path = "/api/v1/analytics/links/{code}", tag = "analytics",
    params(("code" = String, Path), RangeQuery),
    responses((status = 200, body = LinkStats), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %user.tenant_id), err)]
pub async fn link(
    State(state): State<AppState>,
    user: AuthUser,
    Path(code): Path<String>,
    Query(query): Query<RangeQuery>,
) -> Result<Json<LinkStats>, ApiError> {
    user.require(Perm::AnalyticsRead)?;
    let range = Range::parse(&query, Utc::now().date_naive())?;
    if !state.store.link_known(user.tenant_id, &code).await? {
        return Err(ApiError::NotFound(format!(
            "No link {code:?} in this organisation."
        )));
    }
    let mut clicks = Clicks::default();
    state
        .store
        .clicks(user.tenant_id, &code, &range, |e| clicks.add(&e))
        .await?;
    Ok(Json(LinkStats::build(&code, &range, clicks)))
}

/// Created vs completed tasks per day (burn-up), per project and per assignee.
#[utoipa::path(get, path = "/api/v1/analytics/tasks", tag = "analytics", params(RangeQuery),
    responses((status = 200, body = Burnup), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %user.tenant_id), err)]
pub async fn tasks(
    State(state): State<AppState>,
    user: AuthUser,
    Query(query): Query<RangeQuery>,
) -> Result<Json<Burnup>, ApiError> {
    user.require(Perm::AnalyticsRead)?;
    let range = Range::parse(&query, Utc::now().date_naive())?;
    let kinds = [
        keys::TASK_CREATED,
        keys::TASK_STATUS_CHANGED,
        keys::TASK_ASSIGNED,
    ];
    let mut history = TaskHistory::default();
    state
        .store
        .task_events(user.tenant_id, &kinds, &range, false, |e| history.add(&e))
        .await?;
    Ok(Json(Burnup::build(&range, &history)))
}
