//! The write-ahead log in object storage.
//!
//! Every batch a broker appends is also queued here. Every `wal-flush-ms`
//! (or sooner once `wal-flush-bytes` are queued) the queue becomes one WAL
//! object holding the batches of all partitions, grouped per partition so
//! each partition gets one contiguous extent. The object is uploaded with a
//! create-only put (retried under the store's policy, unbounded, while
//! the store fails), then its
//! extents are committed to the metadata state machine with
//! `(partition, leader_epoch, expected_base_offset)`. Uploads run
//! concurrently (bounded); commits happen strictly in flush order so every
//! partition's extents continue each other. acks=all producers wait for the
//! commit that covers their offsets.
//!
//! Back-pressure: queued plus in-flight bytes are bounded by
//! `wal-max-buffered-bytes`; producers wait for space, memory does not grow.
//!
//! When to cut an object: once `wal-flush-bytes` are queued, once the oldest
//! queued batch is `wal-flush-ms` old, or early once nothing more has
//! arrived for `wal-flush-idle-ms` — but then only if the previous object
//! was cut at least `wal-flush-ms` ago, so the PUT rate never exceeds what
//! the interval alone would cost.
//!
//! **Local mode** (`--wal-mode`, the embedded default: a `file://` store on
//! the data directory's filesystem): the bytes are not copied into WAL
//! objects at all. The hot segment files already hold them; a flush
//! fdatasyncs the segment files its batches are in (one group commit for
//! everything queued), links each file into the store once (a hard link,
//! `paths::wal_local`), and commits extents pointing into those growing
//! objects. Flushes start as soon as anything is queued (at most
//! `wal-max-inflight-uploads` at once), so acks=all and the high watermark
//! follow the fsync within milliseconds. Flushes whose fsyncs are done when
//! the committer reaches them share one metadata commit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::broker::Broker;
use crate::log::batch::BatchHeader;
use crate::log::partition::BatchLoc;
use crate::meta::tier::{TxnMark, WalExtent};
use crate::objstore::{paths, Store, StoreError};

/// Magic prefix of every WAL object (16 bytes with the format version).
pub const WAL_MAGIC: &[u8; 16] = b"STRATA-WAL-v0001";

/// WAL settings.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// Flush at least this often. Each flush is one PUT: 100 ms ≈ 10 PUTs/s
    /// per broker ≈ 26 M PUTs/month (about $130 at S3 standard prices);
    /// acks=all latency is about this plus one PUT.
    pub flush_ms: u64,
    /// Flush as soon as this many bytes are queued.
    pub flush_bytes: usize,
    /// Queued + uploading bytes before producers are made to wait.
    pub max_buffered_bytes: usize,
    /// Concurrent WAL uploads.
    pub max_inflight_uploads: usize,
    /// Cut early once nothing has arrived for this long (0: never), at most
    /// one object per `flush_ms` that way.
    pub flush_idle_ms: u64,
    /// Local mode: commit the fsynced segment files in place (module docs).
    pub local: bool,
}

/// WAL errors seen by producers.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("not committed to object storage within {0:?}")]
    Timeout(Duration),
    #[error("the WAL is shut down")]
    Closed,
    #[error("leadership of the partition moved before the data was committed")]
    NotLeader,
}

/// The partition (and leader epoch) a queued batch belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
}

struct Entry {
    topic_id: Uuid,
    partition: i32,
    leader_epoch: i32,
    base: i64,
    end: i64,
    first_in_segment: bool,
    max_timestamp: i64,
    mark: Option<TxnMark>,
    data: Bytes,
    /// Where the batch lies on local disk (local mode only).
    loc: Option<BatchLoc>,
    _permit: Option<OwnedSemaphorePermit>,
}

#[derive(Default)]
struct Buffer {
    entries: Vec<Entry>,
    bytes: usize,
    /// When the oldest and the newest queued entry arrived.
    first_at: Option<Instant>,
    last_at: Option<Instant>,
}

/// Local segment files linked into the store already (bounded: forgotten
/// wholesale when full; a repeated link of the same file is harmless).
const MAX_LINKED: usize = 16_384;

/// WAL metrics.
#[derive(Default)]
pub struct WalMetrics {
    pub flushes: AtomicU64,
    pub flush_bytes: AtomicU64,
    pub flush_latency: crate::metrics::Histogram,
    /// The metadata commit alone (controller round trip and apply).
    pub commit_latency: crate::metrics::Histogram,
    pub commit_failures: AtomicU64,
    pub upload_retries: AtomicU64,
    /// 1 while WAL uploads fail (the object store is down), else 0.
    pub upload_failing: AtomicU64,
    pub inflight_uploads: AtomicU64,
    pub buffered_bytes: AtomicU64,
}

impl WalMetrics {
    /// Render in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        crate::metrics::write_metric(
            out,
            "strata_wal_flushes_total",
            "counter",
            "WAL objects committed.",
            l(&self.flushes),
        );
        crate::metrics::write_metric(
            out,
            "strata_wal_flush_bytes_total",
            "counter",
            "Bytes in committed WAL objects.",
            l(&self.flush_bytes),
        );
        out.push_str("# HELP strata_wal_flush_duration_seconds Time from a WAL flush's start to its commit.\n# TYPE strata_wal_flush_duration_seconds histogram\n");
        self.flush_latency
            .render(out, "strata_wal_flush_duration_seconds", "");
        out.push_str("# HELP strata_wal_commit_duration_seconds Time the metadata commit of a WAL object takes (controller quorum round trip and apply), retries included.\n# TYPE strata_wal_commit_duration_seconds histogram\n");
        self.commit_latency
            .render(out, "strata_wal_commit_duration_seconds", "");
        crate::metrics::write_metric(
            out,
            "strata_wal_commit_failures_total",
            "counter",
            "WAL commits refused by the metadata state machine.",
            l(&self.commit_failures),
        );
        crate::metrics::write_metric(
            out,
            "strata_wal_upload_retries_total",
            "counter",
            "WAL uploads retried after a store error.",
            l(&self.upload_retries),
        );
        crate::metrics::write_metric(
            out,
            "strata_wal_upload_failing",
            "gauge",
            "1 while WAL uploads are failing and being retried (acks=all producers time out), else 0.",
            l(&self.upload_failing),
        );
        crate::metrics::write_metric(
            out,
            "strata_wal_upload_queue_depth",
            "gauge",
            "WAL objects uploading or waiting to commit.",
            l(&self.inflight_uploads),
        );
        crate::metrics::write_metric(
            out,
            "strata_wal_buffered_bytes",
            "gauge",
            "Bytes queued or uploading.",
            l(&self.buffered_bytes),
        );
    }
}

/// The broker's WAL.
pub struct Wal {
    cfg: WalConfig,
    buf: Mutex<Buffer>,
    space: Arc<Semaphore>,
    kick: Notify,
    committed: watch::Sender<u64>,
    healthy: AtomicBool,
    /// Set while a WAL commit keeps failing (quorum unavailable): the
    /// broker reports it on /readyz instead of wedging silently.
    commit_stalled: AtomicBool,
    closed: AtomicBool,
    linked: Mutex<std::collections::HashSet<String>>,
    pub metrics: WalMetrics,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("cfg", &self.cfg).finish()
    }
}

/// How long a failing WAL upload keeps trying once shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Backoff of a WAL commit the metadata quorum did not confirm: 100 ms
/// doubling to 5 s. (Object-store retries follow the store's policy.)
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}

struct Flushed {
    key: String,
    size: u64,
    extents: Vec<WalExtent>,
    entries: Vec<Entry>,
    started: Instant,
    upload: Upload,
}

/// The task making a flush durable before its commit.
enum Upload {
    /// A WAL object's PUT: landed or not.
    Object(tokio::task::JoinHandle<bool>),
    /// Local mode: segment files synced and linked; the keys of files gone
    /// meanwhile.
    Local(tokio::task::JoinHandle<Result<Vec<Arc<str>>, ()>>),
}

impl Upload {
    fn is_finished(&self) -> bool {
        match self {
            Upload::Object(h) => h.is_finished(),
            Upload::Local(h) => h.is_finished(),
        }
    }

    /// Wait for it: `None` when nothing may be committed, else the extents
    /// to commit.
    async fn finish(self, extents: Vec<WalExtent>) -> Option<Vec<WalExtent>> {
        match self {
            Upload::Object(h) => h.await.unwrap_or(false).then_some(extents),
            Upload::Local(h) => {
                let gone = h.await.ok()?.ok()?;
                Some(
                    extents
                        .into_iter()
                        .filter(|e| !gone.iter().any(|g| e.object.as_deref() == Some(&**g)))
                        .collect(),
                )
            }
        }
    }
}

impl Flushed {
    /// Wait for its upload (or local sync).
    async fn finish(self) -> Done {
        Done {
            extents: self.upload.finish(self.extents).await,
            key: self.key,
            size: self.size,
            entries: self.entries,
            started: self.started,
        }
    }
}

/// A flush whose upload is over: `extents` is `None` when it failed and
/// nothing of it may be committed.
struct Done {
    key: String,
    size: u64,
    extents: Option<Vec<WalExtent>>,
    entries: Vec<Entry>,
    started: Instant,
}

/// At most this many local-mode flushes share one metadata commit.
const MAX_COMMIT_GROUP: usize = 64;

/// When the flusher cuts the next object.
enum Due {
    Now,
    At(Instant),
    /// Nothing queued: wait for the first entry.
    Idle,
}

impl Wal {
    pub fn new(cfg: WalConfig) -> Arc<Wal> {
        let permits = cfg
            .max_buffered_bytes
            .clamp(1 << 20, Semaphore::MAX_PERMITS);
        let (committed, _) = watch::channel(0);
        Arc::new(Wal {
            space: Arc::new(Semaphore::new(permits)),
            cfg,
            buf: Mutex::new(Buffer::default()),
            kick: Notify::new(),
            committed,
            healthy: AtomicBool::new(true),
            commit_stalled: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            linked: Mutex::new(Default::default()),
            metrics: WalMetrics::default(),
        })
    }

    /// Local mode: segment files are committed in place (module docs).
    pub fn is_local(&self) -> bool {
        self.cfg.local
    }

    /// fdatasync a file on a blocking thread.
    pub async fn sync_file(&self, file: Arc<std::fs::File>) -> std::io::Result<()> {
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    }

    /// Is the object store accepting our writes?
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn set_healthy(&self, ok: bool) {
        self.healthy.store(ok, Ordering::Relaxed);
        self.metrics
            .upload_failing
            .store(u64::from(!ok), Ordering::Relaxed);
    }

    /// Has a WAL commit been failing for several attempts in a row?
    pub fn commit_stalled(&self) -> bool {
        self.commit_stalled.load(Ordering::Relaxed)
    }

    /// Flush now and wait (bounded) until nothing appended is waiting for
    /// its commit; `false` on timeout.
    pub async fn wait_empty(&self, timeout: Duration) -> bool {
        let mut rx = self.committed.subscribe();
        self.kick.notify_one();
        tokio::time::timeout(timeout, async {
            while self.metrics.buffered_bytes.load(Ordering::Relaxed) > 0 {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }

    /// Wait for buffer space for `bytes` (back-pressure on producers).
    pub async fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, WalError> {
        let n = bytes
            .clamp(1, self.cfg.max_buffered_bytes.max(1 << 20))
            .min(u32::MAX as usize) as u32;
        self.space
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| WalError::Closed)
    }

    /// Queue one appended batch. Called under the partition lock, so each
    /// partition's batches arrive in offset order.
    pub fn push(
        &self,
        to: Target,
        h: &BatchHeader,
        bytes: Bytes,
        loc: BatchLoc,
        mark: Option<TxnMark>,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        let Target {
            topic_id,
            partition,
            leader_epoch,
        } = to;
        let len = bytes.len();
        let first_in_segment = loc.first_in_segment;
        let loc = self.cfg.local.then_some(loc);
        let now = Instant::now();
        let kick = {
            let mut b = self.buf.lock();
            b.bytes += len;
            let was_empty = b.entries.is_empty();
            b.entries.push(Entry {
                topic_id,
                partition,
                leader_epoch,
                base: h.base_offset,
                end: h.last_offset() + 1,
                first_in_segment,
                max_timestamp: h.max_timestamp,
                mark,
                data: bytes,
                loc,
                _permit: permit,
            });
            b.first_at.get_or_insert(now);
            b.last_at = Some(now);
            // The flusher arms its timers when the first entry arrives.
            was_empty || b.bytes >= self.cfg.flush_bytes
        };
        self.metrics
            .buffered_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        if kick {
            self.kick.notify_one();
        }
    }

    /// Wait until offsets below `upto` of a partition are committed.
    pub async fn wait_committed(
        &self,
        broker: &Broker,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: i32,
        upto: i64,
        timeout: Duration,
    ) -> Result<(), WalError> {
        let mut rx = self.committed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let meta = broker.meta();
            let Some(p) = meta
                .topic_by_id(&topic_id)
                .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
            else {
                return Ok(());
            };
            if p.leader != broker.broker_id || p.leader_epoch != leader_epoch {
                // Moved: committed before the move, or fenced at commit
                // (never to commit here). Only the epoch history tells;
                // `committed_end` alone would count the next leader's
                // writes at these offsets as ours.
                return if p.committed_in_epoch(leader_epoch, upto) {
                    Ok(())
                } else {
                    Err(WalError::NotLeader)
                };
            }
            if p.committed_end >= upto {
                return Ok(());
            }
            if self.closed.load(Ordering::Relaxed) {
                return Err(WalError::Closed);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(WalError::Closed),
                Err(_) => return Err(WalError::Timeout(timeout)),
            }
        }
    }

    /// Turn queued entries into one object: header, then each partition's
    /// batches contiguous, split where a new local segment starts so that
    /// segment uploads align with extent boundaries. The object is a list of
    /// the entries' own buffers (no copy); `size` is its length.
    fn build(entries: &[Entry]) -> (Vec<Bytes>, Vec<WalExtent>, u64) {
        // Group by partition in order of first appearance (linear time).
        let mut index: std::collections::HashMap<(Uuid, i32), usize> =
            std::collections::HashMap::new();
        let mut groups: Vec<Vec<&Entry>> = Vec::new();
        for e in entries {
            let g = *index.entry((e.topic_id, e.partition)).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(e);
        }
        let mut parts = Vec::with_capacity(entries.len() + 1);
        parts.push(Bytes::from_static(WAL_MAGIC));
        let mut at = WAL_MAGIC.len() as u64;
        let mut extents: Vec<WalExtent> = Vec::new();
        for group in groups {
            let mut cur: Option<WalExtent> = None;
            for e in group {
                let len = e.data.len() as u64;
                match &mut cur {
                    Some(c)
                        if !e.first_in_segment
                            && c.end_offset == e.base
                            && c.leader_epoch == e.leader_epoch =>
                    {
                        c.end_offset = e.end;
                        c.byte_len += len;
                        c.max_timestamp = c.max_timestamp.max(e.max_timestamp);
                        c.txn.extend(e.mark);
                    }
                    _ => {
                        if let Some(c) = cur.take() {
                            extents.push(c);
                        }
                        cur = Some(WalExtent {
                            topic_id: e.topic_id,
                            partition: e.partition,
                            leader_epoch: e.leader_epoch,
                            base_offset: e.base,
                            end_offset: e.end,
                            byte_offset: at,
                            byte_len: len,
                            max_timestamp: e.max_timestamp,
                            txn: e.mark.into_iter().collect(),
                            object: None,
                        });
                    }
                }
                parts.push(e.data.clone());
                at += len;
            }
            if let Some(c) = cur {
                extents.push(c);
            }
        }
        (parts, extents, at)
    }

    /// Local mode: the extents of queued entries in their own segment
    /// files (`keys[i]` names the object of `entries[i]`'s file), one per
    /// run of contiguous bytes of one partition.
    fn build_local(entries: &[Entry], keys: &[Arc<str>]) -> Vec<WalExtent> {
        let mut index: std::collections::HashMap<(Uuid, i32), usize> =
            std::collections::HashMap::new();
        let mut out: Vec<Vec<WalExtent>> = Vec::new();
        for (e, key) in entries.iter().zip(keys) {
            let Some(loc) = &e.loc else { continue };
            let g = *index.entry((e.topic_id, e.partition)).or_insert_with(|| {
                out.push(Vec::new());
                out.len() - 1
            });
            let len = e.data.len() as u64;
            match out[g].last_mut() {
                Some(c)
                    if c.object.as_deref() == Some(&**key)
                        && c.end_offset == e.base
                        && c.byte_offset + c.byte_len == loc.pos
                        && c.leader_epoch == e.leader_epoch =>
                {
                    c.end_offset = e.end;
                    c.byte_len += len;
                    c.max_timestamp = c.max_timestamp.max(e.max_timestamp);
                    c.txn.extend(e.mark);
                }
                _ => out[g].push(WalExtent {
                    topic_id: e.topic_id,
                    partition: e.partition,
                    leader_epoch: e.leader_epoch,
                    base_offset: e.base,
                    end_offset: e.end,
                    byte_offset: loc.pos,
                    byte_len: len,
                    max_timestamp: e.max_timestamp,
                    txn: e.mark.into_iter().collect(),
                    object: Some(key.to_string()),
                }),
            }
        }
        out.into_iter().flatten().collect()
    }

    /// Local mode's "upload": fdatasync every segment file the entries are
    /// in (concurrently, so the filesystem can share one journal commit)
    /// and link each into the store under its key once. Files gone
    /// meanwhile (the partition was deleted or moved away) are left out:
    /// their keys are returned, and their extents dropped from the commit.
    async fn sync_local(
        self: Arc<Self>,
        store: Arc<Store>,
        files: Vec<(Arc<str>, Arc<std::fs::File>, Arc<std::path::Path>)>,
    ) -> Result<Vec<Arc<str>>, ()> {
        let syncs: Vec<_> = files
            .iter()
            .map(|(_, f, _)| {
                let f = f.clone();
                tokio::task::spawn_blocking(move || f.sync_data())
            })
            .collect();
        let mut failed = false;
        for (r, (key, _, path)) in futures_util::future::join_all(syncs)
            .await
            .into_iter()
            .zip(&files)
        {
            if let Err(e) = r.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()))) {
                tracing::error!(key = &**key, segment = %path.display(), error = %e, "fsync of a segment failed");
                failed = true;
            }
        }
        if failed {
            self.set_healthy(false);
            return Err(());
        }
        let mut gone = Vec::new();
        for (key, _, path) in &files {
            if self.linked.lock().contains(&**key) {
                continue;
            }
            match store.link_file(path, key).await {
                Ok(_) => {
                    let mut l = self.linked.lock();
                    if l.len() >= MAX_LINKED {
                        l.clear();
                    }
                    l.insert(key.to_string());
                }
                Err(StoreError::Backend { message, .. }) if !path.exists() => {
                    tracing::info!(
                        key = &**key,
                        message,
                        "segment file gone before its commit; its extents are left out"
                    );
                    gone.push(key.clone());
                }
                Err(e) => {
                    tracing::error!(key = &**key, error = %e, "cannot link a segment file into the store");
                    self.set_healthy(false);
                    return Err(());
                }
            }
        }
        self.set_healthy(true);
        Ok(gone)
    }

    /// Upload until it lands, under the store's retry policy without its
    /// limits (a WAL object cannot be skipped: later commits continue it);
    /// after shutdown it keeps trying for at most [`SHUTDOWN_GRACE`]. While
    /// it fails the WAL reports unhealthy ([`Wal::healthy`],
    /// `strata_wal_upload_failing`) and producers waiting for acks=all time
    /// out; nothing is acknowledged. A retry that meets
    /// `AlreadyExists` is success only when the object holds these very
    /// bytes (the earlier attempt's response was lost): see
    /// [`Store::put_create_with`].
    async fn upload(
        self: Arc<Self>,
        store: Arc<Store>,
        key: String,
        data: Vec<Bytes>,
        mut shutdown: watch::Receiver<bool>,
    ) -> bool {
        let policy = store.retry_policy().unbounded();
        let payload: object_store::PutPayload = data.into_iter().collect();
        let on_retry = |e: &StoreError, attempt: u32| {
            self.set_healthy(false);
            self.metrics.upload_retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(key, attempt, error = %e, "WAL upload failed; retrying");
        };
        let put = store.put_create_with(&key, payload, &policy, &on_retry);
        let give_up = async {
            let _ = shutdown.wait_for(|closing| *closing).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            r = put => match r {
                Ok(()) => {
                    self.set_healthy(true);
                    true
                }
                Err(e) => {
                    // A precondition on the first attempt: another writer
                    // owns this key. Never overwrite; the data stays local.
                    self.set_healthy(false);
                    tracing::error!(key, error = %e, "WAL upload refused");
                    false
                }
            },
            _ = give_up => {
                tracing::error!(key, "WAL upload still failing at shutdown; giving up");
                false
            }
        }
    }

    /// Commit a group of finished flushes in order: one metadata commit
    /// for the extents of all that landed (object mode: one object; local
    /// mode: every flush whose fsyncs were done), retried while the quorum
    /// is unavailable (a commit is idempotent: a repeat of a committed one
    /// is success). Only the last flush of a group can have failed.
    async fn commit_group(
        &self,
        broker: &Broker,
        mut group: Vec<Done>,
        shutdown: &watch::Receiver<bool>,
    ) {
        let key = group.first().map(|d| d.key.clone()).unwrap_or_default();
        let mut extents = Vec::new();
        let mut size = 0;
        for d in &mut group {
            if let Some(e) = &mut d.extents {
                extents.append(e);
                size += d.size;
            }
        }
        // Local mode: when every file of the group was gone there is
        // nothing to commit.
        if !extents.is_empty() {
            let mut attempt = 0u32;
            let commit_started = Instant::now();
            let r = loop {
                let r = broker.commit_wal(key.clone(), size, extents.clone()).await;
                match r {
                    Err(crate::broker::BrokerError::Meta(
                        crate::meta::MetaError::Unavailable { reason },
                    )) if !*shutdown.borrow() || attempt == 0 => {
                        attempt += 1;
                        self.commit_stalled.store(true, Ordering::Relaxed);
                        self.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(key, attempt, reason, "WAL commit not confirmed; retrying");
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    other => break other,
                }
            };
            // Fenced partitions' waiters see the move in the view.
            broker.notify_appended();
            self.committed.send_modify(|v| *v += 1);
            match r {
                Ok(()) => {
                    self.commit_stalled.store(false, Ordering::Relaxed);
                    self.metrics
                        .commit_latency
                        .observe(commit_started.elapsed().as_secs_f64());
                    for d in group.iter().filter(|d| d.extents.is_some()) {
                        self.metrics.flushes.fetch_add(1, Ordering::Relaxed);
                        self.metrics
                            .flush_bytes
                            .fetch_add(d.size, Ordering::Relaxed);
                        self.metrics
                            .flush_latency
                            .observe(d.started.elapsed().as_secs_f64());
                    }
                    self.committed.send_modify(|v| *v += 1);
                    broker.notify_appended();
                }
                Err(e) => {
                    self.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(key, error = %e, "WAL commit refused; its batches stay uncommitted");
                }
            }
        }
        for d in group {
            if d.extents.is_none() {
                self.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    key = d.key,
                    "WAL object not uploaded; its batches stay uncommitted until restart"
                );
            }
            let freed: usize = d.entries.iter().map(|e| e.data.len()).sum();
            self.metrics
                .buffered_bytes
                .fetch_sub(freed as u64, Ordering::Relaxed);
            self.metrics
                .inflight_uploads
                .fetch_sub(1, Ordering::Relaxed);
        }
        // Wakes `wait_empty`, which reads `buffered_bytes`.
        self.committed.send_modify(|v| *v += 1);
    }

    /// When the queued entries are due (module docs: size, age, idleness
    /// limited by the interval; local mode at once).
    fn due(&self, last_flush: Instant, now: Instant) -> Due {
        let b = self.buf.lock();
        let (Some(first), Some(last)) = (b.first_at, b.last_at) else {
            return Due::Idle;
        };
        if self.cfg.local || b.bytes >= self.cfg.flush_bytes {
            return Due::Now;
        }
        let period = Duration::from_millis(self.cfg.flush_ms.max(1));
        let mut at = first + period;
        if self.cfg.flush_idle_ms > 0 {
            let idle =
                (last + Duration::from_millis(self.cfg.flush_idle_ms)).max(last_flush + period);
            at = at.min(idle);
        }
        if at <= now {
            Due::Now
        } else {
            Due::At(at)
        }
    }

    /// Run the flusher and the in-order committer until shutdown; the final
    /// flush drains what is queued.
    pub fn start(
        self: &Arc<Self>,
        broker: Arc<Broker>,
        store: Arc<Store>,
        broker_id: i32,
        broker_epoch: i64,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let wal = self.clone();
        let (tx, mut rx) = mpsc::channel::<Flushed>(self.cfg.max_inflight_uploads.max(1));
        let committer_wal = self.clone();
        let commit_shutdown = shutdown.clone();
        let committer = tokio::spawn(async move {
            let w = &committer_wal;
            let mut carry: Option<Flushed> = None;
            loop {
                let f = match carry.take() {
                    Some(f) => f,
                    None => match rx.recv().await {
                        Some(f) => f,
                        None => break,
                    },
                };
                let mut group = vec![f.finish().await];
                // Local mode: later flushes whose fsyncs are done by now
                // join this commit (one metadata commit, and its fsync,
                // for all of them); a flush still syncing waits for the
                // next one. Object mode commits each object alone.
                while w.cfg.local
                    && group.len() < MAX_COMMIT_GROUP
                    && group.last().is_some_and(|d| d.extents.is_some())
                {
                    match rx.try_recv() {
                        Ok(next) if next.upload.is_finished() => group.push(next.finish().await),
                        Ok(next) => {
                            carry = Some(next);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                w.commit_group(&broker, group, &commit_shutdown).await;
            }
        });
        tokio::spawn(async move {
            let mut seq = 0u64;
            let mut closing = false;
            let mut last_flush = Instant::now();
            loop {
                if !closing {
                    let wait = match wal.due(last_flush, Instant::now()) {
                        Due::Now => None,
                        Due::At(at) => Some(Some(at)),
                        Due::Idle => Some(None),
                    };
                    if let Some(at) = wait {
                        let timer = async {
                            match at {
                                Some(at) => tokio::time::sleep_until(at.into()).await,
                                None => std::future::pending().await,
                            }
                        };
                        tokio::select! {
                            _ = timer => {}
                            _ = wal.kick.notified() => {}
                            _ = shutdown.changed() => closing = true,
                        }
                        continue;
                    }
                }
                let entries = {
                    let mut b = wal.buf.lock();
                    b.bytes = 0;
                    b.first_at = None;
                    b.last_at = None;
                    std::mem::take(&mut b.entries)
                };
                if !entries.is_empty() {
                    last_flush = Instant::now();
                    seq += 1;
                    wal.metrics.inflight_uploads.fetch_add(1, Ordering::Relaxed);
                    let (key, extents, size, upload) = if wal.cfg.local {
                        let (keys, files) = local_files(&entries, broker_id, broker_epoch);
                        let extents = Wal::build_local(&entries, &keys);
                        let size = entries.iter().map(|e| e.data.len() as u64).sum();
                        let task = tokio::spawn(wal.clone().sync_local(store.clone(), files));
                        (String::new(), extents, size, Upload::Local(task))
                    } else {
                        let key = paths::wal(broker_id, broker_epoch, seq);
                        let (data, extents, size) = Wal::build(&entries);
                        store.cost.wal_object(
                            &key,
                            extents
                                .iter()
                                .map(|e| (e.topic_id, e.byte_offset, e.byte_len))
                                .collect(),
                        );
                        let task = tokio::spawn(wal.clone().upload(
                            store.clone(),
                            key.clone(),
                            data,
                            shutdown.clone(),
                        ));
                        (key, extents, size, Upload::Object(task))
                    };
                    let f = Flushed {
                        key,
                        size,
                        extents,
                        entries,
                        started: Instant::now(),
                        upload,
                    };
                    if tx.send(f).await.is_err() {
                        break;
                    }
                }
                if closing {
                    break;
                }
            }
            drop(tx);
            let _ = committer.await;
            wal.closed.store(true, Ordering::Relaxed);
            wal.committed.send_modify(|v| *v += 1);
        })
    }
}

/// Local mode: the store key of each entry's segment file, and each
/// distinct file once (key, handle, path).
#[allow(clippy::type_complexity)]
fn local_files(
    entries: &[Entry],
    broker_id: i32,
    broker_epoch: i64,
) -> (
    Vec<Arc<str>>,
    Vec<(Arc<str>, Arc<std::fs::File>, Arc<std::path::Path>)>,
) {
    use std::os::unix::fs::MetadataExt;
    let mut keys = Vec::with_capacity(entries.len());
    let mut files: Vec<(Arc<str>, Arc<std::fs::File>, Arc<std::path::Path>)> = Vec::new();
    let mut by_file: std::collections::HashMap<usize, Arc<str>> = Default::default();
    for e in entries {
        let Some(loc) = &e.loc else {
            keys.push(Arc::from(""));
            continue;
        };
        let key = by_file
            .entry(Arc::as_ptr(&loc.file) as usize)
            .or_insert_with(|| {
                let ino = loc.file.metadata().map(|m| m.ino()).unwrap_or(0);
                let key: Arc<str> = Arc::from(paths::wal_local(
                    broker_id,
                    broker_epoch,
                    e.topic_id,
                    e.partition,
                    loc.segment_base,
                    e.leader_epoch,
                    ino,
                ));
                files.push((key.clone(), loc.file.clone(), loc.path.clone()));
                key
            })
            .clone();
        keys.push(key);
    }
    (keys, files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch;

    fn entry(t: u128, p: i32, base: i64, n: usize, first: bool) -> Entry {
        let recs: Vec<batch::SimpleRecord> = (0..n).map(|_| (None, Some(&b"v"[..]), 0)).collect();
        let mut b = batch::build(0, &recs, None);
        batch::assign(&mut b, base, 0, None);
        let h = BatchHeader::parse(&b).unwrap();
        Entry {
            topic_id: Uuid::from_u128(t),
            partition: p,
            leader_epoch: 0,
            base,
            end: h.last_offset() + 1,
            first_in_segment: first,
            max_timestamp: h.max_timestamp,
            mark: None,
            data: b.freeze(),
            loc: None,
            _permit: None,
        }
    }

    #[test]
    fn build_groups_partitions_and_splits_at_segment_starts() {
        let entries = vec![
            entry(1, 0, 0, 2, false),
            entry(1, 1, 0, 1, false),
            entry(1, 0, 2, 3, false),
            entry(1, 0, 5, 1, true),
        ];
        let (parts, ext, size) = Wal::build(&entries);
        let data: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(size as usize, data.len());
        assert_eq!(&data[..16], WAL_MAGIC);
        assert_eq!(ext.len(), 3);
        assert_eq!(
            (ext[0].partition, ext[0].base_offset, ext[0].end_offset),
            (0, 0, 5)
        );
        assert_eq!(
            (ext[1].partition, ext[1].base_offset, ext[1].end_offset),
            (0, 5, 6)
        );
        assert_eq!(
            (ext[2].partition, ext[2].base_offset, ext[2].end_offset),
            (1, 0, 1)
        );
        // each extent's bytes are whole batches starting at its base offset
        for e in &ext {
            let bytes = &data[e.byte_offset as usize..(e.byte_offset + e.byte_len) as usize];
            let h = BatchHeader::parse(bytes).unwrap();
            assert_eq!(h.base_offset, e.base_offset);
        }
        let total: u64 = ext.iter().map(|e| e.byte_len).sum();
        assert_eq!(total as usize + 16, data.len());
    }

    fn wal_and_store() -> (
        Arc<Wal>,
        Arc<crate::objstore::fault::FaultStore>,
        Arc<Store>,
    ) {
        let wal = Wal::new(WalConfig {
            flush_ms: 10,
            flush_bytes: 1 << 20,
            max_buffered_bytes: 1 << 20,
            max_inflight_uploads: 2,
            flush_idle_ms: 0,
            local: false,
        });
        let fs = crate::objstore::fault::FaultStore::memory(3);
        let store = Arc::new(Store::wrap(
            fs.clone(),
            "",
            Duration::from_secs(1),
            "fault://",
        ));
        (wal, fs, store)
    }

    fn object() -> Vec<Bytes> {
        vec![
            Bytes::from_static(WAL_MAGIC),
            Bytes::from_static(b"batches"),
        ]
    }

    #[tokio::test(start_paused = true)]
    async fn upload_lands_once_through_errors_hangs_and_a_lost_response() {
        use crate::objstore::fault::{Fault, Op, Rule};
        let (wal, fs, store) = wal_and_store();
        fs.inject(Rule::new(Op::Put, "wal/", Fault::Error).times(2));
        fs.inject(Rule::new(Op::Put, "wal/", Fault::Hang).times(1));
        fs.inject(Rule::new(Op::Put, "wal/", Fault::LostResponse).times(1));
        let (_tx, rx) = watch::channel(false);
        let key = paths::wal(1, 1, 1);
        assert!(
            wal.clone()
                .upload(store.clone(), key.clone(), object(), rx)
                .await
        );
        // Four faults; the fifth attempt meets its own object.
        assert_eq!(fs.calls(crate::objstore::fault::Op::Put), 5);
        assert_eq!(wal.metrics.upload_retries.load(Ordering::Relaxed), 4);
        assert!(wal.healthy());
        assert_eq!(
            &store.get(&key).await.unwrap()[..],
            b"STRATA-WAL-v0001batches"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn upload_outlives_the_policy_limits_but_not_shutdown() {
        use crate::objstore::fault::{Fault, Op, Rule};
        let (wal, fs, store) = wal_and_store();
        fs.inject(Rule::new(Op::Put, "wal/", Fault::Error));
        let (tx, rx) = watch::channel(false);
        let key = paths::wal(1, 1, 2);
        let up = tokio::spawn(wal.clone().upload(store.clone(), key.clone(), object(), rx));
        // Far past 5 attempts and 30 s, it still tries (a WAL object
        // cannot be skipped) and reports the outage.
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert!(!up.is_finished());
        assert!(!wal.healthy());
        assert_eq!(wal.metrics.upload_failing.load(Ordering::Relaxed), 1);
        assert!(fs.calls(Op::Put) > 10);
        // Shutdown: it gives up within the grace, uncommitted, not hung.
        let at = tokio::time::Instant::now();
        tx.send(true).unwrap();
        assert!(!up.await.unwrap());
        assert!(at.elapsed() <= SHUTDOWN_GRACE + Duration::from_secs(1));
        assert!(matches!(
            store.get(&key).await,
            Err(StoreError::NotFound { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn upload_never_overwrites_another_writers_object() {
        let (wal, fs, store) = wal_and_store();
        let key = paths::wal(1, 1, 3);
        store
            .put_create(&key, Bytes::from_static(b"someone else"))
            .await
            .unwrap();
        let (_tx, rx) = watch::channel(false);
        assert!(
            !wal.clone()
                .upload(store.clone(), key.clone(), object(), rx)
                .await
        );
        assert_eq!(fs.calls(crate::objstore::fault::Op::Put), 2);
        assert_eq!(&store.get(&key).await.unwrap()[..], b"someone else");
    }

    #[test]
    fn objects_are_cut_when_full_old_or_idle_but_never_faster_than_the_interval() {
        let cfg = |local| WalConfig {
            flush_ms: 100,
            flush_bytes: 1000,
            max_buffered_bytes: 1 << 20,
            max_inflight_uploads: 2,
            flush_idle_ms: 5,
            local,
        };
        let wal = Wal::new(cfg(false));
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let set = |wal: &Wal, first: Instant, last: Instant, bytes: usize| {
            let mut b = wal.buf.lock();
            (b.first_at, b.last_at, b.bytes) = (Some(first), Some(last), bytes);
        };
        assert!(matches!(wal.due(t0, ms(1000)), Due::Idle));
        // Still arriving: due at the oldest entry's age limit.
        set(&wal, ms(0), ms(10), 10);
        assert!(
            matches!(wal.due(t0, ms(12)), Due::At(at) if at == ms(15).max(ms(100)).min(ms(100)))
        );
        assert!(matches!(wal.due(t0, ms(100)), Due::Now));
        // Full: at once.
        set(&wal, ms(0), ms(10), 1000);
        assert!(matches!(wal.due(t0, ms(11)), Due::Now));
        // Quiet for 5 ms, the last cut long ago: at once.
        let long_ago = t0;
        set(&wal, ms(500), ms(501), 10);
        assert!(matches!(wal.due(long_ago, ms(506)), Due::Now));
        assert!(matches!(wal.due(long_ago, ms(503)), Due::At(at) if at == ms(506)));
        // Quiet, but the last cut was 30 ms ago: not before the interval.
        assert!(matches!(wal.due(ms(476), ms(506)), Due::At(at) if at == ms(576)));
        // No idle cut configured: the interval alone.
        let slow = Wal::new(WalConfig {
            flush_idle_ms: 0,
            ..cfg(false)
        });
        set(&slow, ms(500), ms(501), 10);
        assert!(matches!(slow.due(long_ago, ms(506)), Due::At(at) if at == ms(600)));
        // Local mode: whatever is queued goes now (group commit).
        let local = Wal::new(cfg(true));
        set(&local, ms(0), ms(0), 1);
        assert!(matches!(local.due(t0, ms(0)), Due::Now));
    }

    #[test]
    fn backoff_is_bounded() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(30), Duration::from_millis(5_000));
    }
}
