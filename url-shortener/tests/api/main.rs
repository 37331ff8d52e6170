//! url-shortener API tests against real dependencies.

mod health;
mod helpers;
mod lane;
mod links;
mod password;
mod redirect;
mod visits;
