//! The one retry policy of every object-store operation.
//!
//! Layers: the S3 client's own retries are off (`RetryConfig::max_retries =
//! 0` in [`super::Store::open`]), so each attempt is one HTTP request bounded
//! by `--object-store-timeout-ms`. Retrying happens here, at the operation
//! level, for every caller alike (WAL uploads, segment uploads, tier reads,
//! GC listings and deletes): exponential backoff with jitter, a bound on
//! attempts and on elapsed time, and [`StoreError::is_retriable`] deciding
//! what is worth another attempt (never `AlreadyExists`, `NotFound` or a bad
//! URL). Attempts are counted per operation in
//! `strata_object_store_retries_total{operation}`.

use std::time::Duration;

use super::StoreError;

/// Backoff and limits of retried object-store operations.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Wait before the first retry; doubles on each further one.
    pub initial_backoff: Duration,
    /// Largest wait between two attempts.
    pub max_backoff: Duration,
    /// Attempts in all, the first included (`None`: no limit).
    pub max_attempts: Option<u32>,
    /// No retry starts once this much time has passed since the first
    /// attempt (`None`: no limit).
    pub max_elapsed: Option<Duration>,
    /// Seed of the jitter: the same seed gives the same waits.
    pub seed: u64,
}

impl Default for RetryPolicy {
    /// 100 ms doubling to 5 s, at most 5 attempts within 30 s.
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_attempts: Some(5),
            max_elapsed: Some(Duration::from_secs(30)),
            seed: 0x5EED_0B5E,
        }
    }
}

impl RetryPolicy {
    /// The default policy for a store whose attempts time out after
    /// `timeout`: retries may start until twice that (at least 30 s) has
    /// passed, so even a request that hung until its deadline is retried.
    pub fn for_timeout(timeout: Duration) -> RetryPolicy {
        let d = RetryPolicy::default();
        RetryPolicy {
            max_elapsed: d.max_elapsed.map(|m| m.max(timeout * 2)),
            ..d
        }
    }

    /// The same backoff without limits: for writes that must land (WAL
    /// objects), whose caller bounds them by shutdown instead.
    pub fn unbounded(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: None,
            max_elapsed: None,
            ..self.clone()
        }
    }

    /// Wait before retry number `retry` (0 = the first retry): exponential,
    /// capped, with "equal jitter" (half fixed, half random) so that many
    /// writers failing together do not retry in lockstep.
    pub fn backoff(&self, retry: u32, rng: &mut Rng) -> Duration {
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << retry.min(20))
            .min(self.max_backoff);
        let half = base / 2;
        let nanos = half.as_nanos().min(u64::MAX as u128) as u64;
        let jitter = if nanos == 0 {
            0
        } else {
            rng.next_u64() % (nanos + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// The wait before another attempt after `attempts` failed ones, `elapsed`
    /// after the first started; `None` when the policy gives up.
    pub fn next_wait(&self, attempts: u32, elapsed: Duration, rng: &mut Rng) -> Option<Duration> {
        if self.max_attempts.is_some_and(|m| attempts >= m) {
            return None;
        }
        let wait = self.backoff(attempts.saturating_sub(1), rng);
        if self.max_elapsed.is_some_and(|m| elapsed + wait > m) {
            return None;
        }
        Some(wait)
    }

    /// Run `attempt` until it succeeds, fails with an error not worth
    /// retrying, or the policy gives up (the last error is returned).
    /// `on_retry(error, attempts so far)` runs before each wait.
    pub async fn run<T, F, Fut>(
        &self,
        mut on_retry: impl FnMut(&StoreError, u32),
        mut attempt: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let started = tokio::time::Instant::now();
        let mut rng = Rng::new(self.seed);
        let mut attempts = 0u32;
        loop {
            let r = attempt(attempts).await;
            attempts += 1;
            match r {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_retriable() => return Err(e),
                Err(e) => match self.next_wait(attempts, started.elapsed(), &mut rng) {
                    None => return Err(e),
                    Some(wait) => {
                        on_retry(&e, attempts);
                        tokio::time::sleep(wait).await;
                    }
                },
            }
        }
    }
}

/// A small seeded generator (splitmix64): jitter and fault schedules stay
/// reproducible from a seed, with no global randomness.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> StoreError {
        StoreError::Backend {
            op: "put",
            key: "k".into(),
            message: "503".into(),
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered_within_bounds() {
        let p = RetryPolicy::default();
        let mut rng = Rng::new(1);
        for retry in 0..30 {
            let base = (p.initial_backoff * (1 << retry.min(20))).min(p.max_backoff);
            let w = p.backoff(retry, &mut rng);
            assert!(
                w >= base / 2 && w <= base,
                "retry {retry}: {w:?} vs {base:?}"
            );
        }
        // Same seed, same waits.
        let a: Vec<_> = (0..8).map(|i| p.backoff(i, &mut Rng::new(7))).collect();
        let b: Vec<_> = (0..8).map(|i| p.backoff(i, &mut Rng::new(7))).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn limits_on_attempts_and_elapsed_time() {
        let p = RetryPolicy {
            max_attempts: Some(3),
            max_elapsed: Some(Duration::from_secs(1)),
            ..RetryPolicy::default()
        };
        let mut rng = Rng::new(0);
        assert!(p.next_wait(1, Duration::ZERO, &mut rng).is_some());
        assert!(p.next_wait(2, Duration::ZERO, &mut rng).is_some());
        assert!(p.next_wait(3, Duration::ZERO, &mut rng).is_none());
        assert!(p
            .next_wait(1, Duration::from_millis(990), &mut rng)
            .is_none());
        let t = RetryPolicy::for_timeout(Duration::from_secs(30));
        assert!(
            t.next_wait(1, Duration::from_secs(30), &mut rng).is_some(),
            "a request that hung until the default timeout is retried"
        );
        let u = p.unbounded();
        assert!(u
            .next_wait(1_000, Duration::from_secs(86_400), &mut rng)
            .is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn run_retries_only_retriable_errors() {
        let p = RetryPolicy::default();
        let mut seen = Vec::new();
        let r = p
            .run(
                |_, n| seen.push(n),
                |n| async move {
                    if n < 2 {
                        Err(backend())
                    } else {
                        Ok(n)
                    }
                },
            )
            .await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(seen, vec![1, 2]);

        let mut calls = 0;
        let r: Result<(), _> = p
            .run(
                |_, _| {},
                |_| {
                    calls += 1;
                    async { Err(StoreError::AlreadyExists { key: "k".into() }) }
                },
            )
            .await;
        assert!(matches!(r, Err(StoreError::AlreadyExists { .. })));
        assert_eq!(calls, 1, "a precondition is never retried");

        let mut calls = 0;
        let started = tokio::time::Instant::now();
        let r: Result<(), _> = p
            .run(
                |_, _| {},
                |_| {
                    calls += 1;
                    async { Err(backend()) }
                },
            )
            .await;
        assert!(r.is_err());
        assert_eq!(calls, 5, "gives up after max_attempts");
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
