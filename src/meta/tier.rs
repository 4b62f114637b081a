//! Object-storage manifests: which objects hold which offsets of each
//! partition, and which objects nothing references any more.
//!
//! A partition's `extents` cover `[first extent base, committed_end)` without
//! gaps, in offset order. WAL extents point into shared WAL objects (many
//! partitions per object); a segment extent is a whole per-partition object.
//! `objects` counts live extents per object; when the count drops to zero the
//! object moves to `deletable` with the time it became unreferenced, and the
//! GC job deletes it after a grace period, then `ForgetObjects` (two-phase
//! deletion).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::state::MetaState;
use super::MetaError;

/// What kind of object an extent points into.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtentKind {
    /// A shared WAL object; the extent is a byte range of it.
    Wal,
    /// A per-partition segment object (whole object).
    Segment,
}

/// A run of offsets `[base_offset, end_offset)` stored in one object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Extent {
    pub kind: ExtentKind,
    pub key: String,
    /// Offset index object of a segment.
    #[serde(default)]
    pub index_key: Option<String>,
    pub base_offset: i64,
    pub end_offset: i64,
    /// Byte range of the batches in the object.
    pub byte_offset: u64,
    pub byte_len: u64,
    pub leader_epoch: i32,
    /// Largest record timestamp in the extent (-1 unknown): time retention.
    #[serde(default = "no_ts")]
    pub max_timestamp: i64,
    /// Written by compaction (latest record per key only).
    #[serde(default)]
    pub compacted: bool,
    /// Newest timestamp of a tombstone compaction kept (-1 none): once it
    /// is older than `delete.retention.ms` the extent is compacted again.
    #[serde(default = "no_ts")]
    pub tombstone_ts: i64,
}

fn no_ts() -> i64 {
    -1
}

/// One partition's part of a WAL object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WalExtent {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub base_offset: i64,
    pub end_offset: i64,
    pub byte_offset: u64,
    pub byte_len: u64,
    /// Largest record timestamp in the extent.
    #[serde(default = "no_ts")]
    pub max_timestamp: i64,
    /// Transaction starts and markers in the extent, in offset order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub txn: Vec<TxnMark>,
    /// The extent lives in this growing per-partition object (a local
    /// segment file linked into a `file://` store, see `wal::local`)
    /// instead of the commit's own WAL object. Bytes of a growing object
    /// that were committed never change; later commits append extents to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// A transaction event in a partition's log, carried by the WAL commit of
/// the extent that holds it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub enum TxnMark {
    /// The producer's first transactional batch of a transaction.
    Begin { producer_id: i64, offset: i64 },
    /// Its COMMIT or ABORT control batch.
    End {
        producer_id: i64,
        offset: i64,
        commit: bool,
    },
}

/// An aborted transaction's range in one partition.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
}

/// Most aborted transactions remembered per partition (oldest dropped).
pub const MAX_ABORTED_TXNS: usize = 100_000;

/// Reference count of a live object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ObjectRef {
    pub live_extents: u32,
    pub size: u64,
    /// A growing object (local mode): later WAL commits may add extents
    /// after the committed bytes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub growing: bool,
}

/// Durable tier state (part of [`MetaState`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct TierState {
    /// Live objects by key.
    pub objects: super::Map<String, ObjectRef>,
    /// Unreferenced objects: key → time (ms) they became unreferenced.
    pub deletable: super::Map<String, i64>,
}

impl TierState {
    /// Drop one reference to `key`; at zero it becomes deletable at `now_ms`.
    pub fn release(&mut self, key: &str, now_ms: i64) {
        if let Some(o) = self.objects.get_mut(key) {
            o.live_extents = o.live_extents.saturating_sub(1);
            if o.live_extents == 0 {
                self.objects.remove(key);
                self.deletable.insert(key.to_string(), now_ms);
            }
        }
    }

    /// Release every object an extent holds.
    pub fn release_extent(&mut self, e: &Extent, now_ms: i64) {
        self.release(&e.key, now_ms);
        if let Some(i) = &e.index_key {
            self.release(i, now_ms);
        }
    }

    /// Is this key known (live or waiting for deletion)?
    pub fn knows(&self, key: &str) -> bool {
        self.objects.contains_key(key) || self.deletable.contains_key(key)
    }
}

fn refuse(reason: String) -> MetaError {
    MetaError::InvalidRequest { reason }
}

/// Checks of `Command::CommitWal`.
pub fn check_commit_wal(
    s: &MetaState,
    broker_id: i32,
    broker_epoch: i64,
    key: &str,
    extents: &[WalExtent],
) -> Result<(), MetaError> {
    s.check_broker_epoch(broker_id, broker_epoch)?;
    if !key.is_empty() && s.tier.knows(key) {
        return Err(refuse(format!("object {key} is already committed")));
    }
    for e in extents {
        match &e.object {
            None if key.is_empty() => {
                return Err(refuse("an extent names no object".to_string()));
            }
            None => {}
            Some(k) if k.is_empty() || k == key => {
                return Err(refuse(format!("bad growing object name {k:?}")));
            }
            Some(k)
                if s.tier.deletable.contains_key(k)
                    || s.tier.objects.get(k).is_some_and(|o| !o.growing) =>
            {
                return Err(refuse(format!("object {k} cannot grow")));
            }
            Some(_) => {}
        }
    }
    let mut expected: BTreeMap<(Uuid, i32), i64> = BTreeMap::new();
    for e in extents {
        if e.end_offset <= e.base_offset || e.byte_len == 0 {
            return Err(refuse(format!(
                "empty extent [{}, {}) in {key}",
                e.base_offset, e.end_offset
            )));
        }
        // Extents of topics deleted meanwhile are dropped at apply.
        let Some(t) = s.topic_by_id(&e.topic_id) else {
            continue;
        };
        let p = t
            .partitions
            .get(usize::try_from(e.partition).unwrap_or(usize::MAX))
            .ok_or(MetaError::UnknownPartition {
                name: t.name.clone(),
                partition: e.partition,
            })?;
        // A partition that moved away is dropped alone at apply (its
        // writer's acks=all requests fail); the others still commit.
        if p.leader != broker_id || p.leader_epoch != e.leader_epoch {
            continue;
        }
        let want = expected
            .entry((e.topic_id, e.partition))
            .or_insert(p.committed_end);
        if e.base_offset != *want {
            return Err(MetaError::OffsetMismatch {
                name: t.name.clone(),
                partition: e.partition,
                expected: *want,
                got: e.base_offset,
            });
        }
        *want = e.end_offset;
    }
    Ok(())
}

/// Apply a checked `CommitWal`. Returns the number of extents recorded.
/// An extent continuing the last extent of its partition in the same
/// growing object (contiguous offsets and bytes) extends it instead.
pub fn apply_commit_wal(
    s: &mut MetaState,
    broker_id: i32,
    key: String,
    size: u64,
    extents: Vec<WalExtent>,
    now_ms: i64,
) -> (u32, Vec<(Uuid, i32)>) {
    let mut live = 0u32;
    let mut fenced: Vec<(Uuid, i32)> = Vec::new();
    // Growing objects touched: key -> (new extents, end of their bytes).
    let mut grown: BTreeMap<String, (u32, u64)> = BTreeMap::new();
    for e in extents {
        let Some(p) = partition_mut(s, &e.topic_id, e.partition) else {
            continue;
        };
        if p.leader != broker_id || p.leader_epoch != e.leader_epoch {
            if !fenced.contains(&(e.topic_id, e.partition)) {
                fenced.push((e.topic_id, e.partition));
            }
            if let Some(k) = &e.object {
                grown.entry(k.clone()).or_default();
            }
            continue;
        }
        p.committed_end = e.end_offset;
        for m in &e.txn {
            match *m {
                TxnMark::Begin {
                    producer_id,
                    offset,
                } => {
                    p.ongoing_txns.entry(producer_id).or_insert(offset);
                }
                TxnMark::End {
                    producer_id,
                    offset,
                    commit,
                } => {
                    let first = p.ongoing_txns.remove(&producer_id);
                    if let (false, Some(first_offset)) = (commit, first) {
                        p.aborted_txns.push(AbortedTxn {
                            producer_id,
                            first_offset,
                            last_offset: offset,
                        });
                        if p.aborted_txns.len() > MAX_ABORTED_TXNS {
                            p.aborted_txns.remove(0);
                        }
                    }
                }
            }
        }
        let object = e.object.as_deref().unwrap_or(&key);
        if let Some(k) = &e.object {
            let g = grown.entry(k.clone()).or_default();
            g.1 = g.1.max(e.byte_offset + e.byte_len);
            if let Some(last) = p.extents.last_mut().filter(|l| {
                l.kind == ExtentKind::Wal
                    && l.key == *k
                    && l.end_offset == e.base_offset
                    && l.byte_offset + l.byte_len == e.byte_offset
                    && l.leader_epoch == e.leader_epoch
            }) {
                last.end_offset = e.end_offset;
                last.byte_len += e.byte_len;
                last.max_timestamp = last.max_timestamp.max(e.max_timestamp);
                continue;
            }
            g.0 += 1;
        } else {
            live += 1;
        }
        p.extents.push(Extent {
            kind: ExtentKind::Wal,
            key: object.to_string(),
            index_key: None,
            base_offset: e.base_offset,
            end_offset: e.end_offset,
            byte_offset: e.byte_offset,
            byte_len: e.byte_len,
            leader_epoch: e.leader_epoch,
            max_timestamp: e.max_timestamp,
            compacted: false,
            tombstone_ts: -1,
        });
    }
    let mut recorded = live;
    for (k, (n, end)) in grown {
        recorded += n;
        match s.tier.objects.get_mut(&k) {
            Some(o) => {
                o.live_extents += n;
                o.size = o.size.max(end);
            }
            None if n > 0 => {
                s.tier.objects.insert(
                    k,
                    ObjectRef {
                        live_extents: n,
                        size: end,
                        growing: true,
                    },
                );
            }
            // Nothing of it committed (moved away): an orphan to delete.
            None => {
                s.tier.deletable.insert(k, now_ms);
            }
        }
    }
    if live > 0 {
        s.tier.objects.insert(
            key,
            ObjectRef {
                live_extents: live,
                size,
                growing: false,
            },
        );
    } else if !key.is_empty() {
        s.tier.deletable.insert(key, now_ms);
    }
    (recorded, fenced)
}

/// A segment object replacing the extents of `[base_offset, end_offset)`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SegmentCommit {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub key: String,
    pub index_key: String,
    pub size: u64,
    pub index_size: u64,
    pub base_offset: i64,
    pub end_offset: i64,
    /// Largest record timestamp in the segment.
    #[serde(default = "no_ts")]
    pub max_timestamp: i64,
    /// Newest tombstone kept by compaction (-1 none).
    #[serde(default = "no_ts")]
    pub tombstone_ts: i64,
}

/// The partition a leader writes to, refused if the id or index is unknown
/// or the writer's leader epoch is not the current one.
fn current_partition(
    s: &MetaState,
    topic_id: Uuid,
    partition: i32,
    leader_epoch: i32,
) -> Result<&super::state::PartitionMeta, MetaError> {
    let t = s
        .topic_by_id(&topic_id)
        .ok_or(MetaError::UnknownTopicId { topic_id })?;
    let p = t
        .partitions
        .get(usize::try_from(partition).unwrap_or(usize::MAX))
        .ok_or(MetaError::UnknownPartition {
            name: t.name.clone(),
            partition,
        })?;
    if p.leader_epoch != leader_epoch {
        return Err(MetaError::FencedLeaderEpoch {
            name: t.name.clone(),
            partition,
            epoch: leader_epoch,
            current: p.leader_epoch,
        });
    }
    Ok(p)
}

/// A partition by topic id, for applying a checked command.
fn partition_mut<'a>(
    s: &'a mut MetaState,
    topic_id: &Uuid,
    partition: i32,
) -> Option<&'a mut super::state::PartitionMeta> {
    let name = s.topic_ids.get(topic_id)?;
    s.topics
        .get_mut(name)?
        .partitions
        .get_mut(usize::try_from(partition).ok()?)
        .map(std::sync::Arc::make_mut)
}

/// Record a new segment's data and index objects as live.
fn insert_segment_objects(s: &mut MetaState, c: &SegmentCommit) {
    s.tier.objects.insert(
        c.key.clone(),
        ObjectRef {
            live_extents: 1,
            size: c.size,
            growing: false,
        },
    );
    s.tier.objects.insert(
        c.index_key.clone(),
        ObjectRef {
            live_extents: 1,
            size: c.index_size,
            growing: false,
        },
    );
}

impl SegmentCommit {
    /// The manifest entry of this segment (`compacted`: written by compaction).
    fn to_extent(&self, compacted: bool) -> Extent {
        Extent {
            kind: ExtentKind::Segment,
            key: self.key.clone(),
            index_key: Some(self.index_key.clone()),
            base_offset: self.base_offset,
            end_offset: self.end_offset,
            byte_offset: 0,
            byte_len: self.size,
            leader_epoch: self.leader_epoch,
            max_timestamp: self.max_timestamp,
            compacted,
            tombstone_ts: if compacted { self.tombstone_ts } else { -1 },
        }
    }
}

/// Checks of `Command::CommitSegment`.
pub fn check_commit_segment(s: &MetaState, c: &SegmentCommit) -> Result<(), MetaError> {
    let p = current_partition(s, c.topic_id, c.partition, c.leader_epoch)?;
    if s.tier.knows(&c.key) || s.tier.knows(&c.index_key) || c.key == c.index_key {
        return Err(refuse(format!("object {} is already committed", c.key)));
    }
    if c.end_offset <= c.base_offset || c.end_offset > p.committed_end {
        return Err(refuse(format!(
            "segment [{}, {}) is not within committed offsets (< {})",
            c.base_offset, c.end_offset, p.committed_end
        )));
    }
    let starts = p.extents.iter().any(|e| e.base_offset == c.base_offset);
    let ends = p.extents.iter().any(|e| e.end_offset == c.end_offset);
    if !starts || !ends {
        return Err(refuse(format!(
            "segment [{}, {}) does not align with extent boundaries",
            c.base_offset, c.end_offset
        )));
    }
    Ok(())
}

/// Apply a checked `CommitSegment`: one manifest swap.
pub fn apply_commit_segment(s: &mut MetaState, c: SegmentCommit, now_ms: i64) {
    let Some(p) = partition_mut(s, &c.topic_id, c.partition) else {
        return;
    };
    let (gone, keep): (Vec<Extent>, Vec<Extent>) = std::mem::take(&mut p.extents)
        .into_iter()
        .partition(|e| e.base_offset >= c.base_offset && e.end_offset <= c.end_offset);
    let at = keep
        .iter()
        .position(|e| e.base_offset >= c.end_offset)
        .unwrap_or(keep.len());
    let mut extents = keep;
    extents.insert(at, c.to_extent(false));
    p.extents = extents;
    insert_segment_objects(s, &c);
    for e in &gone {
        s.tier.release_extent(e, now_ms);
    }
}

/// Checks of `Command::ReplaceSegments` (compaction): the replaced keys are
/// a contiguous run of the partition's current extents and the new segments
/// cover exactly the same offsets.
pub fn check_replace_segments(
    s: &MetaState,
    topic_id: Uuid,
    partition: i32,
    leader_epoch: i32,
    replaced: &[String],
    segments: &[SegmentCommit],
) -> Result<(), MetaError> {
    let p = current_partition(s, topic_id, partition, leader_epoch)?;
    let Some(first) = replaced.first() else {
        return Err(refuse("nothing to replace".into()));
    };
    let at = p
        .extents
        .iter()
        .position(|e| &e.key == first)
        .ok_or_else(|| refuse(format!("{first} is not a current extent")))?;
    let run = p
        .extents
        .get(at..at + replaced.len())
        .ok_or_else(|| refuse("replaced extents run past the log".into()))?;
    if run.iter().zip(replaced).any(|(e, k)| &e.key != k) {
        return Err(refuse("replaced extents are not contiguous".into()));
    }
    let (base, end) = (run[0].base_offset, run[run.len() - 1].end_offset);
    let mut next = base;
    let mut keys = std::collections::BTreeSet::new();
    for c in segments {
        if !keys.insert(c.key.as_str()) || !keys.insert(c.index_key.as_str()) {
            return Err(refuse(format!(
                "replacement segment key {} or {} is used twice",
                c.key, c.index_key
            )));
        }
        if c.base_offset != next
            || c.end_offset <= c.base_offset
            || s.tier.knows(&c.key)
            || s.tier.knows(&c.index_key)
        {
            return Err(refuse(format!(
                "replacement segment [{}, {}) does not continue {next} or is already known",
                c.base_offset, c.end_offset
            )));
        }
        next = c.end_offset;
    }
    if next != end {
        return Err(refuse(format!(
            "replacement covers up to {next}, replaced up to {end}"
        )));
    }
    Ok(())
}

/// Apply a checked `ReplaceSegments`: one manifest swap.
pub fn apply_replace_segments(
    s: &mut MetaState,
    topic_id: Uuid,
    partition: i32,
    replaced: Vec<String>,
    segments: Vec<SegmentCommit>,
    now_ms: i64,
) {
    let Some(p) = partition_mut(s, &topic_id, partition) else {
        return;
    };
    let Some(at) = p.extents.iter().position(|e| e.key == replaced[0]) else {
        return;
    };
    let new: Vec<Extent> = segments.iter().map(|c| c.to_extent(true)).collect();
    let gone: Vec<Extent> = p.extents.splice(at..at + replaced.len(), new).collect();
    for c in &segments {
        insert_segment_objects(s, c);
    }
    for e in &gone {
        s.tier.release_extent(e, now_ms);
    }
}

/// Drop extents wholly below `start` (retention, DeleteRecords).
pub fn trim_below(s: &mut MetaState, name: &str, partition: usize, start: i64, now_ms: i64) {
    let Some(p) = s
        .topics
        .get_mut(name)
        .and_then(|t| t.partitions.get_mut(partition))
        .map(std::sync::Arc::make_mut)
    else {
        return;
    };
    let (gone, keep): (Vec<Extent>, Vec<Extent>) = std::mem::take(&mut p.extents)
        .into_iter()
        .partition(|e| e.end_offset <= start);
    p.extents = keep;
    for e in &gone {
        s.tier.release_extent(e, now_ms);
    }
}

/// Release every extent of a topic that is being deleted.
pub fn release_topic(s: &mut MetaState, extents: Vec<Extent>, now_ms: i64) {
    for e in &extents {
        s.tier.release_extent(e, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Command, CommandOutput};

    fn state() -> (MetaState, Uuid) {
        let mut s = MetaState::default();
        s.apply(Command::RegisterBroker {
            broker_id: 1,
            host: "h".into(),
            port: 9092,
            rack: None,
        })
        .unwrap();
        let id = Uuid::from_u128(42);
        s.apply(Command::CreateTopic {
            name: "t".into(),
            topic_id: id,
            partitions: 2,
            replication_factor: -1,
            configs: Default::default(),
            leader: 1,
            created_at_ms: 0,
        })
        .unwrap();
        (s, id)
    }

    fn ext(id: Uuid, p: i32, base: i64, end: i64, at: u64) -> WalExtent {
        WalExtent {
            topic_id: id,
            partition: p,
            leader_epoch: 0,
            base_offset: base,
            end_offset: end,
            byte_offset: at,
            byte_len: 100,
            max_timestamp: 1000 + base,
            txn: Vec::new(),
            object: None,
        }
    }

    fn wal(key: &str, extents: Vec<WalExtent>) -> Command {
        Command::CommitWal {
            broker_id: 1,
            broker_epoch: 1,
            key: key.into(),
            size: 1000,
            committed_at_ms: 5,
            extents,
        }
    }

    #[test]
    fn commit_wal_advances_committed_end_and_counts_refs() {
        let (mut s, id) = state();
        let out = s
            .apply(wal(
                "w1",
                vec![ext(id, 0, 0, 10, 16), ext(id, 1, 0, 3, 116)],
            ))
            .unwrap();
        assert_eq!(
            out,
            CommandOutput::WalCommitted {
                extents: 2,
                fenced: vec![]
            }
        );
        assert_eq!(s.partition("t", 0).unwrap().committed_end, 10);
        assert_eq!(s.partition("t", 1).unwrap().committed_end, 3);
        assert_eq!(s.tier.objects["w1"].live_extents, 2);
        s.apply(wal(
            "w2",
            vec![ext(id, 0, 10, 20, 16), ext(id, 0, 20, 25, 116)],
        ))
        .unwrap();
        assert_eq!(s.partition("t", 0).unwrap().committed_end, 25);
        assert_eq!(s.partition("t", 0).unwrap().extents.len(), 3);
    }

    #[test]
    fn commit_wal_refusals() {
        let (mut s, id) = state();
        let gap = s.apply(wal("w", vec![ext(id, 0, 5, 10, 0)])).unwrap_err();
        assert!(
            matches!(
                gap,
                MetaError::OffsetMismatch {
                    expected: 0,
                    got: 5,
                    ..
                }
            ),
            "{gap}"
        );
        let mut stale = wal("w", vec![ext(id, 0, 0, 10, 0)]);
        if let Command::CommitWal { broker_epoch, .. } = &mut stale {
            *broker_epoch = 0;
        }
        assert!(matches!(
            s.apply(stale).unwrap_err(),
            MetaError::StaleBrokerEpoch { .. }
        ));
        // A partition at another leader epoch is dropped alone: the
        // others of the same object commit.
        let mut e = ext(id, 0, 0, 10, 0);
        e.leader_epoch = 3;
        let out = s
            .apply(wal("fenced", vec![e, ext(id, 1, 0, 4, 0)]))
            .unwrap();
        assert_eq!(
            out,
            CommandOutput::WalCommitted {
                extents: 1,
                fenced: vec![(id, 0)]
            }
        );
        assert_eq!(s.partition("t", 0).unwrap().committed_end, 0);
        assert_eq!(s.partition("t", 1).unwrap().committed_end, 4);
        assert!(matches!(
            s.apply(wal("w", vec![ext(id, 9, 0, 10, 0)])).unwrap_err(),
            MetaError::UnknownPartition { .. }
        ));
        assert!(matches!(
            s.apply(wal("w", vec![ext(id, 0, 3, 3, 0)])).unwrap_err(),
            MetaError::InvalidRequest { .. }
        ));
        let mut other = wal("w", vec![ext(id, 0, 0, 10, 0)]);
        if let Command::CommitWal { broker_id, .. } = &mut other {
            *broker_id = 7;
        }
        assert!(matches!(
            s.apply(other).unwrap_err(),
            MetaError::BrokerNotAvailable { .. }
        ));
        s.apply(wal("w", vec![ext(id, 0, 0, 10, 0)])).unwrap();
        let dup = s.apply(wal("w", vec![ext(id, 0, 10, 20, 0)])).unwrap_err();
        assert!(matches!(dup, MetaError::InvalidRequest { .. }), "{dup}");
        // nothing changed by the refusals
        assert_eq!(s.partition("t", 0).unwrap().committed_end, 10);
    }

    #[test]
    fn deleted_topic_extents_make_the_object_deletable() {
        let (mut s, _) = state();
        let out = s
            .apply(wal("w", vec![ext(Uuid::from_u128(9), 0, 0, 10, 0)]))
            .unwrap();
        assert_eq!(
            out,
            CommandOutput::WalCommitted {
                extents: 0,
                fenced: vec![]
            }
        );
        assert_eq!(s.tier.deletable.get("w"), Some(&5));
    }

    fn seg(id: Uuid, base: i64, end: i64) -> Command {
        Command::CommitSegment {
            segment: SegmentCommit {
                topic_id: id,
                partition: 0,
                leader_epoch: 0,
                key: format!("s{base}"),
                index_key: format!("s{base}.idx"),
                size: 500,
                index_size: 8,
                base_offset: base,
                end_offset: end,
                max_timestamp: 1000 + end,
                tombstone_ts: -1,
            },
            committed_at_ms: 9,
        }
    }

    #[test]
    fn segment_swap_releases_wal_objects() {
        let (mut s, id) = state();
        s.apply(wal("w1", vec![ext(id, 0, 0, 10, 0), ext(id, 1, 0, 5, 100)]))
            .unwrap();
        s.apply(wal("w2", vec![ext(id, 0, 10, 20, 0)])).unwrap();
        s.apply(seg(id, 0, 20)).unwrap();
        let p = s.partition("t", 0).unwrap();
        assert_eq!(p.extents.len(), 1);
        assert_eq!(p.extents[0].kind, ExtentKind::Segment);
        // w1 still holds partition 1's extent; w2 is now unreferenced.
        assert_eq!(s.tier.objects["w1"].live_extents, 1);
        assert_eq!(s.tier.deletable.get("w2"), Some(&9));
        assert!(s.tier.objects.contains_key("s0") && s.tier.objects.contains_key("s0.idx"));
        // Forget after GC.
        assert_eq!(
            s.apply(Command::ForgetObjects {
                keys: vec!["w2".into(), "zz".into()]
            })
            .unwrap(),
            CommandOutput::ObjectsForgotten { count: 1 }
        );
        assert!(s.tier.deletable.is_empty());
    }

    fn grow(id: Uuid, p: i32, base: i64, end: i64, at: u64, obj: &str) -> WalExtent {
        WalExtent {
            object: Some(obj.into()),
            ..ext(id, p, base, end, at)
        }
    }

    #[test]
    fn growing_objects_extend_their_extent_and_are_released_by_the_segment() {
        let (mut s, id) = state();
        // Local mode: no WAL object of its own; each partition's bytes are
        // in its linked segment file.
        s.apply(wal(
            "",
            vec![grow(id, 0, 0, 10, 0, "g0"), grow(id, 1, 0, 5, 0, "g1")],
        ))
        .unwrap();
        s.apply(wal("", vec![grow(id, 0, 10, 20, 100, "g0")]))
            .unwrap();
        let p = s.partition("t", 0).unwrap();
        assert_eq!(p.extents.len(), 1, "contiguous bytes extend one extent");
        assert_eq!((p.extents[0].end_offset, p.extents[0].byte_len), (20, 200));
        assert_eq!(s.tier.objects["g0"].live_extents, 1);
        assert_eq!(s.tier.objects["g0"].size, 200);
        assert!(s.tier.objects["g0"].growing);
        assert!(!s.tier.knows(""), "an empty key names no object");
        // A gap in the bytes starts a new extent of the same object.
        s.apply(wal("", vec![grow(id, 0, 20, 25, 400, "g0")]))
            .unwrap();
        assert_eq!(s.partition("t", 0).unwrap().extents.len(), 2);
        assert_eq!(s.tier.objects["g0"].live_extents, 2);
        s.check_invariants().unwrap();
        // A WAL object's key or a segment cannot be grown.
        s.apply(wal("w9", vec![ext(id, 1, 5, 6, 0)])).unwrap();
        for bad in ["w9", ""] {
            assert!(s.apply(wal("", vec![grow(id, 1, 6, 7, 0, bad)])).is_err());
        }
        assert!(s.apply(wal("", vec![ext(id, 1, 6, 7, 0)])).is_err());
        // The sealed segment replaces it: the growing name becomes deletable.
        s.apply(seg(id, 0, 25)).unwrap();
        assert_eq!(s.tier.deletable.get("g0"), Some(&9));
        assert!(s
            .apply(wal("", vec![grow(id, 0, 25, 26, 500, "g0")]))
            .is_err());
        s.check_invariants().unwrap();
    }

    #[test]
    fn segment_refusals() {
        let (mut s, id) = state();
        s.apply(wal("w1", vec![ext(id, 0, 0, 10, 0)])).unwrap();
        s.apply(wal("w2", vec![ext(id, 0, 10, 20, 0)])).unwrap();
        assert!(s.apply(seg(id, 0, 15)).is_err(), "misaligned end");
        assert!(s.apply(seg(id, 5, 20)).is_err(), "misaligned start");
        assert!(s.apply(seg(id, 0, 30)).is_err(), "beyond committed");
        assert!(matches!(
            s.apply(seg(Uuid::from_u128(1), 0, 10)).unwrap_err(),
            MetaError::UnknownTopicId { .. }
        ));
        let mut stale = seg(id, 0, 10);
        if let Command::CommitSegment { segment, .. } = &mut stale {
            segment.leader_epoch = 9;
        }
        assert!(matches!(
            s.apply(stale).unwrap_err(),
            MetaError::FencedLeaderEpoch { .. }
        ));
        s.apply(seg(id, 0, 10)).unwrap();
        assert!(s.apply(seg(id, 0, 10)).is_err(), "key already committed");
    }

    #[test]
    fn delete_topic_and_log_start_release_objects() {
        let (mut s, id) = state();
        s.apply(wal("w1", vec![ext(id, 0, 0, 10, 0)])).unwrap();
        s.apply(wal("w2", vec![ext(id, 0, 10, 20, 0)])).unwrap();
        s.apply(Command::AdvanceLogStart {
            topic_id: None,
            leader_epoch: None,
            name: "t".into(),
            partition: 0,
            offset: 12,
        })
        .unwrap();
        assert!(s.tier.deletable.contains_key("w1"));
        assert!(s.tier.objects.contains_key("w2"));
        s.apply(Command::DeleteTopic {
            name: "t".into(),
            topic_id: None,
        })
        .unwrap();
        assert!(s.tier.deletable.contains_key("w2"));
        assert!(s.tier.objects.is_empty());
    }
}
