//! Starts url-shortener in-process on port 0 with its own database and exchange.

use clap::Parser;
use common::testkit::{TestDb, TestServer, amqp_url, unique};
use url_shortener::Config;

pub struct TestApp {
    pub server: TestServer,
    pub db: TestDb,
}

/// Flags of a test instance: a fresh database, a unique exchange, the test broker.
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
    let config = config_from(&test_args(&db), overrides);
    let server = TestServer::start(|listener, shutdown| {
        url_shortener::run_until(config, listener, shutdown)
    })
    .await;
    TestApp { server, db }
}

fn config_from(args: &[(&'static str, String)], overrides: &[(&'static str, &str)]) -> Config {
    let mut argv = vec![
        "url-shortener".to_owned(),
        "--bind-addr=127.0.0.1:0".to_owned(),
    ];
    for (env, value) in args {
        let value = overrides
            .iter()
            .find(|(k, _)| k == env)
            .map_or(value.as_str(), |(_, v)| *v);
        argv.push(format!(
            "--{}={value}",
            env.to_ascii_lowercase().replace('_', "-")
        ));
    }
    Config::try_parse_from(argv).expect("test configuration parses")
}
