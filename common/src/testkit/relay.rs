//! A TCP relay a test can cut, to play an outage of one server for one test.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// A TCP relay to a real server that a test can cut and restore, to play an outage of
/// that server (RabbitMQ, say) without stopping it for other tests.
pub struct TcpRelay {
    pub addr: SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: std::sync::Arc<tokio::sync::Notify>,
}

impl TcpRelay {
    /// Relays connections on a free local port to `target`.
    pub async fn to(target: SocketAddr) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a relay");
        let addr = listener.local_addr().expect("relay address");
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (up2, cut2) = (Arc::clone(&up), Arc::clone(&cut));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // refused: dropped at once
                }
                let cut = Arc::clone(&cut2);
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {},
                        () = cut.notified() => {},
                    }
                });
            }
        });
        Self { addr, up, cut }
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
