//! The soak's memory record: every service's resident memory (`VmRSS`) sampled every few
//! seconds over the whole run, readings at the phase boundaries (checkpoints), and the
//! kernel's own peak (`VmHWM`) at the end; and the two goals read from it.
//!
//! - **user-service under 150 MiB**: its peak over the whole run, the higher of the
//!   largest sample and `VmHWM` (which also sees what happened between samples).
//! - **no growth**: each service's RSS at the end of the mixed traffic is at most 1.3×
//!   its RSS after the first minute of it. "After the first minute" is the reading taken
//!   60 s after the first mixed request was sent, with the traffic still running; "the
//!   end" is the reading taken when the last mixed request has been answered. Memory that
//!   warm caches, pools and allocator arenas need is in place after a minute; what grows
//!   after that grows with time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How often the sampler reads every service's RSS.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// user-service's peak RSS over the run must stay under this.
pub const USER_SERVICE_PEAK_GOAL_MIB: f64 = 150.0;
/// End of the mixed traffic ÷ after its first minute, at most.
pub const GROWTH_GOAL: f64 = 1.3;

/// The checkpoints, in the order a run takes them.
pub const START: &str = "start";
pub const AFTER_SETUP: &str = "after setup";
pub const AFTER_LOGINS: &str = "after logins";
pub const AFTER_FIRST_MINUTE: &str = "after the first minute of mixed traffic";
pub const END: &str = "end of mixed traffic";
pub const AFTER_IDLE: &str = "after 20 s idle";

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the fleet was ready.
    pub at_s: f64,
    /// The phase the run was in.
    pub phase: String,
    /// Set on the readings taken at a phase boundary.
    pub checkpoint: Option<String>,
    /// `VmRSS` of each service (in [`Series::services`] order), MiB; NaN once a process
    /// is gone.
    pub rss_mib: Vec<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    pub services: Vec<String>,
    pub samples: Vec<Sample>,
    /// `VmHWM` of each service when the run ended, MiB (NaN when the process was gone).
    pub hwm_mib: Vec<f64>,
}

/// One service's growth over the mixed traffic.
#[derive(Debug, Clone, Serialize)]
pub struct Growth {
    pub service: String,
    pub after_first_minute_mib: f64,
    pub end_mib: f64,
    /// end ÷ after the first minute.
    pub ratio: f64,
    pub met: bool,
}

impl Series {
    fn index(&self, service: &str) -> Option<usize> {
        self.services.iter().position(|s| s == service)
    }

    /// The reading taken at `checkpoint`.
    pub fn checkpoint(&self, checkpoint: &str) -> Option<&Sample> {
        self.samples
            .iter()
            .find(|s| s.checkpoint.as_deref() == Some(checkpoint))
    }

    /// The most `service` held over the run: the largest sample or its `VmHWM`,
    /// whichever is higher; NaN if it was never read.
    pub fn peak_mib(&self, service: &str) -> f64 {
        let Some(i) = self.index(service) else {
            return f64::NAN;
        };
        self.samples
            .iter()
            .map(|s| s.rss_mib[i])
            .chain(self.hwm_mib.get(i).copied())
            .filter(|v| v.is_finite())
            .reduce(f64::max)
            .unwrap_or(f64::NAN)
    }

    /// Whether user-service stayed under [`USER_SERVICE_PEAK_GOAL_MIB`] all along (not
    /// met if it was never read or its process died).
    pub fn user_service_peak_met(&self) -> bool {
        let peak = self.peak_mib("user-service");
        peak.is_finite() && peak < USER_SERVICE_PEAK_GOAL_MIB && self.alive_at_end("user-service")
    }

    fn alive_at_end(&self, service: &str) -> bool {
        let Some(i) = self.index(service) else {
            return false;
        };
        self.samples
            .last()
            .is_some_and(|s| s.rss_mib[i].is_finite())
    }

    /// Each service's end-of-mixed RSS against its RSS after the first minute (empty
    /// when the run has no such checkpoints). A service that died in between misses the
    /// goal (its end reading is NaN).
    pub fn growth(&self) -> Vec<Growth> {
        let (Some(first), Some(end)) = (self.checkpoint(AFTER_FIRST_MINUTE), self.checkpoint(END))
        else {
            return Vec::new();
        };
        self.services
            .iter()
            .enumerate()
            .map(|(i, service)| {
                let (before, after) = (first.rss_mib[i], end.rss_mib[i]);
                let ratio = after / before;
                Growth {
                    service: service.clone(),
                    after_first_minute_mib: before,
                    end_mib: after,
                    ratio,
                    met: ratio.is_finite() && ratio <= GROWTH_GOAL,
                }
            })
            .collect()
    }
}

/// `VmRSS` and `VmHWM` of each process, MiB; NaN for one that is gone.
fn read_all(pids: &[u32]) -> Vec<(f64, f64)> {
    pids.iter()
        .map(|pid| crate::bench_footprint::memory(*pid).unwrap_or((f64::NAN, f64::NAN)))
        .collect()
}

struct State {
    phase: String,
    series: Series,
}

/// Samples the processes every [`SAMPLE_EVERY`] on a thread of its own (the load
/// generator's runtime may be saturated), and takes the checkpoint readings.
pub struct Recorder {
    pids: Vec<u32>,
    started: Instant,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    /// Starts sampling `services` (name and pid) in phase `phase`.
    pub fn start(services: &[(&str, u32)], phase: &str) -> Self {
        let pids: Vec<u32> = services.iter().map(|(_, pid)| *pid).collect();
        let state = Arc::new(Mutex::new(State {
            phase: phase.to_owned(),
            series: Series {
                services: services.iter().map(|(n, _)| (*n).to_owned()).collect(),
                samples: Vec::new(),
                hwm_mib: Vec::new(),
            },
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let thread = std::thread::spawn({
            let (pids, state, stop) = (pids.clone(), Arc::clone(&state), Arc::clone(&stop));
            move || {
                let mut next = started;
                while !stop.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        let rss = read_all(&pids).into_iter().map(|(rss, _)| rss).collect();
                        let mut state = state.lock().expect("recorder lock");
                        let phase = state.phase.clone();
                        state.series.samples.push(Sample {
                            at_s: started.elapsed().as_secs_f64(),
                            phase,
                            checkpoint: None,
                            rss_mib: rss,
                        });
                        next += SAMPLE_EVERY;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Self {
            pids,
            started,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// From now on samples belong to `phase`.
    pub fn phase(&self, phase: &str) {
        phase.clone_into(&mut self.state.lock().expect("recorder lock").phase);
    }

    /// Reads every service now and keeps it as checkpoint `label`; returns the reading.
    pub fn checkpoint(&self, label: &str) -> Sample {
        let rss = read_all(&self.pids)
            .into_iter()
            .map(|(rss, _)| rss)
            .collect();
        let mut state = self.state.lock().expect("recorder lock");
        let sample = Sample {
            at_s: self.started.elapsed().as_secs_f64(),
            phase: state.phase.clone(),
            checkpoint: Some(label.to_owned()),
            rss_mib: rss,
        };
        state.series.samples.push(sample.clone());
        sample
    }

    /// Stops sampling, reads every `VmHWM`, and hands the series over.
    pub fn finish(mut self) -> Series {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let hwm = read_all(&self.pids)
            .into_iter()
            .map(|(_, hwm)| hwm)
            .collect();
        let mut state = self.state.lock().expect("recorder lock");
        state.series.hwm_mib = hwm;
        std::mem::take(&mut state.series)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_s: f64, checkpoint: Option<&str>, rss_mib: [f64; 2]) -> Sample {
        Sample {
            at_s,
            phase: "mixed".to_owned(),
            checkpoint: checkpoint.map(str::to_owned),
            rss_mib: rss_mib.to_vec(),
        }
    }

    /// user-service and the gateway over a made-up run.
    fn series(samples: Vec<Sample>, hwm_mib: [f64; 2]) -> Series {
        Series {
            services: vec!["user-service".to_owned(), "gateway".to_owned()],
            samples,
            hwm_mib: hwm_mib.to_vec(),
        }
    }

    #[test]
    fn growth_is_the_end_against_the_reading_after_the_first_minute() {
        let run = series(
            vec![
                sample(0.0, Some(START), [20.0, 10.0]),
                sample(70.0, Some(AFTER_FIRST_MINUTE), [100.0, 20.0]),
                sample(120.0, None, [125.0, 40.0]),
                sample(250.0, Some(END), [129.0, 26.5]),
            ],
            [140.0, 40.0],
        );

        let growth = run.growth();

        assert_eq!(growth.len(), 2);
        assert!((growth[0].ratio - 1.29).abs() < 1e-9);
        assert!(growth[0].met, "1.29× is within 1.3×");
        assert!((growth[1].ratio - 1.325).abs() < 1e-9);
        assert!(!growth[1].met, "1.325× is above 1.3×");
    }

    #[test]
    fn a_service_gone_before_the_end_misses_the_growth_goal() {
        let run = series(
            vec![
                sample(70.0, Some(AFTER_FIRST_MINUTE), [100.0, 20.0]),
                sample(250.0, Some(END), [f64::NAN, 20.0]),
            ],
            [f64::NAN, 20.0],
        );

        assert!(!run.growth()[0].met);
        assert!(run.growth()[1].met);
        assert!(!run.user_service_peak_met());
    }

    #[test]
    fn the_user_service_peak_counts_what_happened_between_samples() {
        let under = series(
            vec![
                sample(0.0, Some(START), [20.0, 10.0]),
                sample(2.0, None, [149.0, 10.0]),
            ],
            [149.5, 10.0],
        );
        assert_eq!(under.peak_mib("user-service"), 149.5);
        assert!(under.user_service_peak_met());

        // Every sample under 150 MiB, but the kernel saw a higher peak in between.
        let spiked = series(
            vec![
                sample(0.0, Some(START), [20.0, 10.0]),
                sample(2.0, None, [90.0, 10.0]),
            ],
            [180.0, 10.0],
        );
        assert_eq!(spiked.peak_mib("user-service"), 180.0);
        assert!(!spiked.user_service_peak_met());

        // A sample above the goal with the peak unread (NaN) still counts.
        let sampled = series(vec![sample(2.0, None, [151.0, 10.0])], [f64::NAN, 10.0]);
        assert!(!sampled.user_service_peak_met());
    }

    #[test]
    fn without_the_mixed_checkpoints_there_is_no_growth_to_judge() {
        let run = series(vec![sample(0.0, Some(START), [20.0, 10.0])], [20.0, 10.0]);
        assert!(run.growth().is_empty());
        assert!(run.peak_mib("analytics-service").is_nan());
    }
}
