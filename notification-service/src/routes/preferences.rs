//! The caller's choices per notification kind.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use common::ApiError;
use common::auth::AuthUser;
use common::error::Problem;
use common::extract::Json;

use crate::AppState;
use crate::db;
use crate::domain::preference::{Preferences, PreferencesChange};

/// This resource's routes, under `/api/v1/notifications`.
pub fn router() -> Router<AppState> {
    Router::new().route("/preferences", get(show).put(change))
}

/// The caller's choice for every kind (`in_app`; `email`: `off`, `instant` or `digest`).
#[utoipa::path(get, path = "/api/v1/notifications/preferences", tag = "notifications",
    responses((status = 200, body = Preferences)))]
pub async fn show(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Preferences>, ApiError> {
    let mut conn = state.databases.connect(user.tenant_id).await?;
    let kinds = db::preferences::of(&mut conn, user.user_id).await?;
    Ok(Json(Preferences { kinds }))
}

/// Changes the caller's choice for the kinds listed (what a kind leaves out stays);
/// answers every kind's choice.
#[utoipa::path(put, path = "/api/v1/notifications/preferences", tag = "notifications",
    request_body = PreferencesChange,
    responses((status = 200, body = Preferences), (status = 400, body = Problem)))]
pub async fn change(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<PreferencesChange>,
) -> Result<Json<Preferences>, ApiError> {
    let conn = state.databases.connect(user.tenant_id).await?;
    let mut tx = conn.begin().await?;
    let mut kinds = db::preferences::of(&mut tx, user.user_id).await?;
    for change in &req.kinds {
        if let Some(choice) = kinds.iter_mut().find(|p| p.kind == change.kind) {
            choice.in_app = change.in_app.unwrap_or(choice.in_app);
            choice.email = change.email.unwrap_or(choice.email);
            db::preferences::put(&mut tx, user.user_id, choice).await?;
        }
    }
    tx.commit().await?;
    Ok(Json(Preferences { kinds }))
}
