//! Share grants: the short-lived, task-scoped permission a share link hands a browser.
//!
//! url-shortener signs one when a link is opened (with its password, if it has one);
//! project-service verifies it before it renders `/shared/tasks/{id}`. Both hold the same
//! `SHARE_GRANT_SECRET`. A grant binds the tenant, the task and an expiry, so it cannot be
//! moved to another task or tenant or used after it lapses, and it carries nothing else:
//! no user, no permission beyond reading that one task.
//!
//! Wire form ([`crate::signed`]): `base64url(tenant ‖ kind ‖ target ‖ expiry) "."
//! base64url(HMAC-SHA256)`, both without padding, so it is safe in a query string as it is.

use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::signed::{SignedError, Signer};

/// What a grant allows: reading `target` of `tenant_id` until `expires_at` (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareGrant {
    pub tenant_id: Uuid,
    pub target: SharedTarget,
    pub expires_at: i64,
}

/// The one thing a grant lets its bearer read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedTarget {
    Task(Uuid),
    Project(Uuid),
}

impl SharedTarget {
    fn kind(self) -> u8 {
        match self {
            Self::Task(_) => b't',
            Self::Project(_) => b'p',
        }
    }

    pub fn id(self) -> Uuid {
        match self {
            Self::Task(id) | Self::Project(id) => id,
        }
    }

    /// The share page's path on the tenant's host: `/shared/tasks/{id}` or
    /// `/shared/projects/{id}`.
    pub fn path(self) -> String {
        match self {
            Self::Task(id) => format!("/shared/tasks/{id}"),
            Self::Project(id) => format!("/shared/projects/{id}"),
        }
    }
}

/// Why a grant was refused. The share page says the same to all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("the grant is not well formed")]
    Malformed,
    #[error("the grant's signature does not match")]
    BadSignature,
    #[error("the grant has expired")]
    Expired,
}

/// Domain separation: a MAC made for something else with the same secret is no grant.
const CONTEXT: &[u8] = b"nexus-share-grant-v1";
const PAYLOAD_LEN: usize = 16 + 1 + 16 + 8;

/// The key both sides derive grants from.
#[derive(Clone)]
pub struct GrantKey(Signer);

impl GrantKey {
    pub fn new(secret: &SecretString) -> Self {
        Self(Signer::new(secret, CONTEXT))
    }

    pub fn sign(&self, grant: &ShareGrant) -> String {
        self.0.sign(&payload(grant))
    }

    /// Checks the signature (in constant time) before anything else, then the expiry
    /// against `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<ShareGrant, GrantError> {
        let payload = self.0.open(token).map_err(|e| match e {
            SignedError::Malformed => GrantError::Malformed,
            SignedError::BadSignature => GrantError::BadSignature,
        })?;
        if payload.len() != PAYLOAD_LEN {
            return Err(GrantError::Malformed);
        }
        let id = Uuid::from_slice(&payload[17..33]).map_err(|_| GrantError::Malformed)?;
        let grant = ShareGrant {
            tenant_id: Uuid::from_slice(&payload[..16]).map_err(|_| GrantError::Malformed)?,
            target: match payload[16] {
                b't' => SharedTarget::Task(id),
                b'p' => SharedTarget::Project(id),
                _ => return Err(GrantError::Malformed),
            },
            expires_at: i64::from_be_bytes(
                payload[33..]
                    .try_into()
                    .map_err(|_| GrantError::Malformed)?,
            ),
        };
        if grant.expires_at <= now {
            return Err(GrantError::Expired);
        }
        Ok(grant)
    }
}

fn payload(grant: &ShareGrant) -> [u8; PAYLOAD_LEN] {
    let mut out = [0; PAYLOAD_LEN];
    out[..16].copy_from_slice(grant.tenant_id.as_bytes());
    out[16] = grant.target.kind();
    out[17..33].copy_from_slice(grant.target.id().as_bytes());
    out[33..].copy_from_slice(&grant.expires_at.to_be_bytes());
    out
}

/// The development default of `SHARE_GRANT_SECRET`; services warn when they run with it.
pub const DEV_SHARE_GRANT_SECRET: &str = "nexus-dev-share-grant-secret";

/// The secret url-shortener signs share grants with and project-service checks them with.
#[derive(Debug, Clone, Args)]
pub struct GrantArgs {
    /// Shared secret of share-link grants (url-shortener signs; project-service and
    /// notification-service, for a share page's live stream, verify).
    /// Set a long random value in production; the default is for local development only.
    #[arg(long, env = "SHARE_GRANT_SECRET", default_value = DEV_SHARE_GRANT_SECRET,
          value_parser = crate::config::secret, hide_env_values = true)]
    pub share_grant_secret: SecretString,
}

impl GrantArgs {
    pub fn key(&self) -> GrantKey {
        if self.share_grant_secret.expose_secret() == DEV_SHARE_GRANT_SECRET {
            tracing::warn!(
                "SHARE_GRANT_SECRET is the development default; set a secret one in production"
            );
        }
        GrantKey::new(&self.share_grant_secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> GrantKey {
        GrantKey::new(&SecretString::from(secret.to_owned()))
    }

    fn grant() -> ShareGrant {
        ShareGrant {
            tenant_id: Uuid::now_v7(),
            target: SharedTarget::Task(Uuid::now_v7()),
            expires_at: 1_000,
        }
    }

    #[test]
    fn a_signed_grant_verifies_to_what_was_signed() {
        let grant = grant();
        assert_eq!(key("s").verify(&key("s").sign(&grant), 999), Ok(grant));
    }

    #[test]
    fn an_expired_grant_is_refused() {
        let token = key("s").sign(&grant());
        assert_eq!(key("s").verify(&token, 1_000), Err(GrantError::Expired));
    }

    #[test]
    fn another_secret_or_a_changed_payload_is_refused() {
        let grant = grant();
        let token = key("s").sign(&grant);
        assert_eq!(key("t").verify(&token, 0), Err(GrantError::BadSignature));

        let other_task = key("s").sign(&ShareGrant {
            target: SharedTarget::Task(Uuid::now_v7()),
            ..grant
        });
        let as_project = key("s").sign(&ShareGrant {
            target: SharedTarget::Project(grant.target.id()),
            ..grant
        });
        assert_ne!(as_project, token);
        let forged = format!(
            "{}.{}",
            other_task.split_once('.').unwrap().0,
            token.split_once('.').unwrap().1
        );
        assert_eq!(key("s").verify(&forged, 0), Err(GrantError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed() {
        for token in [
            "",
            "abc",
            "a.b",
            "!!!.???",
            &format!("{}.x", "A".repeat(10)),
        ] {
            assert_eq!(
                key("s").verify(token, 0),
                Err(GrantError::Malformed),
                "{token}"
            );
        }
    }
}
