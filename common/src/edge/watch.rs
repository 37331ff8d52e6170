//! The head clock on hyper's path: a connection wrapper that notes when the first byte
//! of a head arrives, and a `hyper::rt::Timer` whose header sleep counts from that byte.
//!
//! hyper asks its timer for one sleep each time it starts reading a request head and
//! drops it once the head is parsed. [`HeadSleep`] waits for the idle timeout until
//! [`Watched`] reports the head's first byte, then for the head timeout from that byte.
//! When the head timeout runs out, hyper ends the connection with a timeout error and no
//! answer; the wrapper, told by the sleep, writes [`super::TIMED_OUT`] as the connection
//! goes (nothing else has been written for that request, and the client is not reading
//! anything else).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{Edge, TIMED_OUT};

/// What the wrapper and the sleep share about one connection.
#[derive(Default)]
pub(crate) struct Watch {
    /// A head is awaited and its first byte has not come: reads must stamp it.
    awaiting: AtomicBool,
    /// The head clock ran out: the connection is answered 408 as it goes.
    timed_out: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    first_byte: Option<Instant>,
    waker: Option<Waker>,
}

impl Watch {
    /// A watch whose first head began at `head_started` (what a lane read before the
    /// hand-over), if it did.
    pub(crate) fn new(head_started: Option<Instant>) -> Arc<Self> {
        let watch = Self::default();
        watch.lock().first_byte = head_started;
        Arc::new(watch)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes came in: if a head was awaited, its clock starts now.
    fn arrived(&self) {
        if self.awaiting.swap(false, Ordering::Relaxed) {
            let mut state = self.lock();
            state.first_byte.get_or_insert_with(Instant::now);
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        }
    }
}

/// The connection hyper reads: `prefix` (what a lane already read), then the socket.
pub(crate) struct Watched {
    prefix: Bytes,
    inner: TcpStream,
    watch: Arc<Watch>,
    answered: bool,
}

impl Watched {
    pub(crate) fn new(inner: TcpStream, prefix: Bytes, watch: Arc<Watch>) -> Self {
        Self {
            prefix,
            inner,
            watch,
            answered: false,
        }
    }

    /// Writes the 408 once, if the head clock ran out (without waiting: it is small and
    /// nothing else is queued on the socket).
    fn answer_timeout(&mut self) {
        if !self.answered && self.watch.timed_out.load(Ordering::Relaxed) {
            self.answered = true;
            let _ = self.inner.try_write(TIMED_OUT);
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.answer_timeout();
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            self.watch.arrived();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
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
        self.answer_timeout();
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// hyper's timer for one connection: every sleep it asks for is a head's.
#[derive(Clone)]
pub(crate) struct HeadTimer {
    watch: Arc<Watch>,
    edge: Edge,
}

impl HeadTimer {
    pub(crate) fn new(watch: Arc<Watch>, edge: Edge) -> Self {
        Self { watch, edge }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, _: std::time::Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now())
    }

    /// hyper's deadline is its own start plus the timeout; the head's is counted here.
    fn sleep_until(&self, _: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let idle_until = self
            .edge
            .idle
            .map(|idle| tokio::time::Instant::now() + idle);
        let first_byte = self.watch.lock().first_byte;
        self.watch
            .awaiting
            .store(first_byte.is_none(), Ordering::Relaxed);
        Box::pin(HeadSleep {
            watch: Arc::clone(&self.watch),
            idle_until,
            head_timeout: self.edge.head_timeout,
            sleep: Box::pin(tokio::time::sleep_until(
                idle_until.unwrap_or_else(tokio::time::Instant::now),
            )),
        })
    }
}

/// One head's wait: the idle timeout until its first byte, then the head timeout.
struct HeadSleep {
    watch: Arc<Watch>,
    idle_until: Option<tokio::time::Instant>,
    head_timeout: std::time::Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl std::future::Future for HeadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let first_byte = {
            let mut state = self.watch.lock();
            if state.first_byte.is_none() {
                state.waker = Some(cx.waker().clone());
            }
            state.first_byte
        };
        let deadline = match (first_byte, self.idle_until) {
            (Some(first), _) => tokio::time::Instant::from_std(first + self.head_timeout),
            (None, Some(idle_until)) => idle_until,
            (None, None) => return Poll::Pending,
        };
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        std::task::ready!(self.sleep.as_mut().poll(cx));
        if first_byte.is_some() {
            self.watch.timed_out.store(true, Ordering::Relaxed);
        }
        Poll::Ready(())
    }
}

impl hyper::rt::Sleep for HeadSleep {}

impl Drop for HeadSleep {
    /// hyper drops the sleep when the head is parsed: the next head starts afresh.
    fn drop(&mut self) {
        self.watch.awaiting.store(false, Ordering::Relaxed);
        let mut state = self.watch.lock();
        state.first_byte = None;
        state.waker = None;
    }
}
