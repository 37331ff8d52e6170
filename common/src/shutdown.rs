//! One cancellation token for the HTTP server and every background worker, cancelled by
//! SIGTERM or Ctrl-C, so a stop drains in-flight work instead of cutting it.

use tokio_util::sync::CancellationToken;

/// A token that is cancelled when the process receives SIGTERM or SIGINT. The handlers
/// are in place when this returns (not when the watching task first runs), so a signal
/// that comes right after start-up is not lost to the default action.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let signals = Signals::install();
    tokio::spawn(async move {
        signals.wait().await;
        tracing::info!("shutdown signal received; draining");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
struct Signals(Vec<tokio::signal::unix::Signal>);

#[cfg(unix)]
impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let kinds = [SignalKind::terminate(), SignalKind::interrupt()];
        Self(
            kinds
                .into_iter()
                .filter_map(|kind| {
                    signal(kind)
                        .inspect_err(
                            |err| tracing::error!(%err, ?kind, "cannot listen for a signal"),
                        )
                        .ok()
                })
                .collect(),
        )
    }

    async fn wait(mut self) {
        if self.0.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.0.iter_mut().map(|s| Box::pin(s.recv()));
        futures::future::select_all(waits).await;
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Self {
        Self
    }

    async fn wait(self) {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}
