//! url-shortener API tests against real dependencies.

mod differential;
mod health;
mod helpers;
mod lane;
mod links;
mod password;
mod redirect;
mod visits;
