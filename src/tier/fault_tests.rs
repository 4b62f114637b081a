//! Failure paths of the WAL uploader, the segment uploader, the tier reader
//! and GC, against a real broker (single-node controller, temporary
//! directory) whose object store is a [`FaultStore`] over `InMemory`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::{Gc, SegmentUploader};
use crate::broker::Broker;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::log::batch::{self, BatchHeader};
use crate::meta::tier::{Extent, ExtentKind};
use crate::objstore::fault::{Fault, FaultStore, Op, Rule};
use crate::objstore::{paths, RetryPolicy, Store, StoreError};
use object_store::ObjectStoreExt;

struct Node {
    broker: Arc<Broker>,
    faults: Arc<FaultStore>,
    topic_id: uuid::Uuid,
    _stop: watch::Sender<bool>,
    _controller: crate::controller::testing::SingleNode,
    _dir: tempfile::TempDir,
}

/// Fast backoff so tests of retries take milliseconds.
fn fast() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(20),
        ..RetryPolicy::default()
    }
}

async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        wal_flush_ms: 5,
        gc_grace_ms: 0,
        upload_interval_ms: 0,
        ..Config::default()
    };
    let controller = crate::controller::testing::SingleNode::start(&dir.path().join("meta")).await;
    let faults = FaultStore::memory(7);
    let store =
        Store::wrap(faults.clone(), "", Duration::from_secs(2), "fault://").with_retry(fast());
    let broker = Broker::open(
        config,
        Arc::new(SystemClock),
        Arc::new(store),
        controller.metadata.clone(),
    )
    .await
    .unwrap();
    let (stop, rx) = watch::channel(false);
    tokio::spawn(broker.clone().run_heartbeats(rx.clone()));
    broker.recover_tier().await.unwrap();
    broker.wal().start(
        broker.clone(),
        broker.store().clone(),
        broker.broker_id,
        broker.broker_epoch(),
        rx,
    );
    broker
        .create_topic("t", 1, -1, BTreeMap::new())
        .await
        .unwrap();
    let topic_id = broker.topic("t").unwrap().id;
    // Leadership and the lease come from the background tasks.
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(t) = broker.topic("t") {
                if broker.writable(t.id, t.partition(0).unwrap()).is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("partition writable in time");
    Node {
        broker,
        faults,
        topic_id,
        _stop: stop,
        _controller: controller,
        _dir: dir,
    }
}

impl Node {
    /// Append one batch with one record `value`; returns its offset.
    async fn produce(&self, value: &str) -> i64 {
        let t = self.broker.topic("t").unwrap();
        let recs: Vec<batch::SimpleRecord> = vec![(None, Some(value.as_bytes()), 1_000)];
        let b = batch::build(0, &recs, None);
        let info = self
            .broker
            .append(&t, t.partition(0).unwrap(), b.to_vec())
            .await
            .unwrap();
        info.base_offset
    }

    async fn durable(&self, upto: i64, within: Duration) -> Result<(), crate::wal::WalError> {
        self.broker
            .wait_durable(self.topic_id, 0, None, upto, within)
            .await
    }

    fn extents(&self) -> Vec<Extent> {
        self.broker
            .meta()
            .topic_by_id(&self.topic_id)
            .unwrap()
            .partitions[0]
            .extents
            .to_vec()
    }

    fn committed_end(&self) -> i64 {
        self.broker.committed_end(&self.topic_id, 0).unwrap()
    }

    /// Keys in the bucket under `prefix`, read past the faults.
    async fn keys(&self, prefix: &str) -> Vec<String> {
        use futures_util::TryStreamExt;
        let p = object_store::path::Path::from(prefix);
        let metas: Vec<object_store::ObjectMeta> = self
            .faults
            .inner()
            .list(Some(&p))
            .try_collect()
            .await
            .unwrap();
        metas.into_iter().map(|m| m.location.to_string()).collect()
    }

    /// The committed log read back from object storage: every batch's
    /// (base offset, value), in extent order.
    async fn committed_records(&self) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        for e in self.extents() {
            let bytes = self.broker.reader().extent_bytes(&e).await.unwrap();
            let mut at = 0usize;
            while at < bytes.len() {
                let h = BatchHeader::parse(&bytes[at..]).unwrap();
                let one = &bytes[at..at + h.total_len()];
                // One record per batch: its 3-byte value ends the batch,
                // before the record's header count (0).
                let value =
                    String::from_utf8_lossy(&one[one.len() - 4..one.len() - 1]).into_owned();
                out.push((h.base_offset, value));
                at += h.total_len();
            }
        }
        out
    }
}

/// Values "v00".."v{n-1}" at offsets 0..n, each once.
fn expected(n: i64) -> Vec<(i64, String)> {
    (0..n).map(|i| (i, format!("v{i:02}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_commits_survive_transient_errors_hangs_and_lost_responses() {
    let n = node().await;
    for rule in [
        Rule::new(Op::Put, "wal/", Fault::Error).times(3),
        Rule::new(Op::Put, "wal/", Fault::LostResponse).times(1),
        Rule::new(Op::Put, "wal/", Fault::Hang).times(1),
    ] {
        n.faults.inject(rule);
    }
    let mut last = 0;
    for i in 0..20 {
        last = n.produce(&format!("v{i:02}")).await;
    }
    n.durable(last + 1, Duration::from_secs(20)).await.unwrap();
    // Each fault costs its upload exactly one retry, however the batches
    // were split into objects.
    assert_eq!(n.faults.injected(Op::Put), 5, "every fault fired");
    assert_eq!(n.broker.wal().metrics.upload_retries.load(Relaxed), 5);
    assert!(n.broker.wal().healthy());
    assert_eq!(n.committed_end(), 20);
    // Nothing lost, nothing twice, in order.
    assert_eq!(n.committed_records().await, expected(20));
    // Every WAL object in the bucket is one the metadata references.
    let meta = n.broker.meta();
    let wal_keys = n.keys("wal").await;
    assert!(!wal_keys.is_empty());
    for k in &wal_keys {
        assert!(
            meta.tier.objects.contains_key(k),
            "unreferenced WAL object {k}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_outage_times_producers_out_then_commits_everything_once() {
    let n = node().await;
    n.faults.inject(Rule::new(Op::Put, "wal/", Fault::Error));
    let mut last = 0;
    for i in 0..3 {
        last = n.produce(&format!("v{i:02}")).await;
    }
    let r = n.durable(last + 1, Duration::from_millis(500)).await;
    assert!(
        matches!(r, Err(crate::wal::WalError::Timeout(_))),
        "acks=all must time out, never be acknowledged: {r:?}"
    );
    assert!(!n.broker.wal().healthy(), "the outage is reported");
    let mut metrics = String::new();
    n.broker.wal().metrics.render(&mut metrics);
    assert!(metrics.contains("strata_wal_upload_failing 1"), "{metrics}");
    assert_eq!(n.committed_end(), 0);
    assert!(n.keys("wal").await.is_empty());
    n.faults.heal();
    n.durable(last + 1, Duration::from_secs(20)).await.unwrap();
    assert!(n.broker.wal().healthy());
    assert_eq!(n.broker.wal().metrics.upload_failing.load(Relaxed), 0);
    assert_eq!(n.committed_records().await, expected(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_segment_upload_commits_nothing_and_is_retried() {
    let n = node().await;
    let mut last = 0;
    for i in 0..5 {
        last = n.produce(&format!("v{i:02}")).await;
    }
    n.durable(last + 1, Duration::from_secs(20)).await.unwrap();
    let epoch = n
        .broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .leader_epoch;
    let log_key = paths::segment(n.topic_id, 0, 0, epoch);
    let idx_key = paths::segment_index(&log_key);
    // The index upload fails for good: no commit may reference the data.
    n.faults.inject(Rule::new(Op::Put, &idx_key, Fault::Error));
    let uploader = SegmentUploader::new(n.broker.clone());
    uploader.tick().await;
    let m = n.broker.tier_metrics();
    assert_eq!(m.upload_errors.load(Relaxed), 1);
    assert_eq!(m.segments_uploaded.load(Relaxed), 0);
    assert!(n.extents().iter().all(|e| e.kind == ExtentKind::Wal));
    let head = n
        .faults
        .inner()
        .head(&object_store::path::Path::from(log_key.as_str()))
        .await;
    assert!(head.is_ok(), "the data object landed");
    assert!(
        !n.broker.meta().tier.knows(&log_key),
        "an unreferenced orphan, for GC"
    );
    assert_eq!(n.faults.injected(Op::Put), 5, "the policy's attempts");
    // Healed, with the index put's response lost once: the next pass
    // meets the data object it wrote before, retries the index put into
    // its own object, and commits the segment once.
    n.faults.heal();
    n.faults
        .inject(Rule::new(Op::Put, &idx_key, Fault::LostResponse).times(1));
    uploader.tick().await;
    assert_eq!(m.segments_uploaded.load(Relaxed), 1);
    let seg: Vec<Extent> = n
        .extents()
        .into_iter()
        .filter(|e| e.kind == ExtentKind::Segment)
        .collect();
    assert_eq!(seg.len(), 1);
    assert_eq!(
        (seg[0].key.as_str(), seg[0].index_key.as_deref()),
        (log_key.as_str(), Some(idx_key.as_str()))
    );
    assert_eq!((seg[0].base_offset, seg[0].end_offset), (0, 5));
    assert_eq!(n.committed_records().await, expected(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_reads_turn_store_failures_into_clean_errors() {
    let n = node().await;
    for i in 0..4 {
        n.produce(&format!("v{i:02}")).await;
    }
    n.durable(4, Duration::from_secs(20)).await.unwrap();
    let e = n.extents().into_iter().next().unwrap();
    let reader = n.broker.reader().clone();
    // Transient errors are retried under the policy: the read succeeds.
    n.faults
        .inject(Rule::new(Op::Get, "wal/", Fault::Error).times(2));
    let got = reader.read(&e, e.base_offset, 1 << 20, 100).await.unwrap();
    assert_eq!(BatchHeader::parse(&got).unwrap().base_offset, e.base_offset);
    assert_eq!(n.broker.store().metrics.retries("get"), 2);
    // An outage ends as an error to the caller, with the key.
    n.faults.heal();
    n.faults.inject(Rule::new(Op::Get, "wal/", Fault::Error));
    let fresh = crate::tier::reader::TierReader::new(n.broker.store().clone(), 1 << 20);
    let r = fresh.read(&e, e.base_offset, 1 << 20, 100).await;
    match r {
        Err(StoreError::Backend { key, .. }) => assert_eq!(key, e.key),
        other => panic!("expected a backend error, got {other:?}"),
    }
    // A body slower than the deadline times out instead of hanging.
    n.faults.heal();
    n.faults.inject(Rule::new(
        Op::Get,
        "wal/",
        Fault::SlowBody {
            chunk: 1,
            delay: Duration::from_millis(50),
        },
    ));
    // (A store with a short deadline, over the same faulty bucket.)
    let short = Store::wrap(n.faults.clone(), "", Duration::from_millis(200), "fault://")
        .with_retry(fast());
    let fresh = crate::tier::reader::TierReader::new(Arc::new(short), 1 << 20);
    let started = std::time::Instant::now();
    let r = fresh.read(&e, e.base_offset, 1 << 20, 100).await;
    assert!(matches!(r, Err(StoreError::Timeout { .. })), "{r:?}");
    // 5 attempts of 200 ms plus backoff; never the seconds the body needs.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Five orphan WAL objects of a broker that never committed (id 0 sorts
/// before the live broker's keys).
async fn orphans(n: &Node) -> Vec<String> {
    assert_ne!(n.broker.broker_id, 0);
    let mut keys = Vec::new();
    for seq in 1..=5 {
        let k = paths::wal(0, 1, seq);
        n.broker
            .store()
            .put_create(&k, Bytes::from_static(b"orphan"))
            .await
            .unwrap();
        keys.push(k);
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_with_failed_or_partial_listings_condemns_only_what_it_saw() {
    let n = node().await;
    for i in 0..3 {
        n.produce(&format!("v{i:02}")).await;
    }
    n.durable(3, Duration::from_secs(20)).await.unwrap();
    let orphans = orphans(&n).await;
    let referenced: Vec<String> = n.extents().into_iter().map(|e| e.key).collect();
    let gc = Gc::new(n.broker.clone());
    let deletable =
        |n: &Node| -> Vec<String> { n.broker.meta().tier.deletable.keys().cloned().collect() };

    // A listing that fails at once: nothing condemned, no success recorded.
    n.faults.inject(Rule::new(Op::List, "wal", Fault::Error));
    gc.tick().await;
    assert!(deletable(&n).is_empty());
    assert_eq!(n.broker.tier_metrics().gc_last_success_ms.load(Relaxed), 0);

    // A listing cut after two items, then failing: only those two.
    n.faults.heal();
    n.faults
        .inject(Rule::new(Op::List, "wal", Fault::ListErrorAfter(2)).times(1));
    n.faults.inject(Rule::new(Op::List, "wal", Fault::Error));
    gc.tick().await;
    assert_eq!(deletable(&n), orphans[..2].to_vec());
    assert_eq!(n.broker.tier_metrics().gc_last_success_ms.load(Relaxed), 0);

    // Healed: the two are deleted and the rest condemned; then the rest
    // are deleted and forgotten, and every referenced object stays.
    n.faults.heal();
    gc.tick().await;
    assert_eq!(deletable(&n), orphans[2..].to_vec());
    let left = n.keys("wal").await;
    assert!(!left.contains(&orphans[0]) && !left.contains(&orphans[1]));
    gc.tick().await;
    assert!(deletable(&n).is_empty());
    let left = n.keys("wal").await;
    for k in &orphans {
        assert!(!left.contains(k), "orphan {k} not deleted");
    }
    for k in &referenced {
        assert!(left.contains(k), "referenced {k} deleted");
    }
    assert_eq!(n.committed_records().await, expected(3));
    assert!(n.broker.tier_metrics().gc_last_success_ms.load(Relaxed) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_retries_failed_deletes_on_a_later_pass() {
    let n = node().await;
    let orphans = orphans(&n).await;
    let gc = Gc::new(n.broker.clone());
    gc.tick().await; // condemns
    assert_eq!(n.broker.meta().tier.deletable.len(), orphans.len());
    n.faults
        .inject(Rule::new(Op::Delete, "wal/0/", Fault::Error));
    gc.tick().await;
    let m = n.broker.tier_metrics();
    // The first key spends the policy's attempts; the pass stops there
    // instead of spending them again on every key.
    assert_eq!(m.gc_errors.load(Relaxed), 1);
    assert_eq!(n.faults.calls(Op::Delete), 5);
    assert_eq!(m.gc_deleted.load(Relaxed), 0);
    assert_eq!(
        n.broker.meta().tier.deletable.len(),
        orphans.len(),
        "still owed"
    );
    assert_eq!(n.keys("wal/0").await, orphans);
    n.faults.heal();
    gc.tick().await;
    assert_eq!(m.gc_deleted.load(Relaxed), orphans.len() as u64);
    assert!(n.broker.meta().tier.deletable.is_empty());
    assert!(n.keys("wal/0").await.is_empty());
}

/// A partition's tail rebuilt from object storage in windows smaller than
/// its batches, and than the extent: the same batches, none skipped or
/// repeated, and those before `from` left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tails_are_rebuilt_in_bounded_windows() {
    let n = node().await;
    let t = n.broker.topic("t").unwrap();
    let mut last = 0;
    for i in 0..12usize {
        // 100 bytes to 3 KiB: some batches fit a 1 KiB window, some not.
        let value = vec![b'a' + i as u8; 100 + 300 * i];
        let recs: Vec<batch::SimpleRecord> = vec![(None, Some(&value[..]), 1_000)];
        let b = batch::build(0, &recs, None);
        last = n
            .broker
            .append(&t, t.partition(0).unwrap(), b.to_vec())
            .await
            .unwrap()
            .base_offset;
    }
    n.durable(last + 1, Duration::from_secs(10)).await.unwrap();
    let original = {
        let p = t.partition(0).unwrap();
        p.log.read(0, usize::MAX, true).unwrap().records
    };
    for (from, window) in [(0, 1024), (0, 64), (5, 1024), (11, 100_000)] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::log::LogConfig::default();
        let log = crate::log::partition::PartitionLog::open(
            dir.path(),
            from,
            &cfg,
            Arc::new(SystemClock),
        )
        .unwrap();
        for e in n.extents().iter().filter(|e| e.end_offset > from) {
            n.broker
                .rebuild_extent(&log, e, from, &cfg, window)
                .await
                .unwrap();
        }
        assert_eq!(
            log.log_end_offset(),
            last + 1,
            "from {from}, window {window}"
        );
        let rebuilt = log.read(from, usize::MAX, true).unwrap().records;
        // The original from the batch holding `from` on.
        let mut at = 0usize;
        while BatchHeader::parse(&original[at..]).unwrap().last_offset() < from {
            at += BatchHeader::parse(&original[at..]).unwrap().total_len();
        }
        assert_eq!(
            rebuilt,
            original.slice(at..),
            "from {from}, window {window}"
        );
    }
}

/// An acks=all waiter whose batch was fenced at commit (the partition
/// moved to a new epoch first) fails, even once the new epoch's writes
/// have committed past its offsets; a waiter whose batch committed before
/// a move succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_never_counts_the_next_epochs_writes_as_its_own() {
    use crate::meta::command::LeaderMove;
    use crate::meta::Command;
    let n = node().await;
    let epoch_now = || {
        n.broker
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap()
            .leader_epoch
    };
    let move_to_next_epoch = || async {
        let from = epoch_now();
        n.broker
            .submit(Command::MoveLeaders {
                moves: vec![LeaderMove {
                    topic_id: n.topic_id,
                    partition: 0,
                    expected_epoch: from,
                    leader: n.broker.broker_id,
                }],
            })
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let t = n.broker.topic("t").unwrap();
                let p = t.partition(0).unwrap();
                if p.leader_epoch > from && n.broker.writable(t.id, p).is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("taken over at the next epoch in time");
    };
    // The first batch's object cannot be written until the partition moved.
    n.faults.inject(Rule::new(Op::Put, "wal/", Fault::Error));
    let e0 = epoch_now();
    assert_eq!(n.produce("old").await, 0);
    move_to_next_epoch().await;
    n.faults.heal();
    let e1 = epoch_now();
    assert_eq!(e1, e0 + 1);
    // The new epoch writes offset 0 again and commits it; the first
    // batch's commit is fenced.
    assert_eq!(n.produce("new").await, 0);
    n.broker
        .wait_durable(n.topic_id, 0, Some(e1), 1, Duration::from_secs(20))
        .await
        .unwrap();
    let r = n
        .broker
        .wait_durable(n.topic_id, 0, Some(e0), 1, Duration::from_secs(1))
        .await;
    assert!(
        matches!(r, Err(crate::wal::WalError::NotLeader)),
        "a fenced batch must not be acknowledged: {r:?}"
    );
    // What epoch 1 committed stays acknowledged after the next move.
    move_to_next_epoch().await;
    n.broker
        .wait_durable(n.topic_id, 0, Some(e1), 1, Duration::from_secs(1))
        .await
        .unwrap();
    let committed: Vec<String> = n
        .committed_records()
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(committed, ["new"]);
}
