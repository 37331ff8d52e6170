//! The redirect lane: plain cached opens are answered by the lane, field for field as the
//! router answers them; everything else on the connection goes on to the router.

use std::time::Duration;

use common::auth::Role;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{eventually, spawn_app, spawn_app_with};
use crate::redirect::responses_counted;

/// The answers in `raw`, in order: each one's status line and lowercase header lines.
fn answers(raw: &str) -> Vec<(String, Vec<String>)> {
    raw.split("HTTP/1.1 ")
        .skip(1)
        .map(|answer| {
            let head = answer.split("\r\n\r\n").next().unwrap();
            let mut lines = head.lines();
            let status = lines.next().unwrap().to_owned();
            (status, lines.map(str::to_ascii_lowercase).collect())
        })
        .collect()
}

#[tokio::test]
async fn pipelined_plain_opens_are_the_lanes_and_the_rest_of_the_connection_the_routers() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({})).await;
    let code = link["code"].as_str().unwrap();
    // One open through the router caches the link.
    assert_eq!(app.open(code, "10.6.0.1").await.status(), 302);
    let by_lane = responses_counted(&app, "302", Some("fast")).await;

    let open = |id: &str| {
        format!(
            "GET /s/{code} HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: {id}\r\n\
             User-Agent: Mozilla/5.0 Firefox/125.0\r\nX-Forwarded-For: 10.6.0.2\r\n\r\n"
        )
    };
    let mut sent = [open("lane-1"), open("lane-2"), open("lane-3")].concat();
    // The router's from here on: another path, then an open on the handed-over connection.
    sent.push_str("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    sent.push_str(&format!(
        "GET /s/{code} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    ));
    let mut stream = tokio::net::TcpStream::connect(app.server.addr)
        .await
        .unwrap();
    stream.write_all(sent.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut raw))
        .await
        .expect("the connection is closed after the last answer")
        .unwrap();

    let answers = answers(&raw);
    let statuses: Vec<&str> = answers.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        statuses,
        ["302 Found", "302 Found", "302 Found", "200 OK", "302 Found"]
    );
    let prefix = format!("location: https://{}.nexus.test/shared/tasks/", user.slug);
    for (i, (_, headers)) in answers
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| s.starts_with("302"))
    {
        let has = |line: &str| headers.iter().any(|h| h == line);
        assert!(
            headers
                .iter()
                .any(|h| h.starts_with(&prefix) && h.contains("?grant=")),
            "{headers:?}"
        );
        assert!(has("cache-control: no-store"), "{headers:?}");
        assert!(has("referrer-policy: no-referrer"), "{headers:?}");
        assert!(has("content-length: 0"), "{headers:?}");
        assert!(
            headers.iter().any(|h| h.starts_with("date: ")),
            "{headers:?}"
        );
        if i < 3 {
            assert!(has(&format!("x-request-id: lane-{}", i + 1)), "{headers:?}");
        } else {
            assert!(
                headers.iter().any(|h| h.starts_with("x-request-id: ")),
                "{headers:?}"
            );
        }
    }
    assert_eq!(
        responses_counted(&app, "302", Some("fast")).await,
        by_lane + 3,
        "the three pipelined opens were the lane's, the last one the router's"
    );
    let counted = eventually(Duration::from_secs(10), || async {
        app.visits_written(code).await == 5
    })
    .await;
    assert!(counted, "every open is a visit, whoever answered it");
}

#[tokio::test]
async fn opens_the_lane_does_not_answer_get_the_routers_pages() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let open = app.link(&user, json!({})).await;
    let protected = app.link(&user, json!({"password": "s3cret-pass"})).await;
    let used_up = app.link(&user, json!({"max_visits": 1})).await;
    for link in [&open, &protected, &used_up] {
        app.open(link["code"].as_str().unwrap(), "10.6.1.1").await;
    }
    let by_lane = responses_counted(&app, "302", Some("fast")).await;

    for (link, method, status) in [
        (&protected, "GET", "200 OK"),
        (&used_up, "GET", "410 Gone"),
        (&open, "HEAD", "302 Found"),
    ] {
        let code = link["code"].as_str().unwrap();
        let mut stream = tokio::net::TcpStream::connect(app.server.addr)
            .await
            .unwrap();
        let request =
            format!("{method} /s/{code} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        assert_eq!(answers(&raw)[0].0, status, "{method} {code}: {raw}");
    }
    assert_eq!(responses_counted(&app, "302", Some("fast")).await, by_lane);
}

#[tokio::test]
async fn a_link_dropped_from_the_cache_is_loaded_again_by_the_lane() {
    let app = spawn_app_with(&[("LINK_CACHE_TTL_SECS", "1")]).await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({})).await;
    let code = link["code"].as_str().unwrap();
    let by_lane = responses_counted(&app, "302", Some("fast")).await;
    let open = format!("GET /s/{code} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(app.server.addr)
        .await
        .unwrap();

    let mut raw = vec![0; 4096];
    for _ in 0..2 {
        stream.write_all(open.as_bytes()).await.unwrap();
        let n = stream.read(&mut raw).await.unwrap();
        assert!(raw[..n].starts_with(b"HTTP/1.1 302 Found\r\n"));
        // Past the cache's TTL: the next open finds no entry.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }

    assert_eq!(
        responses_counted(&app, "302", Some("fast")).await,
        by_lane + 2,
        "both opens were the lane's, the second after the entry expired"
    );
}

#[tokio::test]
async fn an_open_with_two_forwarded_for_fields_is_left_to_the_router() {
    let app = spawn_app().await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({})).await;
    let code = link["code"].as_str().unwrap();
    assert_eq!(app.open(code, "10.6.0.1").await.status(), 302);
    let (by_lane, by_router) = (
        responses_counted(&app, "302", Some("fast")).await,
        responses_counted(&app, "302", Some("router")).await,
    );

    // Two fields are one list, which the router joins before the client is found in it.
    let sent = format!(
        "GET /s/{code} HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 6.6.6.6\r\n\
         X-Forwarded-For: 203.0.113.8\r\nConnection: close\r\n\r\n"
    );
    let mut stream = tokio::net::TcpStream::connect(app.server.addr)
        .await
        .unwrap();
    stream.write_all(sent.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut raw))
        .await
        .expect("the connection is closed after the answer")
        .unwrap();

    assert!(raw.starts_with("HTTP/1.1 302"), "{raw}");
    assert_eq!(responses_counted(&app, "302", Some("fast")).await, by_lane);
    assert_eq!(
        responses_counted(&app, "302", Some("router")).await,
        by_router + 1
    );
}

/// Everything the connection answers until it closes (within 10 s).
async fn all_answers(request: &str, addr: std::net::SocketAddr) -> Vec<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the connection closes")
        .unwrap();
    // (A problem's text may say "HTTP/1.1 " too: only status lines count.)
    answers(&String::from_utf8_lossy(&raw))
        .into_iter()
        .map(|(status, _)| status)
        .filter(|status| status.starts_with(|c: char| c.is_ascii_digit()))
        .collect()
}

#[tokio::test]
async fn opens_that_break_the_edge_rules_are_refused_by_hyper_not_redirected() {
    let app = spawn_app_with(&[
        ("MAX_HEAD_BYTES", "4096"),
        ("HEADER_READ_TIMEOUT_SECS", "1"),
    ])
    .await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({})).await;
    let code = link["code"].as_str().unwrap();
    assert_eq!(app.open(code, "10.6.3.1").await.status(), 302);
    let addr = app.server.addr;
    let open = format!("GET /s/{code} HTTP/1.1\r\n");
    for (fields, status) in [
        ("Host: localhost\r\nConnection: close\r\n", "302 Found"),
        ("Connection: close\r\n", "400 Bad Request"),
        ("Host: localhost\r\nHost: localhost\r\n", "400 Bad Request"),
        ("Host: local host\r\n", "400 Bad Request"),
    ] {
        let answers = all_answers(&format!("{open}{fields}\r\n"), addr).await;
        assert_eq!(answers, [status], "{fields}");
    }
    let absolute = format!("GET http://localhost/s/{code} HTTP/1.1\r\nHost: elsewhere\r\n\r\n");
    assert_eq!(all_answers(&absolute, addr).await, ["400 Bad Request"]);
    let padded = |len: usize| {
        let start = format!("{open}Host: localhost\r\nConnection: close\r\nX-Pad: ");
        format!("{start}{}\r\n\r\n", "p".repeat(len - start.len() - 4))
    };
    assert_eq!(all_answers(&padded(4096), addr).await, ["302 Found"]);
    assert_eq!(
        all_answers(&padded(4097), addr).await,
        ["431 Request Header Fields Too Large"]
    );

    // A head that trickles in: 408 a second after its first byte, then the close.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = std::time::Instant::now();
    let head = format!(
        "{open}Host: localhost\r\n{}\r\n",
        "X-Slow: 1\r\n".repeat(12)
    );
    let writer = tokio::spawn(async move {
        for line in head.split_inclusive("\r\n") {
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        write
    });
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut raw))
        .await
        .expect("the connection closes")
        .unwrap();
    let took = started.elapsed();
    writer.abort();
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{raw}");
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

#[tokio::test]
async fn with_the_lane_off_the_router_answers_every_open() {
    let app = spawn_app_with(&[("REDIRECT_LANE", "false")]).await;
    let user = app.tenant(Role::Member);
    let link = app.link(&user, json!({})).await;
    let code = link["code"].as_str().unwrap();
    assert_eq!(app.open(code, "10.6.2.1").await.status(), 302);
    let by_router = responses_counted(&app, "302", Some("router")).await;

    // Pipelined plain opens: the ones the lane would take when it is on.
    let open = format!("GET /s/{code} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut sent = open.repeat(2);
    sent.push_str(&format!(
        "GET /s/{code} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    ));
    let mut stream = tokio::net::TcpStream::connect(app.server.addr)
        .await
        .unwrap();
    stream.write_all(sent.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut raw))
        .await
        .expect("the connection is closed after the last answer")
        .unwrap();

    let statuses: Vec<String> = answers(&raw).into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses, ["302 Found", "302 Found", "302 Found"]);
    assert_eq!(
        responses_counted(&app, "302", Some("router")).await,
        by_router + 3
    );
    assert_eq!(responses_counted(&app, "302", Some("fast")).await, 0);
}
