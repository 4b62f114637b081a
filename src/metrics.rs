//! Prometheus metrics in the `strata_` namespace (kafka_exporter names where
//! one exists), kept in plain atomics so the hot path pays one relaxed add,
//! rendered in the text exposition format at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::broker::Broker;

const API_SLOTS: usize = 128;

/// Append one single-value metric with its HELP and TYPE lines.
pub fn write_metric(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}
/// Kafka request latency buckets, in seconds.
pub const REQUEST_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Object store and WAL flush latency buckets, in seconds.
pub const IO_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram in atomics: one relaxed add per bucket reached.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Record one observation of `secs` seconds.
    pub fn observe(&self, secs: f64) {
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add((secs * 1e6) as u64, Relaxed);
        for (b, n) in self.bounds.iter().zip(self.buckets.iter()) {
            if secs <= *b {
                n.fetch_add(1, Relaxed);
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Write the `_bucket`, `_sum` and `_count` series of `name`; `labels`
    /// is empty or `key="value",...` without braces.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, n) in self.bounds.iter().zip(self.buckets.iter()) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                n.load(Relaxed)
            );
        }
        let n = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {n}");
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braced} {}\n{name}_count{braced} {n}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
    }
}

impl Default for Histogram {
    /// A histogram with [`IO_BUCKETS`].
    fn default() -> Self {
        Histogram::new(&IO_BUCKETS)
    }
}

/// Per-API request counters and a latency histogram.
struct ApiStats {
    errors: AtomicU64,
    latency: Histogram,
}

impl Default for ApiStats {
    fn default() -> Self {
        ApiStats {
            errors: AtomicU64::new(0),
            latency: Histogram::new(&REQUEST_BUCKETS),
        }
    }
}

/// Selects one counter of [`TopicStats`].
type TopicField = fn(&TopicStats) -> &AtomicU64;

/// Per-topic traffic, kept across rebuilds of the topic's handle.
#[derive(Debug, Default)]
pub struct TopicStats {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub records_in: AtomicU64,
}

/// Process-wide metrics.
pub struct Metrics {
    apis: Vec<ApiStats>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub records_in: AtomicU64,
    pub connections: AtomicI64,
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub produce_errors: AtomicU64,
    /// Fetches whose local read lost the race with local trimming and were
    /// served from object storage.
    pub fetch_trim_races: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            apis: (0..API_SLOTS).map(|_| ApiStats::default()).collect(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            records_in: AtomicU64::new(0),
            connections: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            produce_errors: AtomicU64::new(0),
            fetch_trim_races: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Record one request of `api_key` that took `secs`.
    pub fn observe_request(&self, api_key: i16, secs: f64, error: bool) {
        let Some(s) = usize::try_from(api_key).ok().and_then(|i| self.apis.get(i)) else {
            return;
        };
        if error {
            s.errors.fetch_add(1, Relaxed);
        }
        s.latency.observe(secs);
    }

    /// Render everything, including per-partition offsets from the broker.
    pub fn render(&self, broker: &Broker) -> String {
        let mut o = String::with_capacity(8192);
        let _ = writeln!(o, "# HELP strata_requests_total Kafka requests handled, by API.\n# TYPE strata_requests_total counter");
        for (k, s) in self.apis.iter().enumerate() {
            let n = s.latency.count();
            if n > 0 {
                let _ = writeln!(
                    o,
                    "strata_requests_total{{api=\"{}\"}} {n}",
                    api_name(k as i16)
                );
            }
        }
        let _ = writeln!(o, "# HELP strata_request_errors_total Kafka requests answered with an error, by API.\n# TYPE strata_request_errors_total counter");
        for (k, s) in self.apis.iter().enumerate() {
            if s.latency.count() > 0 {
                let _ = writeln!(
                    o,
                    "strata_request_errors_total{{api=\"{}\"}} {}",
                    api_name(k as i16),
                    s.errors.load(Relaxed)
                );
            }
        }
        let _ = writeln!(o, "# HELP strata_request_duration_seconds Kafka request latency, by API.\n# TYPE strata_request_duration_seconds histogram");
        for (k, s) in self.apis.iter().enumerate() {
            if s.latency.count() > 0 {
                let labels = format!("api=\"{}\"", api_name(k as i16));
                s.latency
                    .render(&mut o, "strata_request_duration_seconds", &labels);
            }
        }
        let counters: [(&str, &str, u64); 9] = [
            (
                "strata_bytes_in_total",
                "Record batch bytes appended.",
                self.bytes_in.load(Relaxed),
            ),
            (
                "strata_bytes_out_total",
                "Record batch bytes served to fetches.",
                self.bytes_out.load(Relaxed),
            ),
            (
                "strata_records_in_total",
                "Records appended.",
                self.records_in.load(Relaxed),
            ),
            (
                "strata_connections_accepted_total",
                "Kafka connections accepted.",
                self.connections_total.load(Relaxed),
            ),
            (
                "strata_connections_refused_total",
                "Kafka connections refused at the connection limit.",
                self.connections_refused.load(Relaxed),
            ),
            (
                "strata_protocol_errors_total",
                "Connections closed for malformed or unsupported requests.",
                self.protocol_errors.load(Relaxed),
            ),
            (
                "strata_produce_errors_total",
                "Partition appends refused.",
                self.produce_errors.load(Relaxed),
            ),
            (
                "strata_fetch_trim_races_total",
                "Fetches whose local read lost the race with local trimming and were served from object storage.",
                self.fetch_trim_races.load(Relaxed),
            ),
            (
                "strata_produce_not_leader_total",
                "Writes refused because this broker did not lead the partition, had not finished taking it over, or held no valid lease.",
                broker.not_leader_refusals.load(Relaxed),
            ),
        ];
        let _ = writeln!(
            o,
            "# HELP strata_broker_lease_valid 1 while this broker holds a valid lease.\n# TYPE strata_broker_lease_valid gauge\nstrata_broker_lease_valid {}",
            u8::from(broker.has_lease())
        );
        let _ = writeln!(
            o,
            "# HELP strata_partitions_led Partitions this broker leads and accepts writes for.\n# TYPE strata_partitions_led gauge\nstrata_partitions_led {}",
            broker.partitions_ready()
        );
        for (name, help, v) in counters {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let _ = writeln!(
            o,
            "# HELP strata_connections Open Kafka connections.\n# TYPE strata_connections gauge\nstrata_connections {}",
            self.connections.load(Relaxed)
        );
        let budget = &broker.request_budget;
        let _ = writeln!(
            o,
            "# HELP strata_request_queued_bytes Request bytes held over all Kafka connections (bounded by queued.max.request.bytes).\n# TYPE strata_request_queued_bytes gauge\nstrata_request_queued_bytes {}",
            budget.in_use()
        );
        let _ = writeln!(
            o,
            "# HELP strata_request_queued_bytes_peak The most request bytes held at once since start.\n# TYPE strata_request_queued_bytes_peak gauge\nstrata_request_queued_bytes_peak {}",
            budget.peak()
        );
        let _ = writeln!(
            o,
            "# HELP strata_request_queue_waits_total Frames whose connection waited for request bytes to come back before reading them.\n# TYPE strata_request_queue_waits_total counter\nstrata_request_queue_waits_total {}",
            budget.waits()
        );
        let _ = writeln!(o, "# HELP strata_partitions Partition logs open on this broker.\n# TYPE strata_partitions gauge\nstrata_partitions {}", broker.partition_count());
        render_process(&mut o);
        if let Some(c) = broker.metadata().controller() {
            c.render_metrics(&mut o);
        }
        // kafka_exporter-compatible partition offsets.
        let meta = broker.meta();
        write_metric(
            &mut o,
            "kafka_brokers",
            "gauge",
            "Number of brokers registered in the cluster.",
            meta.brokers.len(),
        );
        let _ = writeln!(o, "# HELP kafka_topic_partitions Number of partitions for this topic.\n# TYPE kafka_topic_partitions gauge");
        for t in meta.topics.values() {
            let _ = writeln!(
                o,
                "kafka_topic_partitions{{topic=\"{}\"}} {}",
                t.name,
                t.partitions.len()
            );
        }
        let topic_counters: [(&str, &str, TopicField); 3] = [
            (
                "strata_topic_bytes_in_total",
                "Record batch bytes appended, by topic.",
                |s| &s.bytes_in,
            ),
            (
                "strata_topic_bytes_out_total",
                "Record batch bytes served to fetches, by topic.",
                |s| &s.bytes_out,
            ),
            (
                "strata_topic_records_in_total",
                "Records appended, by topic.",
                |s| &s.records_in,
            ),
        ];
        for (name, help, field) in topic_counters {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for t in meta.topics.values() {
                if let Some(h) = broker.topic(&t.name) {
                    let _ = writeln!(
                        o,
                        "{name}{{topic=\"{}\"}} {}",
                        t.name,
                        field(&h.stats).load(Relaxed)
                    );
                }
            }
        }
        let _ = writeln!(o, "# HELP kafka_topic_partition_current_offset Log end offset of a partition.\n# TYPE kafka_topic_partition_current_offset gauge");
        let mut oldest = String::new();
        let mut leaders = String::new();
        for t in meta.topics.values() {
            if let Some(h) = broker.topic(&t.name) {
                for (p, pm) in h.partitions.iter().zip(t.partitions.iter()) {
                    let _ = writeln!(
                        o,
                        "kafka_topic_partition_current_offset{{topic=\"{}\",partition=\"{}\"}} {}",
                        t.name, p.index, pm.committed_end
                    );
                    let _ = writeln!(
                        leaders,
                        "kafka_topic_partition_leader{{topic=\"{}\",partition=\"{}\"}} {}",
                        t.name, p.index, pm.leader
                    );
                    let _ = writeln!(
                        oldest,
                        "kafka_topic_partition_oldest_offset{{topic=\"{}\",partition=\"{}\"}} {}",
                        t.name, p.index, pm.log_start_offset
                    );
                }
            }
        }
        let _ = writeln!(o, "# HELP kafka_topic_partition_oldest_offset Log start offset of a partition.\n# TYPE kafka_topic_partition_oldest_offset gauge");
        o.push_str(&oldest);
        let _ = writeln!(o, "# HELP kafka_topic_partition_leader Leader broker of a partition.\n# TYPE kafka_topic_partition_leader gauge");
        o.push_str(&leaders);
        broker.store().metrics.render(&mut o);
        crate::auth::metrics().render(&mut o);
        broker.render_costs(&mut o);
        broker.wal().metrics.render(&mut o);
        broker.tier_metrics().render(&mut o);
        broker.retention_metrics().render(&mut o);
        broker.compaction_metrics().render(&mut o);
        let r = broker.reader();
        let (hits, misses) = (r.metrics.hits.load(Relaxed), r.metrics.misses.load(Relaxed));
        let _ = writeln!(
            o,
            "# HELP strata_cache_hits_total Block cache hits for object storage reads.\n# TYPE strata_cache_hits_total counter\nstrata_cache_hits_total {hits}\n\
             # HELP strata_cache_misses_total Block cache misses.\n# TYPE strata_cache_misses_total counter\nstrata_cache_misses_total {misses}\n\
             # HELP strata_cache_hit_ratio Block cache hit ratio since start.\n# TYPE strata_cache_hit_ratio gauge\nstrata_cache_hit_ratio {}\n\
             # HELP strata_cache_bytes Bytes held by the block cache.\n# TYPE strata_cache_bytes gauge\nstrata_cache_bytes {}",
            if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 },
            r.cached_bytes()
        );
        broker.groups.render_metrics(broker, &mut o);
        broker.fetch_sessions.render_metrics(&mut o);
        broker.quotas.render_metrics(&meta.quotas, &mut o);
        o
    }
}

fn api_name(k: i16) -> String {
    match kafka_protocol::messages::ApiKey::try_from(k) {
        Ok(a) => format!("{a:?}"),
        Err(_) => k.to_string(),
    }
}

/// Process gauges from /proc (Linux); absent elsewhere.
pub(crate) fn render_process(o: &mut String) {
    // SAFETY: sysconf only reads a system constant.
    let (page, hz) = unsafe {
        (
            libc::sysconf(libc::_SC_PAGESIZE),
            libc::sysconf(libc::_SC_CLK_TCK),
        )
    };
    let (page, hz) = (page.max(1) as u64, hz.max(1) as f64);
    if let Some(pages) = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
    {
        write_metric(
            o,
            "strata_process_resident_memory_bytes",
            "gauge",
            "Resident set size.",
            pages * page,
        );
    }
    // Fields after the command name: utime and stime are the 12th and 13th.
    if let Some(cpu) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.get(s.rfind(')')? + 2..)?.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?) as f64 / hz)
        })
    {
        write_metric(
            o,
            "strata_process_cpu_seconds_total",
            "counter",
            "User and system CPU time used.",
            cpu,
        );
    }
    if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
        write_metric(
            o,
            "strata_process_open_fds",
            "gauge",
            "Open file descriptors.",
            d.count(),
        );
    }
}
