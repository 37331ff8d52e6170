//! The services behind the gateway: several instances per upstream picked round-robin,
//! each behind its own circuit breaker. Proxied requests go over a pooled keep-alive
//! hyper client (HTTP/1.1, or HTTP/2 prior knowledge for `h2c://` instances) with bodies
//! streamed both ways; the gateway's own small calls (tenant lookups, keys, documents)
//! use a reqwest client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::breaker::Breaker;
use crate::config::Config;
use crate::routes::Upstream;

pub struct Instance {
    /// `http://host:port`, for the gateway's own calls.
    pub base: String,
    authority: Authority,
    h2c: bool,
    pub breaker: Breaker,
}

struct Pool {
    instances: Vec<Instance>,
    next: AtomicUsize,
}

type ProxyClient = Client<HttpConnector, Body>;

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

thread_local! {
    /// Each thread keeps its own upstream connections (HTTP/1.1, h2c), as each nginx
    /// worker does: a pooled connection is driven by the thread that uses it, so no
    /// request waits on another thread's wake-up.
    static CLIENTS: (ProxyClient, ProxyClient) = (proxy_client(false), proxy_client(true));
}

fn proxy_client(h2c: bool) -> ProxyClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(h2c)
        .build(connector)
}

/// One instance from a configured URL: `http://host:port` or `h2c://host:port`.
fn instance(url: &str, breaker: Breaker) -> anyhow::Result<Instance> {
    let (h2c, rest) = match url.split_once("://") {
        Some(("http", rest)) => (false, rest),
        Some(("h2c", rest)) => (true, rest),
        _ => anyhow::bail!("upstream URL {url:?} must start with http:// or h2c://"),
    };
    let authority: Authority = rest
        .parse()
        .map_err(|_| anyhow::anyhow!("upstream URL {url:?} must be scheme://host:port"))?;
    Ok(Instance {
        base: format!("http://{authority}"),
        authority,
        h2c,
        breaker,
    })
}

impl Instance {
    /// `host:port`.
    pub(crate) fn authority(&self) -> &str {
        self.authority.as_str()
    }
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
                Upstream::Notifications => &config.notification_service_url,
            };
            let instances = urls
                .split(',')
                .map(|u| u.trim().trim_end_matches('/'))
                .filter(|u| !u.is_empty())
                .map(|url| instance(url, Breaker::new(config.breaker_failures, cooldown)))
                .collect::<anyhow::Result<Vec<_>>>()?;
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

    /// Whether every instance of `upstream` speaks HTTP/1.1 (the fast lane's upstreams).
    pub(crate) fn is_http1(&self, upstream: Upstream) -> bool {
        self.pools[&upstream].instances.iter().all(|i| !i.h2c)
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
            .await
            .map_err(|err| {
                if err.is_timeout() {
                    Unreachable::Timeout
                } else {
                    Unreachable::Failed(err.to_string())
                }
            });
        self.settle(
            upstream,
            instance,
            started,
            result.as_ref().map(reqwest::Response::status),
        );
        result
    }

    /// Streams `request` (its URI holding only the path and query) to `instance`; the
    /// answer's head must come within the timeout.
    pub async fn forward(
        &self,
        upstream: Upstream,
        instance: &Instance,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, Unreachable> {
        let (mut parts, body) = request.into_parts();
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(instance.authority.clone());
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        parts.uri = Uri::from_parts(uri).map_err(|e| Unreachable::Failed(e.to_string()))?;
        parts.version = if instance.h2c {
            axum::http::Version::HTTP_2
        } else {
            axum::http::Version::HTTP_11
        };
        let request = Request::from_parts(parts, body);
        let sent = CLIENTS.with(|(http1, h2c)| {
            if instance.h2c {
                h2c.request(request)
            } else {
                http1.request(request)
            }
        });
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, sent).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(Unreachable::Failed(error_chain(&err))),
            Err(_) => Err(Unreachable::Timeout),
        };
        self.settle(
            upstream,
            instance,
            started,
            result.as_ref().map(Response::status),
        );
        result
    }

    /// Records an attempt's outcome in the breaker and the metrics (5xx, errors and
    /// timeouts count as failures).
    pub(crate) fn settle(
        &self,
        upstream: Upstream,
        instance: &Instance,
        started: Instant,
        outcome: Result<StatusCode, &Unreachable>,
    ) {
        let label = match outcome {
            Ok(status) => common::metrics::status_label(status),
            Err(Unreachable::Timeout) => "timeout",
            Err(_) => "error",
        };
        crate::meter::count(
            "gateway_upstream_requests_total",
            "gateway_upstream_duration_seconds",
            &[("upstream", upstream.name()), ("outcome", label)],
            1,
            started.elapsed().as_secs_f64(),
        );
        instance
            .breaker
            .record(outcome.is_ok_and(|status| !status.is_server_error()));
    }
}

/// An error and its causes on one line (hyper's own message is often just "client error").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
