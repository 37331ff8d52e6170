//! gateway tests, in front of a small real HTTP server playing the services.

mod differential;
mod edge;
mod health;
mod helpers;
mod lane;
mod proxy;
mod raw;
mod rfc9112;
