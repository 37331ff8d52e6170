//! The token-signing keys. Only this service holds them. Each key is a PKCS#8 PEM file
//! `<kid>.pem` in `SIGNING_KEYS_DIR`; the newest kid (kids sort by creation date) signs,
//! and all of them are published in the JWKS, so a new key can be added and an old one
//! retired without logging anybody out.

use std::path::Path;

use anyhow::{Context, bail};
use common::auth::SigningKey;
use jsonwebtoken::jwk::JwkSet;

pub struct KeyRing {
    /// Sorted by kid; the last one signs.
    keys: Vec<SigningKey>,
}

impl KeyRing {
    /// Loads every key of `dir`; with none there and `generate`, creates one (dev).
    pub fn load(dir: &Path, generate: bool) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        if dir.exists() {
            for entry in
                std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?
            {
                let path = entry?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("pem") {
                    continue;
                }
                let kid = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .context("key file name")?
                    .to_owned();
                let pem = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                keys.push(
                    SigningKey::from_pem(kid, &pem)
                        .with_context(|| format!("loading {}", path.display()))?,
                );
            }
        }
        if keys.is_empty() {
            if !generate {
                bail!("no signing key (*.pem) in {}", dir.display());
            }
            keys.push(generate_into(dir)?);
        }
        keys.sort_by(|a, b| a.kid().cmp(b.kid()));
        Ok(Self { keys })
    }

    pub fn signing(&self) -> &SigningKey {
        self.keys.last().expect("a key ring is never empty")
    }

    pub fn jwks(&self) -> anyhow::Result<JwkSet> {
        SigningKey::jwks(&self.keys)
    }
}

/// Creates a key named by the date (so newer keys sort last), readable by the owner only.
fn generate_into(dir: &Path) -> anyhow::Result<SigningKey> {
    let kid = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let key = SigningKey::generate(kid)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.pem", key.kid()));
    write_private(&path, key.pem())?;
    tracing::warn!(path = %path.display(), "generated a token-signing key (development); provide keys in production");
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    Ok(std::fs::write(path, text)?)
}
