//! A TCP relay a test can cut, to play an outage of one server for one test.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// A TCP relay to a real server that a test can cut and restore, to play an outage of
/// that server (RabbitMQ, say) without stopping it for other tests.
pub struct TcpRelay {
    pub addr: SocketAddr,
    /// Whether the relay is up. A watch, not a notification: a connection still being
    /// set up when the relay is cut sees the cut too, instead of missing it and staying
    /// open through the outage.
    up: tokio::sync::watch::Sender<bool>,
}

impl TcpRelay {
    /// Relays connections on a free local port to `target`.
    pub async fn to(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a relay");
        let addr = listener.local_addr().expect("relay address");
        let (up, watching) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*watching.borrow() {
                    continue; // refused: dropped at once
                }
                let mut watching = watching.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {},
                        // Also at once when the relay was cut while this one connected.
                        _ = watching.wait_for(|up| !*up) => {},
                    }
                });
            }
        });
        Self { addr, up }
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}
