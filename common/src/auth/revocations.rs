//! Access tokens revoked before they expire: a member removed, or their role changed.
//!
//! Tokens are self-contained for their lifetime, so whoever must honour a revocation
//! sooner (the gateway on every request, notification-service for its open streams)
//! keeps user-service's revocation list (`GET /internal/revocations`), polled every
//! `REVOCATION_POLL_MS`, and refuses a token of (tenant, user) issued before the
//! revocation. Entries are dropped once every token they could void has expired. While
//! user-service cannot be reached the list stays as it was (tokens keep working until
//! they expire, as without the list).

use std::collections::HashMap;
use std::future::Future;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::internal::InternalToken;

/// How long an entry matters: the longest an access token lives, and a margin.
const KEEP_SECS: i64 = super::ACCESS_TOKEN_TTL_SECS + 5 * 60;

#[derive(Default)]
pub struct Revocations {
    /// (tenant, user) → tokens issued before this (Unix seconds) are void.
    entries: RwLock<HashMap<(Uuid, Uuid), i64>>,
    /// Whether there is anything to look at: the common case costs one atomic load.
    any: AtomicBool,
}

/// One page of user-service's list: the revocations after a cursor, and the next cursor.
#[derive(Deserialize)]
pub struct Page {
    items: Vec<Item>,
    cursor: i64,
}

#[derive(Deserialize)]
struct Item {
    tenant_id: Uuid,
    user_id: Uuid,
    revoked_before: i64,
}

impl Revocations {
    /// Whether a token of `user` in `tenant`, issued at `iat`, has been revoked.
    pub fn revoked(&self, tenant: Uuid, user: Uuid, iat: i64) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        self.entries
            .read()
            .expect("revocations lock")
            .get(&(tenant, user))
            .is_some_and(|before| iat < *before)
    }

    fn apply(&self, items: Vec<Item>, now: i64) {
        let mut entries = self.entries.write().expect("revocations lock");
        for item in items {
            let before = entries.entry((item.tenant_id, item.user_id)).or_default();
            *before = (*before).max(item.revoked_before);
        }
        entries.retain(|_, before| *before + KEEP_SECS > now);
        self.any.store(!entries.is_empty(), Ordering::Release);
    }

    /// Polls the list with `fetch` (given the cursor, none at first) every `every` until
    /// `shutdown`.
    pub async fn follow<F, Fut>(&self, fetch: F, every: Duration, shutdown: CancellationToken)
    where
        F: Fn(Option<i64>) -> Fut,
        Fut: Future<Output = anyhow::Result<Page>>,
    {
        let mut cursor: Option<i64> = None;
        loop {
            match fetch(cursor).await {
                Ok(page) => {
                    cursor = Some(page.cursor);
                    self.apply(page.items, chrono::Utc::now().timestamp());
                }
                Err(err) => tracing::warn!(error = %err, "revocations could not be fetched"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}

/// The request for one page of the list from user-service at `base`.
pub fn request(
    client: &reqwest::Client,
    base: &str,
    token: &InternalToken,
    cursor: Option<i64>,
) -> reqwest::RequestBuilder {
    let request = client
        .get(format!(
            "{}/internal/revocations",
            base.trim_end_matches('/')
        ))
        .header(reqwest::header::AUTHORIZATION, token.bearer());
    match cursor {
        Some(after) => request.query(&[("after", after)]),
        None => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_issued_before_a_revocation_are_void_and_later_ones_are_not() {
        let list = Revocations::default();
        let (tenant, user, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert!(!list.revoked(tenant, user, 0));
        list.apply(
            vec![Item {
                tenant_id: tenant,
                user_id: user,
                revoked_before: 1_000,
            }],
            1_000,
        );
        assert!(list.revoked(tenant, user, 999));
        assert!(!list.revoked(tenant, user, 1_000), "issued after");
        assert!(!list.revoked(tenant, other, 0), "another user");
        assert!(
            !list.revoked(other, user, 0),
            "the same user in another tenant"
        );
        list.apply(Vec::new(), 1_000 + KEEP_SECS);
        assert!(
            !list.revoked(tenant, user, 999),
            "forgotten once no token can be live"
        );
    }
}
