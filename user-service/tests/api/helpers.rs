//! Starts user-service in-process on port 0 with its own database and exchange.

use common::testkit::{TestDb, TestServer, amqp_url, parse_config, unique};
use user_service::{Config, NAME};

pub struct TestApp {
    pub server: TestServer,
    pub db: TestDb,
}

/// Settings of a test instance: a fresh database, a unique exchange, the test broker.
pub fn test_args(db: &TestDb) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.url.clone()),
        ("AMQP_URL", amqp_url()),
        ("EVENTS_EXCHANGE", unique("test.events")),
    ]
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the service; `overrides` replace test settings (`("AMQP_URL", …)`).
pub async fn spawn_app_with(overrides: &[(&'static str, &str)]) -> TestApp {
    let db = TestDb::create().await;
    let config: Config = parse_config(NAME, &test_args(&db), overrides);
    let server =
        TestServer::start(|listener, shutdown| user_service::run_until(config, listener, shutdown))
            .await;
    TestApp { server, db }
}
