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
//! Requests the lane reads but does not proxy itself (the gateway's own routes, unknown
//! paths, CORS requests with an `Origin`, upstreams spoken to over h2c) go through the
//! gateway's router from the lane, which writes the answer. What the lane does not read
//! goes to hyper, with the bytes read so far, before anything has been answered, and
//! the connection stays there: h2c (prior knowledge) clients, HTTP/1.0, `Expect`, `Upgrade`, chunked request bodies, bodies over
//! [`MAX_BUFFERED_BODY`] (streamed by hyper) and heads over [`MAX_HEAD`] or with more
//! than [`MAX_HEADERS`] fields (hyper answers those with its own errors). Request
//! smuggling is shut out the same way: a second `Content-Length` or `Host`, or any
//! `Transfer-Encoding`, never reaches the lane's framing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{Buf, Bytes, BytesMut};
use common::telemetry::{self, REQUEST_ID_HEADER};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::AppState;
use crate::proxy::{self, Admitted, Ask, Seen};
use crate::routes;
use crate::upstreams::{Instance, Unreachable};

/// Header fields a request head may have on the lane.
const MAX_HEADERS: usize = 64;
/// Header fields an upstream answer may have (as hyper's client allows).
const MAX_ANSWER_HEADERS: usize = 100;
/// The largest head the lane reads.
const MAX_HEAD: usize = 16 * 1024;
/// Request bodies up to this size are read whole and sent with the head (nginx's
/// `client_body_buffer_size` does the same); larger ones are streamed by hyper.
pub const MAX_BUFFERED_BODY: usize = 64 * 1024;
/// How long a kept-alive client connection may sit idle (nginx's `keepalive_timeout`).
const IDLE: Duration = Duration::from_secs(75);
/// How long a client may take to send the rest of a started head (slow-loris guard).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to an upstream may take (as the general path's client).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle upstream connections kept per instance and worker thread.
const POOLED_PER_INSTANCE: usize = 256;

/// Accepts connections until `shutdown`, then lets the open ones finish their current
/// request for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    state: Arc<AppState>,
    shutdown: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors and the like: back off rather than spin.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        connections.spawn(connection(
            stream,
            peer,
            Arc::clone(&state),
            app.clone(),
            shutdown.clone(),
        ));
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "drain took too long; stopping"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// What the lane makes of a request head.
enum Next {
    /// Served; the connection may carry another request.
    KeepAlive,
    /// Served (or broken); close the connection.
    Close,
    /// Not the lane's: hand the connection, with what was read, to the general path.
    HandOver,
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    state: Arc<AppState>,
    app: Router,
    shutdown: CancellationToken,
) {
    // As nginx's `tcp_nodelay on`: an answer is written whole, never held back.
    let _ = stream.set_nodelay(true);
    let mut lane = Lane {
        state: &state,
        app: &app,
        peer,
        out: Vec::with_capacity(4096),
        answer: BytesMut::with_capacity(8 * 1024),
    };
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut deadlines = Deadlines::new(&shutdown);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let served = {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match inspect(&mut req, &buf) {
                Inspected::Complete { head_len, facts }
                    if buf.len() >= head_len + facts.content_length =>
                {
                    let body = &buf[head_len..head_len + facts.content_length];
                    let next = lane.serve(&mut stream, &req, &facts, body).await;
                    Some((next, head_len + facts.content_length))
                }
                Inspected::Complete { .. } | Inspected::Partial => None,
                Inspected::Foreign => {
                    return hand_over(stream, buf, peer, app, shutdown.clone()).await;
                }
            }
        };
        match served {
            None => {
                let idle = buf.is_empty();
                match read_more(&mut stream, &mut buf, idle, &mut deadlines).await {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return,
                }
            }
            Some((Next::KeepAlive, len)) => {
                buf.advance(len);
                if buf.capacity() - buf.len() < 4096 {
                    buf.reserve(8 * 1024);
                }
            }
            Some((Next::Close, _)) => return,
            Some((Next::HandOver, _)) => {
                return hand_over(stream, buf, peer, app, shutdown.clone()).await;
            }
        }
    }
}

/// A connection's clocks: one timer for its idle and head deadlines, and its wait for
/// the shutdown signal, both armed once and re-checked cheaply on every wait.
struct Deadlines<'a> {
    timer: Pin<Box<tokio::time::Sleep>>,
    shutdown: Pin<Box<tokio_util::sync::WaitForCancellationFuture<'a>>>,
}

impl<'a> Deadlines<'a> {
    fn new(shutdown: &'a CancellationToken) -> Self {
        Self {
            timer: Box::pin(tokio::time::sleep(IDLE)),
            shutdown: Box::pin(shutdown.cancelled()),
        }
    }

    /// Moves the timer to `wait` from now; moving it by less than a second is skipped
    /// (deadlines this long need no precision, and the timer wheel is spared a reset on
    /// every request).
    fn arm(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        let current = self.timer.deadline();
        if current > deadline || deadline - current > Duration::from_secs(1) {
            self.timer.as_mut().reset(deadline);
        }
    }
}

/// Reads what the client sends next into `buf`. `Ok(false)`: the connection is done
/// (closed, idle too long, or the gateway is stopping while it was idle).
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    idle: bool,
    deadlines: &mut Deadlines<'_>,
) -> io::Result<bool> {
    use tokio::io::AsyncReadExt;
    buf.reserve(4096);
    deadlines.arm(if idle { IDLE } else { HEAD_TIMEOUT });
    // `read_buf` (not `try_read_buf`): a short read marks the socket drained, so the
    // next wait costs no system call that could only say "nothing yet".
    tokio::select! {
        biased;
        read = stream.read_buf(buf) => Ok(read? > 0),
        () = deadlines.shutdown.as_mut(), if idle => Ok(false),
        () = deadlines.timer.as_mut() => Ok(false),
    }
}

/// What is in the buffer so far.
enum Inspected<'b> {
    Partial,
    /// A head of `head_len` bytes the lane may serve (its body follows it).
    Complete {
        head_len: usize,
        facts: Facts<'b>,
    },
    /// Not for the lane (see the module's documentation).
    Foreign,
}

/// Parses the head at the start of `buf` into `req`.
fn inspect<'b>(req: &mut httparse::Request<'_, 'b>, buf: &'b [u8]) -> Inspected<'b> {
    if buf.is_empty() {
        return Inspected::Partial;
    }
    match req.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => match facts(req) {
            Some(facts) => Inspected::Complete { head_len, facts },
            None => Inspected::Foreign,
        },
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => Inspected::Partial,
        Ok(httparse::Status::Partial) | Err(_) => Inspected::Foreign,
    }
}

/// The fields of a lane request the edge looks at.
struct Facts<'a> {
    method: &'a str,
    target: &'a str,
    path: &'a str,
    host: &'a str,
    authorization: Option<&'a str>,
    request_id: Option<&'a [u8]>,
    content_length: usize,
    /// The client asked for the connection to end after this request.
    close: bool,
    /// How the client would like answers compressed.
    coding: Option<Coding>,
    /// A cross-origin request: CORS is the router's.
    origin: bool,
}

/// The request's facts if the lane may serve it, else `None`.
fn facts<'a>(req: &httparse::Request<'_, 'a>) -> Option<Facts<'a>> {
    if req.version != Some(1) {
        return None;
    }
    let method = req.method?;
    if matches!(method, "CONNECT" | "OPTIONS" | "TRACE" | "PRI") {
        return None;
    }
    let target = req.path.filter(|t| t.starts_with('/'))?;
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let (mut host, mut content_length) = (None, None);
    let (mut authorization, mut request_id, mut close) = (None, None, false);
    let (mut coding, mut origin) = (None, false);
    for header in req.headers.iter() {
        let name = header.name;
        let value = header.value;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return None;
            }
            host = Some(std::str::from_utf8(value).ok()?);
        } else if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() || value.is_empty() || !value.iter().all(u8::is_ascii_digit)
            {
                return None;
            }
            content_length = Some(std::str::from_utf8(value).ok()?.parse::<usize>().ok()?);
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = std::str::from_utf8(value).ok();
        } else if name.eq_ignore_ascii_case(REQUEST_ID_HEADER) {
            request_id = Some(value);
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if !value.eq_ignore_ascii_case(b"keep-alive") {
                return None;
            }
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            coding = preferred_coding(value);
        } else if name.eq_ignore_ascii_case("origin") {
            origin = true;
        } else if ["transfer-encoding", "upgrade", "expect", "http2-settings"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return None;
        }
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BUFFERED_BODY {
        return None;
    }
    Some(Facts {
        method,
        target,
        path,
        host: host?,
        authorization,
        request_id,
        content_length,
        close,
        coding,
        origin,
    })
}

/// A content coding the lane compresses answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gzip,
    Br,
}

impl Coding {
    fn name(self) -> &'static [u8] {
        match self {
            Self::Gzip => b"gzip",
            Self::Br => b"br",
        }
    }
}

/// The client's preferred coding of `Accept-Encoding` among brotli and gzip (highest
/// `q`, brotli on a tie; `q=0` refuses one).
fn preferred_coding(value: &[u8]) -> Option<Coding> {
    let mut best: Option<(Coding, f32)> = None;
    for item in value.split(|b| *b == b',') {
        let mut params = item.split(|b| *b == b';');
        let name = params.next().unwrap_or_default().trim_ascii();
        let coding = if name.eq_ignore_ascii_case(b"br") {
            Coding::Br
        } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
            Coding::Gzip
        } else {
            continue;
        };
        let q = params
            .map(<[u8]>::trim_ascii)
            .find_map(|p| p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q=")))
            .map_or(Some(1.0), |q| {
                std::str::from_utf8(q).ok()?.parse::<f32>().ok()
            })
            .unwrap_or(0.0);
        let better = match best {
            None => true,
            Some((held, held_q)) => {
                q > held_q || (q == held_q && coding == Coding::Br && held != Coding::Br)
            }
        };
        if q > 0.0 && better {
            best = Some((coding, q));
        }
    }
    best.map(|(coding, _)| coding)
}

/// Answers worth compressing are JSON or text of at least this many bytes (as the
/// general path's compression layer)...
const COMPRESS_MIN: u64 = 256;
/// ...and, on the lane, of a declared length up to this (read whole, then compressed);
/// longer or unannounced ones pass as they are, which HTTP allows.
const COMPRESS_MAX: u64 = 1024 * 1024;

fn compress(coding: Coding, body: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write;
    let mut out = Vec::with_capacity(body.len() / 2 + 64);
    match coding {
        Coding::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            encoder.write_all(body)?;
            out = encoder.finish()?;
        }
        Coding::Br => {
            // Quality 4: brotli's fast end, still well ahead of gzip on JSON.
            let mut encoder = brotli::CompressorWriter::new(&mut out, 4096, 4, 22);
            encoder.write_all(body)?;
            encoder.flush()?;
            drop(encoder);
        }
    }
    Ok(out)
}

/// One connection's lane: its buffers are reused from request to request.
struct Lane<'s> {
    state: &'s AppState,
    /// The gateway's router: its own routes, CORS and the general proxy.
    app: &'s Router,
    peer: SocketAddr,
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
        let route = routes::find(facts.path)
            .filter(|route| !facts.origin && self.state.upstreams.is_http1(route.upstream));
        let Some(route) = route else {
            return self.through_router(client, req, facts, body).await;
        };
        let started = Instant::now();
        let request_id = match facts.request_id {
            Some(id) if telemetry::is_valid_request_id(id) => {
                HeaderValue::from_bytes(id).unwrap_or_else(|_| telemetry::new_request_id())
            }
            _ => telemetry::new_request_id(),
        };
        let mut seen = Seen::default();
        let id = request_id.to_str().unwrap_or_default().to_owned();
        let state = self.state;
        let (status, next) = telemetry::with_request_id(id, async {
            let ask = Ask {
                path: facts.path,
                host: facts.host,
                authorization: facts.authorization,
                declared_length: Some(facts.content_length),
                peer: self.peer.ip(),
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
            proxy::ip_header(self.peer.ip()).as_bytes(),
        );
        self.out.extend_from_slice(body);
        let upstreams = &self.state.upstreams;
        let started = Instant::now();
        let idempotent = matches!(facts.method, "GET" | "HEAD" | "PUT" | "DELETE");
        let asked = tokio::time::timeout(
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
        let framing = if facts.method == "HEAD" {
            Framing::Empty
        } else {
            answer.framing
        };
        let close = facts.close || matches!(framing, Framing::UntilClose);
        if let (Some(coding), Framing::Length(length)) = (facts.coding, framing)
            && answer.compressible
            && (COMPRESS_MIN..=COMPRESS_MAX).contains(&length)
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
            &admitted.limit_headers,
            request_id,
            Reframe {
                framing,
                close,
                coded: None,
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
        let next = if copied.is_ok() && !close {
            Next::KeepAlive
        } else {
            Next::Close
        };
        (answer.status, next)
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
        use tokio::io::AsyncReadExt;
        let end = answer.head_len + usize::try_from(length).map_err(io::Error::other)?;
        while self.answer.len() < end {
            self.answer.reserve(end - self.answer.len());
            let read = tokio::time::timeout(
                self.state.upstreams.timeout,
                upstream.read_buf(&mut self.answer),
            )
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the upstream stalled"))??;
            if read == 0 {
                return Err(io::Error::other("the upstream closed mid-body"));
            }
        }
        let body = compress(coding, &self.answer[answer.head_len..end])?;
        self.out.clear();
        client_head(
            &mut self.out,
            &self.answer[..answer.head_len],
            &admitted.limit_headers,
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
            if !proxy::is_hop_by_hop(name.as_str()) && name != axum::http::header::CONTENT_LENGTH {
                field(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
        let chunked = length.is_none() && !head_only;
        match length {
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

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The head sent upstream: the client's request line and fields, less the hop-by-hop
/// ones, `Host` and the ones only the gateway sets; then the gateway's own.
fn upstream_head(
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

/// How the lane frames an answer to the client.
#[derive(Clone, Copy)]
struct Reframe {
    framing: Framing,
    close: bool,
    /// Compressed by the lane: its own `Content-Length` and `Content-Encoding`.
    coded: Option<Coding>,
}

/// The head sent to the client: the upstream's status and fields less the hop-by-hop
/// ones, the request id, the rate-limit fields and the lane's own framing.
fn client_head(
    out: &mut Vec<u8>,
    head: &[u8],
    limit_headers: &HeaderMap,
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
            || limit_headers
                .keys()
                .any(|k| name.eq_ignore_ascii_case(k.as_str()));
        if !skip {
            field(out, name.as_bytes(), header.value);
        }
    }
    field(out, REQUEST_ID_HEADER.as_bytes(), request_id.as_bytes());
    for (name, value) in limit_headers {
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Framing::Chunked = reframe.framing {
        field(out, b"transfer-encoding", b"chunked");
    }
    if let (Some(coding), Framing::Length(length)) = (reframe.coded, reframe.framing) {
        field(out, b"content-encoding", coding.name());
        field(out, b"content-length", length.to_string().as_bytes());
        field(out, b"vary", b"accept-encoding");
    }
    if reframe.close {
        field(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// HTTP/1.0 style: the body ends when the upstream closes.
    UntilClose,
}

/// An upstream answer's head, parsed, at the start of `answer`.
struct Answer {
    status: StatusCode,
    head_len: usize,
    framing: Framing,
    /// The upstream keeps the connection open after this answer.
    reusable: bool,
    /// JSON or text, not already encoded.
    compressible: bool,
}

thread_local! {
    /// Idle upstream connections of this worker thread, by `host:port` (each worker
    /// drives its own, like nginx's `keepalive` per worker).
    static POOL: RefCell<HashMap<String, Vec<TcpStream>>> = RefCell::new(HashMap::new());
}

fn pooled(authority: &str) -> Option<TcpStream> {
    POOL.with(|pool| pool.borrow_mut().get_mut(authority)?.pop())
}

fn give_back(authority: &str, stream: TcpStream) {
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

/// Writes `request` to an instance and reads the answer's head into `answer`. A pooled
/// connection that turns out closed is replaced by a new one, once, when the request is
/// idempotent or nothing of it can have reached the upstream.
async fn ask(
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
    round_trip(stream, request, answer)
        .await
        .map_err(|(Attempt::Unanswered(why) | Attempt::Broken(why))| Unreachable::Failed(why))
}

/// How an attempt failed.
enum Attempt {
    /// Nothing came back: the connection was closed or refused the request.
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
    stream
        .write_all(request)
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
                Ok(None) if answer.len() > MAX_HEAD => {
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
            let value = header.value.trim_ascii_start();
            textual = [
                &b"application/json"[..],
                b"application/problem+json",
                b"text/",
            ]
            .iter()
            .any(|t| value.len() >= t.len() && value[..t.len()].eq_ignore_ascii_case(t));
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
async fn copy_body(
    mut upstream: TcpStream,
    client: &mut TcpStream,
    framing: Framing,
    out: &mut Vec<u8>,
    answer: &mut BytesMut,
    timeout: Duration,
    reusable: bool,
    instance: &Instance,
) -> io::Result<()> {
    use tokio::io::AsyncReadExt;
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
        let read = tokio::time::timeout(timeout, upstream.read_buf(answer))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the upstream stalled"))??;
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

/// A connection that yields `prefix` (what the lane already read) before the socket.
struct Rewind {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The general path for the rest of the connection: hyper (HTTP/1.1 or h2c) serving the
/// gateway's router, starting with the bytes the lane read.
async fn hand_over(
    stream: TcpStream,
    read: BytesMut,
    peer: SocketAddr,
    app: Router,
    shutdown: CancellationToken,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let io = TokioIo::new(Rewind {
        prefix: read.freeze(),
        inner: stream,
    });
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                Ok::<_, Infallible>(
                    app.oneshot(req.map(Body::new))
                        .await
                        .unwrap_or_else(|e| match e {}),
                )
            }
        });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => {
            if let Err(err) = served {
                tracing::debug!(%err, "connection ended with an error");
            }
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
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
    fn smuggling_shapes_and_what_the_lane_does_not_do_go_to_the_general_path() {
        let foreign = [
            &b"GET /api/v1/projects HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"[..],
            b"POST /api/v1/projects HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET /api/v1/projects HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET /api/v1/projects HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx",
            b"GET /api/v1/projects HTTP/1.0\r\nHost: a\r\n\r\n",
            b"GET /api/v1/projects HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET /api/v1/projects HTTP/1.1\r\n\r\n",
            b"GET http://a/api/v1/projects HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /api/v1/projects HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n",
        ];
        let inspected = |bytes: &[u8]| {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match inspect(&mut req, bytes) {
                Inspected::Partial => "partial".to_owned(),
                Inspected::Foreign => "foreign".to_owned(),
                Inspected::Complete { head_len, facts } => {
                    format!("{head_len}+{}", facts.content_length)
                }
            }
        };
        for bytes in foreign {
            assert_eq!(
                inspected(bytes),
                "foreign",
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let plain = b"POST /api/v1/projects HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}";
        assert_eq!(inspected(plain), format!("{}+2", plain.len() - 2));
        assert_eq!(inspected(b"GET /api/v1/pro"), "partial");
        let own = b"GET /metrics HTTP/1.1\r\nHost: a\r\nOrigin: http://b\r\n\r\n";
        assert_eq!(inspected(own), format!("{}+0", own.len()));
    }

    #[test]
    fn the_preferred_coding_follows_q_values_and_refusals() {
        let cases = [
            (&b"gzip"[..], Some(Coding::Gzip)),
            (b"gzip, deflate, br", Some(Coding::Br)),
            (b"br;q=0.5, gzip;q=0.9", Some(Coding::Gzip)),
            (b"br;q=0, gzip", Some(Coding::Gzip)),
            (b"gzip;q=0", None),
            (b"identity", None),
            (b"deflate", None),
            (b"", None),
            (b"GZIP ; Q=0.3 , x-gzip;q=0.2", Some(Coding::Gzip)),
        ];
        for (value, expected) in cases {
            assert_eq!(
                preferred_coding(value),
                expected,
                "{}",
                String::from_utf8_lossy(value)
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
            &HeaderMap::new(),
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
}
