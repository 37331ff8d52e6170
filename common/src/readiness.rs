//! `/readyz`: each service lists the dependencies it cannot serve without, and the probe
//! checks them all, concurrently and with a time limit, every time it is asked.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

type CheckFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// How long one dependency may take to answer before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The named dependency checks of one service.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, CheckFn)>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadinessReport {
    pub ready: bool,
    /// Each dependency: `"ok"` or `"down"` (the cause is logged, not exposed).
    pub checks: BTreeMap<&'static str, String>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check; `check` is called anew for every probe.
    pub fn with<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()))));
        self
    }

    /// PostgreSQL answers `select 1` through the service's pool.
    pub fn postgres(self, name: &'static str, pool: sqlx::PgPool) -> Self {
        self.with(name, move || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar!("select 1 as ready")
                    .fetch_one(&pool)
                    .await
                    .context("query")?;
                Ok(())
            }
        })
    }

    /// MongoDB answers `ping`.
    pub fn mongodb(self, db: mongodb::Database) -> Self {
        self.with("mongodb", move || {
            let db = db.clone();
            async move {
                db.run_command(mongodb::bson::doc! { "ping": 1 })
                    .await
                    .context("ping")?;
                Ok(())
            }
        })
    }

    /// The broker connection is open (reconnecting if it dropped).
    pub fn rabbitmq(self, broker: crate::events::Broker) -> Self {
        self.with("rabbitmq", move || {
            let broker = broker.clone();
            async move { broker.ensure_connected().await }
        })
    }

    /// `GET url` answers 2xx (another service's `/healthz`, a JWKS document).
    pub fn http(self, name: &'static str, client: reqwest::Client, url: String) -> Self {
        self.with(name, move || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                client.get(&url).send().await?.error_for_status()?;
                Ok(())
            }
        })
    }

    /// Runs every check concurrently.
    pub async fn report(&self) -> ReadinessReport {
        let results = futures::future::join_all(self.checks.iter().map(|(name, check)| {
            let fut = check();
            async move {
                let failure = match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
                    Ok(Ok(())) => return (*name, "ok".to_owned()),
                    Ok(Err(err)) => format!("{err:#}"),
                    Err(_) => format!("no answer within {}s", CHECK_TIMEOUT.as_secs()),
                };
                // The cause names hosts and ports: log it, answer only "down".
                tracing::warn!(dependency = *name, error = failure, "dependency not ready");
                (*name, "down".to_owned())
            }
        }))
        .await;
        let checks: BTreeMap<_, _> = results.into_iter().collect();
        ReadinessReport {
            ready: checks.values().all(|v| v == "ok"),
            checks,
        }
    }
}
