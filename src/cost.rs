//! Per-topic cost metering of the object store.
//!
//! Every request the broker makes to the store (each attempt: a retried PUT
//! is billed twice) and every byte it moves is attributed to a topic, found
//! from the object's key:
//!
//! - `segments/<topic-id>/...` and local mode's `wal/.../<topic-id>-...seg`
//!   belong to their topic;
//! - a shared WAL object belongs to the topics whose batches it holds, each
//!   by its share of the object's bytes (registered by the WAL before the
//!   PUT: [`CostMeter::wal_object`]); a ranged GET is charged to the topics
//!   whose bytes it overlaps; its DELETE by the same shares;
//! - anything else (listings of `wal/`, the ownership marker, WAL objects no
//!   longer remembered) is the cluster's own overhead, reported as the
//!   topic `__cluster`.
//!
//! The estimate of a month's cost (`CostMeter::estimate`) extrapolates the
//! request costs seen since the broker started to 30 days and adds the
//! storage of the bytes the topic holds now, at the configured price sheet
//! (S3 Standard list prices, us-east-1, by default).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Operations billed.
pub const OPS: [&str; 5] = ["put", "get", "delete", "list", "head"];
pub const PUT: usize = 0;
pub const GET: usize = 1;
pub const DELETE: usize = 2;
pub const LIST: usize = 3;
pub const HEAD: usize = 4;

/// Shared WAL objects remembered for attribution (beyond this the oldest
/// are forgotten and their later requests count as the cluster's).
const MAX_WAL_OBJECTS: usize = 65_536;

/// Prices (USD) of object-store requests and storage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct PriceSheet {
    /// PUT, COPY, POST (and multipart parts) per 1,000 requests.
    pub put_per_1000: f64,
    /// GET (and ranged GET) per 1,000 requests.
    pub get_per_1000: f64,
    /// LIST per 1,000 requests.
    pub list_per_1000: f64,
    /// DELETE per 1,000 requests (free on S3).
    pub delete_per_1000: f64,
    /// HEAD per 1,000 requests.
    pub head_per_1000: f64,
    /// Storage per GB-month (S3's GB is 2^30 bytes).
    pub storage_gb_month: f64,
}

impl Default for PriceSheet {
    /// S3 Standard, us-east-1 list prices.
    fn default() -> Self {
        PriceSheet {
            put_per_1000: 0.005,
            get_per_1000: 0.0004,
            list_per_1000: 0.005,
            delete_per_1000: 0.0,
            head_per_1000: 0.0004,
            storage_gb_month: 0.023,
        }
    }
}

/// Errors loading a price sheet.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("cannot read price sheet {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid price sheet {path}: {message}")]
    Parse { path: String, message: String },
}

impl PriceSheet {
    /// Load a TOML price sheet (every field optional; see `docs/cost.md`).
    pub fn load(path: &std::path::Path) -> Result<PriceSheet, CostError> {
        let text = std::fs::read_to_string(path).map_err(|source| CostError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let sheet: PriceSheet = toml::from_str(&text).map_err(|e| CostError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let prices = [
            sheet.put_per_1000,
            sheet.get_per_1000,
            sheet.list_per_1000,
            sheet.delete_per_1000,
            sheet.head_per_1000,
            sheet.storage_gb_month,
        ];
        if prices.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(CostError::Parse {
                path: path.display().to_string(),
                message: "prices must be finite and >= 0".to_string(),
            });
        }
        Ok(sheet)
    }

    /// USD per request of `op`.
    pub fn per_request(&self, op: usize) -> f64 {
        [
            self.put_per_1000,
            self.get_per_1000,
            self.delete_per_1000,
            self.list_per_1000,
            self.head_per_1000,
        ][op]
            / 1000.0
    }
}

/// Who pays for an object's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Payer {
    Topic(Uuid),
    /// Requests no topic can be charged for.
    Cluster,
}

/// Requests and bytes of one payer, per operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Requests (fractions where a shared WAL object's are split).
    pub requests: [f64; OPS.len()],
    pub bytes: [u64; OPS.len()],
}

impl Usage {
    /// USD of these requests at `prices`.
    pub fn request_cost(&self, prices: &PriceSheet) -> f64 {
        (0..OPS.len())
            .map(|op| self.requests[op] * prices.per_request(op))
            .sum()
    }
}

/// A month's estimated cost of one topic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Estimate {
    pub requests_usd: f64,
    pub storage_usd: f64,
    pub total_usd: f64,
}

/// What a topic has cost so far, as the HTTP topic resource and
/// `strata topic describe` show it (this broker's requests since it
/// started; sum `strata_topic_object_store_*` over brokers for a cluster).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicCost {
    /// Object-store requests by operation (put, get, delete, list, head).
    pub requests: std::collections::BTreeMap<String, f64>,
    /// Bytes moved by operation (put: up, get: down).
    pub bytes: std::collections::BTreeMap<String, u64>,
    /// Bytes the topic holds in the object store now.
    pub stored_bytes: u64,
    /// Seconds the requests were counted over.
    pub window_seconds: f64,
    /// A month at this rate, plus storage, at the price sheet.
    pub estimated_monthly: Estimate,
}

impl TopicCost {
    pub fn new(
        meter: &CostMeter,
        usage: &Usage,
        stored_bytes: u64,
        prices: &PriceSheet,
    ) -> TopicCost {
        TopicCost {
            requests: OPS
                .iter()
                .enumerate()
                .map(|(i, op)| (op.to_string(), usage.requests[i]))
                .collect(),
            bytes: [(PUT, "put"), (GET, "get")]
                .into_iter()
                .map(|(i, op)| (op.to_string(), usage.bytes[i]))
                .collect(),
            stored_bytes,
            window_seconds: meter.started.elapsed().as_secs_f64(),
            estimated_monthly: meter.estimate(usage, stored_bytes, prices),
        }
    }
}

/// The meter: one per store.
pub struct CostMeter {
    started: Instant,
    usage: Mutex<HashMap<Payer, Usage>>,
    /// Shared WAL objects: key -> (topic, byte offset, length) of its
    /// extents, oldest first in `order`.
    wal: Mutex<WalShares>,
    pub forgotten_wal_objects: AtomicU64,
}

#[derive(Default)]
struct WalShares {
    by_key: HashMap<String, Vec<(Uuid, u64, u64)>>,
    order: std::collections::VecDeque<String>,
}

impl Default for CostMeter {
    fn default() -> Self {
        CostMeter {
            started: Instant::now(),
            usage: Mutex::new(HashMap::new()),
            wal: Mutex::new(WalShares::default()),
            forgotten_wal_objects: AtomicU64::new(0),
        }
    }
}

/// The topic an object key belongs to, if it names one.
fn topic_of(key: &str) -> Option<Uuid> {
    let mut parts = key.split('/');
    match parts.next()? {
        "segments" => Uuid::try_parse(parts.next()?).ok(),
        "wal" => {
            let name = parts.nth(2)?;
            let id = name.strip_suffix(".seg")?.split('-').next()?;
            Uuid::try_parse(id).ok()
        }
        _ => None,
    }
}

impl CostMeter {
    /// Remember how a shared WAL object's bytes divide among topics (its
    /// extents: topic, byte offset, length), before it is written.
    pub fn wal_object(&self, key: &str, extents: Vec<(Uuid, u64, u64)>) {
        let mut w = self.wal.lock();
        if w.by_key.insert(key.to_string(), extents).is_none() {
            w.order.push_back(key.to_string());
        }
        while w.order.len() > MAX_WAL_OBJECTS {
            if let Some(old) = w.order.pop_front() {
                w.by_key.remove(&old);
                self.forgotten_wal_objects.fetch_add(1, Relaxed);
            }
        }
    }

    /// Shares of a byte range of `key`: (payer, fraction of the request,
    /// bytes). `range` None: the whole object.
    fn shares(&self, key: &str, range: Option<(u64, u64)>) -> Vec<(Payer, f64, u64)> {
        if let Some(t) = topic_of(key) {
            let n = range.map_or(0, |(a, b)| b.saturating_sub(a));
            return vec![(Payer::Topic(t), 1.0, n)];
        }
        let w = self.wal.lock();
        let Some(extents) = w.by_key.get(key) else {
            let n = range.map_or(0, |(a, b)| b.saturating_sub(a));
            return vec![(Payer::Cluster, 1.0, n)];
        };
        let mut per: Vec<(Payer, u64)> = Vec::new();
        for &(t, off, len) in extents {
            let overlap = match range {
                None => len,
                Some((a, b)) => (off + len).min(b).saturating_sub(off.max(a)),
            };
            if overlap == 0 {
                continue;
            }
            match per.iter_mut().find(|(p, _)| *p == Payer::Topic(t)) {
                Some((_, n)) => *n += overlap,
                None => per.push((Payer::Topic(t), overlap)),
            }
        }
        let total: u64 = per.iter().map(|(_, n)| n).sum();
        if total == 0 {
            // The header alone, or a range past every extent.
            let n = range.map_or(0, |(a, b)| b.saturating_sub(a));
            return vec![(Payer::Cluster, 1.0, n)];
        }
        per.into_iter()
            .map(|(p, n)| (p, n as f64 / total as f64, n))
            .collect()
    }

    /// Count `requests` of `op` on `key` (each attempt), over the bytes of
    /// `range` (`None`: the whole object, e.g. a PUT or DELETE).
    pub fn request(&self, op: usize, key: &str, requests: f64, range: Option<(u64, u64)>) {
        let shares = self.shares(key, range);
        let mut u = self.usage.lock();
        for (payer, frac, _) in shares {
            u.entry(payer).or_default().requests[op] += requests * frac;
        }
        drop(u);
        if op == DELETE && topic_of(key).is_none() {
            let mut w = self.wal.lock();
            if w.by_key.remove(key).is_some() {
                w.order.retain(|k| k != key);
            }
        }
    }

    /// Count `n` bytes moved by `op` (PUT up, GET down) on `key`, from
    /// `range` (`None`: the whole object).
    pub fn moved(&self, op: usize, key: &str, range: Option<(u64, u64)>, n: u64) {
        let shares = self.shares(key, range);
        let mut u = self.usage.lock();
        for (payer, frac, overlap) in shares {
            let b = match range {
                Some(_) if topic_of(key).is_none() => overlap,
                _ => (n as f64 * frac).round() as u64,
            };
            u.entry(payer).or_default().bytes[op] += b;
        }
    }

    /// Count a listing of `prefix` (one request per page).
    pub fn record_list(&self, prefix: &str, pages: f64) {
        let payer = prefix
            .strip_prefix("segments/")
            .and_then(|r| Uuid::try_parse(r.split('/').next()?).ok())
            .map_or(Payer::Cluster, Payer::Topic);
        self.usage.lock().entry(payer).or_default().requests[LIST] += pages;
    }

    /// Usage so far of every payer.
    pub fn snapshot(&self) -> Vec<(Payer, Usage)> {
        let mut v: Vec<(Payer, Usage)> = self
            .usage
            .lock()
            .iter()
            .map(|(p, u)| (*p, u.clone()))
            .collect();
        v.sort_by_key(|a| a.0);
        v
    }

    /// Usage so far of one topic.
    pub fn topic(&self, id: Uuid) -> Usage {
        self.usage
            .lock()
            .get(&Payer::Topic(id))
            .cloned()
            .unwrap_or_default()
    }

    /// Forget topics that no longer exist (bounded cardinality).
    pub fn retain_topics(&self, live: impl Fn(&Uuid) -> bool) {
        self.usage.lock().retain(|p, _| match p {
            Payer::Topic(t) => live(t),
            Payer::Cluster => true,
        });
    }

    /// A month (30 days) of `usage`'s request rate since the meter started
    /// (at least a minute, so a fresh broker does not extrapolate a burst)
    /// plus a month of storing `stored_bytes`.
    pub fn estimate(&self, usage: &Usage, stored_bytes: u64, prices: &PriceSheet) -> Estimate {
        const MONTH_SECS: f64 = 30.0 * 86_400.0;
        let secs = self.started.elapsed().as_secs_f64().max(60.0);
        let requests_usd = usage.request_cost(prices) / secs * MONTH_SECS;
        let storage_usd = stored_bytes as f64 / (1u64 << 30) as f64 * prices.storage_gb_month;
        Estimate {
            requests_usd,
            storage_usd,
            total_usd: requests_usd + storage_usd,
        }
    }
}

/// Render the per-topic counters and estimates (Prometheus text).
/// `topics`: (payer's label, usage, stored bytes) — the cluster's own
/// requests under `__cluster`.
pub fn render(
    out: &mut String,
    meter: &CostMeter,
    topics: &[(String, Usage, u64)],
    prices: &PriceSheet,
) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP strata_topic_object_store_requests_total Object-store requests attributed to a topic (a shared WAL object's by each topic's share of its bytes), by operation.\n# TYPE strata_topic_object_store_requests_total counter");
    for (name, u, _) in topics {
        for (i, op) in OPS.iter().enumerate() {
            let _ = writeln!(
                out,
                "strata_topic_object_store_requests_total{{topic=\"{name}\",operation=\"{op}\"}} {}",
                u.requests[i]
            );
        }
    }
    let _ = writeln!(out, "# HELP strata_topic_object_store_bytes_total Object-store bytes attributed to a topic, by operation (put: up, get: down).\n# TYPE strata_topic_object_store_bytes_total counter");
    for (name, u, _) in topics {
        for (i, op) in [(PUT, "put"), (GET, "get")] {
            let _ = writeln!(
                out,
                "strata_topic_object_store_bytes_total{{topic=\"{name}\",operation=\"{op}\"}} {}",
                u.bytes[i]
            );
        }
    }
    let _ = writeln!(out, "# HELP strata_topic_stored_bytes Bytes a topic holds in the object store.\n# TYPE strata_topic_stored_bytes gauge");
    for (name, _, stored) in topics {
        let _ = writeln!(
            out,
            "strata_topic_stored_bytes{{topic=\"{name}\"}} {stored}"
        );
    }
    let _ = writeln!(out, "# HELP strata_topic_estimated_monthly_cost_dollars A month of a topic's object-store requests at this broker's rate since start, and of its storage, at the price sheet.\n# TYPE strata_topic_estimated_monthly_cost_dollars gauge");
    for (name, u, stored) in topics {
        let e = meter.estimate(u, *stored, prices);
        for (c, v) in [
            ("requests", e.requests_usd),
            ("storage", e.storage_usd),
            ("total", e.total_usd),
        ] {
            let _ = writeln!(
                out,
                "strata_topic_estimated_monthly_cost_dollars{{topic=\"{name}\",component=\"{c}\"}} {v}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_topics() {
        let t = Uuid::from_u128(9);
        assert_eq!(
            topic_of(&crate::objstore::paths::segment(t, 1, 5, 0)),
            Some(t)
        );
        assert_eq!(
            topic_of(&crate::objstore::paths::wal_local(1, 2, t, 0, 0, 1, 77)),
            Some(t)
        );
        assert_eq!(topic_of(&crate::objstore::paths::wal(1, 2, 3)), None);
        assert_eq!(topic_of("cluster.owner"), None);
    }

    #[test]
    fn a_shared_wal_object_is_charged_by_each_topics_share() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let m = CostMeter::default();
        let key = crate::objstore::paths::wal(1, 1, 1);
        // 16-byte header, then 300 bytes of a and 100 of b.
        m.wal_object(&key, vec![(a, 16, 300), (b, 316, 100)]);
        m.request(PUT, &key, 1.0, None);
        m.moved(PUT, &key, None, 416);
        let (ua, ub) = (m.topic(a), m.topic(b));
        assert!((ua.requests[PUT] - 0.75).abs() < 1e-9);
        assert!((ub.requests[PUT] - 0.25).abs() < 1e-9);
        assert_eq!(ua.bytes[PUT] + ub.bytes[PUT], 416);
        // A ranged GET inside b's bytes is b's alone.
        m.request(GET, &key, 1.0, Some((320, 400)));
        m.moved(GET, &key, Some((320, 400)), 80);
        assert_eq!(m.topic(b).requests[GET], 1.0);
        assert_eq!(m.topic(b).bytes[GET], 80);
        assert_eq!(m.topic(a).requests[GET], 0.0);
        // The DELETE by the same shares; then the object is forgotten.
        m.request(DELETE, &key, 1.0, None);
        assert!((m.topic(a).requests[DELETE] - 0.75).abs() < 1e-9);
        m.request(GET, &key, 1.0, Some((0, 10)));
        let cluster = m
            .snapshot()
            .into_iter()
            .find(|(p, _)| *p == Payer::Cluster)
            .unwrap()
            .1;
        assert_eq!(cluster.requests[GET], 1.0);
    }

    #[test]
    fn estimates_extrapolate_requests_and_price_storage() {
        let m = CostMeter::default();
        let t = Uuid::from_u128(3);
        let key = crate::objstore::paths::segment(t, 0, 0, 0);
        m.request(PUT, &key, 1000.0, None);
        let p = PriceSheet::default();
        let e = m.estimate(&m.topic(t), 1 << 30, &p);
        // 1,000 PUTs ($0.005) in (at least) a minute, for 30 days.
        assert!(
            (e.requests_usd - 0.005 * 30.0 * 1440.0).abs() < 1e-6,
            "{e:?}"
        );
        assert!((e.storage_usd - 0.023).abs() < 1e-12);
        assert!((e.total_usd - e.requests_usd - e.storage_usd).abs() < 1e-12);
    }

    #[test]
    fn price_sheets_load_and_refuse_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok.toml");
        std::fs::write(&ok, "put-per-1000 = 0.0045\nstorage-gb-month = 0.02\n").unwrap();
        let s = PriceSheet::load(&ok).unwrap();
        assert_eq!(s.put_per_1000, 0.0045);
        assert_eq!(s.get_per_1000, 0.0004);
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "put-per-1000 = -1\n").unwrap();
        let e = PriceSheet::load(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains(">= 0"), "{e}");
        std::fs::write(&bad, "puts = 1\n").unwrap();
        assert!(PriceSheet::load(&bad)
            .unwrap_err()
            .to_string()
            .contains("bad.toml"));
        assert!(PriceSheet::load(&dir.path().join("none.toml"))
            .unwrap_err()
            .to_string()
            .contains("none.toml"));
    }
}
