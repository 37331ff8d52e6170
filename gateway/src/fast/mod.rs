//! The fast lane: the gateway's own HTTP/1.1 connection loop for the plain proxied
//! request, the one almost every API call is.
//!
//! hyper parses each request into a `HeaderMap`, the gateway copies it into another, and
//! hyper's client encodes it again; the answer takes the same trip back. Here a request
//! head is parsed once in place (`httparse`, the parser hyper itself uses), checked at the
//! edge exactly as on the general path ([`crate::proxy::admit`]), and written to a pooled
//! upstream connection as the client's own header lines minus the ones the gateway owns,
//! plus its own. The answer's head is parsed in place too and its body copied through as
//! it comes, framed as the upstream framed it; JSON and text answers are compressed for
//! clients that accept brotli or gzip, as on the general path.
//!
//! [`request`] reads request heads, [`upstream`] talks to the upstreams and copies their
//! answers back; `common::lane` has the accept loop, the connection's deadlines and
//! [`hand_over`], which gives a connection to hyper.
//!
//! Requests the lane reads but does not proxy itself (the gateway's own routes, unknown
//! paths, CORS requests with an `Origin`, upstreams spoken to over h2c) go through the
//! gateway's router from the lane, which writes the answer. What the lane does not read
//! goes to hyper ([`hand_over`]), with the bytes read so far, before anything has been
//! answered, and the connection stays there: event streams, h2c (prior knowledge) clients, HTTP/1.0,
//! `Expect`, `Upgrade`, chunked request bodies, bodies over [`MAX_BUFFERED_BODY`]
//! (streamed by hyper), heads over `MAX_HEAD_BYTES` or with more than [`MAX_HEADERS`]
//! fields, and whatever breaks `common::edge`'s Host rules (hyper answers those with its
//! own errors). Request smuggling is shut out the same way: a second `Content-Length`,
//! `Host` or `Authorization`, or any `Transfer-Encoding`, never reaches the lane's
//! framing. A head must be whole within `HEADER_READ_TIMEOUT_SECS` of its start on the
//! lane as on hyper's path (408); when the gateway stops, the requests already in the
//! buffer are answered before the connection closes.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{Buf, Bytes, BytesMut};
use common::client::FORWARDED_FOR;
use common::telemetry::{self, REQUEST_ID_HEADER};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

mod request;
mod upstream;

#[doc(hidden)]
pub use request::fuzz_head;

use common::edge::Edge;
pub(crate) use common::lane::MAX_HEADERS;
use common::lane::{Accepted, Awaiting, Deadlines, Waited, hand_over, time_out};
use request::{COMPRESS_MAX, COMPRESS_MIN, Coding, Facts, Inspected, compress, inspect};
use upstream::{
    Answer, Framing, Reframe, ask, client_head, copy_body, give_back, read_upstream, upstream_head,
};

use crate::AppState;
use crate::proxy::{self, Admitted, Ask, Seen};
use crate::routes;
use crate::upstreams::Unreachable;

/// Request bodies up to this size are read whole and sent with the head (nginx's
/// `client_body_buffer_size` does the same); larger ones are streamed by hyper.
pub const MAX_BUFFERED_BODY: usize = 64 * 1024;

/// What the lane makes of a request head.
enum Next {
    /// Served; the connection may carry another request.
    KeepAlive,
    /// Served (or broken); close the connection.
    Close,
    /// Not the lane's after all (nothing answered): hand the connection to hyper.
    HandOver,
}

/// Serves one connection (`common::lane::serve` runs it for each).
pub async fn connection(mut stream: TcpStream, accepted: Accepted, state: Arc<AppState>) {
    // As nginx's `tcp_nodelay on`: an answer is written whole, never held back.
    let _ = stream.set_nodelay(true);
    if !state.config.fast_lane {
        return hand_over(stream, BytesMut::new(), None, accepted).await;
    }
    let Accepted {
        peer,
        app,
        shutdown,
        edge,
    } = accepted;
    let mut lane = Lane {
        state: &state,
        app: &app,
        peer,
        peer_field: proxy::ip_header(peer.ip()),
        peer_trusted: state.config.server.trusted_proxies.trusts(peer.ip()),
        forwarded: None,
        upstream_timer: Timer::new(),
        out: Vec::with_capacity(4096),
        answer: BytesMut::with_capacity(8 * 1024),
    };
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut deadlines = Deadlines::new(&shutdown, edge);
    loop {
        // Stopping: what the client already sent is answered, nothing more is read.
        if buf.is_empty() && shutdown.is_cancelled() {
            return;
        }
        let (served, awaiting) = {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match inspect(&mut req, &buf, edge.max_head) {
                Inspected::Complete {
                    head_len,
                    mut facts,
                } if buf.len() >= head_len + facts.content_length => {
                    let len = head_len + facts.content_length;
                    if buf.len() == len && shutdown.is_cancelled() {
                        facts.close = true;
                    }
                    let body = &buf[head_len..len];
                    let next = lane.serve(&mut stream, &req, &facts, body).await;
                    (Some((next, len)), Awaiting::Head)
                }
                Inspected::Complete { .. } => (None, Awaiting::Body),
                Inspected::Partial => (None, Awaiting::Head),
                Inspected::Foreign => {
                    let started = deadlines.head_started();
                    drop(lane);
                    return hand_over(stream, buf, started, rejoin(peer, app, &shutdown, edge))
                        .await;
                }
            }
        };
        match served {
            None => match deadlines.read_more(&mut stream, &mut buf, awaiting).await {
                Waited::Read => {}
                Waited::Closed => return,
                Waited::TimedOut => return time_out(&stream),
            },
            Some((Next::KeepAlive, len)) => {
                deadlines.request_read();
                buf.advance(len);
                if buf.capacity() - buf.len() < 4096 {
                    buf.reserve(8 * 1024);
                }
            }
            Some((Next::Close, _)) => return,
            Some((Next::HandOver, _)) => {
                let started = deadlines.head_started();
                drop(lane);
                return hand_over(stream, buf, started, rejoin(peer, app, &shutdown, edge)).await;
            }
        }
    }
}

fn rejoin(peer: SocketAddr, app: Router, shutdown: &CancellationToken, edge: Edge) -> Accepted {
    Accepted {
        peer,
        app,
        shutdown: shutdown.clone(),
        edge,
    }
}

/// One timer for a connection's successive timeouts of the same length. Each wait sets
/// its own deadline, but the timer is only moved when it would fire too late; when it
/// fires too early (it still holds an earlier request's deadline), the wait goes on to
/// its own. Under steady traffic that is one reset per timeout's length, not two timer
/// wheel updates per request.
struct Timer(Pin<Box<tokio::time::Sleep>>);

impl Timer {
    fn new() -> Self {
        Self(Box::pin(tokio::time::sleep(Duration::ZERO)))
    }

    /// `work`'s output, or `None` when it took longer than `wait`.
    async fn within<F: Future>(&mut self, wait: Duration, work: F) -> Option<F::Output> {
        let deadline = tokio::time::Instant::now() + wait;
        if self.0.deadline() > deadline {
            self.0.as_mut().reset(deadline);
        }
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                biased;
                out = &mut work => return Some(out),
                () = self.0.as_mut() => {
                    if tokio::time::Instant::now() >= deadline {
                        return None;
                    }
                    self.0.as_mut().reset(deadline);
                }
            }
        }
    }
}

/// One connection's lane: its buffers are reused from request to request.
struct Lane<'s> {
    state: &'s AppState,
    /// The gateway's router: its own routes, CORS and the general proxy.
    app: &'s Router,
    peer: SocketAddr,
    /// The peer's address as `X-Forwarded-For` carries it (written once per connection).
    peer_field: HeaderValue,
    /// Whether the peer is a trusted proxy (`TRUSTED_PROXIES`): only then is a request's
    /// `X-Forwarded-For` read, so a direct client costs nothing more.
    peer_trusted: bool,
    /// The client a trusted peer's request names, when it is not the peer.
    forwarded: Option<(IpAddr, HeaderValue)>,
    /// Bounds the wait for each upstream answer's head.
    upstream_timer: Timer,
    /// The head (and body) being written, to the upstream or the client.
    out: Vec<u8>,
    /// What the upstream answers.
    answer: BytesMut,
}

impl Lane<'_> {
    /// Serves a request whose head is `req` and whose body is `body`.
    async fn serve(
        &mut self,
        client: &mut TcpStream,
        req: &httparse::Request<'_, '_>,
        facts: &Facts<'_>,
        body: &[u8],
    ) -> Next {
        let route = routes::find(facts.path);
        if route.is_some_and(|route| route.stream) {
            // An event stream is written as it comes, for as long as it lasts: hyper's.
            return Next::HandOver;
        }
        let route =
            route.filter(|route| !facts.origin && self.state.upstreams.is_http1(route.upstream));
        let Some(route) = route else {
            return self.through_router(client, req, facts, body).await;
        };
        let started = Instant::now();
        self.forwarded = self.peer_trusted.then(|| self.client_of(req));
        let request_id = telemetry::request_id_or_new(facts.request_id);
        let mut seen = Seen::default();
        let id = request_id.to_str().unwrap_or_default().to_owned();
        let state = self.state;
        let (status, next) = telemetry::with_request_id(id, async {
            let ask = Ask {
                path: facts.path,
                host: facts.host,
                authorization: facts.authorization,
                declared_length: Some(facts.content_length),
                client: self.forwarded.as_ref().map_or(self.peer.ip(), |f| f.0),
            };
            match proxy::admit(state, route, &ask, &mut seen).await {
                Ok(admitted) => {
                    self.exchange(client, req, facts, body, &admitted, route, &request_id)
                        .await
                }
                Err(refused) => {
                    let status = refused.status();
                    let written = self.answer_with(client, refused, &request_id, facts).await;
                    (status, keep_alive(written.is_ok(), facts.close))
                }
            }
        })
        .await;
        seen.record(
            facts.method,
            facts.path,
            status,
            &request_id,
            started,
            "fast",
        );
        next
    }

    /// The client a trusted peer's request names in `X-Forwarded-For` (`common::client`).
    fn client_of(&self, req: &httparse::Request<'_, '_>) -> (IpAddr, HeaderValue) {
        let fields = req
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(FORWARDED_FOR))
            .map(|h| h.value);
        let client = (self.state.config.server.trusted_proxies).client(self.peer.ip(), fields);
        (client, proxy::ip_header(client))
    }

    /// Sends an admitted request upstream and copies the answer back.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &mut self,
        client: &mut TcpStream,
        req: &httparse::Request<'_, '_>,
        facts: &Facts<'_>,
        body: &[u8],
        admitted: &Admitted<'_>,
        route: &'static routes::Route,
        request_id: &HeaderValue,
    ) -> (StatusCode, Next) {
        self.out.clear();
        upstream_head(
            &mut self.out,
            req,
            facts,
            admitted,
            request_id,
            self.forwarded
                .as_ref()
                .map_or(&self.peer_field, |f| &f.1)
                .as_bytes(),
        );
        self.out.extend_from_slice(body);
        let upstreams = &self.state.upstreams;
        let started = Instant::now();
        let idempotent = upstream::idempotent(facts.method);
        let asked = self
            .upstream_timer
            .within(
                upstreams.timeout,
                ask(admitted.instance, &self.out, idempotent, &mut self.answer),
            )
            .await
            .unwrap_or(Err(Unreachable::Timeout));
        let (upstream, answer) = match asked {
            Ok(asked) => asked,
            Err(why) => {
                upstreams.settle(route.upstream, admitted.instance, started, Err(&why));
                let refused = axum::response::IntoResponse::into_response(proxy::unreachable(
                    route.upstream.name(),
                    why,
                ));
                let status = refused.status();
                let written = self.answer_with(client, refused, request_id, facts).await;
                return (status, keep_alive(written.is_ok(), facts.close));
            }
        };
        upstreams.settle(
            route.upstream,
            admitted.instance,
            started,
            Ok(answer.status),
        );
        let compress = |length| {
            facts.coding.is_some()
                && answer.compressible
                && (COMPRESS_MIN..=COMPRESS_MAX).contains(&length)
        };
        let framing = if facts.method == "HEAD" {
            Framing::Empty
        } else {
            answer.framing
        };
        let close = facts.close || matches!(framing, Framing::UntilClose);
        // A HEAD says what its GET would: compressed, of a length known only by doing it.
        let head_coded = match answer.framing {
            Framing::Length(length) if facts.method == "HEAD" && compress(length) => facts.coding,
            _ => None,
        };
        if let (Some(coding), Framing::Length(length)) = (facts.coding, framing)
            && compress(length)
        {
            let written = self
                .compressed(
                    client, upstream, &answer, length, coding, admitted, request_id, close,
                )
                .await;
            return (answer.status, keep_alive(written.is_ok(), close));
        }
        self.out.clear();
        client_head(
            &mut self.out,
            &self.answer[..answer.head_len],
            admitted.rate.as_ref(),
            request_id,
            Reframe {
                framing,
                close,
                coded: head_coded,
            },
        );
        self.answer.advance(answer.head_len);
        let copied = copy_body(
            upstream,
            client,
            framing,
            &mut self.out,
            &mut self.answer,
            upstreams.timeout,
            answer.reusable,
            admitted.instance,
        )
        .await;
        (answer.status, keep_alive(copied.is_ok(), close))
    }

    /// Reads an answer's body of `length` whole, compresses it and writes it all.
    #[allow(clippy::too_many_arguments)]
    async fn compressed(
        &mut self,
        client: &mut TcpStream,
        mut upstream: TcpStream,
        answer: &Answer,
        length: u64,
        coding: Coding,
        admitted: &Admitted<'_>,
        request_id: &HeaderValue,
        close: bool,
    ) -> io::Result<()> {
        let end = answer.head_len + usize::try_from(length).map_err(io::Error::other)?;
        while self.answer.len() < end {
            self.answer.reserve(end - self.answer.len());
            let read = read_upstream(
                &mut upstream,
                &mut self.answer,
                self.state.upstreams.timeout,
            )
            .await?;
            if read == 0 {
                return Err(io::Error::other("the upstream closed mid-body"));
            }
        }
        let body = compress(coding, &self.answer[answer.head_len..end])?;
        self.out.clear();
        client_head(
            &mut self.out,
            &self.answer[..answer.head_len],
            admitted.rate.as_ref(),
            request_id,
            Reframe {
                framing: Framing::Length(body.len() as u64),
                close,
                coded: Some(coding),
            },
        );
        self.out.extend_from_slice(&body);
        if self.answer.len() == end && answer.reusable {
            give_back(admitted.instance.authority(), upstream);
        }
        self.answer.clear();
        client.write_all(&self.out).await
    }

    /// Serves a request the lane frames but does not proxy itself (the gateway's own
    /// routes, unknown paths, CORS, h2c upstreams) through the router, as hyper would,
    /// and writes the answer: with its length when known, else chunked.
    async fn through_router(
        &mut self,
        client: &mut TcpStream,
        req: &httparse::Request<'_, '_>,
        facts: &Facts<'_>,
        body: &[u8],
    ) -> Next {
        let mut request = axum::http::Request::builder()
            .method(facts.method)
            .uri(facts.target);
        for header in req.headers.iter() {
            request = request.header(header.name, header.value);
        }
        let Ok(mut request) = request.body(Body::from(Bytes::copy_from_slice(body))) else {
            // Something hyper's own parsing should judge: nothing is answered yet.
            return Next::HandOver;
        };
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let response = match self.app.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let written = self.write_answer(client, response, facts).await;
        keep_alive(written.is_ok(), facts.close)
    }

    /// Writes an answer the router or the lane made: with its length when the body
    /// says it, else chunked; no body for HEAD, 204 and 304.
    async fn write_answer(
        &mut self,
        client: &mut TcpStream,
        response: Response,
        facts: &Facts<'_>,
    ) -> io::Result<()> {
        let (parts, mut answer) = response.into_parts();
        let head_only = facts.method == "HEAD"
            || parts.status == StatusCode::NO_CONTENT
            || parts.status == StatusCode::NOT_MODIFIED;
        let length = axum::body::HttpBody::size_hint(&answer).exact();
        let out = &mut self.out;
        out.clear();
        status_line(out, parts.status);
        for (name, value) in &parts.headers {
            // A HEAD answer keeps the length the router gave it (the GET's); others
            // are framed by their body below.
            let own_length = name == axum::http::header::CONTENT_LENGTH && facts.method != "HEAD";
            if !proxy::is_hop_by_hop(name.as_str()) && !own_length {
                field(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
        let chunked = length.is_none() && !head_only;
        match length {
            _ if facts.method == "HEAD" => {}
            Some(n) if parts.status != StatusCode::NO_CONTENT => {
                field(out, b"content-length", n.to_string().as_bytes());
            }
            _ if chunked => field(out, b"transfer-encoding", b"chunked"),
            _ => {}
        }
        if facts.close {
            field(out, b"connection", b"close");
        }
        out.extend_from_slice(b"\r\n");
        if head_only {
            return client.write_all(out).await;
        }
        let mut written = Ok(());
        while let Some(frame) = answer.frame().await {
            let Ok(frame) = frame else {
                // The body broke mid-way: the client can only learn it by the close.
                return Err(io::Error::other("the answer's body failed"));
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if chunked {
                if data.is_empty() {
                    continue;
                }
                out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
            } else {
                out.extend_from_slice(&data);
            }
            if out.len() >= 16 * 1024 {
                written = client.write_all(out).await;
                out.clear();
                if written.is_err() {
                    break;
                }
            }
        }
        if chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        if written.is_ok() && !out.is_empty() {
            written = client.write_all(out).await;
        }
        written
    }

    /// Writes one of the gateway's own answers (a refusal, an upstream error).
    async fn answer_with(
        &mut self,
        client: &mut TcpStream,
        mut response: Response,
        request_id: &HeaderValue,
        facts: &Facts<'_>,
    ) -> io::Result<()> {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER, request_id.clone());
        self.write_answer(client, response, facts).await
    }
}

fn keep_alive(written: bool, close: bool) -> Next {
    if written && !close {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

pub(super) fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub(super) fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::sleep;

    use super::Timer;

    const WAIT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_wait_times_out_at_its_own_deadline_whatever_the_timer_held() {
        let mut timer = Timer::new();
        // Done in time.
        assert_eq!(timer.within(WAIT, async { 1 }).await, Some(1));
        // The timer still holds the first deadline (300 ms from the start); this wait
        // starts 100 ms later and runs 250 ms: past the held deadline, within its own.
        sleep(Duration::from_millis(100)).await;
        let slow = async {
            sleep(Duration::from_millis(250)).await;
            2
        };
        assert_eq!(timer.within(WAIT, slow).await, Some(2));
        // A wait shorter than the held one is not let run longer.
        let started = tokio::time::Instant::now();
        let never = timer
            .within(Duration::from_millis(50), sleep(Duration::from_secs(5)))
            .await;
        assert_eq!(never, None);
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        // And one that takes too long times out, not much later than its deadline.
        let started = tokio::time::Instant::now();
        assert_eq!(
            timer.within(WAIT, sleep(Duration::from_secs(5))).await,
            None
        );
        let took = started.elapsed();
        assert!(took >= WAIT && took < WAIT * 2, "{took:?}");
    }
}
