//! Password checks wait a bounded time for one of the bounded hashing workers: a burst
//! past them is answered 503 with `Retry-After`, not queued without end.

use common::testkit::expect_problem;

use crate::helpers::{PASSWORD, Tenant, spawn_app_with};

#[tokio::test]
async fn a_login_burst_past_the_hashing_workers_is_refused_with_503_and_retry_after() {
    let app = spawn_app_with(&[
        ("PASSWORD_HASH_WORKERS", "1"),
        ("PASSWORD_HASH_QUEUE_MS", "1"),
    ])
    .await;
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;

    let burst = (0..8).map(|i| {
        let forwarded = format!("198.51.100.{i}");
        let (app, acme) = (&app, &acme);
        async move {
            app.login_from(acme, "olive@acme.test", PASSWORD, &forwarded)
                .await
        }
    });
    let answers = futures::future::join_all(burst).await;

    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert!(
        statuses.contains(&200),
        "someone got the worker: {statuses:?}"
    );
    assert!(statuses.contains(&503), "nobody was refused: {statuses:?}");
    let refused = answers
        .into_iter()
        .find(|r| r.status() == 503)
        .expect("a 503");
    assert_eq!(refused.headers()["retry-after"], "1");
    let problem = expect_problem(refused, 503).await;
    assert_eq!(problem["type"], "/docs/problems#unavailable");
}
