//! Services run in-process on an ephemeral port.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::init_tracing;

/// A server running in-process on an ephemeral port, stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub base_url: String,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
}

impl TestServer {
    /// Binds 127.0.0.1:0 and runs `start(listener, shutdown)` on it.
    pub async fn start<F, Fut>(start: F) -> Self
    where
        F: FnOnce(TcpListener, CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding port 0");
        Self::start_on(listener, start).await
    }

    /// Runs `start(listener, shutdown)` on a listener bound beforehand (services that
    /// must know each other's addresses before any of them starts).
    pub async fn start_on<F, Fut>(listener: TcpListener, start: F) -> Self
    where
        F: FnOnce(TcpListener, CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        init_tracing();
        let addr = listener.local_addr().expect("local address");
        let shutdown = CancellationToken::new();
        let server = start(listener, shutdown.clone());
        tokio::spawn(async move {
            if let Err(err) = server.await {
                panic!("test server failed: {err:#}");
            }
        });
        let server = Self {
            addr,
            base_url: format!("http://{addr}"),
            client: reqwest::Client::new(),
            shutdown,
        };
        server.wait_until("/healthz", Duration::from_secs(30)).await;
        server
    }

    /// Serves a plain router (fake upstreams, extractor tests).
    pub async fn router(router: axum::Router) -> Self {
        Self::start(|listener, shutdown| async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await?;
            Ok(())
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The server's `/metrics` text, now.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the /metrics text")
    }

    /// Waits until `path` answers 2xx (a router without `/healthz` answers 404, which
    /// also proves it is listening).
    pub async fn wait_until(&self, path: &str, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(resp) = self.client.get(self.url(path)).send().await
                && (resp.status().is_success() || resp.status() == reqwest::StatusCode::NOT_FOUND)
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not answer 2xx within {limit:?}",
                self.url(path)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server, draining like on SIGTERM.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
