//! The public API under `/api/v1/notifications`: the caller's inbox, their choices per
//! kind and the tasks they watch, in their tenant's database (the tenant is always the
//! token's); and the mails' unsubscribe link (the tenant is the signed link's). Beside
//! it, the live stream (`/api/v1/stream`) and the webhooks (`/api/v1/webhooks`).

pub mod inbox;
pub mod preferences;
pub mod stream;
pub mod subscriptions;
pub mod unsubscribe;
pub mod webhooks;

use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    let api = Router::new()
        .merge(inbox::router())
        .merge(preferences::router())
        .merge(subscriptions::router())
        .merge(unsubscribe::router());
    Router::new()
        .nest("/api/v1/notifications", api)
        .merge(stream::router())
        .merge(webhooks::router())
}
