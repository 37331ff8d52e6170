//! What the gateway adds at the edge: compression, the bundled API viewer, h2c upstreams.

use std::io::Read;

use common::auth::Role;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{ACME, spawn_app, spawn_app_with};

const ACME_HOST: &str = "acme.localhost:8080";

/// A proxied JSON answer big enough to be worth compressing (the echo repeats the query).
fn big_query() -> String {
    format!("/api/v1/projects?q={}", "x".repeat(2000))
}

#[tokio::test]
async fn json_is_compressed_as_the_client_accepts_and_binary_is_left_alone() {
    let app = spawn_app().await;
    let token = app.fleet.token(ACME, Role::Owner);
    let get = |path: String, encoding: Option<&'static str>| {
        let mut request = app.at(ACME_HOST, Method::GET, &path).bearer_auth(&token);
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        request.send()
    };

    let plain = get(big_query(), None).await.unwrap();
    assert!(!plain.headers().contains_key("content-encoding"));
    let plain: Value = plain.json().await.unwrap();
    assert_eq!(plain["query"].as_str().unwrap().len(), 2002);

    let gzip = get(big_query(), Some("gzip")).await.unwrap();
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    let compressed = gzip.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .unwrap();
    let unzipped: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(unzipped["query"], plain["query"]);
    assert!(
        compressed.len() < text.len() / 2,
        "{} bytes",
        compressed.len()
    );

    let br = get(big_query(), Some("br;q=1.0, gzip;q=0.5"))
        .await
        .unwrap();
    assert_eq!(br.headers()["content-encoding"], "br");
    let compressed = br.bytes().await.unwrap();
    let mut text = String::new();
    brotli::Decompressor::new(&compressed[..], 4096)
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["query"],
        plain["query"]
    );

    let binary = get("/api/v1/projects/binary".into(), Some("gzip, br"))
        .await
        .unwrap();
    assert!(!binary.headers().contains_key("content-encoding"));
    assert_eq!(binary.bytes().await.unwrap().len(), 4096);
}

#[tokio::test]
async fn docs_serve_an_interactive_viewer_with_bundled_assets_only() {
    let app = spawn_app().await;
    let page = app
        .at("localhost:8080", Method::GET, "/docs")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the viewer loads nothing from elsewhere:\n{html}"
    );

    // Every script and stylesheet the page names is served here, and the viewer is
    // pointed at the merged document.
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/docs/"))
        .collect();
    assert!(assets.len() >= 3, "{assets:?}");
    let mut scripts = String::new();
    for asset in assets {
        let resp = app
            .at("localhost:8080", Method::GET, asset)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
        let kind = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let body = resp.text().await.unwrap();
        if asset.ends_with(".js") {
            assert!(kind.starts_with("text/javascript"), "{asset}: {kind}");
            scripts.push_str(&body);
        } else {
            assert!(kind.starts_with("text/css"), "{asset}: {kind}");
        }
    }
    assert!(scripts.contains("SwaggerUIBundle") && scripts.contains("\"/openapi.json\""));
}

#[tokio::test]
async fn h2c_upstreams_are_spoken_to_over_http2_and_others_over_http11() {
    let plain = spawn_app().await;
    let token = plain.fleet.token(ACME, Role::Owner);
    let via = |app: &crate::helpers::TestApp| {
        app.at(ACME_HOST, Method::GET, "/api/v1/projects")
            .bearer_auth(&token)
            .send()
    };
    let answer: Value = via(&plain).await.unwrap().json().await.unwrap();
    assert_eq!(answer["version"], "HTTP/1.1");

    let h2c_url = plain.fleet.server.base_url.replace("http://", "h2c://");
    let h2c = spawn_app_with(&[("PROJECT_SERVICE_URL", h2c_url.as_str())]).await;
    let token = h2c.fleet.token(ACME, Role::Owner);
    let answer: Value = h2c
        .at(ACME_HOST, Method::GET, "/api/v1/projects")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["version"], "HTTP/2.0");
}
