//! Access-token verification (RFC 8725): EdDSA only, `kid` required and looked up in the
//! JWKS, `iss`/`aud`/`exp`/`nbf` checked. Keys are cached for [`KEYS_TTL`] (so a removed
//! key stops being trusted); an unknown `kid` triggers one refetch, rate-limited so that
//! forged kids cannot make us hammer user-service.
//!
//! A token that verified is remembered (by its SHA-256) until its `exp`, so the requests
//! of a session behind the gateway pay for one Ed25519 verification, not one each. The
//! memory is dropped whenever the key set is replaced, so a key taken out of the JWKS
//! stops vouching for its tokens at once. Revocations are the gateway's and
//! user-service's, checked apart from this (DESIGN → Auth).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};

use super::{AUDIENCE, Claims, ISSUER};
use crate::error::ApiError;

/// Least time between two JWKS fetches caused by unknown key ids.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// How long a fetched key set is trusted before it is fetched again.
pub const KEYS_TTL: Duration = Duration::from_secs(15 * 60);
/// Clock skew tolerated on `exp`/`nbf`.
const LEEWAY_SECS: u64 = 30;
/// Most verified tokens remembered at once.
const VERIFIED_CAPACITY: u64 = 20_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token's key is unknown")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
    #[error("token keys are unavailable")]
    KeysUnavailable,
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::KeysUnavailable => ApiError::Unavailable {
                retry_after: 5,
                detail: "Tokens cannot be verified right now.".into(),
            },
            other => ApiError::Unauthorized(format!("{}.", capitalise(&other.to_string()))),
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

enum Source {
    Remote {
        client: reqwest::Client,
        url: String,
    },
    Static,
}

/// Verifies access tokens against a key set that is fetched from a JWKS URL (every
/// service but user-service) or given directly (user-service, tests).
pub struct JwtVerifier {
    source: Source,
    keys: RwLock<HashMap<String, Arc<DecodingKey>>>,
    fetches: Mutex<Fetches>,
    validation: Validation,
    /// Tokens verified lately, by the SHA-256 of their text, each until its `exp`.
    verified: moka::sync::Cache<[u8; 32], Arc<Claims>>,
}

/// A verified token is remembered until its `exp`.
struct UntilExp;

impl moka::Expiry<[u8; 32], Arc<Claims>> for UntilExp {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        claims: &Arc<Claims>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(
            u64::try_from(claims.exp - now_secs()).unwrap_or(0),
        ))
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Default)]
struct Fetches {
    /// When the current key set was fetched.
    loaded_at: Option<Instant>,
    /// When an unknown `kid` last caused a fetch.
    last_forced: Option<Instant>,
}

enum Reason<'a> {
    Stale,
    UnknownKid(&'a str),
}

impl JwtVerifier {
    pub fn remote(client: reqwest::Client, jwks_url: impl Into<String>) -> Self {
        Self::with_source(Source::Remote {
            client,
            url: jwks_url.into(),
        })
    }

    pub fn from_jwks(jwks: &JwkSet) -> anyhow::Result<Self> {
        let verifier = Self::with_source(Source::Static);
        *verifier.keys.try_write()? = decode_keys(jwks);
        Ok(verifier)
    }

    fn with_source(source: Source) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Self {
            source,
            keys: RwLock::new(HashMap::new()),
            fetches: Mutex::new(Fetches::default()),
            validation,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .expire_after(UntilExp)
                .build(),
        }
    }

    /// Verified tokens remembered now.
    pub fn remembered(&self) -> u64 {
        self.verified.run_pending_tasks();
        self.verified.entry_count()
    }

    /// Replaces the key set (user-service after a key rotation).
    pub async fn set_keys(&self, jwks: &JwkSet) {
        *self.keys.write().await = decode_keys(jwks);
        self.verified.invalidate_all();
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Algorithm);
        }
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        if !is_plain_kid(&kid) {
            return Err(AuthError::UnknownKey);
        }
        if self.is_stale().await {
            // On failure the old keys serve on; the warning is logged. A new key set
            // forgets every remembered token.
            let _ = self.refresh(Reason::Stale).await;
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // The key must still be in the set: one taken out vouches for nothing, even if a
        // verification raced with the set's replacement.
        if let Some(claims) = self.verified.get(&digest)
            && claims.exp > now_secs()
            && self.keys.read().await.contains_key(&kid)
        {
            return Ok(Claims::clone(&claims));
        }
        let claims = self.verify_signed(token, &kid).await?;
        self.verified.insert(digest, Arc::new(claims.clone()));
        Ok(claims)
    }

    /// The signature and claims of a token no memory vouches for.
    async fn verify_signed(&self, token: &str, kid: &str) -> Result<Claims, AuthError> {
        let mut key = self.keys.read().await.get(kid).cloned();
        if key.is_none() {
            self.refresh(Reason::UnknownKid(kid)).await?;
            key = self.keys.read().await.get(kid).cloned();
        }
        let key = key.ok_or(AuthError::UnknownKey)?;
        jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })
    }

    async fn is_stale(&self) -> bool {
        matches!(self.source, Source::Remote { .. })
            && self
                .fetches
                .lock()
                .await
                .loaded_at
                .is_none_or(|at| at.elapsed() > KEYS_TTL)
    }

    /// Fetches the JWKS again, unless another request just did or (for unknown kids) the
    /// last forced fetch is too recent.
    async fn refresh(&self, reason: Reason<'_>) -> Result<(), AuthError> {
        let Source::Remote { client, url } = &self.source else {
            return Err(AuthError::UnknownKey);
        };
        let mut fetches = self.fetches.lock().await;
        match reason {
            Reason::Stale => {
                if fetches.loaded_at.is_some_and(|at| at.elapsed() <= KEYS_TTL) {
                    return Ok(());
                }
            }
            Reason::UnknownKid(kid) => {
                if self.keys.read().await.contains_key(kid) {
                    return Ok(());
                }
                if fetches
                    .last_forced
                    .is_some_and(|at| at.elapsed() < MIN_REFRESH_INTERVAL)
                {
                    return Err(AuthError::UnknownKey);
                }
                fetches.last_forced = Some(Instant::now());
            }
        }
        let jwks = fetch(client, url).await.map_err(|err| {
            tracing::warn!(error = format!("{err:#}"), url, "cannot fetch JWKS");
            AuthError::KeysUnavailable
        })?;
        *self.keys.write().await = decode_keys(&jwks);
        self.verified.invalidate_all();
        fetches.loaded_at = Some(Instant::now());
        Ok(())
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> anyhow::Result<JwkSet> {
    Ok(client
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// The EdDSA keys of a JWKS by key id; other key types are ignored.
fn decode_keys(jwks: &JwkSet) -> HashMap<String, Arc<DecodingKey>> {
    jwks.keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, Arc::new(key)))
        })
        .collect()
}

/// Key ids are ours: short and plain. Anything else (paths, quotes) is refused unseen.
fn is_plain_kid(kid: &str) -> bool {
    (1..=64).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
