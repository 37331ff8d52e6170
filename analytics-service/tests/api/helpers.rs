//! Starts analytics-service in-process on port 0 with its own MongoDB database and a
//! unique exchange on the test broker.

use analytics_service::{Config, NAME};
use common::testkit::{TestServer, amqp_url, mongo_database, mongodb_url, parse_config, unique};

pub struct TestApp {
    pub server: TestServer,
    pub mongo: mongodb::Database,
}

pub fn test_args(database: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MONGODB_URL", mongodb_url()),
        ("MONGODB_DATABASE", database.to_owned()),
        ("AMQP_URL", amqp_url()),
        ("EVENTS_EXCHANGE", unique("test.events")),
    ]
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&'static str, &str)]) -> TestApp {
    let mongo = mongo_database().await;
    let config: Config = parse_config(NAME, &test_args(mongo.name()), overrides);
    let server = TestServer::start(|listener, shutdown| {
        analytics_service::run_until(config, listener, shutdown)
    })
    .await;
    TestApp { server, mongo }
}
