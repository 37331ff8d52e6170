//! Ed25519 signing keys: only user-service signs with them (and tests that play it);
//! their public halves are what `/.well-known/jwks.json` publishes.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};

use super::Claims;

/// One Ed25519 private key with its key id.
pub struct SigningKey {
    kid: String,
    pem: SecretString,
    encoding: EncodingKey,
    public: [u8; 32],
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key (development and tests; production keys come from files).
    pub fn generate(kid: impl Into<String>) -> anyhow::Result<Self> {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let pem = key.to_pkcs8_pem(LineEnding::LF).context("encoding key")?;
        Self::from_pem(kid, pem.as_str())
    }

    /// A key from its PKCS#8 PEM text.
    pub fn from_pem(kid: impl Into<String>, pem: &str) -> anyhow::Result<Self> {
        let key =
            ed25519_dalek::SigningKey::from_pkcs8_pem(pem).context("not an Ed25519 PKCS#8 key")?;
        let encoding = EncodingKey::from_ed_pem(pem.as_bytes()).context("loading Ed25519 key")?;
        Ok(Self {
            kid: kid.into(),
            pem: SecretString::from(pem.to_owned()),
            encoding,
            public: key.verifying_key().to_bytes(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The PKCS#8 PEM text, for writing the key to a file.
    pub fn pem(&self) -> &str {
        self.pem.expose_secret()
    }

    /// Signs `claims` as an EdDSA JWT whose header names this key.
    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("signing token")
    }

    /// The public key as a JWK (`kty: OKP`, `crv: Ed25519`, `alg: EdDSA`, `use: sig`).
    pub fn public_jwk(&self) -> anyhow::Result<Jwk> {
        let jwk = serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.public),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        });
        serde_json::from_value(jwk).context("building public JWK")
    }

    /// A JWKS document of the public halves of `keys`.
    pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a Self>) -> anyhow::Result<JwkSet> {
        Ok(JwkSet {
            keys: keys
                .into_iter()
                .map(Self::public_jwk)
                .collect::<anyhow::Result<_>>()?,
        })
    }
}
