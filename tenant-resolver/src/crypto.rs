//! Tenant role passwords are stored encrypted (XChaCha20-Poly1305) in the registry, so a
//! copy of the registry alone does not open the tenant databases.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The development default of `TENANT_SECRET_KEY` (base64 of 32 bytes).
pub const DEV_SECRET_KEY: &str = "bmV4dXMtZGV2LXRlbmFudC1zZWNyZXQta2V5LTAwMDE=";
const NONCE_LEN: usize = 24;

pub struct SecretKey(XChaCha20Poly1305);

impl SecretKey {
    pub fn from_base64(encoded: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .context("TENANT_SECRET_KEY is not base64")?;
        if bytes.len() != 32 {
            bail!(
                "TENANT_SECRET_KEY must be 32 bytes, base64-encoded (got {})",
                bytes.len()
            );
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).context("building cipher")?;
        Ok(Self(cipher))
    }

    /// `nonce || ciphertext`.
    pub fn encrypt(&self, plaintext: &str) -> anyhow::Result<Vec<u8>> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .0
            .encrypt(&nonce, plaintext.as_bytes())
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    pub fn decrypt(&self, sealed: &[u8]) -> anyhow::Result<String> {
        if sealed.len() < NONCE_LEN {
            bail!("sealed secret too short");
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().context("nonce length")?;
        let plaintext = self
            .0
            .decrypt(&XNonce::from(nonce), ciphertext)
            .map_err(|_| {
                anyhow::anyhow!("cannot decrypt a tenant secret: wrong TENANT_SECRET_KEY?")
            })?;
        String::from_utf8(plaintext).context("tenant secret is not UTF-8")
    }
}

/// A random password of 40 alphanumeric characters (~238 bits).
pub fn random_password() -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_the_same_key_only() {
        let key = SecretKey::from_base64(DEV_SECRET_KEY).unwrap();
        let sealed = key.encrypt("s3cret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(key.decrypt(&sealed).unwrap(), "s3cret");
        let other = SecretKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        assert!(other.decrypt(&sealed).is_err());
    }
}
