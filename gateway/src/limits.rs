//! Rate limits (GCRA, `governor`): per tenant and user on authenticated routes, per
//! client address on public ones. Every answer carries `RateLimit-*` headers.

use std::net::IpAddr;
use std::num::NonZeroU32;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
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

/// What an answer says of its subject's budget: the `RateLimit-*` fields.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub limit: u32,
    pub remaining: u64,
    /// Seconds until the budget is whole again (or until a refused request may retry).
    pub reset: u64,
}

impl RateLimit {
    /// The field names, lowercase, and their values, in the order they are written.
    pub fn fields(&self) -> [(&'static str, u64); 3] {
        [
            ("ratelimit-limit", u64::from(self.limit)),
            ("ratelimit-remaining", self.remaining),
            ("ratelimit-reset", self.reset),
        ]
    }

    /// The fields as a header map (for answers built as `Response`s).
    pub fn headers(&self) -> HeaderMap {
        self.fields()
            .into_iter()
            .map(|(name, value)| (HeaderName::from_static(name), HeaderValue::from(value)))
            .collect()
    }
}

/// A refusal: the budget is spent; `rate.reset` says in how many seconds to retry.
pub struct Limited {
    pub rate: RateLimit,
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

    /// Counts one request; `Ok` (with the fields to answer) to go on, `Err` to answer 429.
    pub fn check(&self, subject: Subject) -> Result<RateLimit, Limited> {
        let (outcome, limit) = match subject {
            Subject::User { tenant, user } => {
                (self.users.check_key(&(tenant, user)), self.user_limit)
            }
            Subject::Address(ip) => (self.addresses.check_key(&ip), self.address_limit),
        };
        match outcome {
            Ok(snapshot) => Ok(RateLimit {
                limit,
                remaining: u64::from(snapshot.remaining_burst_capacity()),
                reset: 60,
            }),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now()).as_secs().max(1);
                Err(Limited {
                    rate: RateLimit {
                        limit,
                        remaining: 0,
                        reset: wait,
                    },
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
