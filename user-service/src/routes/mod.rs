//! The HTTP API: authentication on tenant hosts, the users and invites of a tenant, the
//! JWKS, and internal endpoints for the other services.

pub mod auth;
pub mod internal;
pub mod invites;
pub mod jwks;
pub mod users;

use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(invites::router())
        .merge(jwks::router())
        .merge(internal::router())
}
