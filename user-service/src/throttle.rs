//! Failed-login throttling that an attacker cannot turn into a lockout of the victim:
//! failures count per (account, IP) pair with a low limit, per account with a higher
//! one, and per IP; every counter forgets after the window. Someone hammering an account
//! from one address is stopped without stopping its owner on another address.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;

/// Failures allowed per window.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_pair: u32,
    pub per_account: u32,
    pub per_ip: u32,
}

struct Window {
    started: Instant,
    failures: AtomicU32,
}

pub struct LoginThrottle {
    window: Duration,
    limits: Limits,
    pairs: Cache<String, Arc<Window>>,
    accounts: Cache<String, Arc<Window>>,
    ips: Cache<String, Arc<Window>>,
}

impl LoginThrottle {
    pub fn new(window: Duration, limits: Limits) -> Self {
        let cache = || {
            Cache::builder()
                .time_to_live(window)
                .max_capacity(1_000_000)
                .build()
        };
        Self {
            window,
            limits,
            pairs: cache(),
            accounts: cache(),
            ips: cache(),
        }
    }

    fn keys(email: &str, ip: &str) -> [String; 3] {
        let email = email.to_lowercase();
        [format!("{email}\u{0}{ip}"), email, ip.to_owned()]
    }

    /// `Err(seconds)` when any counter is at its limit: retry after that long, which is
    /// when the last of the full windows ends, rounded up (a retry after a rounded-down
    /// wait would still find the window full).
    pub fn check(&self, email: &str, ip: &str) -> Result<(), u64> {
        let [pair, account, ipkey] = Self::keys(email, ip);
        let checks = [
            (&self.pairs, pair, self.limits.per_pair),
            (&self.accounts, account, self.limits.per_account),
            (&self.ips, ipkey, self.limits.per_ip),
        ];
        let mut wait: Option<Duration> = None;
        for (cache, key, limit) in checks {
            if let Some(window) = cache.get(&key)
                && window.failures.load(Ordering::Relaxed) >= limit
            {
                let left = self.window.saturating_sub(window.started.elapsed());
                wait = Some(wait.map_or(left, |w| w.max(left)));
            }
        }
        match wait {
            None => Ok(()),
            Some(left) => Err((left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1)),
        }
    }

    pub fn record_failure(&self, email: &str, ip: &str) {
        let [pair, account, ipkey] = Self::keys(email, ip);
        for (cache, key) in [
            (&self.pairs, pair),
            (&self.accounts, account),
            (&self.ips, ipkey),
        ] {
            let window = cache.get_with(key, || {
                Arc::new(Window {
                    started: Instant::now(),
                    failures: AtomicU32::new(0),
                })
            });
            window.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A successful login clears its pair's counter.
    pub fn record_success(&self, email: &str, ip: &str) {
        let [pair, _, _] = Self::keys(email, ip);
        self.pairs.invalidate(&pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(
            Duration::from_secs(60),
            Limits {
                per_pair: 3,
                per_account: 5,
                per_ip: 100,
            },
        )
    }

    #[test]
    fn a_pair_is_throttled_before_the_account() {
        let t = throttle();
        for _ in 0..3 {
            assert!(t.check("Ann@x.io", "1.1.1.1").is_ok());
            t.record_failure("ann@x.io", "1.1.1.1");
        }
        assert!(t.check("ann@x.io", "1.1.1.1").is_err());
        assert!(
            t.check("ann@x.io", "2.2.2.2").is_ok(),
            "the owner elsewhere is not locked out"
        );
    }

    #[test]
    fn the_wait_is_rounded_up_to_when_the_window_ends() {
        let t = throttle();
        for _ in 0..3 {
            t.record_failure("ann@x.io", "1.1.1.1");
        }
        std::thread::sleep(Duration::from_millis(20));
        // 59.98 s are left of the 60 s window: a wait of 59 would end inside it.
        assert_eq!(t.check("ann@x.io", "1.1.1.1"), Err(60));
    }

    #[test]
    fn many_addresses_hit_the_account_limit() {
        let t = throttle();
        for i in 0..5 {
            t.record_failure("ann@x.io", &format!("10.0.0.{i}"));
        }
        assert!(t.check("ann@x.io", "10.9.9.9").is_err());
    }
}
