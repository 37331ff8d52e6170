//! Unsubscribe links: what a mail's `List-Unsubscribe` URL carries, signed so that only
//! Nexus can make one. A token names the tenant, the member and the kinds the mail was
//! about; acting on it (a POST, RFC 8058's one-click) turns those kinds' email off for
//! that member. It does not expire: a link in an old mail still works.
//!
//! Wire form ([`common::signed`]): `base64url(tenant ‖ user ‖ kinds as a bit set) "."
//! base64url(HMAC-SHA256)`.

use common::signed::Signer;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::notification::Kind;
use crate::config::DEV_UNSUBSCRIBE_SECRET;

const CONTEXT: &[u8] = b"nexus-unsubscribe-v1";
const PAYLOAD_LEN: usize = 16 + 16 + 2;

/// What an unsubscribe link turns off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub kinds: Vec<Kind>,
}

#[derive(Clone)]
pub struct UnsubscribeKey(Signer);

impl UnsubscribeKey {
    pub fn new(secret: &SecretString) -> Self {
        if secret.expose_secret() == DEV_UNSUBSCRIBE_SECRET {
            tracing::warn!(
                "UNSUBSCRIBE_SECRET is the development default; set a secret one in production"
            );
        }
        Self(Signer::new(secret, CONTEXT))
    }

    pub fn sign(&self, what: &Unsubscribe) -> String {
        let mut payload = [0; PAYLOAD_LEN];
        payload[..16].copy_from_slice(what.tenant_id.as_bytes());
        payload[16..32].copy_from_slice(what.user_id.as_bytes());
        let bits = what.kinds.iter().fold(0u16, |bits, k| bits | bit(*k));
        payload[32..].copy_from_slice(&bits.to_be_bytes());
        self.0.sign(&payload)
    }

    /// What a token turns off; `None` for anything Nexus did not sign.
    pub fn open(&self, token: &str) -> Option<Unsubscribe> {
        let payload = self.0.open(token).ok()?;
        if payload.len() != PAYLOAD_LEN {
            return None;
        }
        let bits = u16::from_be_bytes([payload[32], payload[33]]);
        Some(Unsubscribe {
            tenant_id: Uuid::from_slice(&payload[..16]).ok()?,
            user_id: Uuid::from_slice(&payload[16..32]).ok()?,
            kinds: Kind::ALL
                .into_iter()
                .filter(|k| bits & bit(*k) != 0)
                .collect(),
        })
    }
}

/// A kind's bit: its place in [`Kind::ALL`] (new kinds are added at the end).
fn bit(kind: Kind) -> u16 {
    let place = Kind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in Kind::ALL");
    1 << place
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> UnsubscribeKey {
        UnsubscribeKey::new(&SecretString::from(secret.to_owned()))
    }

    #[test]
    fn a_token_names_its_tenant_member_and_kinds_and_only_its_signer_reads_it() {
        let what = Unsubscribe {
            tenant_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            kinds: vec![Kind::CommentAdded, Kind::Invited],
        };
        let token = key("s").sign(&what);
        assert_eq!(key("s").open(&token), Some(what));
        assert_eq!(key("t").open(&token), None);
        assert_eq!(key("s").open("garbage"), None);
        let grant = common::grant::GrantKey::new(&SecretString::from("s".to_owned()));
        let other = grant.sign(&common::grant::ShareGrant {
            tenant_id: Uuid::now_v7(),
            target: common::grant::SharedTarget::Task(Uuid::now_v7()),
            expires_at: i64::MAX,
        });
        assert_eq!(key("s").open(&other), None, "a share grant is no token");
    }
}
