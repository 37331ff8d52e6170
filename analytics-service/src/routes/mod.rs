//! The public API: reports on the caller's tenant, its tenant always taken from the token.

pub mod dashboard;
pub mod reports;

use axum::Router;
use axum::routing::get;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/analytics/overview", get(reports::overview))
        .route("/api/v1/analytics/links/{code}", get(reports::link))
        .route("/api/v1/analytics/tasks", get(reports::tasks))
        .route("/api/v1/analytics/dashboard", get(dashboard::page))
}
