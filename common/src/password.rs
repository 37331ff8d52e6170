//! Password hashing with bounded memory and a bounded wait: the one hasher for account
//! passwords (user-service) and link passwords (url-shortener).
//!
//! argon2id with OWASP's parameters (m = 19 MiB, t = 2, p = 1) needs 19 MiB per hash.
//! Run on tokio's blocking pool, a burst of logins became as many concurrent hashes, each
//! allocating its own 19 MiB, and the allocator kept the high-water mark (user-service grew
//! from 80 MiB to 1.8 GiB under 120 logins and stayed there). Here a fixed number of worker
//! threads hash, each reusing one block of argon2 memory, allocated on its first job: at
//! most `PASSWORD_HASH_WORKERS` × 19 MiB, ever. A request waits for a worker at most
//! `PASSWORD_HASH_QUEUE_MS` (first come, first served) and is then answered 503 with
//! `Retry-After` instead of joining an unbounded queue.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), the format the
//! `argon2` crate's `PasswordHasher` wrote before, so stored hashes keep verifying; a
//! stored hash's own parameters are used to verify it. The computed hash is compared in
//! constant time. [`Hasher::verify`] without a stored hash checks against a dummy of the
//! same parameters (equal time, so "no such user" cannot be told from "wrong password")
//! and never succeeds.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::config::PasswordArgs;
use crate::error::ApiError;

/// Memory per hash, in KiB (OWASP's argon2id recommendation).
pub const M_COST_KIB: u32 = 19 * 1024;
/// Passes over the memory.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;
/// Bytes of hash output.
const OUTPUT_LEN: usize = 32;

fn params() -> Params {
    Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN))
        .expect("static argon2 parameters are valid")
}

/// The password hasher: clone it freely; the workers stop when the last clone is dropped.
#[derive(Clone)]
pub struct Hasher(Arc<Inner>);

struct Inner {
    jobs: mpsc::Sender<Job>,
    /// One per worker: holding one means a worker is free for the job.
    permits: Arc<Semaphore>,
    queue_wait: Duration,
    /// A PHC string of the current parameters that no password matches.
    dummy: String,
    load: Arc<Load>,
}

/// How many workers are hashing now, and the most that ever were at once.
#[derive(Default)]
struct Load {
    busy: AtomicUsize,
    peak: AtomicUsize,
}

type Work = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

struct Job {
    work: Work,
    /// Released only after the work is done, so a request that gave up waiting for the
    /// result (a timeout, a closed connection) still holds its worker until then.
    permit: OwnedSemaphorePermit,
}

impl Hasher {
    /// `workers` threads (0: one per available core); a request waits at most
    /// `queue_wait` for one.
    pub fn new(workers: usize, queue_wait: Duration) -> Self {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            workers
        };
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let load = Arc::new(Load::default());
        for i in 0..workers {
            let queue = Arc::clone(&queue);
            let load = Arc::clone(&load);
            std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || work(&queue, &load))
                .expect("spawning a password hashing thread");
        }
        Self(Arc::new(Inner {
            jobs,
            permits: Arc::new(Semaphore::new(workers)),
            queue_wait,
            dummy: dummy(),
            load,
        }))
    }

    /// The hasher the settings describe.
    pub fn from_args(args: &PasswordArgs) -> Self {
        Self::new(
            args.password_hash_workers,
            Duration::from_millis(args.password_hash_queue_ms),
        )
    }

    /// A PHC string of `password` with a fresh random salt and the current parameters.
    /// 503 when no worker was free in time.
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let password = password.as_bytes().to_vec();
        self.run(move |memory| hash_with(&password, memory)).await?
    }

    /// Whether `password` matches `stored`. Without a stored hash (an unknown user) the
    /// check runs against a dummy of the same parameters and is `false`. 503 when no worker
    /// was free in time; 500 when `stored` is not a PHC string this hasher reads.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, ApiError> {
        let real = stored.is_some();
        let stored = stored.unwrap_or(&self.0.dummy).to_owned();
        let password = password.as_bytes().to_vec();
        let matches = self
            .run(move |memory| verify_with(&password, &stored, memory))
            .await??;
        Ok(matches && real)
    }

    /// Runs `work` on a worker once one is free, within the queue wait.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let inner = &self.0;
        let asked = Instant::now();
        let permit =
            tokio::time::timeout(inner.queue_wait, Arc::clone(&inner.permits).acquire_owned())
                .await;
        let Ok(Ok(permit)) = permit else {
            metrics::counter!("password_hash_refused_total").increment(1);
            let retry_after = inner.queue_wait.as_secs_f64().ceil().max(1.0) as u64;
            return Err(ApiError::Unavailable {
                retry_after,
                detail: "Too many password checks at once; try again in a moment.".into(),
            });
        };
        metrics::histogram!("password_hash_wait_seconds").record(asked.elapsed().as_secs_f64());
        let (done, result) = oneshot::channel();
        let span = tracing::Span::current();
        let work: Work = Box::new(move |memory| {
            let _entered = span.enter();
            let _ = done.send(work(memory));
        });
        inner
            .jobs
            .send(Job { work, permit })
            .map_err(|_| anyhow!("the password hashing workers are gone"))?;
        Ok(result
            .await
            .map_err(|_| anyhow!("a password hashing worker failed"))?)
    }

    /// The most workers that were ever hashing at once.
    pub fn peak_busy(&self) -> usize {
        self.0.load.peak.load(Ordering::Relaxed)
    }
}

/// A worker: takes jobs until the hasher is dropped, reusing one block of memory.
fn work(queue: &Mutex<mpsc::Receiver<Job>>, load: &Load) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(Job { work, permit }) = job else {
            return;
        };
        let busy = load.busy.fetch_add(1, Ordering::Relaxed) + 1;
        load.peak.fetch_max(busy, Ordering::Relaxed);
        if std::panic::catch_unwind(AssertUnwindSafe(|| work(&mut memory))).is_err() {
            tracing::error!("password hashing panicked");
        }
        load.busy.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
    }
}

/// `memory` with room for `params`' blocks (grown once, then reused).
fn room(memory: &mut Vec<Block>, params: &Params) -> usize {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    blocks
}

fn hash_with(password: &[u8], memory: &mut Vec<Block>) -> Result<String, ApiError> {
    let params = params();
    let salt = SaltString::generate(&mut OsRng);
    let mut raw_salt = [0u8; Salt::MAX_LENGTH];
    let raw_salt = salt
        .decode_b64(&mut raw_salt)
        .map_err(|e| anyhow!("decoding a fresh salt: {e}"))?;
    let mut out = [0u8; OUTPUT_LEN];
    let blocks = room(memory, &params);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, raw_salt, &mut out, &mut memory[..blocks])
        .map_err(|e| anyhow!("hashing a password: {e}"))?;
    phc(&params, salt.as_salt(), &out)
}

fn phc(params: &Params, salt: Salt<'_>, out: &[u8]) -> Result<String, ApiError> {
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| anyhow!("argon2 parameters: {e}"))?,
        salt: Some(salt),
        hash: Some(Output::new(out).map_err(|e| anyhow!("argon2 output: {e}"))?),
    };
    Ok(hash.to_string())
}

fn verify_with(password: &[u8], stored: &str, memory: &mut Vec<Block>) -> Result<bool, ApiError> {
    let unreadable = |e: argon2::password_hash::Error| anyhow!("stored hash unreadable: {e}");
    let parsed = PasswordHash::new(stored).map_err(unreadable)?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(unreadable)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| anyhow!("stored hash unreadable: {e}"))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(unreadable)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(anyhow!("stored hash has no salt or no hash").into());
    };
    let mut raw_salt = [0u8; Salt::MAX_LENGTH];
    let raw_salt = salt.decode_b64(&mut raw_salt).map_err(unreadable)?;
    let mut out = vec![0u8; expected.len()];
    let blocks = room(memory, &params);
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, raw_salt, &mut out, &mut memory[..blocks])
        .map_err(|e| anyhow!("verifying a password: {e}"))?;
    Ok(out.ct_eq(expected.as_bytes()).into())
}

/// A PHC string of the current parameters with a random salt and a random "hash": checking
/// against it costs what a real check costs, and no password produces its output.
fn dummy() -> String {
    let mut bytes = [0u8; 16 + OUTPUT_LEN];
    OsRng.fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes[..16]).expect("16 bytes make a salt");
    phc(&params(), salt.as_salt(), &bytes[16..]).expect("the dummy hash is well formed")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> Hasher {
        Hasher::new(2, Duration::from_secs(60))
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let hasher = hasher();
        let stored = hasher.hash("correct horse battery").await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(
            hasher
                .verify("correct horse battery", Some(&stored))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse battery", Some(&stored))
                .await
                .unwrap()
        );
        let again = hasher.hash("correct horse battery").await.unwrap();
        assert_ne!(stored, again, "every hash has its own salt");
    }

    #[tokio::test]
    async fn a_hash_the_previous_code_stored_still_verifies() {
        // Made as user-service and url-shortener made them before this hasher: the argon2
        // crate's `PasswordHasher` with the same parameters.
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::generate(&mut OsRng);
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password(b"open sesame", &salt)
            .unwrap()
            .to_string();
        let hasher = hasher();
        assert!(hasher.verify("open sesame", Some(&old)).await.unwrap());
        assert!(!hasher.verify("open sesame!", Some(&old)).await.unwrap());
        // One stored before, written down, so a change of format on either side shows.
        let fixed = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                     PAWILv0lSNnqn/P1tbZnTr/BSDrLrmPHnPbBcq8xFY8";
        assert!(hasher.verify("open sesame", Some(fixed)).await.unwrap());
        assert!(!hasher.verify("open Sesame", Some(fixed)).await.unwrap());
    }

    #[tokio::test]
    async fn the_dummy_never_verifies_and_a_broken_hash_is_an_error() {
        let hasher = hasher();
        assert!(!hasher.verify("anything", None).await.unwrap());
        assert!(!hasher.verify("", None).await.unwrap());
        let err = hasher
            .verify("x", Some("not a phc string"))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 500);
    }

    #[tokio::test]
    async fn concurrent_hashes_never_run_on_more_than_the_workers() {
        let hasher = Hasher::new(2, Duration::from_secs(120));
        let checks: Vec<_> = (0..8)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&format!("password {i}")).await })
            })
            .collect();
        for check in checks {
            check.await.unwrap().unwrap();
        }
        assert_eq!(hasher.peak_busy(), 2, "both workers were used, never more");
    }

    #[tokio::test]
    async fn a_request_that_waits_too_long_is_refused_with_a_retry_after() {
        let hasher = Hasher::new(1, Duration::from_millis(1));
        let burst: Vec<_> = (0..4)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.verify("guess", None).await })
            })
            .collect();
        let mut refused = 0;
        for check in burst {
            match check.await.unwrap() {
                Ok(verified) => assert!(!verified),
                Err(ApiError::Unavailable { retry_after, .. }) => {
                    assert_eq!(retry_after, 1);
                    refused += 1;
                }
                Err(other) => panic!("{other}"),
            }
        }
        assert!(
            refused >= 1,
            "a burst past one worker was queued without bound"
        );
        assert_eq!(hasher.peak_busy(), 1);
    }
}
