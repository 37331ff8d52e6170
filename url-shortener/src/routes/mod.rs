//! The HTTP API: link management under `/api/v1/links` (tenant host, JWT), behind the
//! shared layer stack, and the public redirect `/s/{code}` (any host), which has its own
//! thin one (see [`redirect`]).

pub mod links;
pub mod qr;
pub mod redirect;

use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().merge(links::router()).merge(qr::router())
}
