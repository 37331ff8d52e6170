//! The HTTP/1.1 edge of a plain service (`common::server::serve`, RFC 9112): Host rules,
//! head size, head time and HEAD lengths, over raw connections.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app_with;

/// One answer: status, head (lower-case), body (by `content-length`; none for `head`).
async fn answer<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    head: bool,
) -> (u16, String, Vec<u8>) {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = text[9..12].parse().unwrap();
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |l| l.parse().unwrap());
            let length = if head { 0 } else { length };
            while buf.len() < end + 4 + length {
                read(stream, buf).await;
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            return (status, text, body);
        }
        read(stream, buf).await;
    }
}

async fn read<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) {
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read_buf(buf))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    assert!(n > 0, "closed before an answer");
}

async fn send(addr: std::net::SocketAddr, request: &str) -> (TcpStream, (u16, String, Vec<u8>)) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let got = answer(&mut stream, &mut Vec::new(), request.starts_with("HEAD")).await;
    (stream, got)
}

async fn closed<S: AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut rest = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut rest)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn host_rules_head_limits_and_head_lengths_hold_on_a_plain_service() {
    let app = spawn_app_with(&[
        ("MAX_HEAD_BYTES", "4096"),
        ("HEADER_READ_TIMEOUT_SECS", "1"),
    ])
    .await;
    let addr = app.server.addr;

    for (request, why) in [
        ("GET /healthz HTTP/1.1\r\n\r\n", "no Host"),
        (
            "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            "two Hosts",
        ),
        (
            "GET /healthz HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            "two Hosts, 1.0",
        ),
        ("GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n", "not a host"),
        (
            "GET http://a/healthz HTTP/1.1\r\nHost: b\r\n\r\n",
            "target ≠ Host",
        ),
        ("GET http://a/healthz HTTP/1.1\r\n\r\n", "absolute, no Host"),
    ] {
        let (mut stream, (status, head, body)) = send(addr, request).await;
        assert_eq!(status, 400, "{why}");
        assert!(
            head.contains("content-type: application/problem+json"),
            "{why}: {head}"
        );
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["status"], 400, "{why}");
        assert!(closed(&mut stream).await, "{why}: closes");
    }
    for request in [
        "GET http://a/healthz HTTP/1.1\r\nHost: A\r\n\r\n",
        "GET http://a:80/healthz HTTP/1.0\r\n\r\n",
        "GET /healthz HTTP/1.0\r\n\r\n",
    ] {
        assert_eq!(send(addr, request).await.1.0, 200, "{request}");
    }

    // Head size: at the limit served, one byte over 431.
    let head_of = |len: usize| {
        let start = "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Pad: ";
        format!("{start}{}\r\n\r\n", "p".repeat(len - start.len() - 4))
    };
    assert_eq!(send(addr, &head_of(4096)).await.1.0, 200);
    assert_eq!(send(addr, &head_of(4097)).await.1.0, 431);

    // HEAD says the GET's length.
    let (_, (_, _, got)) = send(addr, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let (_, (status, head, _)) = send(addr, "HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(status, 200);
    assert!(
        head.contains(&format!("content-length: {}\r\n", got.len())),
        "{head}"
    );

    // Head time: idle first (not counted), then a trickling head: 408 one second after
    // its first byte.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(answer(&mut stream, &mut buf, false).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let mut lines = "GET /healthz HTTP/1.1\r\nHost: a\r\n".to_owned();
        lines.push_str(&"X-Slow: 1\r\n".repeat(12));
        for line in lines.split_inclusive("\r\n") {
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        write
    });
    let (status, head, _) = answer(&mut read, &mut buf, false).await;
    let took = started.elapsed();
    assert_eq!(status, 408, "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert!(closed(&mut read).await);
    writer.abort();
}
