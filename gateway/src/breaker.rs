//! A circuit breaker per upstream instance: after N consecutive failures it opens and
//! answers at once (no upstream call) until a cool-down passes; then one probe goes
//! through (half-open) and its outcome closes or re-opens the circuit.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    cooldown: Duration,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    /// `Err(seconds)` to refuse now, else the call may go ahead.
    pub fn admit(&self) -> Result<(), u64> {
        let mut state = self.state.lock().expect("breaker lock");
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen { probing: true };
                Ok(())
            }
            State::Open { until } => Err(until
                .saturating_duration_since(Instant::now())
                .as_secs()
                .max(1)),
            State::HalfOpen { probing: true } => Err(1),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Ok(())
            }
        }
    }

    pub fn record(&self, success: bool) {
        let mut state = self.state.lock().expect("breaker lock");
        *state = match (&*state, success) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            (_, false) => State::Open {
                until: Instant::now() + self.cooldown,
            },
        };
    }

    pub fn is_open(&self) -> bool {
        matches!(*self.state.lock().expect("breaker lock"), State::Open { until } if Instant::now() < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_recovers_through_one_probe() {
        let breaker = Breaker::new(3, Duration::from_millis(50));
        for _ in 0..3 {
            assert!(breaker.admit().is_ok());
            breaker.record(false);
        }
        assert!(breaker.admit().is_err(), "open");
        std::thread::sleep(Duration::from_millis(60));
        assert!(breaker.admit().is_ok(), "the probe");
        assert!(breaker.admit().is_err(), "only one probe at a time");
        breaker.record(true);
        assert!(breaker.admit().is_ok(), "closed again");
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let breaker = Breaker::new(1, Duration::from_millis(20));
        breaker.record(false);
        std::thread::sleep(Duration::from_millis(30));
        assert!(breaker.admit().is_ok());
        breaker.record(false);
        assert!(breaker.admit().is_err());
    }
}
