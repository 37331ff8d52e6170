//! Password attempts on `POST /s/{code}` (GCRA, `governor`): a few per (address, link)
//! and more per link from all addresses, each refilling evenly over the window. Every
//! attempt is charged before the password is hashed, so a flood costs the attacker a
//! 429 and the server no argon2 work.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

pub struct PasswordThrottle {
    per_address: Keyed<(String, String)>,
    per_link: Keyed<String>,
    clock: DefaultClock,
}

fn quota(attempts: u32, window: Duration) -> Quota {
    let attempts = NonZeroU32::new(attempts.max(1)).expect("at least one");
    let period = (window / attempts.get()).max(Duration::from_millis(1));
    Quota::with_period(period)
        .expect("a non-zero period")
        .allow_burst(attempts)
}

impl PasswordThrottle {
    pub fn new(per_address: u32, per_link: u32, window: Duration) -> Self {
        Self {
            per_address: RateLimiter::keyed(quota(per_address, window)),
            per_link: RateLimiter::keyed(quota(per_link, window)),
            clock: DefaultClock::default(),
        }
    }

    /// Charges one attempt at `code` from `ip`; `Err(seconds)` until one is allowed again.
    pub fn charge(&self, ip: &str, code: &str) -> Result<(), u64> {
        let wait = |not_until: governor::NotUntil<_>| {
            not_until.wait_time_from(self.clock.now()).as_secs().max(1)
        };
        self.per_address
            .check_key(&(ip.to_owned(), code.to_owned()))
            .map_err(wait)?;
        self.per_link.check_key(&code.to_owned()).map_err(wait)
    }

    /// Forgets keys that are back to full capacity (called periodically).
    pub fn shrink(&self) {
        self.per_address.retain_recent();
        self.per_link.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_is_stopped_before_the_link_is() {
        let t = PasswordThrottle::new(5, 8, Duration::from_secs(900));
        for _ in 0..5 {
            assert!(t.charge("10.0.0.1", "abcdEFGH").is_ok());
        }
        let retry = t.charge("10.0.0.1", "abcdEFGH").unwrap_err();
        assert!((1..=180).contains(&retry), "{retry}");
        assert!(
            t.charge("10.0.0.1", "otherXYZ").is_ok(),
            "another link is not affected"
        );
        for _ in 0..3 {
            assert!(t.charge("10.0.0.2", "abcdEFGH").is_ok());
        }
        assert!(
            t.charge("10.0.0.3", "abcdEFGH").is_err(),
            "the link's own limit holds across addresses"
        );
    }
}
