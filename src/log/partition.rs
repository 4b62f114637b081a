//! The log of one partition: an ordered list of segments, the last one
//! active. Appends validate and assign offsets under one short lock; reads
//! find the batch through the sparse index and `pread` outside the lock;
//! fsync is group-committed so many acks=all producers share one sync.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::batch::{self, BatchError, BatchHeader, LOG_OVERHEAD};
use super::producer::{OpenTxns, ProducerStates, SeqCheck, SeqError};
use super::segment::Segment;
use super::LogError;
use crate::clock::SharedClock;
use crate::meta::tier::TxnMark;

/// The topic configs the log engine obeys on each append.
#[derive(Debug, Clone, Copy)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub index_interval_bytes: u64,
    pub log_append_time: bool,
    pub max_message_bytes: usize,
    /// `cleanup.policy` includes `compact`: every produced record needs a key.
    pub require_keys: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            log_append_time: false,
            max_message_bytes: 1_048_588,
            require_keys: false,
        }
    }
}

/// Most per-record errors listed for one refused partition write.
pub const MAX_LISTED_RECORD_ERRORS: usize = 100;

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Sequence(#[from] SeqError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("idempotent produce must carry exactly one batch, got {0}")]
    MultipleIdempotentBatches(usize),
    /// This broker does not lead the partition (now), its takeover is not
    /// finished, or it cannot prove a valid lease.
    #[error("not the leader of {partition}: {reason}")]
    NotLeader {
        partition: String,
        reason: &'static str,
    },
    /// Control batches are written by the broker for the transaction
    /// coordinator only.
    #[error("control batches cannot be produced")]
    ControlBatch,
    /// Records without a key sent to a compacted topic (Kafka's
    /// INVALID_RECORD with per-record errors, KIP-467). `indices` are the
    /// offending records' positions in the request (first ones only).
    #[error("compacted topic cannot accept records without a key ({total} such record(s))")]
    KeylessRecords { indices: Vec<i32>, total: usize },
    /// A transactional write outside an ongoing transaction of its producer
    /// (KIP-890 verification), or from a fenced producer epoch.
    #[error("{message}")]
    Txn { code: i16, message: String },
}

impl AppendError {
    pub fn kafka_code(&self) -> i16 {
        match self {
            AppendError::Batch(e) => e.kafka_code(),
            AppendError::Sequence(e) => e.kafka_code(),
            AppendError::Log(e) => e.kafka_code(),
            AppendError::MultipleIdempotentBatches(_) => 42, // INVALID_REQUEST
            AppendError::NotLeader { .. } => 6,              // NOT_LEADER_OR_FOLLOWER
            AppendError::ControlBatch => 87,                 // INVALID_RECORD
            AppendError::KeylessRecords { .. } => 87,        // INVALID_RECORD
            AppendError::Txn { code, .. } => *code,
        }
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// LogAppendTime given to the batch, or -1 for CreateTime.
    pub log_append_time: i64,
    /// The batch was a retry of one already written.
    pub duplicate: bool,
    /// Bytes written.
    pub bytes: usize,
}

/// A sealed local segment, as handed to the uploader.
#[derive(Debug, Clone)]
pub struct SealedSegment {
    pub base_offset: i64,
    pub end_offset: i64,
    pub max_timestamp: i64,
    pub size: u64,
    pub file: Arc<File>,
    pub path: Arc<std::path::Path>,
    pub index: Vec<u8>,
}

/// Where a stored batch lies on local disk (the WAL's local mode commits
/// these bytes where they are instead of copying them).
#[derive(Clone, Debug)]
pub struct BatchLoc {
    pub file: Arc<File>,
    pub path: Arc<std::path::Path>,
    /// Base offset of its segment.
    pub segment_base: i64,
    /// Byte position of the batch in the segment file.
    pub pos: u64,
    /// The first batch of its segment.
    pub first_in_segment: bool,
}

/// Result of a read.
#[derive(Debug, Clone)]
pub struct ReadInfo {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

struct Inner {
    segments: Vec<Segment>,
    log_start: i64,
    /// Rolled segments whose seal (and its fsync) may still be running:
    /// `sync_all` at shutdown fsyncs them.
    unsynced: Vec<Arc<File>>,
    producers: ProducerStates,
    /// Transactions open in this log (for the WAL's transaction marks).
    txns: OpenTxns,
}

impl Inner {
    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }
    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }
    fn leo(&self) -> i64 {
        self.active().next_offset
    }
    /// Index of the segment holding `offset`.
    fn segment_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }
}

/// One partition's log on local disk.
pub struct PartitionLog {
    dir: PathBuf,
    inner: Mutex<Inner>,
    clock: SharedClock,
    /// Record batch bytes appended by this process (the placement's
    /// bytes-in rate is measured from it).
    pub bytes_in: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .finish()
    }
}

fn parse_base(name: &str) -> Option<i64> {
    name.strip_suffix(".log")?.parse().ok()
}

impl PartitionLog {
    /// Open (or create) the log in `dir`, recovering the active segment:
    /// cut a torn tail, rebuild its indexes and the producer state.
    pub fn open(
        dir: &Path,
        log_start: i64,
        cfg: &LogConfig,
        clock: SharedClock,
    ) -> Result<PartitionLog, LogError> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        let mut bases: Vec<i64> = std::fs::read_dir(dir)
            .map_err(|e| LogError::io(dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| parse_base(&e.file_name().to_string_lossy()))
            .collect();
        bases.sort_unstable();
        let now = clock.now_ms();
        let mut producers = ProducerStates::default();
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
        let n = bases.len();
        for (i, base) in bases.iter().enumerate() {
            let path = dir.join(super::segment::log_name(*base));
            let is_last = i + 1 == n;
            let seg = Segment::open(&path, *base, !is_last, cfg.index_interval_bytes, now, |h| {
                producers.record(h, h.base_offset)
            })?;
            // A segment wholly below the log start is leftover of retention.
            if seg.next_offset <= log_start && !is_last {
                seg.delete_files();
                continue;
            }
            if let Some(prev) = segments.last() {
                if seg.base_offset < prev.next_offset {
                    return Err(LogError::Corrupt(
                        path.display().to_string(),
                        format!(
                            "segment base {} overlaps previous end {}",
                            seg.base_offset, prev.next_offset
                        ),
                    ));
                }
            }
            segments.push(seg);
        }
        if segments.is_empty() {
            segments.push(Segment::create(dir, log_start, now)?);
        } else if let Some(last) = segments.last() {
            if last.next_offset < log_start {
                // Everything we hold was retained away: start fresh at log_start.
                let last = segments.pop().expect("non-empty");
                last.delete_files();
                segments.push(Segment::create(dir, log_start, now)?);
            }
        }
        let first = segments[0].base_offset;
        let leo = segments.last().map(|s| s.next_offset).unwrap_or(0);
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner {
                segments,
                log_start: log_start.max(first).min(leo),
                unsynced: Vec::new(),
                producers,
                txns: OpenTxns::default(),
            }),
            bytes_in: std::sync::atomic::AtomicU64::new(0),
            clock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append the batches of one produce request for this partition.
    /// All batches are validated before any is written. The buffer is taken
    /// (left empty) once its batches are stored: they are handed on without
    /// a copy.
    pub fn append(
        &self,
        records: &mut Vec<u8>,
        leader_epoch: i32,
        cfg: &LogConfig,
    ) -> Result<AppendInfo, AppendError> {
        self.append_with(records, leader_epoch, cfg, false, |_, _, _, _| {})
    }

    /// [`PartitionLog::append`], calling `on_batch(header, bytes,
    /// first_in_segment)` for each stored batch while the partition lock is
    /// held, so a WAL sees every partition's batches in offset order.
    pub fn append_with(
        &self,
        records: &mut Vec<u8>,
        leader_epoch: i32,
        cfg: &LogConfig,
        internal: bool,
        mut on_batch: impl FnMut(&BatchHeader, Bytes, BatchLoc, Option<TxnMark>),
    ) -> Result<AppendInfo, AppendError> {
        // Split and validate outside the lock.
        let mut spans: Vec<(usize, usize, BatchHeader)> = Vec::with_capacity(1);
        let mut pos = 0;
        let (mut keyless, mut keyless_total, mut first_index) = (Vec::new(), 0usize, 0i32);
        while pos < records.len() {
            let Some(len) = batch::peek_batch_len(&records[pos..]) else {
                return Err(BatchError::Truncated {
                    have: records.len() - pos,
                    need: LOG_OVERHEAD,
                }
                .into());
            };
            if len < 0 {
                return Err(BatchError::BadLength { length: len }.into());
            }
            let end = pos
                .checked_add(LOG_OVERHEAD + len as usize)
                .filter(|e| *e <= records.len())
                .ok_or(BatchError::Truncated {
                    have: records.len() - pos,
                    need: LOG_OVERHEAD + len as usize,
                })?;
            let h = batch::validate(&records[pos..end], cfg.max_message_bytes)?;
            if h.is_control() && !internal {
                return Err(AppendError::ControlBatch);
            }
            if cfg.require_keys && !internal {
                let (listed, total) = batch::keyless_records(
                    &records[pos..end],
                    crate::log::decode::MAX_DECOMPRESSED_BATCH_BYTES,
                    MAX_LISTED_RECORD_ERRORS.saturating_sub(keyless.len()),
                )?;
                keyless.extend(listed.into_iter().map(|i| i.saturating_add(first_index)));
                keyless_total += total;
            }
            first_index = first_index.saturating_add(h.record_count.max(0));
            spans.push((pos, end, h));
            pos = end;
        }
        if keyless_total > 0 {
            return Err(AppendError::KeylessRecords {
                indices: keyless,
                total: keyless_total,
            });
        }
        if spans.is_empty() {
            return Err(BatchError::Truncated {
                have: 0,
                need: LOG_OVERHEAD,
            }
            .into());
        }
        let idempotent = spans
            .iter()
            .any(|s| s.2.has_producer_id() && s.2.base_sequence >= 0);
        if idempotent && spans.len() > 1 {
            return Err(AppendError::MultipleIdempotentBatches(spans.len()));
        }
        let now = self.clock.now_ms();
        let append_time = cfg.log_append_time.then_some(now);

        let mut inner = self.inner.lock();
        if idempotent {
            if let SeqCheck::Duplicate {
                base_offset,
                last_offset,
            } = inner.producers.check(&spans[0].2)?
            {
                return Ok(AppendInfo {
                    base_offset,
                    last_offset,
                    log_append_time: append_time.unwrap_or(-1),
                    duplicate: true,
                    bytes: 0,
                });
            }
        }
        let first_offset = inner.leo();
        let mut written = 0;
        // Batches stored so far: handed to `on_batch` as slices of the
        // request buffer (no copy) once every batch has its offsets, even
        // when a later one fails.
        let mut stored: Vec<(BatchHeader, usize, usize, BatchLoc, Option<TxnMark>)> =
            Vec::with_capacity(spans.len());
        let mut failed = None;
        for (start, end, h) in spans {
            let len = (end - start) as u64;
            let active = inner.active();
            let full = active.size > 0 && active.size + len > cfg.segment_bytes;
            let old = active.size > 0 && now - active.created_ms >= cfg.segment_ms;
            let index_overflow = active.next_offset - active.base_offset > (u32::MAX / 2) as i64
                || active.size + len > u32::MAX as u64;
            if full || old || index_overflow {
                self.roll(&mut inner, now)?;
            }
            let base = inner.leo();
            let bytes = &mut records[start..end];
            batch::assign(bytes, base, leader_epoch, append_time);
            let mut h = h;
            h.base_offset = base;
            if let Some(ts) = append_time {
                h.max_timestamp = ts;
            }
            let active = inner.active();
            let loc = BatchLoc {
                file: active.file.clone(),
                path: active.path().clone(),
                segment_base: active.base_offset,
                pos: active.size,
                first_in_segment: active.size == 0,
            };
            if let Err(e) = inner
                .active_mut()
                .append(&h, bytes, cfg.index_interval_bytes)
            {
                failed = Some(e);
                break;
            }
            inner.producers.record(&h, base);
            if h.is_control() {
                inner
                    .producers
                    .record_marker(h.producer_id, h.producer_epoch);
            }
            let mark = inner.txns.mark(&h, &records[start..end]);
            stored.push((h, start, end, loc, mark));
            written += len as usize;
        }
        let frozen = Bytes::from(std::mem::take(records));
        for (h, start, end, loc, mark) in stored {
            on_batch(&h, frozen.slice(start..end), loc, mark);
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        Ok(AppendInfo {
            base_offset: first_offset,
            last_offset: inner.leo() - 1,
            log_append_time: append_time.unwrap_or(-1),
            duplicate: false,
            bytes: written,
        })
    }

    /// Append batches whose offsets were assigned elsewhere (rebuilding the
    /// tail from object storage). Each must continue the log exactly.
    pub fn append_committed(&self, bytes: &[u8], cfg: &LogConfig) -> Result<(), AppendError> {
        let now = self.clock.now_ms();
        let mut inner = self.inner.lock();
        let mut pos = 0;
        while pos < bytes.len() {
            let len = batch::peek_batch_len(&bytes[pos..])
                .filter(|l| *l >= 0)
                .ok_or(BatchError::Truncated {
                    have: bytes.len() - pos,
                    need: LOG_OVERHEAD,
                })? as usize
                + LOG_OVERHEAD;
            let end = pos + len;
            if end > bytes.len() {
                return Err(BatchError::Truncated {
                    have: bytes.len() - pos,
                    need: len,
                }
                .into());
            }
            let h = batch::validate(&bytes[pos..end], usize::MAX)?;
            if h.base_offset != inner.leo() {
                return Err(LogError::Corrupt(
                    self.dir.display().to_string(),
                    format!(
                        "rebuilt batch at {} does not continue log end {}",
                        h.base_offset,
                        inner.leo()
                    ),
                )
                .into());
            }
            let active = inner.active();
            if active.size > 0 && active.size + len as u64 > cfg.segment_bytes {
                self.roll(&mut inner, now)?;
            }
            inner
                .active_mut()
                .append(&h, &bytes[pos..end], cfg.index_interval_bytes)?;
            inner.producers.record(&h, h.base_offset);
            if h.is_control() {
                inner
                    .producers
                    .record_marker(h.producer_id, h.producer_epoch);
            }
            inner.txns.mark(&h, &bytes[pos..end]);
            pos = end;
        }
        Ok(())
    }

    /// Drop every local segment and start empty at `start` (the local copy
    /// was lost or is behind object storage).
    pub fn reset(&self, start: i64) -> Result<(), LogError> {
        let now = self.clock.now_ms();
        let mut inner = self.inner.lock();
        for seg in inner.segments.drain(..) {
            seg.delete_files();
        }
        inner.unsynced.clear();
        inner.segments.push(Segment::create(&self.dir, start, now)?);
        inner.log_start = start;
        // Producer state of dropped data must not answer for it.
        inner.producers = ProducerStates::default();
        inner.txns = OpenTxns::default();
        Ok(())
    }

    /// The transactions open at the log end, as the committed metadata
    /// knows them (after a takeover or before re-committing a local tail).
    pub fn set_open_txns(&self, ongoing: &std::collections::BTreeMap<i64, i64>) {
        self.inner.lock().txns = OpenTxns::from_map(ongoing);
    }

    /// The mark of a stored batch being re-committed (advances the open
    /// transactions as [`PartitionLog::append_with`] does).
    pub fn replay_mark(&self, h: &BatchHeader, data: &[u8]) -> Option<TxnMark> {
        self.inner.lock().txns.mark(h, data)
    }

    /// Is a transaction of `producer_id` open in this log?
    pub fn txn_open(&self, producer_id: i64) -> bool {
        self.inner.lock().txns.is_open(producer_id)
    }

    /// The idempotent producers this log knows (at most `max`), each with
    /// the first offset of its open transaction, if any.
    pub fn producers(&self, max: usize) -> Vec<(super::producer::ProducerSummary, Option<i64>)> {
        let inner = self.inner.lock();
        inner
            .producers
            .summaries(max)
            .into_iter()
            .map(|p| {
                let txn = inner.txns.start_of(p.producer_id);
                (p, txn)
            })
            .collect()
    }

    /// The producer epoch this log knows for `producer_id`.
    pub fn producer_epoch(&self, producer_id: i64) -> Option<i16> {
        self.inner.lock().producers.epoch_of(producer_id)
    }

    /// Learn idempotent-producer state from committed batches without
    /// appending them (the segment before a rebuilt tail), so a retry of a
    /// batch written before a failover is answered with its offset.
    pub fn observe_producers(&self, bytes: &[u8]) {
        let mut inner = self.inner.lock();
        let mut pos = 0usize;
        while pos + batch::HEADER_LEN <= bytes.len() {
            let Ok(h) = batch::BatchHeader::parse(&bytes[pos..]) else {
                break;
            };
            let end = pos + h.total_len();
            if end > bytes.len() {
                break;
            }
            inner.producers.record(&h, h.base_offset);
            if h.is_control() {
                inner
                    .producers
                    .record_marker(h.producer_id, h.producer_epoch);
            }
            pos = end;
        }
    }

    /// Seal the active segment if it holds data older than `max_age_ms`, so
    /// it can be uploaded even when the partition is idle.
    pub fn roll_if_older(&self, max_age_ms: i64) -> Result<bool, LogError> {
        let now = self.clock.now_ms();
        let mut inner = self.inner.lock();
        let a = inner.active();
        if a.size > 0 && now - a.created_ms >= max_age_ms {
            self.roll(&mut inner, now)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Sealed segments (not the active one): base, end offset, size, file
    /// and the encoded offset index, for upload.
    pub fn sealed_segments(&self) -> Vec<SealedSegment> {
        let inner = self.inner.lock();
        let n = inner.segments.len();
        inner.segments[..n.saturating_sub(1)]
            .iter()
            .filter(|s| s.size > 0)
            .map(|s| SealedSegment {
                base_offset: s.base_offset,
                end_offset: s.next_offset,
                max_timestamp: s.max_timestamp,
                size: s.size,
                file: s.file.clone(),
                path: s.path().clone(),
                index: s.offset_index.encode(),
            })
            .collect()
    }

    /// Where the batch starting at `offset` lies (`None` when no local
    /// batch starts there).
    pub fn locate(&self, offset: i64) -> Result<Option<BatchLoc>, LogError> {
        let (view, file, path, base) = {
            let inner = self.inner.lock();
            if offset < inner.segments[0].base_offset || offset >= inner.leo() {
                return Ok(None);
            }
            let s = &inner.segments[inner.segment_for(offset)];
            (
                s.view(offset),
                s.file.clone(),
                s.path().clone(),
                s.base_offset,
            )
        };
        Ok(view.position_of(offset)?.map(|pos| BatchLoc {
            file,
            path,
            segment_base: base,
            pos,
            first_in_segment: pos == 0,
        }))
    }

    /// Seal the active segment and open a new one at the log end.
    fn roll(&self, inner: &mut Inner, now: i64) -> Result<(), LogError> {
        let leo = inner.leo();
        let seg = Segment::create(&self.dir, leo, now)?;
        // Sealing (a data fsync of up to segment.bytes, the index files and
        // the footer) runs on a blocking thread, outside the partition lock:
        // appends go on into the new segment meanwhile. Nothing waits for
        // it: acks=all durability comes from the WAL commit (in local mode
        // its fdatasync of the files); a crash before it is done costs a
        // scan of the segment at the next start.
        let job = inner.active().seal_job();
        let file = inner.active().file.clone();
        // Files only this list still holds belong to segments that are gone
        // (retention, trimming): holding them would keep their descriptors
        // and disk space forever.
        inner.unsynced.retain(|f| Arc::strong_count(f) > 1);
        inner.unsynced.push(file);
        inner.segments.push(seg);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || {
                    let path = job.path().to_path_buf();
                    if let Err(e) = job.run() {
                        tracing::warn!(segment = %path.display(), error = %e, "sealing a rolled segment failed; its indexes are rebuilt by a scan at the next start");
                    }
                });
            }
            Err(_) => job.run()?,
        }
        Ok(())
    }

    /// Blocking flush of everything, for shutdown.
    pub fn sync_all(&self) -> Result<(), LogError> {
        let mut inner = self.inner.lock();
        for f in std::mem::take(&mut inner.unsynced) {
            f.sync_data().map_err(|e| LogError::io(&self.dir, e))?;
        }
        inner
            .active()
            .file
            .sync_data()
            .map_err(|e| LogError::io(&self.dir, e))?;
        Ok(())
    }

    pub fn log_end_offset(&self) -> i64 {
        self.inner.lock().leo()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.lock().log_start
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.inner.lock().segments.iter().map(|s| s.size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.inner.lock().segments.len()
    }

    /// Read whole batches starting with the one that holds `offset`. The
    /// lock is held only to snapshot segment views; file reads happen after.
    pub fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<ReadInfo, LogError> {
        self.read_upto(offset, max_bytes, min_one, i64::MAX)
    }

    /// [`PartitionLog::read`] returning only batches that start below
    /// `max_offset` (the high watermark: committed to object storage).
    pub fn read_upto(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        max_offset: i64,
    ) -> Result<ReadInfo, LogError> {
        let (views, leo, start) = {
            let inner = self.inner.lock();
            let (leo, start) = (inner.leo(), inner.log_start);
            if offset < start || offset > leo {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    start,
                    end: leo,
                });
            }
            let i = inner.segment_for(offset);
            // Two segments suffice: an empty tail of one continues in the next.
            let views: Vec<_> = inner.segments[i..]
                .iter()
                .take(2)
                .map(|s| s.view(offset))
                .collect();
            (views, leo, start)
        };
        let mut out = Vec::new();
        for v in views {
            if let Some(pos) = v.position_of(offset.max(v.base_offset))? {
                out = v.read_at(pos, max_bytes, min_one)?;
                if !out.is_empty() {
                    break;
                }
            }
        }
        if max_offset != i64::MAX {
            let mut end = 0usize;
            while end + batch::HEADER_LEN <= out.len() {
                let Ok(h) = BatchHeader::parse(&out[end..]) else {
                    break;
                };
                if h.base_offset >= max_offset {
                    break;
                }
                end += h.total_len();
            }
            out.truncate(end);
        }
        Ok(ReadInfo {
            records: Bytes::from(out),
            high_watermark: leo,
            log_start_offset: start,
        })
    }

    /// First offset whose record timestamp is >= `ts`, with that timestamp.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        // Views of the candidate segments under the lock; the reads (header
        // scans, one batch read and its decompression) outside it, so
        // appends never wait for a lookup. Segments are append-only below
        // each view's size, and an unlinked file stays readable.
        let (views, log_start) = {
            let inner = self.inner.lock();
            let views: Vec<_> = inner
                .segments
                .iter()
                .filter(|seg| seg.max_timestamp >= ts && seg.next_offset > inner.log_start)
                .map(|seg| seg.view_for_time(ts))
                .collect();
            (views, inner.log_start)
        };
        for seg in &views {
            let mut found = None;
            seg.scan_headers(seg.scan_from(), seg.size, |p, h| {
                if h.max_timestamp >= ts && h.last_offset() >= log_start {
                    found = Some((p, *h));
                    false
                } else {
                    true
                }
            })?;
            let Some((p, h)) = found else { continue };
            if h.attributes & 0x08 != 0 {
                return Ok(Some((h.base_offset.max(log_start), h.max_timestamp)));
            }
            let raw = seg.read_batch(p, &h)?;
            let mut bytes = Bytes::from(raw);
            let set = match super::decode::decode_batch(
                &mut bytes,
                super::decode::MAX_DECOMPRESSED_BATCH_BYTES,
            ) {
                Ok(set) => set,
                // A batch stored as sent that cannot be decoded within the
                // bound: answer from its header (its first offset).
                Err(super::decode::DecodeError::TooLarge { .. }) => {
                    return Ok(Some((h.base_offset.max(log_start), h.max_timestamp)));
                }
                Err(e) => {
                    return Err(LogError::Corrupt(
                        format!("segment {}", seg.base_offset),
                        e.to_string(),
                    ))
                }
            };
            if let Some(r) = set
                .records
                .iter()
                .find(|r| r.timestamp >= ts && r.offset >= log_start)
            {
                return Ok(Some((r.offset, r.timestamp)));
            }
        }
        Ok(None)
    }

    /// Offset of the first record with the largest timestamp (ListOffsets -3).
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        let max = {
            let inner = self.inner.lock();
            inner
                .segments
                .iter()
                .map(|s| s.max_timestamp)
                .max()
                .unwrap_or(-1)
        };
        if max < 0 {
            return Ok(None);
        }
        self.offset_for_timestamp(max)
    }

    /// Advance the log start (DeleteRecords / retention); whole segments
    /// below it are removed.
    pub fn advance_start(&self, offset: i64) {
        let mut dropped = Vec::new();
        {
            let mut inner = self.inner.lock();
            let leo = inner.leo();
            inner.log_start = inner.log_start.max(offset.min(leo));
            while inner.segments.len() > 1 && inner.segments[0].next_offset <= inner.log_start {
                dropped.push(inner.segments.remove(0));
            }
            inner
                .unsynced
                .retain(|f| !dropped.iter().any(|d: &Segment| Arc::ptr_eq(&d.file, f)));
        }
        // Unlinking (which frees the file's blocks) happens outside the
        // partition lock and, under a runtime, off its worker threads.
        // Readers holding a view keep their open file.
        let unlink = move || dropped.iter().for_each(Segment::delete_files);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(unlink)),
            Err(_) => unlink(),
        }
    }

    /// Delete all files of this log.
    pub fn delete(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn batch(n: usize, ts: i64) -> Vec<u8> {
        let vals: Vec<Vec<u8>> = (0..n).map(|i| format!("value-{i}").into_bytes()).collect();
        let recs: Vec<batch::SimpleRecord> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| (None, Some(v.as_slice()), ts + i as i64))
            .collect();
        batch::build(0, &recs, None).to_vec()
    }

    fn small() -> LogConfig {
        LogConfig {
            segment_bytes: 1024,
            index_interval_bytes: 128,
            ..LogConfig::default()
        }
    }

    #[test]
    fn append_assigns_offsets_and_rolls() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000);
        let log = PartitionLog::open(dir.path(), 0, &small(), clock.clone()).unwrap();
        let mut next = 0;
        for i in 0..50 {
            let mut b = batch(3, i * 10);
            let info = log.append(&mut b, 0, &small()).unwrap();
            assert_eq!(info.base_offset, next);
            assert_eq!(info.last_offset, next + 2);
            next += 3;
        }
        assert!(log.segment_count() > 3, "rolled by segment.bytes");
        // read every offset back
        let mut off = 0;
        while off < next {
            let r = log.read(off, 1, true).unwrap();
            let h = BatchHeader::parse(&r.records).unwrap();
            assert!(h.base_offset <= off && off <= h.last_offset());
            off = h.last_offset() + 1;
        }
        assert!(matches!(
            log.read(next + 1, 100, true),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(log.read(next, 100, true).unwrap().records.is_empty());
    }

    #[test]
    fn dropped_segments_do_not_stay_open() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000);
        let log = PartitionLog::open(dir.path(), 0, &small(), clock.clone()).unwrap();
        let mut next = 0;
        for round in 0..4 {
            for i in 0..50 {
                next = log
                    .append(&mut batch(3, i * 10), 0, &small())
                    .unwrap()
                    .last_offset
                    + 1;
            }
            log.advance_start(next - 3);
            let held = log.inner.lock().unsynced.len();
            assert!(
                held <= log.segment_count() + 1,
                "round {round}: {held} files held for {} segments",
                log.segment_count()
            );
        }
    }

    #[test]
    fn compacted_logs_refuse_records_without_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(0);
        let cfg = LogConfig {
            require_keys: true,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), 0, &cfg, clock.clone()).unwrap();
        // Two batches in one write: record indices run across them.
        let mut two = batch::build(0, &[(Some(b"k"), Some(b"v"), 0)], None).to_vec();
        two.extend_from_slice(&batch(2, 0));
        match log.append(&mut two, 0, &cfg) {
            Err(AppendError::KeylessRecords { indices, total }) => {
                assert_eq!((indices, total), (vec![1, 2], 2));
            }
            other => panic!("keyless records accepted: {other:?}"),
        }
        assert_eq!(
            log.log_end_offset(),
            0,
            "nothing of the refused write is stored"
        );
        let mut keyed = batch::build(0, &[(Some(b"k"), None, 0)], None).to_vec();
        assert_eq!(log.append(&mut keyed, 0, &cfg).unwrap().base_offset, 0);
        // Without the requirement the same records are fine.
        assert!(log
            .append(&mut batch(2, 0), 0, &LogConfig::default())
            .is_ok());
    }

    #[test]
    fn roll_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(0);
        let cfg = LogConfig {
            segment_ms: 100,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), 0, &cfg, clock.clone()).unwrap();
        log.append(&mut batch(1, 0), 0, &cfg).unwrap();
        clock.advance(150);
        log.append(&mut batch(1, 0), 0, &cfg).unwrap();
        assert_eq!(log.segment_count(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_roll_seals_off_the_appending_thread_and_deleted_segments_stay_gone() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(0);
        let cfg = small();
        let log = PartitionLog::open(dir.path(), 0, &cfg, clock.clone()).unwrap();
        for _ in 0..40 {
            log.append(&mut batch(2, 5), 0, &cfg).unwrap();
        }
        assert!(log.segment_count() > 2);
        let files = |ext: &str| {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == ext)
                .count()
        };
        // Every sealed segment gets its footer, written by the seal jobs.
        let sealed = log.segment_count() - 1;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while files("meta") < sealed {
            assert!(std::time::Instant::now() < deadline, "footers not written");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // A seal job that runs after its segment was deleted writes nothing.
        let seg = Segment::create(dir.path(), 1_000_000, 0).unwrap();
        let job = seg.seal_job();
        seg.delete_files();
        job.run().unwrap();
        assert!(!dir.path().join("00000000000001000000.meta").exists());
        assert!(!dir.path().join("00000000000001000000.index").exists());
        // Reopened, the log has every offset (indexes loaded or rebuilt).
        let end = log.log_end_offset();
        drop(log);
        let log = PartitionLog::open(dir.path(), 0, &cfg, clock).unwrap();
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(end, 80);
    }

    #[test]
    fn recovery_cuts_torn_tail_and_continues_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(0);
        {
            let log = PartitionLog::open(dir.path(), 0, &small(), clock.clone()).unwrap();
            for _ in 0..20 {
                log.append(&mut batch(2, 5), 0, &small()).unwrap();
            }
            log.sync_all().unwrap();
        }
        // tear the active segment: append half a batch
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().unwrap() == "log")
            .collect();
        names.sort();
        let last = names.last().unwrap();
        let good_len = std::fs::metadata(last).unwrap().len();
        let half = &batch(2, 5)[..30];
        let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
        std::io::Write::write_all(&mut f, half).unwrap();
        drop(f);
        let log = PartitionLog::open(dir.path(), 0, &small(), clock.clone()).unwrap();
        assert_eq!(std::fs::metadata(last).unwrap().len(), good_len);
        assert_eq!(log.log_end_offset(), 40);
        let info = log.append(&mut batch(1, 5), 0, &small()).unwrap();
        assert_eq!(info.base_offset, 40);
    }

    #[test]
    fn recovery_stops_at_corrupt_batch() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(0);
        let cfg = LogConfig::default();
        {
            let log = PartitionLog::open(dir.path(), 0, &cfg, clock.clone()).unwrap();
            for _ in 0..3 {
                log.append(&mut batch(2, 5), 0, &cfg).unwrap();
            }
        }
        let p = dir.path().join(super::super::segment::log_name(0));
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0xff; // corrupt the last batch's payload
        std::fs::write(&p, &bytes).unwrap();
        let log = PartitionLog::open(dir.path(), 0, &cfg, clock).unwrap();
        assert_eq!(log.log_end_offset(), 4);
    }

    #[test]
    fn idempotent_duplicate_is_not_written_twice() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig::default();
        let log = PartitionLog::open(dir.path(), 0, &cfg, ManualClock::new(0)).unwrap();
        let recs: [batch::SimpleRecord; 2] = [(None, Some(b"a"), 1), (None, Some(b"b"), 2)];
        let b = batch::build(0, &recs, Some((77, 0, 0))).to_vec();
        let first = log.append(&mut b.clone(), 0, &cfg).unwrap();
        let again = log.append(&mut b.clone(), 0, &cfg).unwrap();
        assert!(again.duplicate);
        assert_eq!(first.base_offset, again.base_offset);
        assert_eq!(log.log_end_offset(), 2);
        let gap = batch::build(0, &recs, Some((77, 0, 9))).to_vec();
        let err = log.append(&mut gap.clone(), 0, &cfg).unwrap_err();
        assert_eq!(err.kafka_code(), 45);
    }

    #[test]
    fn timestamp_lookup_finds_first_record_at_or_after() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = small();
        let log = PartitionLog::open(dir.path(), 0, &cfg, ManualClock::new(0)).unwrap();
        for i in 0..30 {
            log.append(&mut batch(4, 1000 + i * 4), 0, &cfg).unwrap();
        }
        // records have ts 1000..1120 at offsets 0..120
        assert_eq!(log.offset_for_timestamp(1000).unwrap(), Some((0, 1000)));
        assert_eq!(log.offset_for_timestamp(1057).unwrap(), Some((57, 1057)));
        assert_eq!(log.offset_for_timestamp(5000).unwrap(), None);
        assert_eq!(log.max_timestamp_offset().unwrap(), Some((119, 1119)));
    }

    #[test]
    fn bad_batch_refused_and_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig::default();
        let log = PartitionLog::open(dir.path(), 0, &cfg, ManualClock::new(0)).unwrap();
        let mut good = batch(1, 0);
        let mut bad = batch(1, 0);
        let n = bad.len();
        bad[n - 1] ^= 1;
        good.extend_from_slice(&bad);
        let err = log.append(&mut good, 0, &cfg).unwrap_err();
        assert_eq!(err.kafka_code(), 2);
        assert_eq!(log.log_end_offset(), 0);
    }
}
