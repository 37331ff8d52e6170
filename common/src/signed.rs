//! Signed tokens: a payload and its HMAC-SHA256 under a secret and a context, in the
//! wire form `base64url(payload) "." base64url(tag)` (no padding, safe in a URL as it
//! is). The context separates uses of one secret: a tag made for share grants is no
//! unsubscribe token. What the payload holds, and whether it expires, is the caller's
//! (`crate::grant`, notification-service's unsubscribe links).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    #[error("the token is not well formed")]
    Malformed,
    #[error("the token's signature does not match")]
    BadSignature,
}

/// Signs and opens tokens of one context.
#[derive(Clone)]
pub struct Signer {
    mac: Hmac<Sha256>,
    context: &'static [u8],
}

impl Signer {
    pub fn new(secret: &SecretString, context: &'static [u8]) -> Self {
        Self {
            mac: Hmac::new_from_slice(secret.expose_secret().as_bytes())
                .expect("HMAC takes a key of any length"),
            context,
        }
    }

    pub fn sign(&self, payload: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(self.context);
        mac.update(payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    /// The payload, once its tag is checked (in constant time).
    pub fn open(&self, token: &str) -> Result<Vec<u8>, SignedError> {
        let (payload, tag) = token.split_once('.').ok_or(SignedError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| SignedError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| SignedError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(self.context);
        mac.update(&payload);
        mac.verify_slice(&tag)
            .map_err(|_| SignedError::BadSignature)?;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &str, context: &'static [u8]) -> Signer {
        Signer::new(&SecretString::from(secret.to_owned()), context)
    }

    #[test]
    fn a_token_opens_only_with_its_secret_and_context() {
        let token = signer("s", b"a").sign(b"payload");
        assert_eq!(signer("s", b"a").open(&token).unwrap(), b"payload");
        assert_eq!(
            signer("t", b"a").open(&token),
            Err(SignedError::BadSignature)
        );
        assert_eq!(
            signer("s", b"b").open(&token),
            Err(SignedError::BadSignature)
        );
        let (_, tag) = token.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(b"payloae"));
        assert_eq!(
            signer("s", b"a").open(&forged),
            Err(SignedError::BadSignature)
        );
        for garbage in ["", "abc", "!!!.???"] {
            assert_eq!(signer("s", b"a").open(garbage), Err(SignedError::Malformed));
        }
    }
}
