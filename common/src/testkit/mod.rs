//! Test kit (feature `testkit`): real dependencies, isolated per test.
//!
//! Each test gets its own PostgreSQL database, its own exchange and queue names and its
//! own MongoDB database, so tests run in parallel against one server without seeing each
//! other. A dependency that does not answer fails the test with a message naming it;
//! nothing is skipped.
//!
//! The kit is split by what a test needs: `db` (throw-away databases), `server` (a
//! service in-process), `events` (a tap on an exchange), `asserts` (what every service's
//! tests check), `process` (a service as a process), `relay` (an outage of one server),
//! `mail` (what the test SMTP server received), `mongo`, and `wire` (raw HTTP/1.1 for differential tests of a lane, used by path). Everything else is re-exported here, so tests name `common::testkit::TestDb` and
//! the like, whichever file it lives in.

mod asserts;
mod db;
mod events;
mod mail;
mod mongo;
mod process;
mod relay;
mod server;
pub mod wire;

pub use asserts::{
    assert_json_endpoints_reject_malformed_bodies, assert_not_ready_because, assert_ops_routes,
    counter_total, expect_problem,
};
pub use db::{
    TestDb, assert_tables_exist, create_database, drop_database, drop_databases_and_roles,
};
pub use events::{EventTap, envelopes};
pub use mail::{Mail, mails_to, smtp_url, wait_for_mails};
pub use mongo::mongo_database;
pub use process::{assert_stops_cleanly_on_sigterm, parse_config};
pub use relay::TcpRelay;
pub use server::TestServer;

/// PostgreSQL server URL without a database (`NEXUS_TEST_POSTGRES_URL`).
pub fn postgres_url() -> String {
    std::env::var("NEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// RabbitMQ URL (`NEXUS_TEST_AMQP_URL`).
pub fn amqp_url() -> String {
    std::env::var("NEXUS_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// MongoDB URL (`NEXUS_TEST_MONGODB_URL`).
pub fn mongodb_url() -> String {
    std::env::var("NEXUS_TEST_MONGODB_URL")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:27017".to_owned())
}

/// `prefix_` followed by 12 random hex digits: a name no other test uses.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..12])
}

/// Logs to the terminal when `TEST_LOG=1`.
pub fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        crate::telemetry::init(
            "test",
            "debug,sqlx=warn,lapin=info",
            crate::telemetry::LogFormat::Text,
        );
    }
}
