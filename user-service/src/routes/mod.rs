//! The HTTP API: authentication on tenant hosts, the users and invites of a tenant, the
//! JWKS, and internal endpoints for the other services.

pub mod auth;
pub mod internal;
pub mod invites;
pub mod jwks;
pub mod users;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::HeaderMap;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(invites::router())
        .merge(jwks::router())
        .merge(internal::router())
}

/// The client's address: the first `X-Forwarded-For` entry the gateway set (it drops
/// client-sent ones), else the peer.
pub fn client_ip(headers: &HeaderMap, peer: Option<&ConnectInfo<SocketAddr>>) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .or_else(|| peer.map(|c| c.0.ip().to_string()))
        .unwrap_or_else(|| "unknown".to_owned())
}
