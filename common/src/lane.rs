//! What a service's own HTTP/1.1 loop (the gateway's fast lane, url-shortener's redirect
//! lane) needs besides its own requests: the accept loop with its drain, a connection's
//! deadlines and reads, and the hand-over to hyper. When a request is not one the lane
//! serves itself, hyper (HTTP/1.1 or h2c) serves the service's router on the rest of the
//! connection, starting with the bytes already read. Nothing has been answered on the
//! connection at that point, so hyper sees it as if it had read it from the start.
//! `server::serve` hands every connection over at once, so the plain services and the
//! lanes' general path are one hyper setup, with the edge rules of [`crate::edge`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::edge::watch::{HeadTimer, Watch, Watched};
use crate::edge::{self, Edge};

/// How long a kept-alive client connection may sit idle (nginx's `keepalive_timeout`).
pub const IDLE: Duration = Duration::from_secs(75);

/// Header fields a request head may have on a lane; a head with more goes to hyper.
pub const MAX_HEADERS: usize = 64;

/// What a lane's connection has besides its socket.
#[derive(Clone)]
pub struct Accepted {
    pub peer: SocketAddr,
    /// The router hyper serves when the lane hands the connection over.
    pub app: Router,
    pub shutdown: CancellationToken,
    pub edge: Edge,
}

/// [`serve_connections`] for a lane whose `connection` takes the socket, what came with
/// it, and the service's state: accepts connections until `shutdown`, then lets the open
/// ones finish their current request for up to `grace`. Lanes wait [`IDLE`] between
/// requests, on their own reads and after a hand-over alike.
pub async fn serve<S, F, Fut>(
    listener: TcpListener,
    app: Router,
    state: std::sync::Arc<S>,
    shutdown: CancellationToken,
    args: &crate::config::ServerArgs,
    connection: F,
) -> anyhow::Result<()>
where
    S: Send + Sync + 'static,
    F: Fn(TcpStream, Accepted, std::sync::Arc<S>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let edge = args.edge().with_idle(Some(IDLE));
    let stop = shutdown.clone();
    serve_connections(
        listener,
        stop,
        args.shutdown_grace(),
        move |stream, peer| {
            let accepted = Accepted {
                peer,
                app: app.clone(),
                shutdown: shutdown.clone(),
                edge,
            };
            connection(stream, accepted, std::sync::Arc::clone(&state))
        },
    )
    .await
}

/// Accepts connections until `shutdown`, running `connection` for each, then lets the
/// open ones finish their current request for up to `grace`.
pub async fn serve_connections<F, Fut>(
    listener: TcpListener,
    shutdown: CancellationToken,
    grace: Duration,
    mut connection: F,
) -> anyhow::Result<()>
where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
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
        connections.spawn(connection(stream, peer));
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

/// What a lane waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaiting {
    /// A request head (with an empty buffer: the next request, after the idle time).
    Head,
    /// The rest of a body the lane reads whole; each read within the head timeout.
    Body,
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// More bytes are in the buffer.
    Read,
    /// The connection is done: closed, idle too long, or the service is stopping while
    /// it was idle.
    Closed,
    /// The head (or a body read) took too long: answer [`edge::TIMED_OUT`] and close.
    TimedOut,
}

/// A connection's clocks: one timer for its idle and head deadlines, and its wait for
/// the shutdown signal, both armed once and re-checked cheaply on every wait.
pub struct Deadlines<'a> {
    timer: Pin<Box<tokio::time::Sleep>>,
    shutdown: Pin<Box<tokio_util::sync::WaitForCancellationFuture<'a>>>,
    edge: Edge,
    /// When the head under way began, once it did not come whole in one read.
    head_started: Option<Instant>,
}

impl<'a> Deadlines<'a> {
    pub fn new(shutdown: &'a CancellationToken, edge: Edge) -> Self {
        Self {
            timer: Box::pin(tokio::time::sleep(IDLE)),
            shutdown: Box::pin(shutdown.cancelled()),
            edge,
            head_started: None,
        }
    }

    /// The request was read whole: the next head's clock starts afresh.
    pub fn request_read(&mut self) {
        self.head_started = None;
    }

    /// When the head under way began, for hyper to go on counting after a hand-over.
    pub fn head_started(&self) -> Option<Instant> {
        self.head_started
    }

    /// Moves the timer towards `deadline`; moving it later by less than a second is
    /// skipped (the idle deadline needs no precision, and the timer wheel is spared a
    /// reset on every request), so a timer that fires checks its deadline again.
    fn arm(&mut self, deadline: tokio::time::Instant) {
        let current = self.timer.deadline();
        if current > deadline || deadline - current > Duration::from_secs(1) {
            self.timer.as_mut().reset(deadline);
        }
    }

    /// Reads what the client sends next into `buf`. Between requests (`Head` with an
    /// empty buffer) the wait is the idle timeout (none: as long as it takes). A head
    /// must be whole within the head timeout of when it began, counted across reads: its
    /// first read came (the lane found it partial right after), or the lane began on what
    /// was left in the buffer. Each read of a body must come within the head timeout.
    pub async fn read_more(
        &mut self,
        stream: &mut TcpStream,
        buf: &mut BytesMut,
        awaiting: Awaiting,
    ) -> Waited {
        let idle = buf.is_empty() && awaiting == Awaiting::Head;
        let now = tokio::time::Instant::now();
        let deadline = if idle {
            self.edge.idle.map(|idle| now + idle)
        } else if awaiting == Awaiting::Body {
            Some(now + self.edge.head_timeout)
        } else {
            let started = *self.head_started.get_or_insert_with(|| now.into_std());
            Some(tokio::time::Instant::from_std(started) + self.edge.head_timeout)
        };
        if let Some(deadline) = deadline {
            self.arm(deadline);
        }
        buf.reserve(4096);
        loop {
            // `read_buf` (not `try_read_buf`): a short read marks the socket drained, so
            // the next wait costs no system call that could only say "nothing yet".
            tokio::select! {
                biased;
                read = stream.read_buf(buf) => {
                    return match read {
                        Ok(n) if n > 0 => Waited::Read,
                        _ => Waited::Closed,
                    };
                }
                () = self.shutdown.as_mut(), if idle => return Waited::Closed,
                () = self.timer.as_mut(), if deadline.is_some() => {
                    let deadline = deadline.expect("checked");
                    if tokio::time::Instant::now() < deadline {
                        self.timer.as_mut().reset(deadline);
                        continue;
                    }
                    return if idle { Waited::Closed } else { Waited::TimedOut };
                }
            }
        }
    }
}

/// Answers a head that took too long with [`edge::TIMED_OUT`] (without waiting: it is
/// small and the socket has nothing else queued); the caller then closes.
pub fn time_out(stream: &TcpStream) {
    let _ = stream.try_write(edge::TIMED_OUT);
}

/// Runs a hyper connection until it ends or `shutdown`, then lets it finish gracefully.
macro_rules! drive {
    ($connection:expr, $shutdown:expr) => {{
        let connection = $connection;
        tokio::pin!(connection);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(err) = served {
                    log_end(&err);
                }
            }
            () = $shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                if let Err(err) = connection.await {
                    log_end(&err);
                }
            }
        }
    }};
}

/// The first bytes of an HTTP/2 connection with prior knowledge (h2c).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The rest of the connection: hyper (HTTP/1.1 or h2c) serving the router, starting
/// with the bytes `read` so far (whose head began at `head_started`, if the lane knows);
/// on shutdown, hyper finishes the request in flight and closes.
pub async fn hand_over(
    mut stream: TcpStream,
    mut read: BytesMut,
    head_started: Option<Instant>,
    accepted: Accepted,
) {
    let Accepted {
        peer,
        app,
        shutdown,
        edge,
    } = accepted;
    let mut deadlines = Deadlines::new(&shutdown, edge);
    deadlines.head_started = head_started;
    // HTTP/2's preface or anything else (HTTP/1.x): read until the bytes tell.
    let h2 = loop {
        let n = read.len().min(H2_PREFACE.len());
        if read[..n] != H2_PREFACE[..n] {
            break false;
        }
        if n == H2_PREFACE.len() {
            break true;
        }
        match deadlines
            .read_more(&mut stream, &mut read, Awaiting::Head)
            .await
        {
            Waited::Read => {}
            Waited::Closed => return,
            Waited::TimedOut => return time_out(&stream),
        }
    };
    let head_started = deadlines.head_started;
    drop(deadlines);
    let watch = Watch::new(head_started);
    let io = hyper_util::rt::TokioIo::new(Watched::new(
        stream,
        read.freeze(),
        std::sync::Arc::clone(&watch),
    ));
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let app = app.clone();
            async move {
                if let Err(refused) = edge::check_host(&mut req) {
                    return Ok::<_, Infallible>(refused);
                }
                req.extensions_mut().insert(ConnectInfo(peer));
                Ok(app
                    .oneshot(req.map(Body::new))
                    .await
                    .unwrap_or_else(|e| match e {}))
            }
        });
    if h2 {
        let connection =
            hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(io, service);
        drive!(connection, shutdown);
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(HeadTimer::new(watch, edge))
            .header_read_timeout(edge.head_timeout)
            .max_header_size(edge.max_head);
        if edge.max_head >= HYPER_MAX_BUF {
            builder.max_buf_size(edge.max_head + 1);
        }
        let connection = builder.serve_connection(io, service).with_upgrades();
        drive!(connection, shutdown);
    }
}

/// hyper's default read buffer limit (a head must fit in it too).
const HYPER_MAX_BUF: usize = 8192 + 4096 * 100;

fn log_end(err: &hyper::Error) {
    if err.is_timeout() {
        tracing::debug!("a request head took too long: 408");
    } else {
        tracing::debug!(%err, "connection ended with an error");
    }
}
