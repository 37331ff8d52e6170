//! Rate limits (GCRA, `governor`): per tenant and user on authenticated routes, per
//! client address on public ones. Every answer carries `RateLimit-*` headers.

use std::net::IpAddr;
use std::num::NonZeroU32;

use axum::http::{HeaderMap, HeaderValue};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use uuid::Uuid;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// The subject a request is counted against.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    User { tenant: Uuid, user: Uuid },
    Address(IpAddr),
}

pub struct Limits {
    users: Keyed<(Uuid, Uuid)>,
    addresses: Keyed<IpAddr>,
    user_limit: u32,
    address_limit: u32,
    clock: DefaultClock,
}

/// A refusal: retry after this many seconds.
pub struct Limited {
    pub retry_after: u64,
    pub headers: HeaderMap,
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute.max(1)).expect("at least one"))
}

impl Limits {
    pub fn new(user_per_min: u32, address_per_min: u32) -> Self {
        Self {
            users: RateLimiter::keyed(quota(user_per_min))
                .with_middleware::<StateInformationMiddleware>(),
            addresses: RateLimiter::keyed(quota(address_per_min))
                .with_middleware::<StateInformationMiddleware>(),
            user_limit: user_per_min.max(1),
            address_limit: address_per_min.max(1),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request; `Ok(headers)` to go on, `Err` to answer 429.
    pub fn check(&self, subject: Subject) -> Result<HeaderMap, Limited> {
        let (outcome, limit) = match subject {
            Subject::User { tenant, user } => {
                (self.users.check_key(&(tenant, user)), self.user_limit)
            }
            Subject::Address(ip) => (self.addresses.check_key(&ip), self.address_limit),
        };
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit-limit", HeaderValue::from(limit));
        match outcome {
            Ok(snapshot) => {
                headers.insert(
                    "ratelimit-remaining",
                    HeaderValue::from(snapshot.remaining_burst_capacity()),
                );
                headers.insert("ratelimit-reset", HeaderValue::from(60u32));
                Ok(headers)
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now()).as_secs().max(1);
                headers.insert("ratelimit-remaining", HeaderValue::from(0u32));
                headers.insert("ratelimit-reset", HeaderValue::from(wait));
                Err(Limited {
                    retry_after: wait,
                    headers,
                })
            }
        }
    }

    /// Forgets keys that are back to full capacity (called periodically).
    pub fn shrink(&self) {
        self.users.retain_recent();
        self.addresses.retain_recent();
    }
}
