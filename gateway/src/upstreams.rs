//! The services behind the gateway: one pooled keep-alive client, several instances per
//! upstream picked round-robin, each instance behind its own circuit breaker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::breaker::Breaker;
use crate::config::Config;
use crate::routes::Upstream;

pub struct Instance {
    pub base: String,
    pub breaker: Breaker,
}

struct Pool {
    instances: Vec<Instance>,
    next: AtomicUsize,
}

pub struct Upstreams {
    pub client: reqwest::Client,
    pools: HashMap<Upstream, Pool>,
    pub timeout: Duration,
}

/// Why an upstream could not be asked.
#[derive(Debug)]
pub enum Unreachable {
    /// Every instance's circuit is open: retry after this many seconds.
    Open(u64),
    Timeout,
    Failed(String),
}

impl Upstreams {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let cooldown = Duration::from_secs(config.breaker_cooldown_secs);
        let mut pools = HashMap::new();
        for upstream in Upstream::ALL {
            let urls = match upstream {
                Upstream::TenantResolver => &config.tenant_resolver_url,
                Upstream::UserService => &config.user_service_url,
                Upstream::ProjectService => &config.project_service_url,
                Upstream::UrlShortener => &config.url_shortener_url,
                Upstream::Analytics => &config.analytics_service_url,
            };
            let instances: Vec<Instance> = urls
                .split(',')
                .map(|u| u.trim().trim_end_matches('/'))
                .filter(|u| !u.is_empty())
                .map(|base| Instance {
                    base: base.to_owned(),
                    breaker: Breaker::new(config.breaker_failures, cooldown),
                })
                .collect();
            anyhow::ensure!(!instances.is_empty(), "no URL for {}", upstream.name());
            pools.insert(
                upstream,
                Pool {
                    instances,
                    next: AtomicUsize::new(0),
                },
            );
        }
        Ok(Self {
            client,
            pools,
            timeout: Duration::from_secs(config.upstream_timeout_secs),
        })
    }

    /// The next instance whose circuit admits a call.
    pub fn pick(&self, upstream: Upstream) -> Result<&Instance, Unreachable> {
        let pool = &self.pools[&upstream];
        let n = pool.instances.len();
        let start = pool.next.fetch_add(1, Ordering::Relaxed);
        let mut soonest = u64::MAX;
        for i in 0..n {
            let instance = &pool.instances[(start + i) % n];
            match instance.breaker.admit() {
                Ok(()) => return Ok(instance),
                Err(retry) => soonest = soonest.min(retry),
            }
        }
        Err(Unreachable::Open(soonest))
    }

    /// Sends a small request built by `build(client, base)` to an instance, recording
    /// the outcome in its breaker (5xx counts as a failure).
    pub async fn send(
        &self,
        upstream: Upstream,
        build: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Unreachable> {
        let instance = self.pick(upstream)?;
        let started = Instant::now();
        let result = build(&self.client, &instance.base)
            .timeout(self.timeout)
            .send()
            .await;
        self.settle(upstream, instance, started, result)
    }

    /// Records an attempt's outcome in the breaker and the metrics.
    pub fn settle(
        &self,
        upstream: Upstream,
        instance: &Instance,
        started: Instant,
        result: reqwest::Result<reqwest::Response>,
    ) -> Result<reqwest::Response, Unreachable> {
        let outcome = match &result {
            Ok(r) => r.status().as_u16().to_string(),
            Err(e) if e.is_timeout() => "timeout".to_owned(),
            Err(_) => "error".to_owned(),
        };
        metrics::counter!("gateway_upstream_requests_total", "upstream" => upstream.name(), "outcome" => outcome).increment(1);
        metrics::histogram!("gateway_upstream_duration_seconds", "upstream" => upstream.name())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(response) => {
                instance
                    .breaker
                    .record(!response.status().is_server_error());
                Ok(response)
            }
            Err(err) => {
                instance.breaker.record(false);
                if err.is_timeout() {
                    Err(Unreachable::Timeout)
                } else {
                    Err(Unreachable::Failed(err.to_string()))
                }
            }
        }
    }
}
