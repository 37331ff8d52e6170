//! What a service's own HTTP/1.1 loop (the gateway's fast lane, url-shortener's redirect
//! lane) needs besides its own requests: the accept loop with its drain, a connection's
//! deadlines and reads, and the hand-over to hyper. When a request is not one the lane
//! serves itself, hyper (HTTP/1.1 or h2c) serves the service's router on the rest of the
//! connection, starting with the bytes already read. Nothing has been answered on the
//! connection at that point, so hyper sees it as if it had read it from the start.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a kept-alive client connection may sit idle (nginx's `keepalive_timeout`).
pub const IDLE: Duration = Duration::from_secs(75);
/// How long a client may take to send the rest of a started head (slow-loris guard).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Header fields a request head may have on a lane; a head with more goes to hyper.
pub const MAX_HEADERS: usize = 64;
/// The largest head a lane reads; a larger one goes to hyper.
pub const MAX_HEAD: usize = 16 * 1024;

/// [`serve_connections`] for a lane whose `connection` takes the service's state, the
/// router it hands requests over to, and the shutdown token: accepts connections until
/// `shutdown`, then lets the open ones finish their current request for up to `grace`.
pub async fn serve<S, F, Fut>(
    listener: TcpListener,
    app: Router,
    state: std::sync::Arc<S>,
    shutdown: CancellationToken,
    grace: Duration,
    connection: F,
) -> anyhow::Result<()>
where
    S: Send + Sync + 'static,
    F: Fn(TcpStream, SocketAddr, std::sync::Arc<S>, Router, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stop = shutdown.clone();
    serve_connections(listener, stop, grace, move |stream, peer| {
        let state = std::sync::Arc::clone(&state);
        connection(stream, peer, state, app.clone(), shutdown.clone())
    })
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

/// A connection's clocks: one timer for its idle and head deadlines, and its wait for
/// the shutdown signal, both armed once and re-checked cheaply on every wait.
pub struct Deadlines<'a> {
    timer: Pin<Box<tokio::time::Sleep>>,
    shutdown: Pin<Box<tokio_util::sync::WaitForCancellationFuture<'a>>>,
}

impl<'a> Deadlines<'a> {
    pub fn new(shutdown: &'a CancellationToken) -> Self {
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

    /// Reads what the client sends next into `buf`, within [`IDLE`] when `buf` is empty
    /// (between requests) and [`HEAD_TIMEOUT`] when a head is under way. `Ok(false)`: the
    /// connection is done (closed, too slow, or the service is stopping while it was idle).
    pub async fn read_more(
        &mut self,
        stream: &mut TcpStream,
        buf: &mut bytes::BytesMut,
    ) -> io::Result<bool> {
        use tokio::io::AsyncReadExt;
        let idle = buf.is_empty();
        buf.reserve(4096);
        self.arm(if idle { IDLE } else { HEAD_TIMEOUT });
        // `read_buf` (not `try_read_buf`): a short read marks the socket drained, so the
        // next wait costs no system call that could only say "nothing yet".
        tokio::select! {
            biased;
            read = stream.read_buf(buf) => Ok(read? > 0),
            () = self.shutdown.as_mut(), if idle => Ok(false),
            () = self.timer.as_mut() => Ok(false),
        }
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

/// The rest of the connection: hyper (HTTP/1.1 or h2c) serving `app`, starting with the
/// bytes `read` so far; on `shutdown`, hyper finishes the request in flight and closes.
pub async fn hand_over(
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
