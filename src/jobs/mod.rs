//! Background jobs run by the partition leader: time and size retention
//! (here) and log compaction ([`compaction`]).
//! (Segment upload and garbage collection live in [`crate::tier`].)
//!
//! Retention is two-phase: first the log start offset advances through the
//! metadata state machine (readers see the new start at once, and the
//! extents below it are released), then local segment files below it are
//! removed and the released objects are deleted by GC after its grace
//! period. Each tick recomputes from the metadata, so it is idempotent and
//! resumes after a restart or a leadership change.

pub mod compaction;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::broker::Broker;
use crate::meta::tier::Extent;
use crate::meta::Command;

/// Retention metrics.
#[derive(Default)]
pub struct RetentionMetrics {
    pub runs: AtomicU64,
    pub errors: AtomicU64,
    pub bytes_reclaimed: AtomicU64,
    pub offsets_reclaimed: AtomicU64,
    pub last_success_ms: AtomicI64,
}

impl RetentionMetrics {
    /// Render in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        crate::metrics::write_metric(
            out,
            "strata_retention_runs_total",
            "counter",
            "Retention passes.",
            self.runs.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_retention_errors_total",
            "counter",
            "Retention steps that failed.",
            self.errors.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_retention_bytes_reclaimed_total",
            "counter",
            "Bytes of extents released by retention.",
            self.bytes_reclaimed.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_retention_offsets_reclaimed_total",
            "counter",
            "Offsets removed by retention and DeleteRecords.",
            self.offsets_reclaimed.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_retention_last_success_timestamp_ms",
            "gauge",
            "Last completed retention pass.",
            self.last_success_ms.load(Relaxed),
        );
    }
}

/// Where the log start should move under time and size retention: whole
/// extents only (an extent is a segment object or one WAL extent), oldest
/// first, never past the committed end. `None` if nothing expires.
///
/// - time: an extent whose largest timestamp is older than
///   `now - retention_ms` (with `retention_ms >= 0`);
/// - size: while dropping the oldest extent still leaves at least
///   `retention_bytes` (Kafka's rule: the log stays within one segment of
///   the limit).
pub fn retention_start(
    extents: &[Extent],
    log_start: i64,
    committed_end: i64,
    now_ms: i64,
    retention_ms: i64,
    retention_bytes: i64,
) -> Option<i64> {
    let live: Vec<&Extent> = extents
        .iter()
        .filter(|e| e.end_offset > log_start)
        .collect();
    let mut total: i64 = live.iter().map(|e| e.byte_len as i64).sum();
    let mut start = log_start;
    for e in live {
        if e.end_offset > committed_end {
            break;
        }
        let expired_time = retention_ms >= 0
            && e.max_timestamp >= 0
            && e.max_timestamp < now_ms.saturating_sub(retention_ms);
        let expired_size = retention_bytes >= 0 && total - e.byte_len as i64 >= retention_bytes;
        if !(expired_time || expired_size) {
            break;
        }
        total -= e.byte_len as i64;
        start = e.end_offset;
    }
    (start > log_start).then_some(start)
}

/// Advance a partition's log start (retention or DeleteRecords): metadata
/// first, then local files. Returns the new log start.
pub async fn advance_log_start(
    b: &Arc<Broker>,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<i64, crate::broker::BrokerError> {
    let handle = b.topic(topic);
    let out = b
        .submit(Command::AdvanceLogStart {
            name: topic.to_string(),
            partition,
            offset,
            topic_id: handle.as_ref().map(|h| h.id),
            leader_epoch: handle
                .as_ref()
                .and_then(|h| h.partition(partition).map(|p| p.leader_epoch)),
        })
        .await?;
    let start = match out {
        crate::meta::CommandOutput::LogStartAdvanced { log_start_offset } => log_start_offset,
        _ => offset,
    };
    if let Some(p) = b.topic(topic).and_then(|h| h.partition(partition).cloned()) {
        // Deleting local segment files is blocking I/O.
        tokio::task::spawn_blocking(move || p.log.advance_start(start))
            .await
            .map_err(|e| crate::broker::BrokerError::Io(std::io::Error::other(e.to_string())))?;
    }
    Ok(start)
}

/// The retention job.
pub struct Retention {
    broker: Arc<Broker>,
}

impl Retention {
    pub fn new(broker: Arc<Broker>) -> Retention {
        Retention { broker }
    }

    /// One pass over every partition this broker leads.
    pub async fn tick(&self) {
        let b = &self.broker;
        let m = b.retention_metrics();
        m.runs.fetch_add(1, Relaxed);
        let now = b.clock.now_ms();
        let meta = b.meta();
        let mut ok = true;
        for t in meta.topics.values() {
            let cfg = t.effective_config(b.broker_defaults());
            if !cfg.cleanup_policy_delete {
                continue;
            }
            for (i, pm) in t.partitions.iter().enumerate() {
                if pm.leader != b.broker_id {
                    continue;
                }
                let Some(start) = retention_start(
                    &pm.extents,
                    pm.log_start_offset,
                    pm.committed_end,
                    now,
                    cfg.retention_ms,
                    cfg.retention_bytes,
                ) else {
                    continue;
                };
                let freed: u64 = pm
                    .extents
                    .iter()
                    .filter(|e| e.end_offset <= start && e.end_offset > pm.log_start_offset)
                    .map(|e| e.byte_len)
                    .sum();
                match advance_log_start(b, &t.name, i as i32, start).await {
                    Ok(new_start) => {
                        m.bytes_reclaimed.fetch_add(freed, Relaxed);
                        m.offsets_reclaimed
                            .fetch_add((new_start - pm.log_start_offset).max(0) as u64, Relaxed);
                        tracing::info!(topic = %t.name, partition = i, log_start = new_start, freed, "retention advanced log start");
                    }
                    Err(e) => {
                        ok = false;
                        m.errors.fetch_add(1, Relaxed);
                        tracing::warn!(topic = %t.name, partition = i, error = %e, "retention failed");
                    }
                }
            }
        }
        if ok {
            m.last_success_ms.store(now, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tier::ExtentKind;

    fn ext(base: i64, end: i64, bytes: u64, ts: i64) -> Extent {
        Extent {
            kind: ExtentKind::Wal,
            key: format!("k{base}"),
            index_key: None,
            base_offset: base,
            end_offset: end,
            byte_offset: 0,
            byte_len: bytes,
            leader_epoch: 0,
            max_timestamp: ts,
            compacted: false,
            tombstone_ts: -1,
        }
    }

    #[test]
    fn time_retention_drops_whole_expired_extents_only() {
        let e = vec![
            ext(0, 10, 100, 1_000),
            ext(10, 20, 100, 2_000),
            ext(20, 30, 100, 9_000),
        ];
        assert_eq!(retention_start(&e, 0, 30, 10_000, 5_000, -1), Some(20));
        assert_eq!(retention_start(&e, 0, 30, 10_000, 9_500, -1), None);
        assert_eq!(
            retention_start(&e, 0, 30, 10_000, -1, -1),
            None,
            "-1 keeps forever"
        );
        assert_eq!(
            retention_start(&e, 20, 30, 10_000, 5_000, -1),
            None,
            "already advanced"
        );
        // never past the committed end
        assert_eq!(retention_start(&e, 0, 15, 100_000, 1, -1), Some(10));
        // unknown timestamps never expire by time
        let u = vec![ext(0, 10, 100, -1)];
        assert_eq!(retention_start(&u, 0, 10, 100_000, 1, -1), None);
    }

    #[test]
    fn size_retention_keeps_within_one_extent_of_the_limit() {
        let e: Vec<Extent> = (0..10).map(|i| ext(i * 10, i * 10 + 10, 100, 0)).collect();
        // 1000 bytes, limit 350: drop while the rest is still >= 350 → keep 4 (400 bytes)
        assert_eq!(retention_start(&e, 0, 100, 0, -1, 350), Some(60));
        assert_eq!(retention_start(&e, 0, 100, 0, -1, 1000), None);
        assert_eq!(retention_start(&e, 0, 100, 0, -1, 0), Some(100));
    }
}
