//! Tenant resolution from the Host: `acme.<BASE_DOMAIN>` → tenant-resolver's lookup,
//! cached with a TTL, unknown slugs cached too (shorter), so a flood of requests for
//! one host costs one lookup. Each worker thread also keeps the active tenants it
//! resolved for up to [`RECENT_FOR`] (never past their TTL), so the hot path skips the
//! shared cache's bookkeeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use common::ApiError;
use common::internal::InternalToken;
use moka::future::Cache;
use serde::Deserialize;
use uuid::Uuid;

use crate::recent::PerThread;
use crate::upstreams::Upstreams;

/// What the Host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Apex,
    Tenant(String),
    /// Neither the apex nor one of its subdomains.
    Foreign,
}

/// Classifies a `Host` header value against the base domain.
pub fn classify(host: &str, base_domain: &str) -> Host {
    let host = host
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == base_domain {
        return Host::Apex;
    }
    match host
        .strip_suffix(base_domain)
        .and_then(|h| h.strip_suffix('.'))
    {
        Some(slug) if !slug.is_empty() && !slug.contains('.') => Host::Tenant(slug.to_owned()),
        _ => Host::Foreign,
    }
}

/// tenant-resolver's answer (the fields the gateway uses).
#[derive(Debug, Deserialize)]
struct Found {
    id: Uuid,
}

/// An active tenant, with the headers the gateway sets for it made once.
#[derive(Debug)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub id_header: HeaderValue,
    pub slug_header: HeaderValue,
    /// When tenant-resolver said so: the shared cache keeps it for the TTL from then.
    fetched_at: Instant,
}

#[derive(Debug, Clone)]
enum Lookup {
    Active(Arc<Tenant>),
    Suspended,
    Unknown,
}

/// How long a worker thread reuses an active tenant without asking the shared cache.
const RECENT_FOR: Duration = Duration::from_secs(1);

pub struct TenantCache {
    ttl: Duration,
    /// Active tenants by slug, and until when a thread may use them without asking.
    recent: PerThread<(Arc<Tenant>, Instant)>,
    cache: Cache<String, Lookup, foldhash::quality::RandomState>,
    upstreams: Arc<Upstreams>,
    token: InternalToken,
}

impl TenantCache {
    pub fn new(ttl: Duration, upstreams: Arc<Upstreams>, token: InternalToken) -> Self {
        let negative = ttl / 5;
        Self {
            ttl,
            recent: PerThread::new(),
            cache: Cache::builder()
                .max_capacity(100_000)
                .expire_after(PerOutcome { ttl, negative })
                .build_with_hasher(foldhash::quality::RandomState::default()),
            upstreams,
            token,
        }
    }

    /// The active tenant of `slug`, or the problem to answer.
    pub async fn resolve(&self, slug: &str) -> Result<Arc<Tenant>, ApiError> {
        let now = Instant::now();
        if let Some(tenant) = self.recent(slug, now) {
            return Ok(tenant);
        }
        let lookup = match self.cache.get(slug).await {
            Some(hit) => hit,
            None => self
                .cache
                .try_get_with(slug.to_owned(), self.fetch(slug))
                .await
                .map_err(|err: Arc<ApiError>| match err.as_ref() {
                    ApiError::Unavailable { detail, .. } => ApiError::Unavailable {
                        retry_after: 5,
                        detail: detail.clone(),
                    },
                    _ => ApiError::Internal(anyhow::anyhow!("tenant lookup failed")),
                })?,
        };
        match lookup {
            Lookup::Active(tenant) => {
                self.remember(tenant.clone(), now);
                Ok(tenant)
            }
            Lookup::Suspended => Err(ApiError::tenant_suspended()),
            Lookup::Unknown => Err(ApiError::NotFound(
                "There is no organisation at this address.".into(),
            )),
        }
    }

    /// The tenant of `slug` this thread resolved less than [`RECENT_FOR`] ago (and
    /// whose TTL has not run out since).
    fn recent(&self, slug: &str, now: Instant) -> Option<Arc<Tenant>> {
        self.recent
            .get(slug, |(_, until)| now < *until)
            .map(|(tenant, _)| tenant)
    }

    fn remember(&self, tenant: Arc<Tenant>, now: Instant) {
        let until = (now + RECENT_FOR).min(tenant.fetched_at + self.ttl);
        self.recent.put(&tenant.slug.clone(), (tenant, until));
    }

    async fn fetch(&self, slug: &str) -> Result<Lookup, ApiError> {
        let unavailable = || ApiError::Unavailable {
            retry_after: 5,
            detail: "Organisations cannot be looked up right now.".into(),
        };
        // Slugs are checked by shape before any lookup: junk hosts never reach the resolver.
        if slug.len() > 32
            || !slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Ok(Lookup::Unknown);
        }
        let response = self
            .upstreams
            .send(crate::routes::Upstream::TenantResolver, |client, base| {
                client
                    .get(format!("{base}/internal/tenants/by-slug/{slug}"))
                    .header(reqwest::header::AUTHORIZATION, self.token.bearer())
            })
            .await
            .map_err(|_| unavailable())?;
        match response.status().as_u16() {
            200 => {
                let found: Found = response.json().await.map_err(|_| unavailable())?;
                Ok(Lookup::Active(Arc::new(Tenant {
                    id: found.id,
                    slug: slug.to_owned(),
                    id_header: HeaderValue::from_str(&found.id.to_string()).expect("a uuid"),
                    slug_header: HeaderValue::from_str(slug).expect("checked by shape"),
                    fetched_at: Instant::now(),
                })))
            }
            404 => Ok(Lookup::Unknown),
            423 => Ok(Lookup::Suspended),
            _ => Err(unavailable()),
        }
    }
}

struct PerOutcome {
    ttl: Duration,
    negative: Duration,
}

impl moka::Expiry<String, Lookup> for PerOutcome {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Lookup,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(match value {
            Lookup::Active(_) => self.ttl,
            Lookup::Suspended | Lookup::Unknown => self.negative,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::Router;
    use axum::extract::Path;
    use axum::routing::get;
    use clap::Parser;
    use common::internal::InternalToken;
    use uuid::Uuid;

    use super::{Host, TenantCache, classify};
    use crate::config::Config;
    use crate::upstreams::Upstreams;

    /// A tenant-resolver stand-in that knows every slug, as `id`.
    async fn resolver(id: Uuid) -> String {
        let app = Router::new().route(
            "/internal/tenants/by-slug/{slug}",
            get(move |Path(slug): Path<String>| async move {
                axum::Json(serde_json::json!({"id": id, "slug": slug, "status": "active"}))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn cache(resolver: &str, ttl: Duration) -> TenantCache {
        let config =
            Config::try_parse_from(["gateway", "--tenant-resolver-url", resolver]).unwrap();
        let upstreams = Arc::new(Upstreams::new(&config).unwrap());
        TenantCache::new(ttl, upstreams, InternalToken::new("t".to_owned().into()))
    }

    /// Two gateways' caches used from one thread (as in a test process) never answer
    /// with each other's tenants, though both keep theirs on that thread.
    #[tokio::test(flavor = "current_thread")]
    async fn one_cache_never_answers_with_anothers_tenant() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let first = cache(&resolver(a).await, Duration::from_secs(30));
        let second = cache(&resolver(b).await, Duration::from_secs(30));
        for _ in 0..3 {
            assert_eq!(first.resolve("acme").await.unwrap().id, a);
            assert_eq!(second.resolve("acme").await.unwrap().id, b);
        }
    }

    /// A thread reuses a tenant for at most a second, and never past the TTL.
    #[tokio::test(flavor = "current_thread")]
    async fn a_thread_keeps_a_tenant_no_longer_than_its_ttl() {
        let url = resolver(Uuid::now_v7()).await;
        let short = cache(&url, Duration::from_millis(200));
        let tenant = short.resolve("acme").await.unwrap();
        assert!(Arc::ptr_eq(&tenant, &short.resolve("acme").await.unwrap()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = short.resolve("acme").await.unwrap();
        assert!(!Arc::ptr_eq(&tenant, &again), "kept past the TTL");
    }

    #[test]
    fn hosts_are_apex_tenant_or_foreign() {
        assert_eq!(classify("localhost:8080", "localhost"), Host::Apex);
        assert_eq!(
            classify("acme.localhost:8080", "localhost"),
            Host::Tenant("acme".into())
        );
        assert_eq!(
            classify("ACME.example.com", "example.com"),
            Host::Tenant("acme".into())
        );
        assert_eq!(classify("a.b.example.com", "example.com"), Host::Foreign);
        assert_eq!(classify("evilexample.com", "example.com"), Host::Foreign);
        assert_eq!(classify("example.org", "example.com"), Host::Foreign);
    }
}
