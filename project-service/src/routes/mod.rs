//! The public API: projects, boards, tasks, comments, attachments and time of the
//! caller's tenant (each tenant in its own database), under `/api/v1`, and the share
//! pages. Each module is one resource and owns its routes.

pub mod attachments;
pub mod columns;
pub mod comments;
pub mod members;
pub mod projects;
pub mod shared;
pub mod tasks;
pub mod time;
pub mod timer;
pub mod worklogs;

use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    let api = Router::new()
        .merge(projects::router())
        .merge(members::router())
        .merge(columns::router())
        .merge(tasks::router())
        .merge(comments::router())
        .merge(attachments::router())
        .merge(worklogs::router())
        .merge(timer::router())
        .merge(time::router());
    Router::new().nest("/api/v1", api).merge(shared::router())
}
