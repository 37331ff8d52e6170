//! The upstream side of the lane: heads written both ways, a pool of keep-alive upstream
//! sockets per worker, and answers copied back as they were framed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use bytes::{Buf, BytesMut};
use common::telemetry::REQUEST_ID_HEADER;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::request::{Coding, Facts};
use super::{field, status_line};
use crate::limits::RateLimit;
use crate::proxy::{self, Admitted};
use crate::upstreams::{Instance, Unreachable};

/// Idle upstream connections kept per instance and worker thread.
const POOLED_PER_INSTANCE: usize = 256;
/// How long connecting to an upstream may take (as the general path's client).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Header fields an upstream answer may have (as hyper's client allows).
const MAX_ANSWER_HEADERS: usize = 100;
/// The largest upstream answer head the lane reads.
const MAX_ANSWER_HEAD: usize = 16 * 1024;

/// The head sent upstream: the client's request line and fields, less the hop-by-hop
/// ones, `Host` and the ones only the gateway sets; then the gateway's own.
pub(super) fn upstream_head(
    out: &mut Vec<u8>,
    req: &httparse::Request<'_, '_>,
    facts: &Facts<'_>,
    admitted: &Admitted<'_>,
    request_id: &HeaderValue,
    client_ip: &[u8],
) {
    out.extend_from_slice(facts.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(facts.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    field(out, b"host", admitted.instance.authority().as_bytes());
    let mut lower = [0u8; 64];
    for header in req.headers.iter() {
        let name = header.name.as_bytes();
        let Some(lower) = lower.get_mut(..name.len()) else {
            // Longer than any name the gateway filters: an ordinary field.
            field(out, name, header.value);
            continue;
        };
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        let lower = std::str::from_utf8(lower).unwrap_or_default();
        if lower == "host"
            || lower == REQUEST_ID_HEADER
            || proxy::is_hop_by_hop(lower)
            || proxy::is_reserved(lower)
        {
            continue;
        }
        field(out, name, header.value);
    }
    field(out, REQUEST_ID_HEADER.as_bytes(), request_id.as_bytes());
    if let Some(tenant) = &admitted.tenant {
        field(out, b"x-tenant-id", tenant.id_header.as_bytes());
        field(out, b"x-tenant-slug", tenant.slug_header.as_bytes());
    }
    field(out, b"x-forwarded-for", client_ip);
    field(out, b"x-forwarded-proto", b"http");
    field(out, b"x-forwarded-host", facts.host.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The upstream's own `RateLimit-*` fields give way to the gateway's.
const RATE_LIMIT_PREFIX: &str = "ratelimit-";

/// How the lane frames an answer to the client.
#[derive(Clone, Copy)]
pub(super) struct Reframe {
    pub(super) framing: Framing,
    pub(super) close: bool,
    /// Compressed by the lane: its own `Content-Length` and `Content-Encoding` (a HEAD's:
    /// the encoding without a length, as the GET's would be).
    pub(super) coded: Option<Coding>,
}

/// The head sent to the client: the upstream's status and fields less the hop-by-hop
/// ones, the request id, the rate-limit fields and the lane's own framing.
pub(super) fn client_head(
    out: &mut Vec<u8>,
    head: &[u8],
    rate: Option<&RateLimit>,
    request_id: &HeaderValue,
    reframe: Reframe,
) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_ANSWER_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    // `ask` parsed this very head already.
    let _ = res.parse(head);
    let status = res
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    status_line(out, status);
    for header in res.headers.iter() {
        let name = header.name;
        let skip = proxy::HOP_BY_HOP
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
            || name.eq_ignore_ascii_case(REQUEST_ID_HEADER)
            // The lane's own length, or a chunked answer (where a length the upstream
            // sent as well must not reach the client beside `Transfer-Encoding`).
            || ((reframe.coded.is_some() || !matches!(reframe.framing, Framing::Length(_) | Framing::Empty))
                && name.eq_ignore_ascii_case("content-length"))
            || (rate.is_some()
                && name
                    .get(..RATE_LIMIT_PREFIX.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(RATE_LIMIT_PREFIX)));
        if !skip {
            field(out, name.as_bytes(), header.value);
        }
    }
    field(out, REQUEST_ID_HEADER.as_bytes(), request_id.as_bytes());
    if let Some(rate) = rate {
        let mut number = itoa::Buffer::new();
        for (name, value) in rate.fields() {
            field(out, name.as_bytes(), number.format(value).as_bytes());
        }
    }
    if let Framing::Chunked = reframe.framing {
        field(out, b"transfer-encoding", b"chunked");
    }
    if let Some(coding) = reframe.coded {
        field(out, b"content-encoding", coding.name());
        if let Framing::Length(length) = reframe.framing {
            field(out, b"content-length", length.to_string().as_bytes());
        }
        field(out, b"vary", b"accept-encoding");
    }
    if reframe.close {
        field(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// HTTP/1.0 style: the body ends when the upstream closes.
    UntilClose,
}

/// An upstream answer's head, parsed, at the start of `answer`.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) head_len: usize,
    pub(super) framing: Framing,
    /// The upstream keeps the connection open after this answer.
    pub(super) reusable: bool,
    /// JSON or text, not already encoded.
    pub(super) compressible: bool,
}

thread_local! {
    /// Idle upstream connections of this worker thread, by `host:port` (each worker
    /// drives its own, like nginx's `keepalive` per worker).
    static POOL: RefCell<HashMap<String, Vec<TcpStream>>> = RefCell::new(HashMap::new());
}

fn pooled(authority: &str) -> Option<TcpStream> {
    POOL.with(|pool| pool.borrow_mut().get_mut(authority)?.pop())
}

pub(super) fn give_back(authority: &str, stream: TcpStream) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = match pool.get_mut(authority) {
            Some(idle) => idle,
            None => pool.entry(authority.to_owned()).or_default(),
        };
        if idle.len() < POOLED_PER_INSTANCE {
            idle.push(stream);
        }
    });
}

/// Whether a pooled connection still looks open (the upstream may have closed it while
/// it sat idle). Costs no system call when the reactor has seen nothing on it.
fn still_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(err) if err.kind() == io::ErrorKind::WouldBlock)
}

/// Whether a request may be sent again after a connection failed under it: the
/// idempotent methods of RFC 9110 §9.2.2 (the lane sees no OPTIONS or TRACE). A proxy
/// must not repeat any other request that may have reached the upstream (§9.2.2).
pub(super) fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

/// Writes `request` to an instance and reads the answer's head into `answer`.
///
/// Pooled connections are reused whatever the method, each checked first
/// ([`still_open`]: the upstream may have closed it while it sat idle). When a reused
/// connection fails all the same (the upstream's close was still on its way), the
/// request goes once more on a new connection only if nothing of it can have been acted
/// on: its first write was refused (nothing reached the upstream), or it is
/// [`idempotent`] and no byte of an answer came. A POST or PATCH that was written is
/// never sent twice: its failure is a 502. A new connection's failure, a partial
/// answer and a timeout are never retried.
pub(super) async fn ask(
    instance: &Instance,
    request: &[u8],
    idempotent: bool,
    answer: &mut BytesMut,
) -> Result<(TcpStream, Answer), Unreachable> {
    let authority = instance.authority();
    let mut reused = None;
    while let Some(stream) = pooled(authority) {
        if still_open(&stream) {
            reused = Some(stream);
            break;
        }
    }
    if let Some(stream) = reused {
        match round_trip(stream, request, answer).await {
            Ok(done) => return Ok(done),
            Err(Attempt::Unsent(_)) => {}
            Err(Attempt::Unanswered(_)) if idempotent => {}
            Err(Attempt::Unanswered(why) | Attempt::Broken(why)) => {
                return Err(Unreachable::Failed(why));
            }
        }
    }
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority))
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")))
        .map_err(|err| Unreachable::Failed(format!("connecting to {authority}: {err}")))?;
    let _ = stream.set_nodelay(true);
    round_trip(stream, request, answer).await.map_err(
        |(Attempt::Unsent(why) | Attempt::Unanswered(why) | Attempt::Broken(why))| {
            Unreachable::Failed(why)
        },
    )
}

/// How an attempt failed.
enum Attempt {
    /// The connection refused the request's first write: none of it was sent.
    Unsent(String),
    /// Sent (in part or whole), and the connection closed or failed before any answer.
    Unanswered(String),
    /// Something came back, but not a valid answer.
    Broken(String),
}

async fn round_trip(
    mut stream: TcpStream,
    request: &[u8],
    answer: &mut BytesMut,
) -> Result<(TcpStream, Answer), Attempt> {
    use tokio::io::AsyncReadExt;
    answer.clear();
    let first = match stream.write(request).await {
        Ok(0) => return Err(Attempt::Unsent("the connection took no bytes".into())),
        Ok(n) => n,
        Err(err) => return Err(Attempt::Unsent(err.to_string())),
    };
    stream
        .write_all(&request[first..])
        .await
        .map_err(|err| Attempt::Unanswered(err.to_string()))?;
    loop {
        if answer.capacity() - answer.len() < 2048 {
            answer.reserve(8 * 1024);
        }
        let read = stream
            .read_buf(answer)
            .await
            .map_err(|err| Attempt::Unanswered(err.to_string()))?;
        if read == 0 {
            return Err(if answer.is_empty() {
                Attempt::Unanswered("the connection closed before an answer".into())
            } else {
                Attempt::Broken("the connection closed mid-answer".into())
            });
        }
        loop {
            match parse_answer(answer) {
                Ok(Some(parsed)) if parsed.status.is_informational() => {
                    // 100 Continue, 103 Early Hints: not forwarded; the final one follows.
                    answer.advance(parsed.head_len);
                }
                Ok(Some(parsed)) => return Ok((stream, parsed)),
                Ok(None) if answer.len() > MAX_ANSWER_HEAD => {
                    return Err(Attempt::Broken("the answer's head is too large".into()));
                }
                Ok(None) => break,
                Err(why) => return Err(Attempt::Broken(why)),
            }
        }
    }
}

fn parse_answer(buf: &[u8]) -> Result<Option<Answer>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_ANSWER_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(format!("an invalid answer: {err}")),
    };
    let status = res
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or("an invalid status")?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err("an unasked-for protocol switch".into());
    }
    let mut reusable = res.version == Some(1);
    let (mut length, mut chunked, mut coded) = (None, false, false);
    let (mut textual, mut encoded) = (false, false);
    for header in res.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("an invalid Content-Length")?;
            if length.is_some_and(|l| l != value) {
                return Err("conflicting Content-Length fields".into());
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            coded = true;
            chunked = header
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("content-type") {
            textual = crate::is_compressible_type(header.value);
        } else if header.name.eq_ignore_ascii_case("content-encoding") {
            encoded = true;
        } else if header.name.eq_ignore_ascii_case("connection") {
            let value = header.value;
            if value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
            {
                reusable = false;
            }
        }
    }
    let framing = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        Framing::Empty
    } else if coded {
        // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3).
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    if matches!(framing, Framing::UntilClose) {
        reusable = false;
    }
    Ok(Some(Answer {
        status,
        head_len,
        framing,
        reusable,
        compressible: textual && !encoded,
    }))
}

/// Writes the client head in `out` with the body after it, copied from `answer` (what
/// came with the head) and then from the upstream as it arrives; the upstream connection
/// goes back to the pool when its answer ended exactly where its framing said.
#[allow(clippy::too_many_arguments)]
pub(super) async fn copy_body(
    mut upstream: TcpStream,
    client: &mut TcpStream,
    framing: Framing,
    out: &mut Vec<u8>,
    answer: &mut BytesMut,
    timeout: Duration,
    reusable: bool,
    instance: &Instance,
) -> io::Result<()> {
    let mut remaining = match framing {
        Framing::Empty => 0,
        Framing::Length(n) => n,
        Framing::Chunked | Framing::UntilClose => u64::MAX,
    };
    let mut chunks = Chunked::default();
    let mut first = true;
    let exact = loop {
        // What of `answer` belongs to this body, and whether the body ends there.
        let (take, ended) = match framing {
            Framing::Empty => (0, true),
            Framing::Length(_) => {
                let take = usize::try_from(remaining).map_or(answer.len(), |r| r.min(answer.len()));
                remaining -= take as u64;
                (take, remaining == 0)
            }
            Framing::Chunked => match chunks.feed(answer) {
                Ok(Some(end)) => (end, true),
                Ok(None) => (answer.len(), false),
                Err(()) => return Err(io::Error::other("an invalid chunked body upstream")),
            },
            Framing::UntilClose => (answer.len(), false),
        };
        if first {
            out.extend_from_slice(&answer[..take]);
            client.write_all(out).await?;
            first = false;
        } else if take > 0 {
            client.write_all(&answer[..take]).await?;
        }
        if ended {
            break answer.len() == take;
        }
        answer.clear();
        answer.reserve(16 * 1024);
        let read = read_upstream(&mut upstream, answer, timeout).await?;
        if read == 0 {
            if matches!(framing, Framing::UntilClose) {
                return Ok(());
            }
            return Err(io::Error::other("the upstream closed mid-body"));
        }
    };
    if exact && reusable {
        answer.clear();
        give_back(instance.authority(), upstream);
    }
    Ok(())
}

/// Reads more of an answer's body into `buf`; an upstream silent for `timeout` is an
/// error. `Ok(0)`: the upstream closed.
pub(super) async fn read_upstream(
    upstream: &mut TcpStream,
    buf: &mut BytesMut,
    timeout: Duration,
) -> io::Result<usize> {
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(timeout, upstream.read_buf(buf))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the upstream stalled"))?
}

/// Finds where a chunked body ends (RFC 9112 §7.1), over the pieces it arrives in.
#[derive(Default)]
struct Chunked {
    state: ChunkState,
    size: u64,
    digits: u8,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    LastLf,
}

impl Chunked {
    /// `Ok(Some(n))`: the body ends after the first `n` bytes of `bytes`.
    fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, ()> {
        use ChunkState as S;
        let mut i = 0;
        while i < bytes.len() {
            if self.state == S::Data {
                let take =
                    usize::try_from(self.size).map_or(bytes.len() - i, |s| s.min(bytes.len() - i));
                self.size -= take as u64;
                i += take;
                if self.size == 0 {
                    self.state = S::DataCr;
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.state = match (self.state, b) {
                (S::Size, b) if b.is_ascii_hexdigit() => {
                    if self.digits >= 15 {
                        return Err(());
                    }
                    self.digits += 1;
                    let digit = char::from(b).to_digit(16).ok_or(())?;
                    self.size = self.size * 16 + u64::from(digit);
                    S::Size
                }
                (S::Size, b';' | b' ' | b'\t') if self.digits > 0 => S::Extension,
                (S::Size, b'\r') if self.digits > 0 => S::SizeLf,
                (S::Extension, b'\r') => S::SizeLf,
                (S::Extension, b'\n') => return Err(()),
                (S::Extension, _) => S::Extension,
                (S::SizeLf, b'\n') if self.size == 0 => S::TrailerStart,
                (S::SizeLf, b'\n') => S::Data,
                (S::DataCr, b'\r') => S::DataLf,
                (S::DataLf, b'\n') => {
                    self.digits = 0;
                    S::Size
                }
                (S::TrailerStart, b'\r') => S::LastLf,
                (S::Trailer, b'\r') => S::TrailerLf,
                (S::TrailerStart | S::Trailer, _) => S::Trailer,
                (S::TrailerLf, b'\n') => S::TrailerStart,
                (S::LastLf, b'\n') => return Ok(Some(i)),
                _ => return Err(()),
            };
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_chunked_body_ends_after_its_last_chunk_and_trailers_in_any_pieces() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nExpires: never\r\n\r\nNEXT";
        let whole = Chunked::default().feed(body);
        assert_eq!(whole, Ok(Some(body.len() - 4)));
        for split in 1..body.len() - 4 {
            let mut chunks = Chunked::default();
            assert_eq!(chunks.feed(&body[..split]), Ok(None), "split at {split}");
            assert_eq!(
                chunks.feed(&body[split..]),
                Ok(Some(body.len() - 4 - split)),
                "split at {split}"
            );
        }
        let bare = b"0\r\n\r\n";
        assert_eq!(Chunked::default().feed(bare), Ok(Some(5)));
    }

    #[tokio::test]
    async fn a_request_the_connection_refuses_at_once_is_unsent_and_one_it_took_is_not() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Reset by the upstream before the request: the first write is refused.
        let stream = TcpStream::connect(addr).await.unwrap();
        let (peer, _) = listener.accept().await.unwrap();
        peer.set_zero_linger().unwrap();
        drop(peer);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut answer = BytesMut::new();
        let attempt = round_trip(stream, b"POST / HTTP/1.1\r\n\r\n", &mut answer).await;
        assert!(
            matches!(attempt, Err(Attempt::Unsent(_))),
            "reset: not unsent"
        );
        // Read, then closed without an answer: it may have been acted on.
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let _ = peer.read(&mut buf).await;
        });
        let attempt = round_trip(stream, b"POST / HTTP/1.1\r\n\r\n", &mut answer).await;
        assert!(
            matches!(attempt, Err(Attempt::Unanswered(_))),
            "read: not unanswered"
        );
        assert!(idempotent("GET") && idempotent("DELETE") && !idempotent("POST"));
        assert!(!idempotent("PATCH") && !idempotent("LOCK"));
    }

    #[test]
    fn malformed_chunk_framing_is_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"4\r\nWikiXX",
            b"4\nWiki",
            b"fffffffffffffffff\r\n",
        ] {
            assert_eq!(
                Chunked::default().feed(bad),
                Err(()),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_chunked_answer_never_reaches_the_client_with_a_length_too() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nX-Kept: 1\r\n\r\n";
        let mut out = Vec::new();
        let reframe = Reframe {
            framing: Framing::Chunked,
            close: false,
            coded: None,
        };
        client_head(
            &mut out,
            head,
            None,
            &HeaderValue::from_static("rid"),
            reframe,
        );
        let text = String::from_utf8(out).unwrap().to_ascii_lowercase();
        assert!(!text.contains("content-length"), "{text}");
        assert_eq!(
            text.matches("transfer-encoding: chunked").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("x-kept: 1") && text.contains("x-request-id: rid"),
            "{text}"
        );
    }

    #[test]
    fn the_gateway_budget_replaces_the_upstream_rate_limit_fields() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nRateLimit-Limit: 5\r\nratelimit-policy: x\r\nX-Kept: 1\r\n\r\n";
        let reframe = Reframe {
            framing: Framing::Length(2),
            close: false,
            coded: None,
        };
        let rid = HeaderValue::from_static("rid");
        let rate = RateLimit {
            limit: 600,
            remaining: 599,
            reset: 60,
        };
        let mut out = Vec::new();
        client_head(&mut out, head, Some(&rate), &rid, reframe);
        let text = String::from_utf8(out).unwrap().to_ascii_lowercase();
        assert_eq!(text.matches("ratelimit-").count(), 3, "{text}");
        for line in [
            "ratelimit-limit: 600\r\n",
            "ratelimit-remaining: 599\r\n",
            "ratelimit-reset: 60\r\n",
            "content-length: 2\r\n",
            "x-kept: 1\r\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from {text}");
        }
        // Without a budget (a public route) the upstream's own fields pass.
        let mut out = Vec::new();
        client_head(&mut out, head, None, &rid, reframe);
        let text = String::from_utf8(out).unwrap().to_ascii_lowercase();
        assert!(text.contains("ratelimit-limit: 5\r\n"), "{text}");
        assert!(text.contains("ratelimit-policy: x\r\n"), "{text}");
    }
}
