//! Link codes: 8 base62 characters taken from a SHA-256 of (tenant, target, time, random
//! salt). Nothing sequential, so a code tells nothing about its neighbours, and with
//! 62^8 ≈ 2.2·10^14 codes guessing one is hopeless at the throttled rate.

use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Target;

pub const LEN: usize = 8;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A well-formed code (whether a link has it is another matter).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Code(String);

impl Code {
    /// A fresh code for `target` of `tenant`.
    pub fn generate(tenant: Uuid, target: Target) -> Self {
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let digest = Sha256::new()
            .chain_update(tenant.as_bytes())
            .chain_update(target.kind.as_str())
            .chain_update(target.id.as_bytes())
            .chain_update(now.to_be_bytes())
            .chain_update(salt)
            .finalize();
        let mut n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        let mut code = [0u8; LEN];
        for c in code.iter_mut().rev() {
            *c = ALPHABET[(n % 62) as usize];
            n /= 62;
        }
        Self(String::from_utf8(code.to_vec()).expect("ASCII"))
    }

    /// `Some` when `s` is 8 base62 characters: anything else cannot be a link and is
    /// answered without touching the cache or the database.
    pub fn parse(s: &str) -> Option<Self> {
        Self::is_valid(s).then(|| Self(s.to_owned()))
    }

    /// Whether `s` has the shape of a code (what [`Self::parse`] accepts).
    pub fn is_valid(s: &str) -> bool {
        s.len() == LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TargetKind;

    #[test]
    fn codes_are_eight_base62_characters_and_differ_for_the_same_target() {
        let target = Target {
            kind: TargetKind::Task,
            id: Uuid::now_v7(),
        };
        let tenant = Uuid::now_v7();
        let codes: std::collections::HashSet<_> =
            (0..1000).map(|_| Code::generate(tenant, target)).collect();
        assert_eq!(codes.len(), 1000);
        for code in &codes {
            assert!(Code::parse(code.as_str()).is_some(), "{code}");
        }
    }

    #[test]
    fn only_eight_alphanumerics_parse() {
        for bad in ["", "abc", "abcdefghi", "abcd-fgh", "abcdéfg", "../../x1"] {
            assert!(Code::parse(bad).is_none(), "{bad}");
        }
        assert!(Code::parse("aZ09bY18").is_some());
    }
}
