//! The HTTP/1.1 edge (RFC 9112, `common::edge`) on both of the gateway's paths: requests
//! the fast lane reads itself, and requests it hands to hyper (HTTP/1.0, chunked bodies)
//! or that reach hyper because the lane is off. Host rules, head size, head time, HEAD
//! lengths, a stop with requests still buffered.

use std::time::Duration;

use common::auth::Role;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{ACME, TestApp, spawn_app, spawn_app_with};
use crate::raw::{closed, read_answer, send, trickle};

/// A 400 problem that closes the connection.
async fn assert_refused(app: &TestApp, request: &str, why: &str) {
    let (mut stream, answer) = send(app.server.addr, request.as_bytes(), false).await;
    assert_eq!(answer.status, 400, "{why}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json"),
        "{why}"
    );
    let problem: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(problem["status"], 400, "{why}");
    assert!(closed(&mut stream).await, "{why}: the connection closes");
}

#[tokio::test]
async fn a_missing_or_repeated_host_is_400_on_both_paths() {
    for lane in ["true", "false"] {
        let app = spawn_app_with(&[("FAST_LANE", lane)]).await;
        let token = app.fleet.token(ACME, Role::Owner);
        let auth = format!("Authorization: Bearer {token}\r\n");
        let cases = [
            (
                format!("GET /api/v1/projects HTTP/1.1\r\n{auth}\r\n"),
                "no Host",
            ),
            (
                format!(
                    "POST /api/v1/projects HTTP/1.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                ),
                "no Host, chunked (hyper)",
            ),
            (
                format!(
                    "GET /api/v1/projects HTTP/1.1\r\nHost: acme.localhost\r\nHost: globex.localhost\r\n{auth}\r\n"
                ),
                "two Hosts",
            ),
            (
                format!(
                    "GET /api/v1/projects HTTP/1.0\r\nHost: acme.localhost\r\nhost: acme.localhost\r\n{auth}\r\n"
                ),
                "two Hosts, HTTP/1.0 (hyper)",
            ),
            (
                format!("GET /api/v1/projects HTTP/1.1\r\nHost: acme.localhost/x\r\n{auth}\r\n"),
                "a Host that is no host",
            ),
            (
                "GET /healthz HTTP/1.1\r\n\r\n".to_owned(),
                "the gateway's own route",
            ),
        ];
        for (request, why) in cases {
            assert_refused(&app, &request, &format!("lane {lane}: {why}")).await;
        }
        // On a connection the lane already served a request on.
        let mut stream = TcpStream::connect(app.server.addr).await.unwrap();
        let two = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n";
        stream.write_all(two.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_answer(&mut stream, &mut buf, false).await.status, 200);
        assert_eq!(read_answer(&mut stream, &mut buf, false).await.status, 400);
        // HTTP/1.0 needs no Host.
        let (_, answer) = send(app.server.addr, b"GET /healthz HTTP/1.0\r\n\r\n", false).await;
        assert_eq!(answer.status, 200, "lane {lane}");
    }
}

#[tokio::test]
async fn an_absolute_form_target_names_the_tenant_and_another_host_beside_it_is_400() {
    for lane in ["true", "false"] {
        let app = spawn_app_with(&[("FAST_LANE", lane)]).await;
        let token = app.fleet.token(ACME, Role::Owner);
        let auth = format!("Authorization: Bearer {token}\r\n");
        for request in [
            format!(
                "GET http://acme.localhost/api/v1/projects?x=1 HTTP/1.1\r\nHost: acme.localhost\r\n{auth}\r\n"
            ),
            format!("GET http://acme.localhost/api/v1/projects?x=1 HTTP/1.0\r\n{auth}\r\n"),
        ] {
            let (_, answer) = send(app.server.addr, request.as_bytes(), false).await;
            assert_eq!(answer.status, 200, "lane {lane}: {request}");
            let echo: Value = serde_json::from_slice(&answer.body).unwrap();
            assert_eq!(echo["headers"]["x-tenant-id"], ACME.to_string());
            assert_eq!(echo["headers"]["x-forwarded-host"], "acme.localhost");
            assert_eq!(echo["path"], "/api/v1/projects");
            assert_eq!(echo["query"], "x=1");
        }
        // Another tenant named by the target is not served as the Host's tenant.
        let request = format!(
            "GET http://globex.localhost/api/v1/projects HTTP/1.1\r\nHost: acme.localhost\r\n{auth}\r\n"
        );
        assert_refused(&app, &request, &format!("lane {lane}: target ≠ Host")).await;
        let request = format!("GET http://acme.localhost/api/v1/projects HTTP/1.1\r\n{auth}\r\n");
        assert_refused(&app, &request, &format!("lane {lane}: no Host")).await;
    }
}

/// A request for `/healthz` whose head is exactly `len` bytes (a padding field).
fn head_of(len: usize, version: &str) -> String {
    let start = format!("GET /healthz HTTP/{version}\r\nHost: localhost\r\nX-Pad: ");
    let end = "\r\n\r\n";
    format!("{start}{}{end}", "p".repeat(len - start.len() - end.len()))
}

#[tokio::test]
async fn a_head_over_max_head_bytes_is_431_and_one_at_the_limit_is_served() {
    for lane in ["true", "false"] {
        let app = spawn_app_with(&[("FAST_LANE", lane), ("MAX_HEAD_BYTES", "4096")]).await;
        for version in ["1.1", "1.0"] {
            let why = format!("lane {lane}, HTTP/{version}");
            let (_, at) = send(app.server.addr, head_of(4096, version).as_bytes(), false).await;
            assert_eq!(at.status, 200, "{why}: 4,096 bytes");
            let (mut stream, over) =
                send(app.server.addr, head_of(4097, version).as_bytes(), false).await;
            assert_eq!(over.status, 431, "{why}: 4,097 bytes");
            assert!(closed(&mut stream).await, "{why}");
            let (_, huge) = send(app.server.addr, head_of(70_000, version).as_bytes(), false).await;
            assert_eq!(huge.status, 431, "{why}: 70 kB");
        }
    }
}

#[tokio::test]
async fn a_head_not_whole_within_the_timeout_of_its_first_byte_is_408_and_idle_time_is_not_counted()
{
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
        "X-Slow: 1\r\n".repeat(12)
    );
    for lane in ["true", "false"] {
        let app = spawn_app_with(&[("FAST_LANE", lane), ("HEADER_READ_TIMEOUT_SECS", "1")]).await;
        // Idle for longer than the head timeout, then a slow head: 408 one second
        // after its first byte, not at once and not after the whole trickle (3.6 s).
        let stream = TcpStream::connect(app.server.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (status, took, closed) = trickle(stream, &head, Duration::from_millis(250)).await;
        assert_eq!(status, 408, "lane {lane}");
        assert!(closed, "lane {lane}: closed after the 408");
        assert!(
            took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
            "lane {lane}: {took:?}"
        );
        // On the hyper path after a hand-over (a chunked body): a served request, an
        // idle pause, then a slow head.
        let mut stream = TcpStream::connect(app.server.addr).await.unwrap();
        let chunked = "POST /healthz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        stream.write_all(chunked.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_answer(&mut stream, &mut buf, false).await.status, 405);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (status, took, closed) = trickle(stream, &head, Duration::from_millis(250)).await;
        assert_eq!(status, 408, "lane {lane}, after a hand-over");
        assert!(closed, "lane {lane}: closed after the 408");
        assert!(
            took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
            "lane {lane}, after a hand-over: {took:?}"
        );
        // A head that comes whole within the timeout, however slowly, is served.
        let mut stream = TcpStream::connect(app.server.addr).await.unwrap();
        for line in "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".split_inclusive("\r\n") {
            stream.write_all(line.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut buf = Vec::new();
        assert_eq!(read_answer(&mut stream, &mut buf, false).await.status, 200);
    }
}

#[tokio::test]
async fn head_answers_carry_the_length_of_the_get_answer_on_every_path() {
    for lane in ["true", "false"] {
        let app = spawn_app_with(&[("FAST_LANE", lane)]).await;
        let token = app.fleet.token(ACME, Role::Owner);
        let auth = format!("Host: acme.localhost\r\nAuthorization: Bearer {token}\r\n");
        // The gateway's own route (the router), and a proxied answer (lane or hyper's
        // client), in HTTP/1.1 and (handed to hyper) HTTP/1.0.
        for (path, host) in [
            ("/healthz", "Host: localhost\r\n".to_owned()),
            ("/api/v1/projects/binary", auth.clone()),
        ] {
            for version in ["1.1", "1.0"] {
                let why = format!("lane {lane}: {path} HTTP/{version}");
                let get = format!("GET {path} HTTP/{version}\r\n{host}\r\n");
                let (_, got) = send(app.server.addr, get.as_bytes(), false).await;
                assert_eq!(got.status, 200, "{why}");
                let length = got.body.len().to_string();
                let head = format!("HEAD {path} HTTP/{version}\r\n{host}\r\n");
                let (mut stream, headed) = send(app.server.addr, head.as_bytes(), true).await;
                assert_eq!(headed.status, 200, "{why}");
                assert_eq!(
                    headed.header("content-length"),
                    Some(length.as_str()),
                    "{why}"
                );
                assert_eq!(headed.header("transfer-encoding"), None, "{why}");
                if version == "1.1" {
                    // Nothing follows the head: the next answer comes straight after.
                    stream.write_all(get.as_bytes()).await.unwrap();
                    let mut buf = Vec::new();
                    let next = read_answer(&mut stream, &mut buf, false).await;
                    assert_eq!(next.body.len().to_string(), length, "{why}");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_head_whose_get_would_be_compressed_says_so_on_both_paths() {
    let query = "x".repeat(2000);
    for lane in ["true", "false"] {
        let app = spawn_app_with(&[("FAST_LANE", lane)]).await;
        let token = app.fleet.token(ACME, Role::Owner);
        let fields = format!(
            "Host: acme.localhost\r\nAuthorization: Bearer {token}\r\nAccept-Encoding: gzip\r\n"
        );
        let target = format!("/api/v1/projects?q={query}");
        let get = format!("GET {target} HTTP/1.1\r\n{fields}\r\n");
        let (_, got) = send(app.server.addr, get.as_bytes(), false).await;
        assert_eq!(got.header("content-encoding"), Some("gzip"), "lane {lane}");
        let head = format!("HEAD {target} HTTP/1.1\r\n{fields}\r\n");
        let (_, headed) = send(app.server.addr, head.as_bytes(), true).await;
        assert_eq!(headed.status, 200, "lane {lane}");
        assert_eq!(
            headed.header("content-encoding"),
            Some("gzip"),
            "lane {lane}"
        );
        // The compressed length is known only by compressing: said as the GET says
        // it, or not at all (RFC 9110 §9.3.2), never the identity length.
        let length = headed.header("content-length");
        assert!(
            length.is_none() || length == got.header("content-length"),
            "lane {lane}: {length:?}"
        );
    }
}

#[tokio::test]
async fn requests_already_sent_when_the_gateway_stops_are_answered_before_it_closes() {
    let app = spawn_app().await;
    let fleet = &app.fleet;
    let token = fleet.token(ACME, Role::Owner);
    let config: gateway::Config =
        common::testkit::parse_config(gateway::NAME, &crate::helpers::test_args(fleet), &[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(gateway::run_until(config, listener, shutdown.clone()));
    let auth = format!("Host: acme.localhost\r\nAuthorization: Bearer {token}\r\n");
    // A slow request (3 s upstream) with two more pipelined behind it, the last one in
    // part; the stop comes while the first is upstream.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let pipelined = format!(
        "GET /api/v1/projects/slow HTTP/1.1\r\n{auth}\r\nGET /api/v1/projects HTTP/1.1\r\n{auth}\r\nGET /api/v1/projects HTTP/1.1\r\n"
    );
    stream.write_all(pipelined.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.cancel();
    stream
        .write_all(format!("{auth}\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    for i in 0..3 {
        let answer = read_answer(&mut stream, &mut buf, false).await;
        assert_eq!(answer.status, 200, "request {i}");
        let close = answer.header("connection") == Some("close");
        assert_eq!(close, i == 2, "request {i}: only the last says close");
    }
    assert!(closed(&mut stream).await);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the gateway stops")
        .unwrap()
        .unwrap();
}
