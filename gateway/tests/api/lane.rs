//! The fast lane (plain HTTP/1.1 proxying, `gateway/src/fast/`) and the general path
//! (hyper) give the same answers with the same header hygiene; the lane keeps HTTP/1.1's
//! framing right across keep-alive, pipelining, chunked and large bodies, and survives
//! upstreams that drop idle connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::auth::Role;
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{ACME, GLOBEX, big_body, spawn_app, spawn_app_with};
use crate::raw::read_answer;

async fn metrics(app: &crate::helpers::TestApp) -> String {
    reqwest::Client::new()
        .get(app.server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// How many requests to `/api/v1/projects` `lane` has served, per `/metrics`.
fn served_by(metrics: &str, lane: &str) -> u64 {
    common::testkit::counter_total(
        metrics,
        "gateway_requests_total",
        &[("route", "/api/v1/projects"), ("lane", lane)],
    )
}

/// Waits (up to 2 s: the counter is written after the answer) until `lane` has served
/// more than `before` requests.
async fn lane_served_more(app: &crate::helpers::TestApp, lane: &str, before: u64) -> bool {
    for _ in 0..40 {
        if served_by(&metrics(app).await, lane) > before {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn both_paths_strip_spoofed_identity_and_set_the_same_headers() {
    // The test client (127.0.0.1) is a client here, not a trusted proxy.
    let app = spawn_app_with(&[("TRUSTED_PROXIES", "10.0.0.0/8")]).await;
    let token = app.fleet.token(ACME, Role::Owner);
    // Plain first (the lane), then with an `Origin` (the lane hands it to hyper).
    for (lane, origin) in [
        ("fast", None),
        ("general", Some("http://elsewhere.example")),
    ] {
        // /metrics is read on a connection of its own: a connection that once leaves the
        // lane stays on the general path.
        let before = served_by(&metrics(&app).await, lane);
        let mut req = app
            .at(
                "acme.localhost:8080",
                Method::GET,
                "/api/v1/projects/7?q=a%20b&x=1",
            )
            .bearer_auth(&token)
            .header("X-Tenant-Id", GLOBEX.to_string())
            .header("x-tenant-slug", "globex")
            .header("X-User-Id", "evil")
            .header("x-forwarded-for", "6.6.6.6")
            .header("Forwarded", "for=6.6.6.6")
            .header("X-Request-Id", "keep-me-1")
            .header("X-Custom", "passes");
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{lane}");
        assert_eq!(resp.headers()["x-request-id"], "keep-me-1", "{lane}");
        assert!(resp.headers().contains_key("ratelimit-remaining"), "{lane}");
        let echo: Value = resp.json().await.unwrap();
        let seen = &echo["headers"];
        assert_eq!(echo["path"], "/api/v1/projects/7", "{lane}");
        assert_eq!(echo["query"], "q=a%20b&x=1", "{lane}");
        assert_eq!(seen["x-tenant-id"], ACME.to_string(), "{lane}");
        assert_eq!(seen["x-tenant-slug"], "acme", "{lane}");
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{lane}");
        assert_eq!(seen["x-forwarded-host"], "acme.localhost:8080", "{lane}");
        assert_eq!(seen["x-forwarded-proto"], "http", "{lane}");
        assert_eq!(seen["x-request-id"], "keep-me-1", "{lane}");
        assert_eq!(seen["x-custom"], "passes", "{lane}");
        assert_eq!(
            seen["host"].as_str().unwrap(),
            app.fleet.server.base_url.trim_start_matches("http://"),
            "{lane}: Host names the upstream"
        );
        assert!(seen.get("x-user-id").is_none(), "{lane}: {seen}");
        assert!(seen.get("forwarded").is_none(), "{lane}: {seen}");
        assert!(
            lane_served_more(&app, lane, before).await,
            "{lane} served it"
        );
    }
    // An invalid request id is replaced on both paths alike.
    for origin in [None, Some("http://elsewhere.example")] {
        let mut req = app
            .at("acme.localhost", Method::GET, "/api/v1/projects")
            .bearer_auth(&token)
            .header("X-Request-Id", "bad id\twith tab");
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        let resp = req.send().await.unwrap();
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let echo: Value = resp.json().await.unwrap();
        assert_ne!(id, "bad id\twith tab");
        assert_eq!(echo["headers"]["x-request-id"], id.as_str());
    }
}

#[tokio::test]
async fn both_paths_forward_the_client_a_trusted_proxy_names() {
    // Loopback is trusted by default: the test client plays a load balancer.
    let app = spawn_app().await;
    let token = app.fleet.token(ACME, Role::Member);
    for origin in [None, Some("http://elsewhere.example")] {
        for (forwarded, client) in [
            ("6.6.6.6, 203.0.113.9", "203.0.113.9"),
            ("203.0.113.9, 10.1.2.3", "203.0.113.9"),
            ("10.1.2.3, 192.168.0.4", "10.1.2.3"),
            ("203.0.113.9, junk", "127.0.0.1"),
            ("2001:db8::5", "2001:db8::5"),
        ] {
            let mut req = app
                .at("acme.localhost", Method::GET, "/api/v1/projects")
                .bearer_auth(&token)
                .header("x-forwarded-for", forwarded);
            if let Some(origin) = origin {
                req = req.header("origin", origin);
            }
            let echo: Value = req.send().await.unwrap().json().await.unwrap();
            assert_eq!(
                echo["headers"]["x-forwarded-for"], client,
                "{forwarded} (origin {origin:?})"
            );
        }
    }
}

#[tokio::test]
async fn pipelined_requests_on_one_connection_come_back_whole_and_in_order() {
    let app = spawn_app().await;
    let token = app.fleet.token(ACME, Role::Owner);
    let before = served_by(&metrics(&app).await, "fast");
    let mut stream = TcpStream::connect(app.server.addr).await.unwrap();
    let body = "b".repeat(3000);
    let auth = format!("Host: acme.localhost\r\nAuthorization: Bearer {token}\r\n");
    // All in one write: the gateway's own /healthz, a HEAD (a length but no body), a
    // POST with a body, a chunked answer, a 300 kB answer, a refusal (another tenant's
    // host), and a chunked answer to a CORS request (through the router, from the lane).
    let requests = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n\
         HEAD /api/v1/projects HTTP/1.1\r\n{auth}\r\n\
         POST /api/v1/projects HTTP/1.1\r\n{auth}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}\
         GET /api/v1/projects/stream HTTP/1.1\r\n{auth}\r\n\
         GET /api/v1/projects/big HTTP/1.1\r\n{auth}\r\n\
         GET /api/v1/projects HTTP/1.1\r\nHost: globex.localhost\r\nAuthorization: Bearer {token}\r\n\r\n\
         GET /api/v1/projects/stream HTTP/1.1\r\n{auth}Origin: http://elsewhere.example\r\n\r\n",
        body.len()
    );
    stream.write_all(requests.as_bytes()).await.unwrap();
    let mut buf = Vec::new();

    let health = read_answer(&mut stream, &mut buf, false).await;
    assert_eq!(health.status, 200);
    let health: Value = serde_json::from_slice(&health.body).unwrap();
    assert_eq!(health["status"], "ok");

    let head = read_answer(&mut stream, &mut buf, true).await;
    assert_eq!(head.status, 200);
    assert!(head.header("content-length").is_some());

    let post = read_answer(&mut stream, &mut buf, false).await;
    assert_eq!(post.status, 200);
    let echo: Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body_len"], 3000);

    let streamed = read_answer(&mut stream, &mut buf, false).await;
    assert_eq!(streamed.status, 200);
    let expected: String = (0..40).map(|i| format!("piece {i};")).collect();
    assert_eq!(String::from_utf8(streamed.body).unwrap(), expected);

    let big = read_answer(&mut stream, &mut buf, false).await;
    assert_eq!(big.status, 200);
    assert!(big.body == big_body(), "300 kB arrive intact");

    let refused = read_answer(&mut stream, &mut buf, false).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    let problem: Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(problem["status"], 403);

    let cors = read_answer(&mut stream, &mut buf, false).await;
    assert_eq!(cors.status, 200);
    assert_eq!(cors.header("transfer-encoding"), Some("chunked"));
    assert_eq!(String::from_utf8(cors.body).unwrap(), expected);
    assert!(buf.is_empty(), "nothing more was sent");
    // The five proxied by the lane itself, /healthz before them notwithstanding.
    assert!(lane_served_more(&app, "fast", before + 4).await);

    // The connection is still good for more, and `Connection: close` closes it.
    let last = format!("GET /api/v1/projects HTTP/1.1\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(last.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream, &mut buf, false).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("connection"), Some("close"));
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("the gateway closes the connection")
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn bodies_over_the_lanes_buffer_stream_through_hyper_both_ways() {
    let app = spawn_app().await;
    let token = app.fleet.token(ACME, Role::Owner);
    let upload = vec![b'u'; 200_000];
    let resp = app
        .at("acme.localhost", Method::POST, "/api/v1/projects")
        .bearer_auth(&token)
        .body(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["body_len"], 200_000);
    let big = app
        .at("acme.localhost", Method::GET, "/api/v1/projects/big")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 200);
    assert!(big.bytes().await.unwrap() == big_body());
}

/// An upstream that answers one request per connection and then closes it without
/// saying so (`Connection: close` absent), as a restarted or idle-timing-out server does.
async fn forgetful_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    (format!("http://{addr}"), accepted)
}

#[tokio::test]
async fn pooled_connections_the_upstream_closed_are_replaced_not_failed() {
    let (upstream, accepted) = forgetful_upstream().await;
    let app = spawn_app_with(&[("PROJECT_SERVICE_URL", upstream.as_str())]).await;
    let token = app.fleet.token(ACME, Role::Owner);
    for method in [
        Method::GET,
        Method::POST,
        Method::GET,
        Method::PATCH,
        Method::DELETE,
    ] {
        for _ in 0..3 {
            let resp = app
                .at("acme.localhost", method.clone(), "/api/v1/projects")
                .bearer_auth(&token)
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{method}");
            assert_eq!(resp.text().await.unwrap(), "ok");
        }
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        15,
        "one connection per answer"
    );
}

/// An upstream that answers the first request on each connection (keeping it open) and
/// reads the second whole, then closes without an answer, as one that restarts or
/// times the connection out at that moment does. It notes each request's method.
async fn closing_upstream() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for answered in [true, false] {
                    let head_end = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |l| l.trim().parse().unwrap());
                    while buf.len() < head_end + length {
                        let mut chunk = [0u8; 4096];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + length);
                    let method = head
                        .split(' ')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_uppercase();
                    log.lock().unwrap().push(method);
                    if answered {
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
                        if conn.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn a_written_request_is_sent_again_only_when_its_method_is_idempotent() {
    let (upstream, seen) = closing_upstream().await;
    let app = spawn_app_with(&[("PROJECT_SERVICE_URL", upstream.as_str())]).await;
    let token = app.fleet.token(ACME, Role::Owner);
    let mut stream = TcpStream::connect(app.server.addr).await.unwrap();
    let mut buf = Vec::new();
    let mut statuses = Vec::new();
    // GET: a new upstream connection, kept. POST: on it, read and dropped: a 502, never
    // sent twice. GET: a new connection, kept. DELETE: on it, dropped, sent again.
    for method in ["GET", "POST", "GET", "DELETE"] {
        let request = format!(
            "{method} /api/v1/projects HTTP/1.1\r\nHost: acme.localhost\r\n\
             Authorization: Bearer {token}\r\nContent-Length: 2\r\n\r\n{{}}"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        statuses.push(read_answer(&mut stream, &mut buf, false).await.status);
    }
    assert_eq!(statuses, [200, 502, 200, 200]);
    assert_eq!(
        *seen.lock().unwrap(),
        ["GET", "POST", "GET", "DELETE", "DELETE"]
    );
}
