//! The fast lane holds to hyper: generated raw requests (methods, target forms, versions,
//! duplicated, folded, badly spaced or badly encoded fields, Content-Length and
//! Transfer-Encoding combinations, Host variants, bodies) go to one gateway with its lane
//! and one with `FAST_LANE=false` (hyper and the router only), and each must get the same
//! framing decision from both: the same status (or the same silence), and a connection
//! that is still usable (it answers a following request) on both or on neither.
//!
//! `PROPTEST_CASES` sets the number of requests (3,000 by default, also in CI).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::auth::Role;
use common::testkit::{TestServer, parse_config};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::helpers::{ACME, Fleet, test_args};

/// What a client saw of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// The final answer's status (interim 1xx skipped).
    Status(u16),
    /// The connection closed (or broke) before an answer.
    Closed,
    /// Nothing came within the wait.
    Silent,
}

/// One generated request: its bytes, and whether it is a HEAD (no body in the answer).
#[derive(Debug, Clone)]
struct Generated {
    bytes: Vec<u8>,
    head: bool,
}

const WAIT: Duration = Duration::from_secs(3);

/// Reads one final answer off `stream` (after `buf`); `None` when the stream ended or
/// timed out first (`Silent` is told apart by the error kind).
fn answer(stream: &mut TcpStream, buf: &mut Vec<u8>, head: bool) -> Seen {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut fields);
        let parsed = res.parse(buf);
        if let Ok(httparse::Status::Complete(len)) = parsed {
            let status = res.code.unwrap_or(0);
            let header = |name: &str| {
                res.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
            };
            let chunked = header("transfer-encoding").is_some_and(|te| te.ends_with("chunked"));
            let length = header("content-length").and_then(|l| l.parse::<usize>().ok());
            buf.drain(..len);
            if (100..200).contains(&status) {
                continue;
            }
            let bodiless = head || status == 204 || status == 304;
            let read_body = match (bodiless, chunked, length) {
                (true, _, _) => Some(()),
                (false, true, _) => skip_chunked(stream, buf),
                (false, false, Some(length)) => fill_to(stream, buf, length).map(|()| {
                    buf.drain(..length);
                }),
                (false, false, None) => Some(()),
            };
            return match read_body {
                Some(()) => Seen::Status(status),
                None => Seen::Closed,
            };
        }
        if parsed.is_err() {
            return Seen::Closed;
        }
        match fill(stream, buf) {
            Ok(()) => {}
            Err(silent) => return silent,
        }
    }
}

fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), Seen> {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) => Err(Seen::Closed),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(Seen::Silent)
        }
        Err(_) => Err(Seen::Closed),
    }
}

fn fill_to(stream: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> Option<()> {
    while buf.len() < len {
        fill(stream, buf).ok()?;
    }
    Some(())
}

fn skip_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    loop {
        let line_end = loop {
            if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                break end;
            }
            fill(stream, buf).ok()?;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        fill_to(stream, buf, line_end + 2 + size + 2)?;
        buf.drain(..line_end + 2 + size + 2);
        if size == 0 {
            return Some(());
        }
    }
}

/// Sends `request` on a new connection, then (unless it ended) a plain request after
/// it: what came back to the first, and whether the second was answered.
fn exchange(addr: SocketAddr, request: &Generated) -> (Seen, bool) {
    let mut stream = TcpStream::connect(addr).expect("the gateway accepts");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    if stream.write_all(&request.bytes).is_err() {
        return (Seen::Closed, false);
    }
    let mut buf = Vec::new();
    let first = answer(&mut stream, &mut buf, request.head);
    if !matches!(first, Seen::Status(_)) {
        return (first, false);
    }
    let probe = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    if stream.write_all(probe).is_err() {
        return (first, false);
    }
    let usable = answer(&mut stream, &mut buf, false) == Seen::Status(200);
    (first, usable)
}

fn method() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        20 => Just("GET"),
        4 => Just("HEAD"),
        8 => Just("POST"),
        3 => Just("PUT"),
        3 => Just("DELETE"),
        3 => Just("PATCH"),
        1 => Just("OPTIONS"),
        1 => Just("TRACE"),
        1 => Just("CONNECT"),
        1 => Just("get"),
        1 => Just("FOO"),
        1 => Just("G@T"),
        1 => Just(""),
    ]
}

fn target() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        20 => Just("/api/v1/projects"),
        8 => Just("/api/v1/projects/7?q=a%20b&x=1"),
        4 => Just("/healthz"),
        3 => Just("/s/abcdefgh"),
        2 => Just("/nope"),
        2 => Just("/api/v1/tasks/9/attachments"),
        1 => Just("/"),
        1 => Just("//api/v1/projects"),
        1 => Just("/api/v1/projects/%zz"),
        1 => Just("/api/v1/projects#frag"),
        1 => Just("/api/v1/proj\u{e9}cts"),
        1 => Just("/api/v1/projects/{x}"),
        1 => Just("/a\"b"),
        3 => Just("http://acme.localhost/api/v1/projects"),
        1 => Just("http://ACME.localhost:8080/api/v1/projects?x"),
        1 => Just("http://globex.localhost/api/v1/projects"),
        1 => Just("http://localhost/healthz"),
        1 => Just("https://acme.localhost/api/v1/projects"),
        1 => Just("http://u@acme.localhost/api/v1/projects"),
        1 => Just("ftp://acme.localhost/x"),
        1 => Just("http://acme.localhost"),
        1 => Just("*"),
        1 => Just("acme.localhost:80"),
        1 => Just("api/v1/projects"),
    ]
}

fn version() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        60 => Just("HTTP/1.1"),
        6 => Just("HTTP/1.0"),
        1 => Just("HTTP/2.0"),
        1 => Just("HTTP/1.2"),
        1 => Just("http/1.1"),
        1 => Just("HTTP/1"),
    ]
}

fn host() -> impl Strategy<Value = Vec<&'static str>> {
    let one = prop_oneof![
        30 => Just("acme.localhost"),
        4 => Just("acme.localhost:8080"),
        2 => Just("ACME.LOCALHOST"),
        2 => Just("globex.localhost"),
        4 => Just("localhost"),
        1 => Just("frozen.localhost"),
        1 => Just("nobody.localhost"),
        1 => Just("evil.example"),
        1 => Just("[::1]:8080"),
        1 => Just(""),
        1 => Just("acme.localhost/x"),
        1 => Just("a b"),
        1 => Just("acme.localhost:80:80"),
        1 => Just(" acme.localhost "),
    ];
    prop_oneof![
        30 => one.clone().prop_map(|h| vec![h]),
        1 => Just(vec![]),
        1 => (one.clone(), one).prop_map(|(a, b)| vec![a, b]),
    ]
}

/// Fields besides Host, Content-Length and Transfer-Encoding: name, value, and the line
/// written raw when the name is empty.
fn other_fields() -> impl Strategy<Value = Vec<String>> {
    let field = prop_oneof![
        40 => Just("Authorization: Bearer TOKEN".to_owned()),
        8 => Just("Accept: application/json".to_owned()),
        4 => Just("Content-Type: application/json".to_owned()),
        3 => Just("User-Agent: differential/1".to_owned()),
        1 => Just("Authorization: Basic Zm9vOmJhcg==".to_owned()),
        4 => Just("Connection: close".to_owned()),
        4 => Just("Connection: keep-alive".to_owned()),
        1 => Just("Connection: Close".to_owned()),
        1 => Just("Connection: close, foo".to_owned()),
        1 => Just("Connection: upgrade\r\nUpgrade: websocket".to_owned()),
        1 => Just("Expect: 100-continue".to_owned()),
        1 => Just("Origin: http://elsewhere.example".to_owned()),
        3 => Just("Accept-Encoding: gzip, br".to_owned()),
        3 => Just("X-Request-Id: keep-me".to_owned()),
        1 => Just("X-Tenant-Id: 00000000-0000-0000-0000-00000000000b".to_owned()),
        1 => Just("X-Odd:   spaced value \t".to_owned()),
        1 => Just("X-Folded: one\r\n two".to_owned()),
        1 => Just("X-Space : before colon".to_owned()),
        1 => Just(": empty name".to_owned()),
        1 => Just("X-Ctl: a\u{1}b".to_owned()),
        1 => Just("X-Del: a\u{7f}b".to_owned()),
        1 => Just("X-Utf8: caf\u{e9}".to_owned()),
        1 => Just("X Bad: name".to_owned()),
        1 => Just("X-No-Colon".to_owned()),
        1 => Just("Http2-Settings: AAMAAABkAAQAAP__".to_owned()),
        4 => "[a-zA-Z-]{1,12}: [ -~]{0,20}".prop_map(|f| f),
    ];
    proptest::collection::vec(field, 0..4)
}

#[derive(Debug, Clone)]
enum Framing {
    None,
    Length(Vec<&'static str>),
    Chunked(&'static str, Option<&'static str>),
}

fn framing() -> impl Strategy<Value = Framing> {
    let length = prop_oneof![
        12 => Just("2"),
        4 => Just("0"),
        1 => Just("002"),
        1 => Just("+2"),
        1 => Just("-1"),
        1 => Just(""),
        1 => Just("2, 2"),
        1 => Just(" 2 "),
        1 => Just("70000"),
        1 => Just("abc"),
    ];
    let coding = prop_oneof![
        Just("chunked"),
        Just("Chunked"),
        Just("gzip, chunked"),
        Just("chunked, gzip"),
        Just("gzip"),
        Just(" chunked"),
        Just("identity"),
    ];
    prop_oneof![
        12 => Just(Framing::None),
        8 => length.clone().prop_map(|l| Framing::Length(vec![l])),
        1 => proptest::collection::vec(length.clone(), 2..3).prop_map(Framing::Length),
        2 => (coding, proptest::option::of(length)).prop_map(|(c, l)| Framing::Chunked(c, l)),
    ]
}

fn request(token: String) -> impl Strategy<Value = Generated> {
    (
        method(),
        target(),
        version(),
        host(),
        other_fields(),
        framing(),
        prop::bool::weighted(0.03),
    )
        .prop_map(
            move |(method, target, version, hosts, fields, framing, bare_lf)| {
                let eol = if bare_lf { "\n" } else { "\r\n" };
                let mut head = format!("{method} {target} {version}{eol}");
                for host in &hosts {
                    head.push_str(&format!("Host: {host}{eol}"));
                }
                for field in &fields {
                    let field = field.replace("TOKEN", &token);
                    head.push_str(&field);
                    head.push_str(eol);
                }
                let body: Vec<u8> = match &framing {
                    Framing::None => Vec::new(),
                    Framing::Length(values) => {
                        for value in values {
                            head.push_str(&format!("Content-Length: {value}{eol}"));
                        }
                        // The body the first value declares when it is a plain number
                        // (a broken one is refused before any body is read).
                        let declared = values[0].trim().parse::<usize>().unwrap_or(2);
                        vec![b'{'; declared.min(70_000)]
                    }
                    Framing::Chunked(coding, length) => {
                        head.push_str(&format!("Transfer-Encoding: {coding}{eol}"));
                        if let Some(length) = length {
                            head.push_str(&format!("Content-Length: {length}{eol}"));
                        }
                        if coding.trim().eq_ignore_ascii_case("chunked")
                            || coding.ends_with(", chunked")
                        {
                            b"2\r\n{}\r\n0\r\n\r\n".to_vec()
                        } else {
                            b"{}".to_vec()
                        }
                    }
                };
                head.push_str(eol);
                let mut bytes = head.into_bytes();
                bytes.extend_from_slice(&body);
                Generated {
                    bytes,
                    head: method == "HEAD",
                }
            },
        )
}

/// A gateway in front of `fleet`, with its lane on or off, and limits no test reaches.
async fn gateway(fleet: &Fleet, lane: &str) -> TestServer {
    let overrides = [
        ("FAST_LANE", lane),
        ("RATE_LIMIT_USER_PER_MIN", "100000000"),
        ("RATE_LIMIT_IP_PER_MIN", "100000000"),
        ("BREAKER_FAILURES", "100000000"),
    ];
    let mut args = test_args(fleet);
    for (name, value) in overrides {
        args.push((name, value.to_owned()));
    }
    let config: gateway::Config = parse_config(gateway::NAME, &args, &[]);
    TestServer::start(|listener, shutdown| gateway::run_until(config, listener, shutdown)).await
}

/// How many requests the gateway's lane proxied itself (its `/metrics`).
async fn served_by_lane(gateway: &TestServer) -> u64 {
    let metrics = gateway
        .client
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .filter(|l| l.starts_with("gateway_requests_total{") && l.contains("lane=\"fast\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn the_lane_and_hyper_make_the_same_framing_decision_on_generated_requests() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (fleet, lane, hyper) = runtime.block_on(async {
        let fleet = Fleet::start().await;
        let lane = gateway(&fleet, "true").await;
        let hyper = gateway(&fleet, "false").await;
        (fleet, lane, hyper)
    });
    let token = fleet.token(ACME, Role::Owner);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new());
    let result = runner.run(&request(token), |generated| {
        let by_lane = exchange(lane.addr, &generated);
        let by_hyper = exchange(hyper.addr, &generated);
        *statuses
            .lock()
            .unwrap()
            .entry(format!("{:?}", by_lane.0))
            .or_default() += 1;
        if by_lane != by_hyper {
            return Err(TestCaseError::fail(format!(
                "lane {by_lane:?} ≠ hyper {by_hyper:?} for\n{}",
                String::from_utf8_lossy(&generated.bytes).escape_debug()
            )));
        }
        Ok(())
    });
    let by_lane = runtime.block_on(served_by_lane(&lane));
    println!(
        "{cases} generated requests in {:.1} s; the lane proxied {by_lane} itself; answers: {:?}",
        started.elapsed().as_secs_f64(),
        statuses.into_inner().unwrap()
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // Without this the comparison could pass by handing everything to hyper.
    assert!(
        by_lane * 6 >= u64::from(cases),
        "the lane proxied only {by_lane} of {cases} requests itself"
    );
    drop((lane, hyper, fleet));
    runtime.shutdown_timeout(Duration::from_secs(1));
}
