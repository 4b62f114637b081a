//! Log compaction (`cleanup.policy=compact`): rewrite uploaded segments
//! keeping the latest record of each key, offsets preserved (gaps allowed).
//! Tombstones (null values) are dropped once older than
//! `delete.retention.ms`. The WAL tail and the local active segment are
//! never compacted; segments younger than `min.compaction.lag.ms` neither.
//! The rewritten segments replace the old ones in one manifest swap
//! (`Command::ReplaceSegments`), so readers never see a half-compacted log;
//! a crash before the swap leaves orphans that GC deletes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};

use crate::broker::Broker;
use crate::log::batch::{BatchHeader, HEADER_LEN};
use crate::meta::tier::{Extent, ExtentKind, SegmentCommit};
use crate::meta::Command;
use crate::objstore::paths;

/// Input bytes one compaction run reads at most (bounds memory).
pub const MAX_RUN_BYTES: u64 = 256 * 1024 * 1024;

/// Decoded record bytes one run holds at most: compressed input can
/// inflate far beyond `MAX_RUN_BYTES`, so a run stops taking extents once
/// what it decoded passes this (it always takes the first one; a single
/// batch is bounded by the decompression cap).
pub const MAX_RUN_DECODED_BYTES: u64 = 512 * 1024 * 1024;

/// Memory a decoded batch holds (record bytes plus a per-record overhead).
fn decoded_size(stored: &[(BatchHeader, Stored)]) -> u64 {
    stored
        .iter()
        .map(|(_, s)| match s {
            Stored::Opaque(raw) => raw.len() as u64,
            Stored::Records(recs) => recs
                .iter()
                .map(|r| {
                    (std::mem::size_of::<Record>()
                        + r.key.as_ref().map_or(0, |k| k.len())
                        + r.value.as_ref().map_or(0, |v| v.len())
                        + r.headers
                            .iter()
                            .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 64)
                            .sum::<usize>()) as u64
                })
                .sum(),
        })
        .sum()
}

/// Compaction metrics.
#[derive(Default)]
pub struct CompactionMetrics {
    pub runs: AtomicU64,
    pub errors: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub records_removed: AtomicU64,
    /// Batches kept byte for byte because their records cannot be decoded.
    pub opaque_batches: AtomicU64,
    pub last_success_ms: AtomicI64,
    /// Dirty ratio of the last partition examined, in millionths.
    pub last_dirty_ratio_ppm: AtomicU64,
}

impl CompactionMetrics {
    pub fn render(&self, out: &mut String) {
        crate::metrics::write_metric(
            out,
            "strata_compaction_runs_total",
            "counter",
            "Compaction runs that rewrote segments.",
            self.runs.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_compaction_errors_total",
            "counter",
            "Compaction runs that failed.",
            self.errors.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_compaction_bytes_read_total",
            "counter",
            "Segment bytes read by compaction.",
            self.bytes_in.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_compaction_bytes_written_total",
            "counter",
            "Segment bytes written by compaction.",
            self.bytes_out.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_compaction_records_removed_total",
            "counter",
            "Records removed by compaction.",
            self.records_removed.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_compaction_opaque_batches_total",
            "counter",
            "Batches compaction kept as they are because their records cannot be decoded.",
            self.opaque_batches.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_compaction_last_success_timestamp_ms",
            "gauge",
            "Last successful compaction.",
            self.last_success_ms.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_compaction_dirty_ratio",
            "gauge",
            "Dirty ratio of the last partition examined.",
            self.last_dirty_ratio_ppm.load(Relaxed) as f64 / 1e6,
        );
    }
}

/// A stored batch as compaction sees it.
enum Stored {
    Records(Vec<Record>),
    /// A batch whose records cannot be decoded (a codec error, a header key
    /// that is not UTF-8, more than the decompression cap): its keys are
    /// unknown, so it supersedes nothing and is kept byte for byte.
    Opaque(Bytes),
}

/// Split raw segment bytes into batches and decode each. Only a broken
/// batch framing (the object itself is damaged) is an error.
fn decode_all(bytes: &Bytes) -> Result<Vec<(BatchHeader, Stored)>, String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + HEADER_LEN <= bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..]).map_err(|e| e.to_string())?;
        let end = pos + h.total_len();
        if end > bytes.len() {
            return Err(format!("truncated batch at {pos}"));
        }
        let raw = bytes.slice(pos..end);
        let mut b = raw.clone();
        let stored = match crate::log::decode::decode_batch(
            &mut b,
            crate::log::decode::MAX_DECOMPRESSED_BATCH_BYTES,
        ) {
            Ok(set) => Stored::Records(set.records),
            Err(e) => {
                tracing::warn!(base_offset = h.base_offset, error = %e, "batch cannot be decoded; compaction keeps it as it is");
                Stored::Opaque(raw)
            }
        };
        out.push((h, stored));
        pos = end;
    }
    Ok(out)
}

fn compression_of(h: &BatchHeader) -> Compression {
    match h.compression() {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Keep a record? `latest` maps key → newest offset in the compacted range.
pub fn keep(r: &Record, latest: &HashMap<Bytes, i64>, tombstone_horizon_ms: i64) -> bool {
    if r.control {
        return true;
    }
    let Some(k) = &r.key else { return true };
    if latest.get(k).is_some_and(|o| *o > r.offset) {
        return false;
    }
    // The latest record of its key: a tombstone goes once old enough.
    !(r.value.is_none() && r.timestamp < tombstone_horizon_ms)
}

/// The compaction job.
pub struct Compactor {
    broker: Arc<Broker>,
}

impl Compactor {
    pub fn new(broker: Arc<Broker>) -> Compactor {
        Compactor { broker }
    }

    pub async fn tick(&self) {
        let b = &self.broker;
        let now = b.clock.now_ms();
        let meta = b.meta();
        for t in meta.topics.values() {
            let cfg = t.effective_config(b.broker_defaults());
            if !cfg.cleanup_policy_compact {
                continue;
            }
            for (i, pm) in t.partitions.iter().enumerate() {
                if pm.leader != b.broker_id {
                    continue;
                }
                let lag_ok = |e: &Extent| {
                    cfg.min_compaction_lag_ms <= 0
                        || (e.max_timestamp >= 0
                            && e.max_timestamp < now - cfg.min_compaction_lag_ms)
                };
                let mut budget = 0u64;
                let run: Vec<Extent> = pm
                    .extents
                    .iter()
                    // Never past an undecided transaction.
                    .take_while(|e| {
                        e.kind == ExtentKind::Segment
                            && lag_ok(e)
                            && e.end_offset <= pm.last_stable_offset()
                    })
                    .take_while(|e| {
                        budget += e.byte_len;
                        budget <= MAX_RUN_BYTES
                    })
                    .cloned()
                    .collect();
                let total: u64 = run.iter().map(|e| e.byte_len).sum();
                let dirty: u64 = run
                    .iter()
                    .filter(|e| !e.compacted)
                    .map(|e| e.byte_len)
                    .sum();
                if total == 0 {
                    continue;
                }
                let ratio = dirty as f64 / total as f64;
                b.compaction_metrics()
                    .last_dirty_ratio_ppm
                    .store((ratio * 1e6) as u64, Relaxed);
                let overdue = run.iter().any(|e| {
                    !e.compacted
                        && e.max_timestamp >= 0
                        && e.max_timestamp < now.saturating_sub(cfg.max_compaction_lag_ms)
                });
                let tombstones_due = run
                    .iter()
                    .any(|e| e.tombstone_ts >= 0 && e.tombstone_ts < now - cfg.delete_retention_ms);
                if (ratio < cfg.min_cleanable_dirty_ratio || dirty == 0)
                    && !overdue
                    && !tombstones_due
                {
                    continue;
                }
                match self
                    .compact(
                        &t.topic_id,
                        &t.name,
                        i as i32,
                        pm,
                        &run,
                        now - cfg.delete_retention_ms,
                    )
                    .await
                {
                    Ok((read, written, removed)) => {
                        let m = b.compaction_metrics();
                        m.runs.fetch_add(1, Relaxed);
                        m.bytes_in.fetch_add(read, Relaxed);
                        m.bytes_out.fetch_add(written, Relaxed);
                        m.records_removed.fetch_add(removed, Relaxed);
                        m.last_success_ms.store(now, Relaxed);
                        tracing::info!(topic = %t.name, partition = i, read, written, removed, "compacted");
                    }
                    Err(e) => {
                        b.compaction_metrics().errors.fetch_add(1, Relaxed);
                        tracing::warn!(topic = %t.name, partition = i, error = %e, "compaction failed; will retry");
                    }
                }
            }
        }
    }

    /// Rewrite `run` (contiguous segment extents). Returns bytes read,
    /// bytes written and records removed.
    async fn compact(
        &self,
        topic_id: &uuid::Uuid,
        topic: &str,
        partition: i32,
        pm: &crate::meta::PartitionMeta,
        run: &[Extent],
        tombstone_horizon_ms: i64,
    ) -> Result<(u64, u64, u64), String> {
        let leader_epoch = pm.leader_epoch;
        let aborted_txns = &pm.aborted_txns;
        // Records of aborted transactions are never read by read_committed
        // consumers: they supersede nothing and are dropped; the ABORT
        // marker (a control record) stays.
        let aborted = |r: &Record| {
            r.transactional
                && !r.control
                && aborted_txns.iter().any(|a| {
                    a.producer_id == r.producer_id
                        && a.first_offset <= r.offset
                        && r.offset <= a.last_offset
                })
        };
        let b = &self.broker;
        let store = b.store();
        let mut decoded = Vec::with_capacity(run.len());
        let mut read = 0u64;
        let mut decoded_bytes = 0u64;
        for e in run {
            let bytes = store.get(&e.key).await.map_err(|e| e.to_string())?;
            read += bytes.len() as u64;
            // I/O budget: pace reads so compaction never starves clients.
            let rate = b.config.job_io_bytes_per_sec;
            if rate > 0 {
                tokio::time::sleep(std::time::Duration::from_secs_f64(
                    bytes.len() as f64 / rate as f64,
                ))
                .await;
            }
            let batches = tokio::task::spawn_blocking(move || decode_all(&bytes))
                .await
                .map_err(|e| e.to_string())??;
            decoded_bytes += decoded_size(&batches);
            if !decoded.is_empty() && decoded_bytes > MAX_RUN_DECODED_BYTES {
                // This extent waits for the next run.
                break;
            }
            decoded.push(batches);
        }
        let run = &run[..decoded.len()];
        // Pass 1: newest offset of each key across the run.
        let mut latest: HashMap<Bytes, i64> = HashMap::new();
        for batches in &decoded {
            for (_, stored) in batches {
                let Stored::Records(recs) = stored else {
                    continue;
                };
                for r in recs {
                    if aborted(r) {
                        continue;
                    }
                    if let (Some(k), false) = (&r.key, r.control) {
                        let o = latest.entry(k.clone()).or_insert(r.offset);
                        *o = (*o).max(r.offset);
                    }
                }
            }
        }
        // Pass 2: rewrite each extent, batch by batch, keeping compression.
        let generation = b.clock.now_ms();
        let mut commits = Vec::with_capacity(run.len());
        let mut uploads = Vec::with_capacity(run.len());
        let (mut written, mut removed, mut opaque) = (0u64, 0u64, 0u64);
        for (e, batches) in run.iter().zip(decoded) {
            let mut out = BytesMut::new();
            let mut index = Vec::new();
            let mut max_ts = -1i64;
            let mut tombstone_ts = -1i64;
            for (h, stored) in batches {
                let recs = match stored {
                    Stored::Records(recs) => recs,
                    Stored::Opaque(raw) => {
                        opaque += 1;
                        let pos = out.len();
                        out.extend_from_slice(&raw);
                        max_ts = max_ts.max(h.max_timestamp);
                        let rel = (h.base_offset - e.base_offset).max(0) as u32;
                        index.extend_from_slice(&rel.to_be_bytes());
                        index.extend_from_slice(&(pos as u32).to_be_bytes());
                        continue;
                    }
                };
                let mut kept: Vec<Record> = recs
                    .into_iter()
                    .filter(|r| !aborted(r) && keep(r, &latest, tombstone_horizon_ms))
                    .collect();
                // The encoder starts a new batch wherever `offset - sequence`
                // changes; records without a producer get `sequence = offset`
                // so a batch with gaps stays one batch (reset to -1 below).
                for r in kept.iter_mut().filter(|r| r.producer_id < 0) {
                    r.sequence = r.offset as i32;
                }
                removed += (h.record_count.max(0) as u64).saturating_sub(kept.len() as u64);
                if kept.is_empty() {
                    continue;
                }
                max_ts = max_ts.max(kept.iter().map(|r| r.timestamp).max().unwrap_or(-1));
                tombstone_ts = tombstone_ts.max(
                    kept.iter()
                        .filter(|r| r.value.is_none() && r.key.is_some())
                        .map(|r| r.timestamp)
                        .max()
                        .unwrap_or(-1),
                );
                let pos = out.len();
                let opts = RecordEncodeOptions {
                    version: 2,
                    compression: compression_of(&h),
                };
                RecordBatchEncoder::encode(&mut out, kept.iter(), &opts)
                    .map_err(|e| e.to_string())?;
                let mut at = pos;
                while at + HEADER_LEN <= out.len() {
                    let n = BatchHeader::parse(&out[at..])
                        .map_err(|e| e.to_string())?
                        .total_len();
                    crate::log::batch::clear_sequence_if_anonymous(&mut out[at..at + n]);
                    at += n;
                }
                let first = kept.iter().map(|r| r.offset).min().unwrap_or(e.base_offset);
                index.extend_from_slice(&((first - e.base_offset) as u32).to_be_bytes());
                index.extend_from_slice(&(pos as u32).to_be_bytes());
            }
            let key = format!(
                "{}.c{generation}.log",
                paths::segment(*topic_id, partition, e.base_offset, leader_epoch)
                    .trim_end_matches(".log")
            );
            let index_key = paths::segment_index(&key);
            written += out.len() as u64;
            commits.push(SegmentCommit {
                topic_id: *topic_id,
                partition,
                leader_epoch,
                key: key.clone(),
                index_key: index_key.clone(),
                size: out.len() as u64,
                index_size: index.len() as u64,
                base_offset: e.base_offset,
                end_offset: e.end_offset,
                max_timestamp: if max_ts >= 0 { max_ts } else { e.max_timestamp },
                tombstone_ts,
            });
            uploads.push((key, out.freeze()));
            uploads.push((index_key, Bytes::from(index)));
        }
        for (k, data) in uploads {
            store
                .put_create(&k, data)
                .await
                .map_err(|e| e.to_string())?;
        }
        let cmd = Command::ReplaceSegments {
            topic_id: *topic_id,
            partition,
            leader_epoch,
            replaced: run.iter().map(|e| e.key.clone()).collect(),
            segments: commits,
            committed_at_ms: b.clock.now_ms(),
        };
        b.submit(cmd).await.map_err(|e| e.to_string())?;
        // Local copies of the range hold the uncompacted data: drop them so
        // every reader sees the compacted log.
        if let (Some(end), Some(h)) = (run.last().map(|e| e.end_offset), b.topic(topic)) {
            if let Some(p) = h.partition(partition) {
                p.log.advance_start(end);
            }
        }
        if opaque > 0 {
            b.compaction_metrics()
                .opaque_batches
                .fetch_add(opaque, Relaxed);
        }
        Ok((read, written, removed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: i64, key: &str, value: Option<&str>, ts: i64) -> Record {
        let mut r = crate::log::decode::test_record(
            offset,
            Some(Bytes::from(key.to_string())),
            value.map(|v| Bytes::from(v.to_string())),
            ts,
        );
        r.sequence = -1;
        r
    }

    #[test]
    fn keeps_latest_per_key_and_expires_tombstones() {
        let recs = [
            rec(0, "a", Some("1"), 10),
            rec(1, "b", Some("1"), 10),
            rec(2, "a", Some("2"), 20),
            rec(3, "b", None, 30),
        ];
        let mut latest = HashMap::new();
        for r in &recs {
            latest.insert(r.key.clone().unwrap(), r.offset);
        }
        let kept: Vec<i64> = recs
            .iter()
            .filter(|r| keep(r, &latest, 0))
            .map(|r| r.offset)
            .collect();
        assert_eq!(kept, vec![2, 3], "tombstone younger than the horizon stays");
        let kept: Vec<i64> = recs
            .iter()
            .filter(|r| keep(r, &latest, 100))
            .map(|r| r.offset)
            .collect();
        assert_eq!(kept, vec![2], "old tombstone goes");
    }

    #[test]
    fn rewritten_batches_decode_with_offsets_preserved() {
        let mut recs = [rec(5, "a", Some("x"), 1), rec(9, "b", Some("y"), 2)];
        for r in recs.iter_mut() {
            r.sequence = r.offset as i32;
        }
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut out,
            recs.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::Lz4,
            },
        )
        .unwrap();
        crate::log::batch::clear_sequence_if_anonymous(&mut out);
        let bytes = out.freeze();
        let h = crate::log::batch::validate(&bytes, usize::MAX).unwrap();
        assert_eq!(
            (h.record_count, h.last_offset_delta, h.base_sequence),
            (2, 4, -1)
        );
        let decoded = decode_all(&bytes).unwrap();
        let offsets: Vec<i64> = decoded
            .iter()
            .flat_map(|(_, r)| match r {
                Stored::Records(r) => r.iter().map(|r| r.offset).collect(),
                Stored::Opaque(_) => vec![],
            })
            .collect();
        assert_eq!(offsets, vec![5, 9]);
    }

    #[test]
    fn an_undecodable_batch_is_kept_as_it_is_and_the_others_decode() {
        let good = crate::log::batch::build(0, &[(Some(b"k"), Some(b"v"), 1)], None);
        // A batch that says gzip but holds plain records (valid CRC): the
        // broker stored it as sent; its records cannot be read.
        let mut bad = crate::log::batch::build(1, &[(Some(b"k"), Some(b"w"), 2)], None);
        const OFF_CRC: usize = 17;
        const OFF_ATTRIBUTES: usize = 21;
        bad[OFF_ATTRIBUTES + 1] |= 1;
        let crc = crc32c::crc32c(&bad[OFF_ATTRIBUTES..]);
        bad[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        let mut all = BytesMut::new();
        all.extend_from_slice(&good);
        all.extend_from_slice(&bad);
        all.extend_from_slice(&crate::log::batch::build(2, &[(Some(b"k"), None, 3)], None));
        let decoded = decode_all(&all.freeze()).unwrap();
        assert_eq!(decoded.len(), 3);
        assert!(matches!(&decoded[0].1, Stored::Records(r) if r.len() == 1));
        assert!(matches!(&decoded[1].1, Stored::Opaque(raw) if raw[..] == bad[..]));
        assert!(matches!(&decoded[2].1, Stored::Records(r) if r[0].offset == 2));
        // What a run budgets: the opaque batch's bytes plus each record's
        // struct, key and value.
        let per_record = std::mem::size_of::<Record>() as u64 + 2;
        assert_eq!(
            decoded_size(&decoded),
            bad.len() as u64 + 2 * per_record - 1
        );
        // A damaged framing is still an error.
        let mut cut = BytesMut::new();
        cut.extend_from_slice(&good[..good.len() - 1]);
        assert!(decode_all(&cut.freeze()).is_err());
    }
}
