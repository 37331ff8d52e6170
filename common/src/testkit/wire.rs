//! Raw HTTP/1.1 on the wire, for differential tests of a hand-written HTTP/1.1 loop
//! (a lane) against hyper: generated requests (methods, target forms, versions,
//! duplicated, folded, badly spaced or badly encoded fields, Content-Length and
//! Transfer-Encoding combinations, Host variants, bodies) go to a server with its lane
//! and to one without, and each must get the same framing decision from both: the same
//! status (or the same silence), and a connection that is still usable (it answers a
//! following request) on both or on neither. The caller picks the targets and hosts its
//! service knows.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// What a client saw of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The final answer's status (interim 1xx skipped).
    Status(u16),
    /// The connection closed (or broke) before an answer.
    Closed,
    /// Nothing came within the wait.
    Silent,
}

/// One generated request: its bytes, and whether it is a HEAD (no body in the answer).
#[derive(Debug, Clone)]
pub struct Generated {
    pub bytes: Vec<u8>,
    pub head: bool,
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

/// Sends `request` on a new connection, then (unless it ended) `probe`, a plain request
/// that must be answered 200: what came back to the first, and whether the second was.
pub fn exchange(addr: SocketAddr, request: &Generated, probe: &[u8]) -> (Seen, bool) {
    let mut stream = TcpStream::connect(addr).expect("the server accepts");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    if stream.write_all(&request.bytes).is_err() {
        return (Seen::Closed, false);
    }
    let mut buf = Vec::new();
    let first = answer(&mut stream, &mut buf, request.head);
    if !matches!(first, Seen::Status(_)) {
        return (first, false);
    }
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

/// Raw requests to `target`s with `host` values (none, one, or two `Host` fields), where
/// `TOKEN` in a field is replaced by `token`.
pub fn requests(
    target: BoxedStrategy<String>,
    host: BoxedStrategy<&'static str>,
    token: String,
) -> impl Strategy<Value = Generated> {
    let hosts = prop_oneof![
        30 => host.clone().prop_map(|h| vec![h]),
        1 => Just(vec![]),
        1 => (host.clone(), host).prop_map(|(a, b)| vec![a, b]),
    ];
    (
        method(),
        target,
        version(),
        hosts,
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

/// `PROPTEST_CASES`, or `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Sends `cases` requests of `strategy` to `lane` and to `hyper` (each followed by
/// `probe`, which must be answered 200 on a usable connection), and panics at the first
/// that gets a different decision from the two. Returns how often each answer the lane
/// gave was seen.
pub fn assert_same_decisions(
    lane: SocketAddr,
    hyper: SocketAddr,
    strategy: impl Strategy<Value = Generated>,
    cases: u32,
    probe: &[u8],
) -> BTreeMap<String, usize> {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let seen = std::sync::Mutex::new(BTreeMap::<String, usize>::new());
    let result = runner.run(&strategy, |generated| {
        let by_lane = exchange(lane, &generated, probe);
        let by_hyper = exchange(hyper, &generated, probe);
        *seen
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
    if let Err(failure) = result {
        panic!("{failure}");
    }
    seen.into_inner().unwrap()
}
