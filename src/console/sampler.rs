//! The console's time series: a bounded in-memory sampler.
//!
//! Every [`SAMPLE_INTERVAL`] the sampler renders the broker's Prometheus
//! exposition with the very function `/metrics` uses
//! ([`crate::metrics::Metrics::render`]), parses it ([`parse_exposition`])
//! and keeps the families the pages chart ([`KEPT_FAMILIES`]) in ring
//! buffers: a fixed number of points per series and a fixed number of
//! series, so memory stays bounded whatever the traffic or the number of
//! topics and groups. Numbers on the pages are therefore those of
//! `/metrics`, sampled.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use crate::broker::Broker;

/// Time between two samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// Points kept per series (5 minutes at the sample interval).
pub const POINTS: usize = 150;
/// Series kept at most; new series beyond it are dropped until old ones
/// age out.
pub const MAX_SERIES: usize = 2000;

/// Metric families the sampler keeps (everything else is dropped).
pub const KEPT_FAMILIES: &[&str] = &[
    "strata_bytes_in_total",
    "strata_bytes_out_total",
    "strata_records_in_total",
    "strata_requests_total",
    "strata_request_errors_total",
    "strata_connections",
    "strata_partitions_led",
    "strata_object_store_requests_total",
    "strata_object_store_bytes_total",
    "strata_topic_bytes_in_total",
    "strata_topic_bytes_out_total",
    "strata_topic_records_in_total",
    "strata_wal_commit_duration_seconds_sum",
    "strata_wal_commit_duration_seconds_count",
    "strata_wal_flush_duration_seconds_sum",
    "strata_wal_flush_duration_seconds_count",
    "kafka_consumergroup_lag",
    "kafka_consumergroup_lag_sum",
];

/// One sample line of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `k`, if present.
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// The canonical series key (see [`series_key`]).
    pub fn key(&self) -> String {
        let labels: Vec<(&str, &str)> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        series_key(&self.name, &labels)
    }
}

/// `name{k="v",...}` with label values escaped as in the exposition format
/// (labels in the given order), or `name` without labels.
pub fn series_key(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let mut s = String::with_capacity(name.len() + 16 * labels.len());
    s.push_str(name);
    s.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

/// Parses the sample lines of a Prometheus text exposition (comments and
/// malformed lines are skipped, never a panic).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let end = loop {
            // Skip separators.
            while let Some((_, c)) = chars.peek() {
                if *c == ',' || c.is_whitespace() {
                    chars.next();
                } else {
                    break;
                }
            }
            let (start, c) = chars.next()?;
            if c == '}' {
                break start + 1;
            }
            let mut key_end = start;
            let mut found_eq = false;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    key_end = i;
                    found_eq = true;
                    break;
                }
            }
            if !found_eq {
                return None;
            }
            let key = r[start..key_end].trim().to_string();
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut val = String::new();
            loop {
                let (_, c) = chars.next()?;
                match c {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => val.push('\n'),
                        other => val.push(other),
                    },
                    c => val.push(c),
                }
            }
            labels.push((key, val));
        };
        rest = &r[end..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse::<f64>().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A parsed exposition with lookups.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub samples: Vec<Sample>,
}

impl Snapshot {
    pub fn parse(text: &str) -> Snapshot {
        Snapshot {
            samples: parse_exposition(text),
        }
    }

    /// Samples of a family whose labels include every `filter` pair.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.name == name && filter.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }

    /// Sum of the matching samples (0 when none).
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.find(name, filter).map(|s| s.value).sum()
    }

    /// The first matching sample's value.
    pub fn get(&self, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
        self.find(name, filter).next().map(|s| s.value)
    }
}

/// Ring buffers of sampled series.
#[derive(Debug)]
pub struct Sampler {
    points: usize,
    max_series: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    times: VecDeque<i64>,
    series: BTreeMap<String, VecDeque<f64>>,
}

/// One series over the window: (time ms, value) points.
pub type Points = Vec<(i64, f64)>;

impl Sampler {
    pub fn new(points: usize, max_series: usize) -> Sampler {
        Sampler {
            points: points.max(2),
            max_series,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records one sample of every given series at `now_ms`. Series absent
    /// from this sample get a gap (NaN); series with only gaps are dropped.
    pub fn record(&self, now_ms: i64, values: impl IntoIterator<Item = (String, f64)>) {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        inner.times.push_back(now_ms);
        let full = inner.times.len() > self.points;
        if full {
            inner.times.pop_front();
        }
        let n = inner.times.len();
        for ring in inner.series.values_mut() {
            ring.push_back(f64::NAN);
            if ring.len() > n {
                ring.pop_front();
            }
        }
        for (key, v) in values {
            if let Some(ring) = inner.series.get_mut(&key) {
                if let Some(last) = ring.back_mut() {
                    *last = v;
                }
            } else if inner.series.len() < self.max_series {
                let mut ring: VecDeque<f64> = std::iter::repeat_n(f64::NAN, n - 1).collect();
                ring.push_back(v);
                inner.series.insert(key, ring);
            }
        }
        inner.series.retain(|_, r| r.iter().any(|v| !v.is_nan()));
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.inner.lock().series.len()
    }

    /// Number of points in the window.
    pub fn len(&self) -> usize {
        self.inner.lock().times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Raw values of one series (gauges).
    pub fn values(&self, key: &str) -> Points {
        let g = self.inner.lock();
        match g.series.get(key) {
            None => Vec::new(),
            Some(r) => g
                .times
                .iter()
                .zip(r.iter())
                .filter(|(_, v)| !v.is_nan())
                .map(|(t, v)| (*t, *v))
                .collect(),
        }
    }

    /// Sum over every series whose key starts with `prefix` (gauges): a
    /// point per sample where at least one of them has a value.
    pub fn values_sum(&self, prefix: &str) -> Points {
        self.combine(prefix, |t, r| {
            let mut out = vec![f64::NAN; t.len()];
            for (i, v) in r.iter().enumerate() {
                if !v.is_nan() {
                    out[i] = if out[i].is_nan() { *v } else { out[i] + v };
                }
            }
            out
        })
    }

    /// Per-second rate of every counter series whose key starts with
    /// `prefix`, summed: a point per pair of consecutive samples. Counter
    /// resets and gaps count as no traffic.
    pub fn rate_sum(&self, prefix: &str) -> Points {
        self.combine(prefix, |t, r| {
            let mut out = vec![f64::NAN; t.len()];
            for i in 1..t.len() {
                let dt = (t[i] - t[i - 1]) as f64 / 1000.0;
                let d = r[i] - r[i - 1];
                let rate = if dt > 0.0 && d.is_finite() && d >= 0.0 {
                    d / dt
                } else {
                    0.0
                };
                out[i] = rate;
            }
            out
        })
    }

    /// Applies `f` to each series matching `prefix` and sums the outputs.
    fn combine(&self, prefix: &str, f: impl Fn(&[i64], &[f64]) -> Vec<f64>) -> Points {
        let g = self.inner.lock();
        let times: Vec<i64> = g.times.iter().copied().collect();
        let mut total = vec![f64::NAN; times.len()];
        let matching = g
            .series
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix));
        for (_, ring) in matching {
            let r: Vec<f64> = ring.iter().copied().collect();
            for (i, v) in f(&times, &r).into_iter().enumerate() {
                if !v.is_nan() {
                    total[i] = if total[i].is_nan() { v } else { total[i] + v };
                }
            }
        }
        times
            .into_iter()
            .zip(total)
            .filter(|(_, v)| !v.is_nan())
            .collect()
    }

    /// Mean of `sum` increments over `count` increments per sample pair
    /// (e.g. a histogram's mean latency per interval), NaN-free.
    pub fn mean_per_interval(&self, sum_key: &str, count_key: &str) -> Points {
        let s = self.values(sum_key);
        let c = self.values(count_key);
        let c: BTreeMap<i64, f64> = c.into_iter().collect();
        let mut out = Vec::new();
        for w in s.windows(2) {
            let (t0, s0) = w[0];
            let (t1, s1) = w[1];
            if let (Some(c0), Some(c1)) = (c.get(&t0), c.get(&t1)) {
                let dc = c1 - c0;
                out.push((t1, if dc > 0.0 { (s1 - s0) / dc } else { 0.0 }));
            }
        }
        out
    }
}

/// Whether a sample belongs to a kept family.
pub fn kept(s: &Sample) -> bool {
    KEPT_FAMILIES.contains(&s.name.as_str())
}

/// Renders the broker's exposition off the async workers (it reads
/// `/proc`), exactly as `/metrics` does.
pub async fn render_metrics(broker: &Arc<Broker>) -> String {
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.metrics.render(&b))
        .await
        .unwrap_or_default()
}

/// Samples the broker until it shuts down or is dropped.
pub fn start(broker: &Arc<Broker>, sampler: Arc<Sampler>) {
    let weak: Weak<Broker> = Arc::downgrade(broker);
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(SAMPLE_INTERVAL);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            let Some(b) = weak.upgrade() else { return };
            if b.is_shutting_down() {
                return;
            }
            let text = render_metrics(&b).await;
            let now = b.clock.now_ms();
            drop(b);
            let values: Vec<(String, f64)> = parse_exposition(&text)
                .into_iter()
                .filter(kept)
                .map(|s| (s.key(), s.value))
                .collect();
            sampler.record(now, values);
            tracing::trace!(series = sampler.series_count(), "console sample");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_labels_and_escapes() {
        let text = "# HELP x y\n# TYPE x counter\nx 3\n\
                    a_total{op=\"get\",status=\"ok\"} 12\n\
                    g{consumergroup=\"we\\\"ird\\\\g\\nx\",topic=\"t\",partition=\"0\"} 7\n\
                    h_bucket{le=\"+Inf\"} 4\n\
                    bad{unterminated=\"x 1\n\
                    nan_value abc\n\
                    inf +Inf\n";
        let s = parse_exposition(text);
        assert_eq!(s.len(), 5, "{s:?}");
        assert_eq!(s[0].name, "x");
        assert_eq!(s[0].value, 3.0);
        assert_eq!(s[1].label("op"), Some("get"));
        assert_eq!(s[1].label("status"), Some("ok"));
        assert_eq!(s[2].label("consumergroup"), Some("we\"ird\\g\nx"));
        assert_eq!(s[2].label("partition"), Some("0"));
        assert_eq!(s[3].label("le"), Some("+Inf"));
        assert!(s[4].value.is_infinite());
        // The key round-trips the exposition's escaping.
        assert_eq!(
            s[2].key(),
            "g{consumergroup=\"we\\\"ird\\\\g\\nx\",topic=\"t\",partition=\"0\"}"
        );
        assert_eq!(series_key("plain", &[]), "plain");
    }

    #[test]
    fn never_panics_on_garbage() {
        for t in [
            "{", "}", "a{", "a{b", "a{b=", "a{b=\"", "a{b=\"\\", "a{}", "a{} x", "=\"\" 1",
        ] {
            let _ = parse_exposition(t);
        }
        assert_eq!(parse_exposition("a{} 5")[0].value, 5.0);
    }

    #[test]
    fn ring_buffers_are_bounded() {
        let s = Sampler::new(10, 3);
        for i in 0..100 {
            s.record(i * 1000, (0..10).map(|k| (format!("s{k}"), (i * k) as f64)));
        }
        assert_eq!(s.len(), 10);
        assert_eq!(s.series_count(), 3, "series capped");
        assert_eq!(s.values("s1").len(), 10);
        assert_eq!(s.values("s1").last(), Some(&(99_000, 99.0)));
        assert!(s.values("s9").is_empty(), "dropped over the cap");
    }

    #[test]
    fn absent_series_age_out() {
        let s = Sampler::new(3, 10);
        s.record(0, [("a".to_string(), 1.0), ("b".to_string(), 1.0)]);
        for t in 1..=3 {
            s.record(t * 1000, [("a".to_string(), 1.0)]);
        }
        assert_eq!(s.series_count(), 1);
        assert!(s.values("b").is_empty());
    }

    #[test]
    fn rates_and_sums() {
        let s = Sampler::new(10, 10);
        s.record(0, [("c{x=\"1\"}".into(), 0.0), ("c{x=\"2\"}".into(), 10.0)]);
        s.record(
            2000,
            [("c{x=\"1\"}".into(), 20.0), ("c{x=\"2\"}".into(), 14.0)],
        );
        // A reset counts as nothing, not a negative rate.
        s.record(
            4000,
            [("c{x=\"1\"}".into(), 2.0), ("c{x=\"2\"}".into(), 18.0)],
        );
        let r = s.rate_sum("c{");
        assert_eq!(r, vec![(2000, 12.0), (4000, 2.0)]);
        let v = s.values_sum("c{");
        assert_eq!(v, vec![(0, 10.0), (2000, 34.0), (4000, 20.0)]);
        // A series that starts later is summed from where it exists.
        s.record(6000, [("c{x=\"3\"}".into(), 5.0)]);
        assert_eq!(s.values_sum("c{").last(), Some(&(6000, 5.0)));
    }

    #[test]
    fn mean_per_interval() {
        let s = Sampler::new(10, 10);
        s.record(0, [("s".into(), 0.0), ("n".into(), 0.0)]);
        s.record(1000, [("s".into(), 0.5), ("n".into(), 10.0)]);
        s.record(2000, [("s".into(), 0.5), ("n".into(), 10.0)]);
        assert_eq!(
            s.mean_per_interval("s", "n"),
            vec![(1000, 0.05), (2000, 0.0)]
        );
    }

    #[test]
    fn snapshot_lookups() {
        let s = Snapshot::parse(
            "r{operation=\"get\",status=\"ok\"} 2\nr{operation=\"get\",status=\"error\"} 1\nr{operation=\"put\",status=\"error\"} 4\n",
        );
        assert_eq!(s.sum("r", &[("status", "error")]), 5.0);
        assert_eq!(
            s.get("r", &[("operation", "get"), ("status", "ok")]),
            Some(2.0)
        );
        assert_eq!(s.get("missing", &[]), None);
    }
}
