//! The object-storage tier beyond the WAL: uploading sealed segments (one
//! manifest swap replaces their WAL extents), reads of offsets that are not
//! on local disk, and garbage collection of unreferenced objects.
//!
//! Each job is a struct with `tick()`, driven by an interval until shutdown;
//! every tick is idempotent, so a crash between steps only repeats work.

pub mod reader;

#[cfg(test)]
mod fault_tests;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::meta::tier::{ExtentKind, SegmentCommit};
use crate::meta::Command;
use crate::objstore::{paths, StoreError};

/// Tier job settings.
#[derive(Debug, Clone)]
pub struct TierConfig {
    /// Seal and upload a partition's active segment once its oldest data is
    /// this old, so WAL objects can be deleted. Lower = fewer WAL bytes kept
    /// and less metadata, more (smaller) segment objects.
    pub upload_interval_ms: i64,
    /// How often the uploader and GC look for work.
    pub tick_ms: u64,
    /// Unreferenced objects (and orphans of crashed writers) are deleted
    /// after this grace period, so in-flight readers and uploads finish.
    pub gc_grace_ms: i64,
    /// Largest segment read into memory for upload at once.
    pub max_upload_bytes: u64,
    /// Sealed, uploaded local segments kept per partition (bytes; -1 keeps
    /// all): the local disk is a read cache of object storage.
    pub local_retention_bytes: i64,
}

/// Job metrics.
#[derive(Default)]
pub struct TierMetrics {
    pub segments_uploaded: AtomicU64,
    pub segment_bytes_uploaded: AtomicU64,
    pub upload_errors: AtomicU64,
    pub gc_deleted: AtomicU64,
    pub gc_errors: AtomicU64,
    pub gc_last_success_ms: AtomicI64,
}

impl TierMetrics {
    /// Render in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        crate::metrics::write_metric(
            out,
            "strata_segments_uploaded_total",
            "counter",
            "Segments uploaded to object storage.",
            self.segments_uploaded.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_segment_upload_bytes_total",
            "counter",
            "Segment bytes uploaded.",
            self.segment_bytes_uploaded.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_segment_upload_errors_total",
            "counter",
            "Failed segment uploads or commits.",
            self.upload_errors.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_gc_deleted_objects_total",
            "counter",
            "Objects deleted by GC.",
            self.gc_deleted.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_gc_errors_total",
            "counter",
            "GC deletions that failed.",
            self.gc_errors.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_gc_last_success_timestamp_ms",
            "gauge",
            "Last completed GC pass.",
            self.gc_last_success_ms.load(Relaxed),
        );
    }
}

/// Uploads sealed local segments whose offsets are all committed.
pub struct SegmentUploader {
    broker: Arc<Broker>,
}

impl SegmentUploader {
    pub fn new(broker: Arc<Broker>) -> SegmentUploader {
        SegmentUploader { broker }
    }

    /// One pass over every partition.
    pub async fn tick(&self) {
        let b = &self.broker;
        let cfg = b.tier_config().clone();
        for t in b.topic_handles() {
            for p in &t.partitions {
                // Only the leader uploads: another broker's local copy of
                // the partition may be stale.
                if !b.leads(t.id, p) {
                    continue;
                }
                if let Err(e) = p.log.roll_if_older(cfg.upload_interval_ms) {
                    tracing::warn!(topic = %t.name, partition = p.index, error = %e, "cannot roll segment");
                }
                let meta = b.meta();
                let Some(pm) = meta
                    .topic_by_id(&t.id)
                    .and_then(|mt| mt.partitions.get(p.index as usize))
                else {
                    continue;
                };
                for seg in p.log.sealed_segments() {
                    if seg.end_offset > pm.committed_end {
                        break;
                    }
                    let covered_by_segment = pm.extents.iter().any(|e| {
                        e.kind == ExtentKind::Segment
                            && e.base_offset <= seg.base_offset
                            && e.end_offset >= seg.end_offset
                    });
                    let below_start = pm
                        .extents
                        .first()
                        .is_none_or(|e| seg.end_offset <= e.base_offset);
                    if covered_by_segment || below_start {
                        continue;
                    }
                    let aligned = pm.extents.iter().any(|e| e.base_offset == seg.base_offset)
                        && pm.extents.iter().any(|e| e.end_offset == seg.end_offset);
                    if !aligned {
                        tracing::debug!(topic = %t.name, partition = p.index, base = seg.base_offset, "segment does not align with extents; not uploaded");
                        continue;
                    }
                    if seg.size > cfg.max_upload_bytes {
                        tracing::warn!(topic = %t.name, partition = p.index, size = seg.size, "segment larger than max upload size; kept in WAL extents");
                        continue;
                    }
                    if let Err(e) = self.upload(&t.id, p.index, p.leader_epoch, &seg).await {
                        b.tier_metrics().upload_errors.fetch_add(1, Relaxed);
                        tracing::warn!(topic = %t.name, partition = p.index, base = seg.base_offset, error = %e, "segment upload failed; will retry");
                        break;
                    }
                }
                self.trim_local(&t.id, p, cfg.local_retention_bytes);
            }
        }
    }

    /// Local disk is a cache: once the sealed segments that are safely in
    /// object storage exceed `limit` bytes, drop the oldest local copies
    /// (reads below fall through to object storage).
    fn trim_local(&self, topic_id: &uuid::Uuid, p: &crate::broker::PartitionHandle, limit: i64) {
        if limit < 0 {
            return;
        }
        let meta = self.broker.meta();
        let Some(pm) = meta
            .topic_by_id(topic_id)
            .and_then(|t| t.partitions.get(p.index as usize))
        else {
            return;
        };
        let uploaded = |base: i64, end: i64| {
            pm.extents.iter().any(|e| {
                e.kind == ExtentKind::Segment && e.base_offset <= base && e.end_offset >= end
            })
        };
        let sealed = p.log.sealed_segments();
        let mut total: i64 = sealed.iter().map(|s| s.size as i64).sum();
        let mut cut = None;
        for s in &sealed {
            if total <= limit || !uploaded(s.base_offset, s.end_offset) {
                break;
            }
            total -= s.size as i64;
            cut = Some(s.end_offset);
        }
        if let Some(end) = cut {
            p.log.advance_start(end);
            tracing::debug!(
                partition = p.index,
                local_start = end,
                "dropped local copies of uploaded segments"
            );
        }
    }

    async fn upload(
        &self,
        topic_id: &uuid::Uuid,
        partition: i32,
        leader_epoch: i32,
        seg: &crate::log::SealedSegment,
    ) -> Result<(), String> {
        let b = &self.broker;
        let size = seg.size;
        let key = paths::segment(*topic_id, partition, seg.base_offset, leader_epoch);
        let index_key = paths::segment_index(&key);
        let store = b.store();
        // A retry after a crash may find the object already there: fine,
        // the key is unique to this leader epoch and segment. In local mode
        // the sealed file itself becomes the object (a hard link, no copy;
        // its bytes were fsynced by the WAL commits that cover them).
        let put = if b.wal().is_local() {
            b.wal()
                .sync_file(seg.file.clone())
                .await
                .map_err(|e| e.to_string())?;
            store.link_file(&seg.path, &key).await.map(|_| ())
        } else {
            store.put_file(&key, seg.file.clone(), size).await
        };
        match put {
            Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.to_string()),
        }
        match store
            .put_create(&index_key, Bytes::from(seg.index.clone()))
            .await
        {
            Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.to_string()),
        }
        let cmd = Command::CommitSegment {
            segment: SegmentCommit {
                topic_id: *topic_id,
                partition,
                leader_epoch,
                key,
                index_key,
                size,
                index_size: seg.index.len() as u64,
                base_offset: seg.base_offset,
                end_offset: seg.end_offset,
                max_timestamp: seg.max_timestamp,
                tombstone_ts: -1,
            },
            committed_at_ms: b.clock.now_ms(),
        };
        b.submit(cmd).await.map_err(|e| e.to_string())?;
        let m = b.tier_metrics();
        m.segments_uploaded.fetch_add(1, Relaxed);
        m.segment_bytes_uploaded.fetch_add(size, Relaxed);
        Ok(())
    }
}

/// Deletes objects nothing references: first the metadata says they are
/// gone (`deletable`), then after the grace period they are deleted and
/// forgotten. Objects the metadata never knew (orphans of fenced or crashed
/// writers) are deleted once older than the grace period.
pub struct Gc {
    broker: Arc<Broker>,
}

impl Gc {
    pub fn new(broker: Arc<Broker>) -> Gc {
        Gc { broker }
    }

    pub async fn tick(&self) {
        let b = &self.broker;
        // One GC per cluster: the lowest-id live broker.
        if !b.is_gc_owner() {
            return;
        }
        let grace = b.tier_config().gc_grace_ms;
        let now = b.clock.now_ms();
        let store = b.store();
        let due: Vec<String> = b
            .meta()
            .tier
            .deletable
            .iter()
            .filter(|(_, t)| now - **t >= grace)
            .map(|(k, _)| k.clone())
            .take(GC_MAX_DELETE)
            .collect();
        let mut forgotten = Vec::new();
        let mut ok = true;
        for key in due {
            match store.delete(&key).await {
                Ok(()) => {
                    b.tier_metrics().gc_deleted.fetch_add(1, Relaxed);
                    forgotten.push(key);
                }
                Err(e) => {
                    // The store's retries are spent: it is failing. Stop
                    // here rather than spend them again on every key; this
                    // key and the rest stay deletable for the next pass.
                    ok = false;
                    b.tier_metrics().gc_errors.fetch_add(1, Relaxed);
                    tracing::warn!(key, error = %e, "GC delete failed; the next pass retries");
                    break;
                }
            }
        }
        if !forgotten.is_empty() {
            let n = forgotten.len();
            match b.submit(Command::ForgetObjects { keys: forgotten }).await {
                Ok(_) => tracing::debug!(count = n, "GC forgot deleted objects"),
                Err(e) => tracing::warn!(error = %e, "GC forget failed"),
            }
        }
        // Orphans: objects under our prefixes the metadata does not know.
        // Listings are streamed: at most `GC_CHUNK` keys are held before
        // they are condemned, and at most `GC_MAX_CONDEMN` per pass.
        let mut condemned = 0usize;
        for prefix in [paths::WAL_PREFIX, paths::SEGMENT_PREFIX] {
            if condemned >= GC_MAX_CONDEMN {
                break;
            }
            let mut listing = store.lister(prefix);
            let mut chunk: Vec<String> = Vec::new();
            loop {
                let item = listing.next().await;
                let end = match item {
                    None => true,
                    Some(Err(e)) => {
                        // What was listed before the failure is still
                        // worth condemning: each key was checked alone.
                        ok = false;
                        tracing::warn!(prefix, error = %e, "GC list failed");
                        true
                    }
                    Some(Ok(o)) => {
                        // A fresh view per key: an upload committed while
                        // the listing runs is known by the time it is seen.
                        if now - o.last_modified_ms >= grace && !b.meta().tier.knows(&o.key) {
                            chunk.push(o.key);
                        }
                        condemned + chunk.len() >= GC_MAX_CONDEMN
                    }
                };
                if chunk.len() >= GC_CHUNK || (end && !chunk.is_empty()) {
                    let keys = std::mem::take(&mut chunk);
                    let n = keys.len();
                    if !self.condemn(keys, now - grace, prefix).await {
                        ok = false;
                    }
                    condemned += n;
                }
                if end {
                    break;
                }
            }
        }
        // A `file://` store: staging files of copies a crash interrupted
        // (never listed, so never orphans above), once surely abandoned.
        if let Some(root) = store.local_root().map(std::path::Path::to_path_buf) {
            let min_age = grace.max(STAGING_MIN_AGE_MS);
            let older_than = std::time::UNIX_EPOCH
                + std::time::Duration::from_millis(now.saturating_sub(min_age).max(0) as u64);
            let swept = tokio::task::spawn_blocking(move || {
                crate::objstore::sweep_local_staging(&root, older_than, GC_MAX_STAGING_VISIT)
            })
            .await;
            match swept {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(
                    removed = n,
                    "GC removed staging files of interrupted copies"
                ),
                Ok(Err(e)) => {
                    ok = false;
                    tracing::warn!(error = %e, "GC could not sweep the store's staging files");
                }
                Err(_) => ok = false,
            }
        }
        if ok {
            b.tier_metrics().gc_last_success_ms.store(now, Relaxed);
        }
    }
}

/// A staging file younger than this may belong to a copy still running.
const STAGING_MIN_AGE_MS: i64 = 600_000;
/// Directory entries one GC pass visits looking for staging files.
const GC_MAX_STAGING_VISIT: usize = 100_000;

impl Gc {
    /// Orphans are first condemned through the metadata (a commit of a
    /// condemned key is refused), so no upload can be committed between
    /// "unreferenced" and the delete; a later pass deletes them like any
    /// deletable object.
    async fn condemn(&self, keys: Vec<String>, at_ms: i64, prefix: &str) -> bool {
        let n = keys.len();
        match self
            .broker
            .submit(Command::CondemnObjects { keys, at_ms })
            .await
        {
            Ok(_) => {
                tracing::info!(count = n, prefix, "GC condemned orphan objects");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "GC could not condemn orphans");
                false
            }
        }
    }
}

/// Orphan keys held by GC before it condemns them.
const GC_CHUNK: usize = 1_000;
/// Orphans condemned per GC pass at most.
const GC_MAX_CONDEMN: usize = 10_000;
/// Deletions per GC pass at most (the rest wait for the next pass).
const GC_MAX_DELETE: usize = 10_000;

/// Drive the uploader and GC until shutdown.
pub fn start_jobs(
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let uploader = SegmentUploader::new(broker.clone());
        let gc = Gc::new(broker.clone());
        let retention = crate::jobs::Retention::new(broker.clone());
        let compactor = crate::jobs::compaction::Compactor::new(broker.clone());
        let mut tick =
            tokio::time::interval(Duration::from_millis(broker.tier_config().tick_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            uploader.tick().await;
            retention.tick().await;
            if n.is_multiple_of(5) {
                compactor.tick().await;
            }
            // GC lists the bucket: every 10th tick is plenty.
            if n.is_multiple_of(10) {
                gc.tick().await;
            }
            n += 1;
        }
    })
}
