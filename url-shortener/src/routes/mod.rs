//! The HTTP API: link management under `/api/v1/links` (tenant host, JWT) and the public
//! redirect `/s/{code}` (any host).

pub mod links;
pub mod qr;
pub mod redirect;

use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(links::router())
        .merge(qr::router())
        .merge(redirect::router())
}
