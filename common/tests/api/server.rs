//! The shared server shell: readiness that tells the truth, metrics, graceful drain.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::readiness::Readiness;
use common::server::Service;
use common::testkit::TestServer;
use tokio_util::sync::CancellationToken;

use crate::helpers::server_args;

fn service(readiness: Readiness) -> Service {
    Service {
        name: "server-test",
        readiness,
        openapi: Default::default(),
    }
}

#[tokio::test]
async fn readiness_is_503_naming_the_dependency_that_is_down_without_its_address() {
    let readiness = Readiness::new()
        .with("alive", || async { Ok(()) })
        .with("database", || async {
            anyhow::bail!("connection refused at 10.1.2.3:5432")
        });
    let app = TestServer::router(common::server::app(
        service(readiness),
        Router::new(),
        &server_args(),
    ))
    .await;

    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();

    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["checks"]["alive"], "ok");
    assert_eq!(body["checks"]["database"], "down");
    assert!(!body.to_string().contains("10.1.2.3"));
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let api = Router::new().route("/items/{id}", get(|| async { "item" }));
    let app = TestServer::router(common::server::app(
        service(Readiness::new()),
        api,
        &server_args(),
    ))
    .await;
    for id in ["1", "2", "3"] {
        app.client
            .get(app.url(&format!("/items/{id}")))
            .send()
            .await
            .unwrap();
    }

    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total")
                && l.contains("service=\"server-test\"")
                && l.contains("route=\"/items/{id}\"")
        })
        .unwrap_or_else(|| panic!("no counter for the route template in:\n{text}"));
    assert!(line.ends_with(" 3"), "{line}");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let api = Router::new().route(
        "/work",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "finished"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/work", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let app = common::server::app(service(Readiness::new()), api, &server_args());
    let args = server_args();
    let shutdown_for_server = shutdown.clone();
    let server = tokio::spawn(async move {
        common::server::serve(listener, app, shutdown_for_server, &args).await
    });

    let request = tokio::spawn(async move { reqwest::get(url).await?.text().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.cancel();

    assert_eq!(request.await.unwrap().unwrap(), "finished");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops after draining")
        .unwrap()
        .unwrap();
}
