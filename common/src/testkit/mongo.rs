//! A MongoDB database per test.

use std::time::Duration;

use super::{mongodb_url, unique};

/// A MongoDB database with a unique name (dropped by the test when it wants to).
pub async fn mongo_database() -> mongodb::Database {
    let url = mongodb_url();
    let client = mongodb::Client::with_uri_str(&url)
        .await
        .unwrap_or_else(|err| panic!("invalid MongoDB URL {url}: {err}"));
    let db = client.database(&unique("nexus_test"));
    tokio::time::timeout(
        Duration::from_secs(10),
        db.run_command(mongodb::bson::doc! { "ping": 1 }),
    )
    .await
    .unwrap_or_else(|_| {
        panic!("MongoDB does not answer at {url} (run `cargo xtask test`, which starts one)")
    })
    .unwrap_or_else(|err| panic!("MongoDB does not answer at {url}: {err}"));
    db
}
