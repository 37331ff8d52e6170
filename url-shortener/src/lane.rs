//! The redirect lane: url-shortener's own HTTP/1.1 loop for its one hot request, a plain
//! `GET /s/{code}` of a link that opens (not gone, no password), taken from the cache or
//! loaded into it as the router does.
//!
//! hyper and the router cost more per request than the redirect itself: a `HeaderMap`
//! built and dropped, the route matched, extractors run, the answer encoded field by
//! field. Here the head is parsed in place with `httparse` (the parser hyper uses), the
//! link is looked up as the router looks it up, the visit is counted and queued as on the
//! router's path (`routes::redirect`), and the 302 is written as one buffer. The answer is the
//! router's, field for field: `Location` with a fresh grant, `Cache-Control: no-store`,
//! `Referrer-Policy: no-referrer`, the request id, and `redirect_responses_total` (with
//! `lane="fast"`; the router's answers count as `lane="router"`).
//!
//! Anything else goes to hyper and the router ([`hand_over`]) with the bytes read so far,
//! before anything is answered on the connection, and the connection stays there: other
//! paths and methods, unknown codes, links gone or protected (their pages, problems, 410
//! events and password forms are the router's), HTTP/1.0, any request body or
//! `Transfer-Encoding`, `Expect`, `Upgrade`, a missing, repeated or malformed `Host` and heads
//! over `MAX_HEAD_BYTES` or [`MAX_HEADERS`] fields. So the lane never answers what the router would
//! answer differently, and request framing is hyper's whenever it is not the plain form.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Buf, BytesMut};
use chrono::{DateTime, Utc};
use common::lane::{Accepted, Awaiting, Deadlines, MAX_HEADERS, Waited, hand_over, time_out};
use common::telemetry::{REQUEST_ID_HEADER, is_valid_request_id};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::AppState;
use crate::domain::Code;
use crate::routes::redirect;
use crate::visits::Visit;

/// What the lane makes of the buffer.
enum Step {
    /// The head is not all there yet.
    More,
    /// Answered (in `out`); the head was `len` bytes.
    Served { len: usize, close: bool },
    /// Not the lane's.
    HandOver,
}

/// Serves one connection (`common::lane::serve` runs it for each).
pub async fn connection(mut stream: TcpStream, accepted: Accepted, state: Arc<AppState>) {
    // As nginx's `tcp_nodelay on`: an answer is written whole, never held back.
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::with_capacity(1024);
    let max_head = accepted.edge.max_head;
    let mut deadlines = Deadlines::new(&accepted.shutdown, accepted.edge);
    let mut clock = Clock::default();
    loop {
        let step = {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(len)) if len <= max_head => match hot(&req) {
                    Some(ask)
                        if answer(&state, &ask, accepted.peer, &mut out, &mut clock).await =>
                    {
                        Step::Served {
                            len,
                            close: ask.close,
                        }
                    }
                    _ => Step::HandOver,
                },
                Ok(httparse::Status::Partial) if buf.len() < max_head => Step::More,
                Ok(_) | Err(_) => Step::HandOver,
            }
        };
        match step {
            Step::More => {
                if accepted.shutdown.is_cancelled() && buf.is_empty() {
                    return;
                }
                match deadlines
                    .read_more(&mut stream, &mut buf, Awaiting::Head)
                    .await
                {
                    Waited::Read => {}
                    Waited::Closed => return,
                    Waited::TimedOut => return time_out(&stream),
                }
            }
            Step::HandOver => {
                let started = deadlines.head_started();
                drop(deadlines);
                return hand_over(stream, buf, started, accepted).await;
            }
            Step::Served { len, close } => {
                if stream.write_all(&out).await.is_err() || close {
                    return;
                }
                deadlines.request_read();
                buf.advance(len);
            }
        }
    }
}

/// A hot request's fields.
struct Ask<'a> {
    code: &'a str,
    request_id: Option<&'a [u8]>,
    /// `X-Forwarded-For`, `User-Agent`, `Referer`: what a visit records.
    visit: [Option<&'a [u8]>; 3],
    close: bool,
}

/// The request's fields if it is the lane's: a plain HTTP/1.1 `GET /s/{code}`.
fn hot<'a>(req: &httparse::Request<'_, 'a>) -> Option<Ask<'a>> {
    if req.version != Some(1) || req.method != Some("GET") {
        return None;
    }
    let code = req.path?.strip_prefix("/s/")?;
    if !Code::is_valid(code) {
        return None;
    }
    let mut ask = Ask {
        code,
        request_id: None,
        visit: [None; 3],
        close: false,
    };
    let mut host = false;
    for header in req.headers.iter() {
        let (name, value) = (header.name, header.value);
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        if is("host") {
            if host || !common::edge::is_valid_host(value) {
                return None;
            }
            host = true;
        } else if is("content-length") {
            if value != b"0" {
                return None;
            }
        } else if is("connection") {
            if value.eq_ignore_ascii_case(b"close") {
                ask.close = true;
            } else if !value.eq_ignore_ascii_case(b"keep-alive") {
                return None;
            }
        } else if is(REQUEST_ID_HEADER) {
            ask.request_id.get_or_insert(value);
        } else if is("x-forwarded-for") {
            // Several fields are one list: the router's path joins them.
            if ask.visit[0].replace(value).is_some() {
                return None;
            }
        } else if is("user-agent") {
            ask.visit[1].get_or_insert(value);
        } else if is("referer") {
            ask.visit[2].get_or_insert(value);
        } else if ["transfer-encoding", "upgrade", "expect", "http2-settings"]
            .iter()
            .any(|n| is(n))
        {
            return None;
        }
    }
    host.then_some(ask)
}

/// Writes the 302 into `out` when the link (from the cache, else loaded into it as the
/// router does) opens and has a visit left, which it then counts and queues; `false`
/// leaves the request to the router (unknown codes, database errors and all). The clock
/// is read once, for the checks, the grant, the visit and the `Date` alike.
async fn answer(
    state: &AppState,
    ask: &Ask<'_>,
    peer: SocketAddr,
    out: &mut Vec<u8>,
    clock: &mut Clock,
) -> bool {
    let Ok(Some(link)) = redirect::lookup(state, ask.code).await else {
        return false;
    };
    let now = SystemTime::now();
    let at = DateTime::<Utc>::from(now);
    let seconds = at.timestamp();
    if link.password_hash.is_some() || link.gone(seconds).is_some() {
        return false;
    }
    let Some(location) = link.location(&state.grant_key, state.grant_ttl_secs, seconds) else {
        return false;
    };
    if link.take_visit().is_err() {
        return false;
    }
    state.visits.record(Visit::from_fields(
        Arc::clone(&link.code),
        link.tenant_id,
        peer.ip(),
        ask.visit,
        at,
    ));
    redirect::responses("302", redirect::By::Lane).increment(1);
    out.clear();
    for part in [
        b"HTTP/1.1 302 Found\r\nlocation: ".as_slice(),
        location.as_bytes(),
        b"\r\ncache-control: no-store\r\nreferrer-policy: no-referrer\r\n",
        REQUEST_ID_HEADER.as_bytes(),
        b": ",
    ] {
        out.extend_from_slice(part);
    }
    // The client's id if it is a plain one, else a new one, written straight in.
    match ask.request_id.filter(|id| is_valid_request_id(id)) {
        Some(id) => out.extend_from_slice(id),
        None => {
            let mut buf = uuid::Uuid::encode_buffer();
            let id = common::events::uuid_v7_at(at)
                .hyphenated()
                .encode_lower(&mut buf);
            out.extend_from_slice(id.as_bytes());
        }
    }
    for part in [
        b"\r\ncontent-length: 0\r\ndate: ".as_slice(),
        clock.date(now).as_bytes(),
        if ask.close {
            b"\r\nconnection: close\r\n\r\n".as_slice()
        } else {
            b"\r\n\r\n"
        },
    ] {
        out.extend_from_slice(part);
    }
    true
}

/// A connection's `Date` field, made once a second.
#[derive(Default)]
struct Clock {
    second: u64,
    date: String,
}

impl Clock {
    fn date(&mut self, now: SystemTime) -> &str {
        let second = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if second != self.second {
            self.date = httpdate::fmt_http_date(now);
            self.second = second;
        }
        &self.date
    }
}
