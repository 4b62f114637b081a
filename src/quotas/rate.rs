//! The throttle of one quota entity: a token bucket refilled at the bound
//! and holding at most `(samples − 1) × window` worth of it (Kafka's
//! `quota.window.num` and `quota.window.size`, so a new or idle client
//! may burst that much before it is throttled, as with Kafka's sampled
//! `Rate`). Kafka's `Rate` forgets a whole sample at once when it leaves
//! the window, so a client with a backlog alternates between bursts and
//! long throttles and its long-run rate can land well above or below the
//! bound depending on request size; the bucket's long-run rate is the
//! bound (the same reason KIP-599 chose a token bucket for controller
//! mutations). Pure: time is passed in.

/// Sizing of a [`TokenBucket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Number of samples (`quota.window.num`, Kafka's default 11).
    pub samples: usize,
    /// Length of one sample (`quota.window.size.seconds`, default 1 s).
    pub window_ms: i64,
}

impl WindowConfig {
    /// How long a full bucket lasts at the bound: `(samples − 1) × window`.
    pub fn burst_ms(&self) -> i64 {
        self.window_ms.max(1) * (self.samples as i64 - 1).max(1)
    }
}

/// Units a quota entity may still use; negative while it is in debt.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    cfg: WindowConfig,
    /// None until the first use (the bucket starts full at the bound it
    /// is first used with).
    tokens: Option<f64>,
    last_ms: i64,
}

impl TokenBucket {
    pub fn new(cfg: WindowConfig, now_ms: i64) -> TokenBucket {
        TokenBucket {
            cfg,
            tokens: None,
            last_ms: now_ms,
        }
    }

    /// The bucket's capacity at `bound` units per second.
    fn capacity(&self, bound: f64) -> f64 {
        bound * self.cfg.burst_ms() as f64 / 1000.0
    }

    /// Tokens at `now_ms` with the bucket refilled at `bound`.
    pub fn tokens(&mut self, bound: f64, now_ms: i64) -> f64 {
        let cap = self.capacity(bound);
        let elapsed = (now_ms - self.last_ms).max(0) as f64;
        let t = match self.tokens {
            None => cap,
            Some(t) => (t + bound * elapsed / 1000.0).min(cap),
        };
        self.tokens = Some(t);
        self.last_ms = self.last_ms.max(now_ms);
        t
    }

    /// Take `value` at `now_ms`, then the throttle (ms) after which the
    /// bucket is out of debt again at `bound`; 0 while it is not in debt.
    pub fn record_and_throttle(&mut self, value: f64, bound: f64, now_ms: i64) -> i64 {
        let left = self.tokens(bound, now_ms) - value;
        self.tokens = Some(left);
        if bound <= 0.0 || left >= 0.0 {
            return 0;
        }
        let t = (-left / bound * 1000.0).ceil();
        t.clamp(0.0, i32::MAX as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: WindowConfig = WindowConfig {
        samples: 11,
        window_ms: 1000,
    };

    #[test]
    fn a_new_client_may_burst_samples_minus_one_windows_of_its_quota() {
        let mut r = TokenBucket::new(CFG, 0);
        // 10 windows of 1000 B/s: 10 000 bytes free, the next byte is not.
        assert_eq!(r.record_and_throttle(10_000.0, 1000.0, 0), 0);
        assert_eq!(r.record_and_throttle(1000.0, 1000.0, 0), 1000);
    }

    #[test]
    fn throttle_is_the_time_the_debt_takes_to_refill() {
        let mut r = TokenBucket::new(CFG, 0);
        // 30 000 bytes at once against 1000 B/s: 20 000 over the burst.
        assert_eq!(r.record_and_throttle(30_000.0, 1000.0, 0), 20_000);
        // Once that time has passed the debt is paid, nothing more.
        assert_eq!(r.tokens(1000.0, 20_000), 0.0);
        // An idle client refills only up to the burst.
        assert_eq!(r.tokens(1000.0, 1_000_000), 10_000.0);
    }

    #[test]
    fn a_client_that_honours_its_throttle_gets_its_quota() {
        // Any request size, any processing delay: send, wait the throttle
        // plus the delay, repeat for 120 s; the long-run rate is the bound
        // (plus the one burst at the start), never more.
        for size in [500.0, 5_000.0, 16_255.0, 32_000.0, 200_000.0] {
            for delay in [0, 1, 7, 40] {
                let mut r = TokenBucket::new(CFG, 0);
                let (mut now, mut sent) = (0i64, 0f64);
                let bound = 20_000.0;
                while now < 120_000 {
                    let t = r.record_and_throttle(size, bound, now);
                    sent += size;
                    now += t + delay;
                }
                let expected = bound * (now + CFG.burst_ms()) as f64 / 1000.0;
                assert!(
                    sent <= expected + size,
                    "size {size} delay {delay}: sent {sent}, at most {expected}"
                );
                // A client that could go faster than its bound gets it.
                if delay == 0 || size * 1000.0 / delay as f64 > bound {
                    assert!(
                        sent >= expected * 0.99,
                        "size {size} delay {delay}: sent {sent}, expected {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_client_with_a_backlog_gets_an_even_throttle_not_bursts() {
        // Requests queue up behind the mute: every throttle after the
        // first burst is the request's own share of the bound.
        let mut r = TokenBucket::new(CFG, 0);
        let mut now = 0;
        let mut throttles = Vec::new();
        for _ in 0..200 {
            let t = r.record_and_throttle(16_000.0, 200_000.0, now);
            throttles.push(t);
            now += t;
        }
        // The burst: 10 s of 200 000 B/s is 125 requests.
        assert!(throttles[..125].iter().all(|&t| t == 0), "{throttles:?}");
        assert!(throttles[125..].iter().all(|&t| t == 80), "{throttles:?}");
    }

    #[test]
    fn a_lowered_bound_caps_saved_tokens() {
        let mut r = TokenBucket::new(CFG, 0);
        assert_eq!(r.tokens(1000.0, 0), 10_000.0);
        assert_eq!(r.tokens(100.0, 0), 1_000.0);
    }

    #[test]
    fn throttle_fits_the_protocol_field() {
        let mut r = TokenBucket::new(CFG, 0);
        assert_eq!(r.record_and_throttle(1e15, 1.0, 0), i32::MAX as i64);
    }
}
