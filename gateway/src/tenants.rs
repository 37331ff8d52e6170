//! Tenant resolution from the Host: `acme.<BASE_DOMAIN>` → tenant-resolver's lookup,
//! cached with a TTL, unknown slugs cached too (shorter), so a flood of requests for
//! one host costs one lookup.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use common::ApiError;
use common::internal::InternalToken;
use moka::future::Cache;
use serde::Deserialize;
use uuid::Uuid;

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
}

#[derive(Debug, Clone)]
enum Lookup {
    Active(Arc<Tenant>),
    Suspended,
    Unknown,
}

pub struct TenantCache {
    cache: Cache<String, Lookup>,
    upstreams: Arc<Upstreams>,
    token: InternalToken,
}

impl TenantCache {
    pub fn new(ttl: Duration, upstreams: Arc<Upstreams>, token: InternalToken) -> Self {
        let negative = ttl / 5;
        Self {
            cache: Cache::builder()
                .max_capacity(100_000)
                .expire_after(PerOutcome { ttl, negative })
                .build(),
            upstreams,
            token,
        }
    }

    /// The active tenant of `slug`, or the problem to answer.
    pub async fn resolve(&self, slug: &str) -> Result<Arc<Tenant>, ApiError> {
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
            Lookup::Active(tenant) => Ok(tenant),
            Lookup::Suspended => Err(ApiError::tenant_suspended()),
            Lookup::Unknown => Err(ApiError::NotFound(
                "There is no organisation at this address.".into(),
            )),
        }
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
    use super::{Host, classify};

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
