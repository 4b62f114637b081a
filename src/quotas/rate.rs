//! A sampled rate over a sliding window, as Kafka's `Rate` over a
//! `SampledStat` (`quota.window.num` samples of `quota.window.size`): the
//! rate is the sum of the live samples over the time they cover, counted
//! as at least `samples - 1` full windows so that a new client cannot
//! burst far above its quota in its first moments. Pure: time is passed in.

/// Sampling of a [`RateWindow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Number of samples (`quota.window.num`, Kafka's default 11).
    pub samples: usize,
    /// Length of one sample (`quota.window.size.seconds`, default 1 s).
    pub window_ms: i64,
}

impl WindowConfig {
    /// The sampled horizon: samples older than this are forgotten.
    pub fn horizon_ms(&self) -> i64 {
        self.window_ms * self.samples as i64
    }
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    start_ms: i64,
    value: f64,
}

/// A rate measured over the last `samples` windows.
#[derive(Clone, Debug)]
pub struct RateWindow {
    cfg: WindowConfig,
    samples: Vec<Sample>,
    current: usize,
}

impl RateWindow {
    pub fn new(cfg: WindowConfig, now_ms: i64) -> RateWindow {
        let cfg = WindowConfig {
            samples: cfg.samples.max(2),
            window_ms: cfg.window_ms.max(1),
        };
        RateWindow {
            cfg,
            samples: vec![Sample {
                start_ms: now_ms,
                value: 0.0,
            }],
            current: 0,
        }
    }

    /// Add `value` at `now_ms`.
    pub fn record(&mut self, value: f64, now_ms: i64) {
        if now_ms - self.samples[self.current].start_ms >= self.cfg.window_ms {
            self.current = (self.current + 1) % self.cfg.samples;
            let fresh = Sample {
                start_ms: now_ms,
                value: 0.0,
            };
            if self.current >= self.samples.len() {
                self.samples.push(fresh);
            } else {
                self.samples[self.current] = fresh;
            }
        }
        self.samples[self.current].value += value;
    }

    /// Forget samples older than the whole horizon.
    fn purge(&mut self, now_ms: i64) {
        let horizon = self.cfg.horizon_ms();
        for s in &mut self.samples {
            if now_ms - s.start_ms >= horizon {
                *s = Sample {
                    start_ms: now_ms,
                    value: 0.0,
                };
            }
        }
    }

    /// Milliseconds the rate is measured over (Kafka's `Rate.windowSize`).
    pub fn window_size_ms(&mut self, now_ms: i64) -> i64 {
        self.purge(now_ms);
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed = now_ms - oldest;
        let full = elapsed / self.cfg.window_ms;
        let min_full = self.cfg.samples as i64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * self.cfg.window_ms;
        }
        elapsed.max(1)
    }

    /// Units per second now.
    pub fn rate(&mut self, now_ms: i64) -> f64 {
        let size = self.window_size_ms(now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total * 1000.0 / size as f64
    }

    /// Record `value`, then the throttle Kafka hands out for a rate above
    /// `bound`: the time after which the rate over the window is back at
    /// the bound, `(rate - bound) / bound × window` (the caller bounds it).
    pub fn record_and_throttle(&mut self, value: f64, bound: f64, now_ms: i64) -> i64 {
        self.record(value, now_ms);
        let size = self.window_size_ms(now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        let rate = total * 1000.0 / size as f64;
        if bound <= 0.0 || rate <= bound {
            return 0;
        }
        let t = ((rate - bound) / bound * size as f64).round();
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
    fn a_new_client_is_measured_over_the_minimum_window() {
        let mut r = RateWindow::new(CFG, 0);
        r.record(10_000.0, 0);
        // 10 full windows at least: 10 000 over 10 s.
        assert_eq!(r.window_size_ms(0), 10_000);
        assert!((r.rate(0) - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn throttle_brings_the_rate_back_to_the_bound() {
        let mut r = RateWindow::new(CFG, 0);
        // 20 000 bytes at once against 1000 B/s over a 10 s window: twice
        // the bound, so wait another 10 s.
        let t = r.record_and_throttle(20_000.0, 1000.0, 0);
        assert_eq!(t, 10_000);
        // Past the horizon the burst is forgotten.
        assert_eq!(r.rate(t + CFG.horizon_ms()), 0.0);
        // Under the bound: no throttle.
        let mut r = RateWindow::new(CFG, 0);
        assert_eq!(r.record_and_throttle(5_000.0, 1000.0, 0), 0);
    }

    #[test]
    fn old_samples_expire() {
        let mut r = RateWindow::new(CFG, 0);
        r.record(1_000_000.0, 0);
        assert!(r.rate(5_000) > 0.0);
        assert_eq!(r.rate(11_000), 0.0);
    }

    #[test]
    fn a_client_that_honours_its_throttle_gets_its_quota() {
        // Send 5000 bytes, wait the throttle (or 100 ms), repeat for 120 s:
        // the long-run rate converges to the bound.
        let mut r = RateWindow::new(CFG, 0);
        let (mut now, mut sent) = (0i64, 0f64);
        let bound = 20_000.0;
        while now < 120_000 {
            let t = r.record_and_throttle(5_000.0, bound, now);
            sent += 5_000.0;
            now += t.max(100);
        }
        let rate = sent * 1000.0 / now as f64;
        assert!((rate - bound).abs() / bound < 0.1, "rate {rate}");
    }

    #[test]
    fn throttle_fits_the_protocol_field() {
        let mut r = RateWindow::new(CFG, 0);
        assert_eq!(r.record_and_throttle(1e15, 1.0, 0), i32::MAX as i64);
    }
}
