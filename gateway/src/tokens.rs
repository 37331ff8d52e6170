//! Verified tokens are cached until they expire, so the hot path checks a signature once
//! per token, not once per request; each worker thread keeps the ones it used in front
//! of the shared cache. Failures are not cached. Revocations are checked on every use.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ApiError;
use common::auth::{Claims, JwtVerifier};
use moka::sync::Cache;

use crate::recent::PerThread;
use common::auth::revocations::Revocations;

pub struct TokenCache {
    verifier: Arc<JwtVerifier>,
    revocations: Arc<Revocations>,
    /// Keyed by the token itself: a fast hasher (SipHash over a 400-byte token costs
    /// more than the rest of the lookup), seeded per process; only verified tokens get in.
    cache: Cache<String, Arc<Claims>, foldhash::quality::RandomState>,
    /// The tokens each worker thread verified or found last, in front of `cache`.
    recent: PerThread<Arc<Claims>>,
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
                .build_with_hasher(foldhash::quality::RandomState::default()),
            recent: PerThread::new(),
        }
    }

    /// The token's claims, unless its signature or claims fail or it has been revoked.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = match self.recent.get(token, |claims| claims.exp > now) {
            Some(claims) => claims,
            None => {
                let claims = match self.cache.get(token) {
                    Some(claims) => claims,
                    None => {
                        let claims =
                            Arc::new(self.verifier.verify(token).await.map_err(ApiError::from)?);
                        self.cache.insert(token.to_owned(), Arc::clone(&claims));
                        claims
                    }
                };
                self.recent.put(token, Arc::clone(&claims));
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
