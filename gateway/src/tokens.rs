//! Verified tokens are cached until they expire, so the hot path checks a signature once
//! per token, not once per request. Failures are not cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ApiError;
use common::auth::{Claims, JwtVerifier};
use moka::sync::Cache;

use crate::revocations::Revocations;

pub struct TokenCache {
    verifier: Arc<JwtVerifier>,
    revocations: Arc<Revocations>,
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
    pub fn new(verifier: Arc<JwtVerifier>, revocations: Arc<Revocations>) -> Self {
        Self {
            verifier,
            revocations,
            cache: Cache::builder()
                .max_capacity(200_000)
                .expire_after(UntilExp)
                .build(),
        }
    }

    /// The token's claims, unless its signature or claims fail or it has been revoked.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, ApiError> {
        let claims = match self.cache.get(token) {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.verifier.verify(token).await.map_err(ApiError::from)?);
                self.cache.insert(token.to_owned(), Arc::clone(&claims));
                claims
            }
        };
        if self.revocations.revoked(claims.tid, claims.sub, claims.iat) {
            return Err(ApiError::Unauthorized(
                "This token has been revoked; sign in again.".into(),
            ));
        }
        Ok(claims)
    }
}
