//! Quota enforcement on a broker, as Kafka's `ClientQuotaManager`: each
//! request's usage (produce request bytes, fetch response bytes, handler
//! time as a share of one thread) is recorded in a sampled rate per quota
//! entity; above the bound the response carries `throttle_time_ms` and the
//! connection is muted (its socket left unread) for that long, which also
//! holds back clients that ignore the field. Per-client traffic and
//! throttle counters are exported with a bounded number of client ids.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Mutex;

use kafka_protocol::messages::{ApiKey, ResponseKind};

use super::rate::{TokenBucket, WindowConfig};
use super::state::{QuotasState, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE};

/// The user every connection is: the broker has no authentication, and
/// Kafka names an unauthenticated principal `ANONYMOUS`.
pub const ANONYMOUS: &str = "ANONYMOUS";
/// Sensors (entity × quota kind) kept at most; the least recently used
/// goes first.
pub const MAX_SENSORS: usize = 10_000;
/// Client ids with their own metric series; the rest add up under
/// [`OTHER_CLIENTS`].
pub const MAX_CLIENT_SERIES: usize = 200;
/// Series of client ids beyond [`MAX_CLIENT_SERIES`].
pub const OTHER_CLIENTS: &str = "__other";

/// The three enforced quota kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Produce = 0,
    Fetch = 1,
    Request = 2,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Produce, Kind::Fetch, Kind::Request];
    fn key(self) -> &'static str {
        match self {
            Kind::Produce => PRODUCER_BYTE_RATE,
            Kind::Fetch => CONSUMER_BYTE_RATE,
            Kind::Request => REQUEST_PERCENTAGE,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Kind::Produce => "produce",
            Kind::Fetch => "fetch",
            Kind::Request => "request",
        }
    }
}

/// Per-connection quota state: until when (clock ms) it stays muted.
#[derive(Debug, Default)]
pub struct Mute(AtomicI64);

impl Mute {
    /// Mute until `until_ms` (or later, if already muted longer).
    pub fn extend(&self, until_ms: i64) {
        self.0.fetch_max(until_ms, Relaxed);
    }

    /// Milliseconds left at `now_ms`.
    pub fn remaining_ms(&self, now_ms: i64) -> i64 {
        (self.0.load(Relaxed) - now_ms).max(0)
    }

    /// Sleep until unmuted (the mute may grow meanwhile).
    pub async fn wait(&self, clock: &dyn crate::clock::Clock) {
        loop {
            let left = self.remaining_ms(clock.now_ms());
            if left <= 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(left as u64)).await;
        }
    }
}

struct Sensor {
    rate: TokenBucket,
    last_used_ms: i64,
}

#[derive(Default, Clone)]
struct ClientCounters {
    bytes_in: u64,
    bytes_out: u64,
    throttle_ms: [u64; 3],
    throttled: [u64; 3],
}

#[derive(Default)]
struct Inner {
    /// (kind, user tag, client tag): tags are empty when the matched
    /// entity does not name that component, so clients sharing a quota
    /// share its sensor, as in Kafka.
    sensors: HashMap<(Kind, String, String), Sensor>,
    clients: HashMap<String, ClientCounters>,
}

/// The broker's quota enforcement.
pub struct QuotaManager {
    cfg: WindowConfig,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for QuotaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaManager")
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// One request's usage.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub api: ApiKey,
    /// Bytes of the request frame.
    pub request_bytes: usize,
    /// Time the handler ran (not waits such as a fetch long-poll).
    pub handler_secs: f64,
}

impl QuotaManager {
    pub fn new(cfg: WindowConfig) -> QuotaManager {
        QuotaManager {
            cfg,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kafka's `getMaxValueInQuotaWindow`: a fetch asks for at most what
    /// the client's consumer quota allows over the window.
    pub fn cap_fetch_bytes(
        &self,
        quotas: &QuotasState,
        user: &str,
        client_id: Option<&str>,
        max: usize,
    ) -> usize {
        if quotas.is_empty() {
            return max;
        }
        match quotas.resolve(user, client_id.unwrap_or(""), CONSUMER_BYTE_RATE) {
            Some((bound, _)) => {
                let cap = (bound * self.cfg.burst_ms() as f64 / 1000.0) as usize;
                max.min(cap.max(1))
            }
            None => max,
        }
    }

    /// Record a request's usage and return the throttle time (ms), the
    /// largest over the quota kinds it is subject to; also stamps it on
    /// the response. The caller mutes the connection for that long.
    pub fn record(
        &self,
        quotas: &QuotasState,
        user: &str,
        client_id: Option<&str>,
        usage: Usage,
        resp: Option<&mut ResponseKind>,
        now_ms: i64,
    ) -> i64 {
        let client = client_id.unwrap_or("");
        let (bytes_in, bytes_out) = match (usage.api, resp.as_deref()) {
            (ApiKey::Produce, _) => (usage.request_bytes as u64, 0),
            (ApiKey::Fetch, Some(ResponseKind::Fetch(f))) => (0, fetch_bytes(f) as u64),
            _ => (0, 0),
        };
        let mut usages: Vec<(Kind, f64)> = Vec::with_capacity(2);
        if usage.api == ApiKey::Produce {
            usages.push((Kind::Produce, bytes_in as f64));
        }
        if usage.api == ApiKey::Fetch {
            usages.push((Kind::Fetch, bytes_out as f64));
        }
        if usage.api != ApiKey::ApiVersions {
            // Kafka's request quota unit: percent of one thread.
            usages.push((Kind::Request, usage.handler_secs * 100.0));
        }
        let mut inner = self.lock();
        let mut throttles = [0i64; 3];
        if !quotas.is_empty() {
            for (kind, value) in usages {
                let Some((bound, entity)) = quotas.resolve(user, client, kind.key()) else {
                    continue;
                };
                let key = (
                    kind,
                    if entity.user.is_some() { user } else { "" }.to_string(),
                    if entity.client_id.is_some() {
                        client
                    } else {
                        ""
                    }
                    .to_string(),
                );
                if !inner.sensors.contains_key(&key) && inner.sensors.len() >= MAX_SENSORS {
                    if let Some(oldest) = inner
                        .sensors
                        .iter()
                        .min_by_key(|(_, s)| s.last_used_ms)
                        .map(|(k, _)| k.clone())
                    {
                        inner.sensors.remove(&oldest);
                    }
                }
                let cfg = self.cfg;
                let s = inner.sensors.entry(key).or_insert_with(|| Sensor {
                    rate: TokenBucket::new(cfg, now_ms),
                    last_used_ms: now_ms,
                });
                s.last_used_ms = now_ms;
                let t = s.rate.record_and_throttle(value, bound, now_ms);
                tracing::trace!(
                    client,
                    kind = kind.label(),
                    value,
                    bound,
                    now_ms,
                    throttle_ms = t,
                    "quota usage"
                );
                // Kafka bounds the request-time throttle by one sample
                // window; byte-rate throttles are not bounded.
                throttles[kind as usize] = if kind == Kind::Request {
                    t.min(cfg.window_ms)
                } else {
                    t
                };
            }
        }
        let n = inner.clients.len();
        let series = if inner.clients.contains_key(client) || n < MAX_CLIENT_SERIES {
            client
        } else {
            OTHER_CLIENTS
        };
        let c = inner.clients.entry(series.to_string()).or_default();
        c.bytes_in += bytes_in;
        c.bytes_out += bytes_out;
        for k in Kind::ALL {
            let t = throttles[k as usize];
            if t > 0 {
                c.throttle_ms[k as usize] += t as u64;
                c.throttled[k as usize] += 1;
            }
        }
        drop(inner);
        let throttle = throttles.into_iter().max().unwrap_or(0);
        if throttle > 0 {
            if let Some(r) = resp {
                set_throttle(r, throttle.min(i32::MAX as i64) as i32);
            }
        }
        throttle
    }

    /// Append the per-client metrics.
    pub fn render_metrics(&self, quotas: &QuotasState, o: &mut String) {
        crate::metrics::write_metric(
            o,
            "strata_quota_entities",
            "gauge",
            "Client quota entities configured.",
            quotas.len(),
        );
        let mut clients: Vec<(String, ClientCounters)> = self
            .lock()
            .clients
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        clients.sort_by(|a, b| a.0.cmp(&b.0));
        let series: [(&str, &str, ClientField); 2] = [
            (
                "strata_client_bytes_in_total",
                "Produce request bytes, by client id (at most 200 ids, the rest as __other).",
                |c| c.bytes_in,
            ),
            (
                "strata_client_bytes_out_total",
                "Fetch response record bytes, by client id (at most 200 ids, the rest as __other).",
                |c| c.bytes_out,
            ),
        ];
        for (name, help, f) in series {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for (id, c) in &clients {
                let _ = writeln!(o, "{name}{{client_id=\"{}\"}} {}", escape(id), f(c));
            }
        }
        let per_kind: [(&str, &str, KindField); 2] = [
            (
                "strata_client_throttle_time_ms_total",
                "Milliseconds of throttle handed out, by client id and quota (produce, fetch, request).",
                |c, k| c.throttle_ms[k],
            ),
            (
                "strata_client_throttled_total",
                "Responses throttled, by client id and quota.",
                |c, k| c.throttled[k],
            ),
        ];
        for (name, help, f) in per_kind {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for (id, c) in &clients {
                for k in Kind::ALL {
                    let v = f(c, k as usize);
                    if v > 0 {
                        let _ = writeln!(
                            o,
                            "{name}{{client_id=\"{}\",quota=\"{}\"}} {v}",
                            escape(id),
                            k.label()
                        );
                    }
                }
            }
        }
    }
}

/// Selects one counter of [`ClientCounters`].
type ClientField = fn(&ClientCounters) -> u64;
/// Selects one per-kind counter of [`ClientCounters`].
type KindField = fn(&ClientCounters, usize) -> u64;

/// Record bytes of a fetch response.
fn fetch_bytes(f: &kafka_protocol::messages::FetchResponse) -> usize {
    f.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum()
}

/// A Prometheus label value.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Stamp `throttle_time_ms` on the responses that carry it.
pub fn set_throttle(r: &mut ResponseKind, ms: i32) {
    macro_rules! stamp {
        ($($v:ident),*) => {
            match r {
                $(ResponseKind::$v(x) => x.throttle_time_ms = x.throttle_time_ms.max(ms),)*
                _ => {}
            }
        };
    }
    stamp!(
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        CreateTopics,
        DeleteTopics,
        DescribeConfigs,
        AlterConfigs,
        InitProducerId,
        DescribeClientQuotas,
        AlterClientQuotas
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quotas::state::{EntityName, QuotaAlteration, QuotaCommand, QuotaEntity};

    fn quotas(client: Option<&str>, key: &str, v: f64) -> QuotasState {
        let mut s = QuotasState::default();
        let cmd = QuotaCommand::Alter {
            alterations: vec![QuotaAlteration {
                entity: QuotaEntity {
                    user: None,
                    client_id: Some(
                        client.map_or(EntityName::Default, |c| EntityName::Named(c.into())),
                    ),
                },
                set: [(key.to_string(), v)].into_iter().collect(),
                remove: vec![],
            }],
        };
        s.check(&cmd).unwrap();
        s.apply_checked(cmd);
        s
    }

    fn produce(bytes: usize) -> Usage {
        Usage {
            api: ApiKey::Produce,
            request_bytes: bytes,
            handler_secs: 0.0,
        }
    }

    const CFG: WindowConfig = WindowConfig {
        samples: 11,
        window_ms: 100,
    };

    #[test]
    fn only_the_client_over_its_quota_is_throttled() {
        let m = QuotaManager::new(CFG);
        let q = quotas(Some("slow"), PRODUCER_BYTE_RATE, 1000.0);
        let mut resp = ResponseKind::Produce(Default::default());
        // 1 s of quota is free (the minimum window), then throttled.
        assert_eq!(
            m.record(
                &q,
                ANONYMOUS,
                Some("slow"),
                produce(1000),
                Some(&mut resp),
                0
            ),
            0
        );
        let t = m.record(
            &q,
            ANONYMOUS,
            Some("slow"),
            produce(2000),
            Some(&mut resp),
            0,
        );
        assert!(t > 0);
        let ResponseKind::Produce(p) = &resp else {
            unreachable!()
        };
        assert_eq!(p.throttle_time_ms as i64, t);
        assert_eq!(
            m.record(&q, ANONYMOUS, Some("fast"), produce(1_000_000), None, 0),
            0
        );
        let mut o = String::new();
        m.render_metrics(&q, &mut o);
        assert!(
            o.contains("strata_client_throttled_total{client_id=\"slow\",quota=\"produce\"} 1"),
            "{o}"
        );
        assert!(o.contains("strata_client_bytes_in_total{client_id=\"fast\"} 1000000"));
    }

    #[test]
    fn a_user_quota_applies_to_that_authenticated_user_only() {
        let m = QuotaManager::new(CFG);
        let mut q = QuotasState::default();
        let cmd = QuotaCommand::Alter {
            alterations: vec![QuotaAlteration {
                entity: QuotaEntity {
                    user: Some(EntityName::Named("alice".into())),
                    client_id: None,
                },
                set: [(PRODUCER_BYTE_RATE.to_string(), 1000.0)]
                    .into_iter()
                    .collect(),
                remove: vec![],
            }],
        };
        q.check(&cmd).unwrap();
        q.apply_checked(cmd);
        assert_eq!(m.record(&q, "alice", Some("p"), produce(1000), None, 0), 0);
        assert!(m.record(&q, "alice", Some("p"), produce(5000), None, 0) > 0);
        // The same client id as another user, or unauthenticated: no quota.
        assert_eq!(
            m.record(&q, "bob", Some("p"), produce(1_000_000), None, 0),
            0
        );
        assert_eq!(
            m.record(&q, ANONYMOUS, Some("p"), produce(1_000_000), None, 0),
            0
        );
    }

    #[test]
    fn default_client_quota_is_per_client() {
        let m = QuotaManager::new(CFG);
        let q = quotas(None, PRODUCER_BYTE_RATE, 1000.0);
        assert!(m.record(&q, ANONYMOUS, Some("a"), produce(5000), None, 0) > 0);
        // Another client id has its own sensor under the default quota.
        assert_eq!(m.record(&q, ANONYMOUS, Some("b"), produce(500), None, 0), 0);
    }

    #[test]
    fn fetch_size_is_capped_by_the_consumer_quota() {
        let m = QuotaManager::new(CFG);
        let q = quotas(Some("c"), CONSUMER_BYTE_RATE, 1000.0);
        assert_eq!(m.cap_fetch_bytes(&q, ANONYMOUS, Some("c"), 1 << 20), 1000);
        assert_eq!(
            m.cap_fetch_bytes(&q, ANONYMOUS, Some("d"), 1 << 20),
            1 << 20
        );
    }

    #[test]
    fn client_series_are_bounded() {
        let m = QuotaManager::new(CFG);
        let q = QuotasState::default();
        for i in 0..(MAX_CLIENT_SERIES + 50) {
            m.record(&q, ANONYMOUS, Some(&format!("c{i}")), produce(1), None, 0);
        }
        let mut o = String::new();
        m.render_metrics(&q, &mut o);
        assert_eq!(
            o.matches("strata_client_bytes_in_total{").count(),
            MAX_CLIENT_SERIES + 1
        );
        assert!(o.contains("strata_client_bytes_in_total{client_id=\"__other\"} 50"));
    }

    #[test]
    fn mute_only_grows() {
        let m = Mute::default();
        m.extend(100);
        m.extend(50);
        assert_eq!(m.remaining_ms(40), 60);
        assert_eq!(m.remaining_ms(200), 0);
    }
}
