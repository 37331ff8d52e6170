//! Verified tokens are cached until they expire, so the hot path checks a signature once
//! per token, not once per request. Failures are not cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ApiError;
use common::auth::{Claims, JwtVerifier};
use moka::sync::Cache;

pub struct TokenCache {
    verifier: Arc<JwtVerifier>,
    cache: Cache<String, Arc<Claims>>,
}

struct UntilExp;

impl moka::Expiry<String, Arc<Claims>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &String,
        claims: &Arc<Claims>,
        _now: Instant,
    ) -> Option<Duration> {
        let left = claims.exp - chrono::Utc::now().timestamp();
        Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
    }
}

impl TokenCache {
    pub fn new(verifier: Arc<JwtVerifier>) -> Self {
        Self {
            verifier,
            cache: Cache::builder()
                .max_capacity(200_000)
                .expire_after(UntilExp)
                .build(),
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, ApiError> {
        if let Some(claims) = self.cache.get(token) {
            return Ok(claims);
        }
        let claims = Arc::new(self.verifier.verify(token).await.map_err(ApiError::from)?);
        self.cache.insert(token.to_owned(), Arc::clone(&claims));
        Ok(claims)
    }
}
