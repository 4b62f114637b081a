//! The transaction coordinator (exactly-once), run by every broker for the
//! transactional ids placed on it: the same stable hash over the live
//! brokers as group coordinators, so a transactional id moves when its
//! broker dies or leaves. Its state is in the replicated metadata
//! ([`crate::meta::txn`]); this module drives it:
//!
//! - InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit
//!   and EndTxn become [`TxnCommand`]s;
//! - ending a transaction writes a COMMIT or ABORT marker to every partition
//!   it touched (on this broker directly, or with WriteTxnMarkers to the
//!   partition's leader), waits until every marker is committed to object
//!   storage, then completes it (a commit's staged offsets become committed
//!   offsets);
//! - a background pass aborts transactions past their timeout (bumping the
//!   epoch: the producer is fenced) and finishes transactions a previous
//!   coordinator left in `PrepareCommit` / `PrepareAbort`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, RequestKind, ResponseKind, TopicName, WriteTxnMarkersRequest,
};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::broker::{Broker, BrokerError};
use crate::meta::txn::{TxnCommand, TxnMeta, TxnOutput, TxnStatus};
use crate::meta::{Command, CommandOutput};

/// NOT_COORDINATOR.
pub const NOT_COORDINATOR: i16 = 16;
/// COORDINATOR_NOT_AVAILABLE.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// How long writing one transaction's markers may take before the
/// background pass takes over.
const MARKER_DEADLINE: Duration = Duration::from_secs(30);
/// How often the background pass looks for expired or unfinished
/// transactions.
const PASS_EVERY: Duration = Duration::from_millis(500);

/// A coordinator refusal: a Kafka code and a message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TxnError {
    pub code: i16,
    pub message: String,
}

impl TxnError {
    fn new(code: i16, message: impl Into<String>) -> Self {
        TxnError {
            code,
            message: message.into(),
        }
    }
}

impl From<BrokerError> for TxnError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::Meta(m) => TxnError::new(m.kafka_code(), m.to_string()),
            other => TxnError::new(COORDINATOR_NOT_AVAILABLE, other.to_string()),
        }
    }
}

/// Transactions being finished by this broker now (not twice at once).
#[derive(Default)]
pub struct Finishing {
    ids: Mutex<HashSet<String>>,
}

/// This broker's coordinator for transactional ids.
pub struct TxnCoordinator;

impl TxnCoordinator {
    /// Refuses a transactional id this broker does not coordinate.
    pub fn check_local(b: &Broker, id: &str) -> Result<(), TxnError> {
        if b.is_shutting_down() || b.is_draining() {
            return Err(TxnError::new(NOT_COORDINATOR, "this broker is leaving"));
        }
        let node = b.groups.coordinator_for(id);
        if node != b.broker_id {
            return Err(TxnError::new(
                NOT_COORDINATOR,
                format!("transactional id {id} is coordinated by broker {node}"),
            ));
        }
        Ok(())
    }

    async fn submit(b: &Broker, cmd: TxnCommand) -> Result<TxnOutput, TxnError> {
        match b.submit(Command::Txn(cmd)).await? {
            CommandOutput::Txn(o) => Ok(o),
            other => Err(TxnError::new(
                COORDINATOR_NOT_AVAILABLE,
                format!("unexpected output {other:?}"),
            )),
        }
    }

    /// InitProducerId with a transactional id.
    pub async fn init_producer(
        b: &Arc<Broker>,
        id: &str,
        timeout_ms: i32,
    ) -> Result<(i64, i16), TxnError> {
        Self::check_local(b, id)?;
        for _ in 0..3 {
            let out = Self::submit(
                b,
                TxnCommand::InitProducer {
                    transactional_id: id.to_string(),
                    timeout_ms,
                    now_ms: b.clock.now_ms(),
                },
            )
            .await?;
            match out {
                TxnOutput::Initialized {
                    producer_id,
                    producer_epoch,
                } => return Ok((producer_id, producer_epoch)),
                // The previous instance's transaction: abort it first.
                _ => Self::finish_from_state(b, id).await?,
            }
        }
        Err(TxnError::new(
            crate::meta::txn::codes::CONCURRENT_TRANSACTIONS,
            "the last transaction is still completing",
        ))
    }

    /// AddPartitionsToTxn.
    pub async fn add_partitions(
        b: &Arc<Broker>,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<(String, i32)>,
    ) -> Result<(), TxnError> {
        Self::check_local(b, id)?;
        Self::submit(
            b,
            TxnCommand::AddPartitions {
                transactional_id: id.to_string(),
                producer_id,
                producer_epoch,
                partitions,
                now_ms: b.clock.now_ms(),
            },
        )
        .await
        .map(|_| ())
    }

    /// AddOffsetsToTxn.
    pub async fn add_group(
        b: &Arc<Broker>,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group: String,
    ) -> Result<(), TxnError> {
        Self::check_local(b, id)?;
        Self::submit(
            b,
            TxnCommand::AddGroup {
                transactional_id: id.to_string(),
                producer_id,
                producer_epoch,
                group,
                now_ms: b.clock.now_ms(),
            },
        )
        .await
        .map(|_| ())
    }

    /// TxnOffsetCommit (answered by the group's coordinator, which need not
    /// be the transaction's: the offsets are staged in the replicated state).
    pub async fn stage_offsets(
        b: &Arc<Broker>,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: crate::meta::groups::GroupCommit,
    ) -> Result<(), TxnError> {
        Self::submit(
            b,
            TxnCommand::StageOffsets {
                transactional_id: id.to_string(),
                producer_id,
                producer_epoch,
                commit,
            },
        )
        .await
        .map(|_| ())
    }

    /// EndTxn: prepare, write the markers, complete.
    pub async fn end(
        b: &Arc<Broker>,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        Self::check_local(b, id)?;
        let out = Self::submit(
            b,
            TxnCommand::End {
                transactional_id: id.to_string(),
                producer_id,
                producer_epoch,
                commit,
                now_ms: b.clock.now_ms(),
            },
        )
        .await?;
        match out {
            TxnOutput::State(t) if t.status.is_prepare() => Self::finish(b, id, &t).await,
            _ => Ok(()),
        }
    }

    /// Finishes the transaction as the current state has it (if it is in
    /// a prepare state).
    async fn finish_from_state(b: &Arc<Broker>, id: &str) -> Result<(), TxnError> {
        let t = b.meta().txns.txns.get(id).cloned();
        match t {
            Some(t) if t.status.is_prepare() => Self::finish(b, id, &t).await,
            _ => Ok(()),
        }
    }

    /// Writes the markers of a prepared transaction and completes it.
    async fn finish(b: &Arc<Broker>, id: &str, t: &TxnMeta) -> Result<(), TxnError> {
        {
            let mut f = b.txn_finishing.ids.lock();
            if !f.insert(id.to_string()) {
                return Err(TxnError::new(
                    crate::meta::txn::codes::CONCURRENT_TRANSACTIONS,
                    "the transaction is completing",
                ));
            }
        }
        let r = Self::finish_inner(b, id, t).await;
        b.txn_finishing.ids.lock().remove(id);
        r
    }

    async fn finish_inner(b: &Arc<Broker>, id: &str, t: &TxnMeta) -> Result<(), TxnError> {
        let commit = t.status == TxnStatus::PrepareCommit;
        let deadline = tokio::time::Instant::now() + MARKER_DEADLINE;
        let mut left: Vec<(String, i32)> = t.partitions.iter().cloned().collect();
        let mut attempt = 0u32;
        while !left.is_empty() {
            left = write_markers(b, t, commit, left).await;
            if left.is_empty() {
                break;
            }
            attempt += 1;
            if tokio::time::Instant::now() > deadline {
                return Err(TxnError::new(
                    crate::meta::txn::codes::CONCURRENT_TRANSACTIONS,
                    format!("markers of {} partitions not written yet", left.len()),
                ));
            }
            tokio::time::sleep(Duration::from_millis((50u64 << attempt.min(5)).min(1_000))).await;
        }
        match Self::submit(
            b,
            TxnCommand::Complete {
                transactional_id: id.to_string(),
                producer_id: t.producer_id,
                producer_epoch: t.producer_epoch,
                now_ms: b.clock.now_ms(),
            },
        )
        .await
        {
            Ok(_) => {
                tracing::debug!(transactional_id = id, commit, "transaction completed");
                Ok(())
            }
            // Completed meanwhile (by this pass or a retried EndTxn).
            Err(e) if e.code == crate::meta::txn::codes::INVALID_TXN_STATE => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The background pass: abort expired transactions, finish prepared
    /// ones a previous coordinator left, for the ids this broker
    /// coordinates.
    pub async fn run(b: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(PASS_EVERY) => {}
                _ = shutdown.changed() => return,
            }
            if b.is_shutting_down() || b.is_draining() {
                continue;
            }
            let now = b.clock.now_ms();
            let meta = b.meta();
            for (id, t) in meta.txns.txns.iter() {
                if b.groups.coordinator_for(id) != b.broker_id
                    || b.txn_finishing.ids.lock().contains(id)
                {
                    continue;
                }
                let expired =
                    t.status == TxnStatus::Ongoing && now - t.started_ms > t.timeout_ms as i64;
                // A prepare state untouched for a while: its coordinator
                // died or gave up; finish it here.
                let stuck = t.status.is_prepare() && now - t.updated_ms > 2_000;
                if !(expired || stuck) {
                    continue;
                }
                let b2 = b.clone();
                let id = id.clone();
                let t = t.clone();
                tokio::spawn(async move {
                    if expired {
                        tracing::info!(
                            transactional_id = id,
                            timeout_ms = t.timeout_ms,
                            "transaction timed out: aborting it"
                        );
                        match Self::submit(
                            &b2,
                            TxnCommand::Expire {
                                transactional_id: id.clone(),
                                producer_id: t.producer_id,
                                producer_epoch: t.producer_epoch,
                                now_ms: b2.clock.now_ms(),
                            },
                        )
                        .await
                        {
                            Ok(TxnOutput::State(t)) => {
                                if let Err(e) = Self::finish(&b2, &id, &t).await {
                                    tracing::warn!(transactional_id = id, error = %e, "aborting a timed-out transaction");
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::debug!(transactional_id = id, error = %e, "expiry refused")
                            }
                        }
                    } else if let Err(e) = Self::finish(&b2, &id, &t).await {
                        tracing::warn!(transactional_id = id, error = %e, "finishing a transaction");
                    }
                });
            }
        }
    }
}

/// Writes the markers of `partitions`; returns those not written (leader
/// unknown, moving, unreachable).
async fn write_markers(
    b: &Arc<Broker>,
    t: &TxnMeta,
    commit: bool,
    partitions: Vec<(String, i32)>,
) -> Vec<(String, i32)> {
    let meta = b.meta();
    let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    let mut left = Vec::new();
    for (topic, p) in partitions {
        let Some(pm) = meta
            .topics
            .get(&topic)
            .and_then(|x| x.partitions.get(usize::try_from(p).ok()?))
        else {
            continue; // deleted: nothing to mark
        };
        by_leader.entry(pm.leader).or_default().push((topic, p));
    }
    for (leader, parts) in by_leader {
        let failed = if leader == b.broker_id {
            write_local(b, t, commit, &parts).await
        } else {
            match meta.brokers.get(&leader).filter(|x| !x.fenced) {
                Some(info) => {
                    write_remote(&format!("{}:{}", info.host, info.port), t, commit, &parts).await
                }
                None => parts.clone(),
            }
        };
        left.extend(failed);
    }
    left
}

/// Markers on partitions this broker leads: append, then wait until
/// committed. Returns the failed ones.
pub async fn write_local(
    b: &Arc<Broker>,
    t: &TxnMeta,
    commit: bool,
    parts: &[(String, i32)],
) -> Vec<(String, i32)> {
    let mut failed = Vec::new();
    let mut waits = Vec::new();
    for (topic, p) in parts {
        let r = async {
            let h = b.topic(topic).ok_or(())?;
            let ph = h.partition(*p).ok_or(())?.clone();
            let off = b
                .append_marker(&h, &ph, t.producer_id, t.producer_epoch, commit, 0)
                .await
                .map_err(|e| tracing::debug!(topic, partition = p, error = %e, "marker refused"))?;
            Ok::<_, ()>((h.id, ph.index, ph.leader_epoch, off))
        }
        .await;
        match r {
            Ok(w) => waits.push(((topic.clone(), *p), w)),
            Err(()) => failed.push((topic.clone(), *p)),
        }
    }
    for (key, (tid, idx, epoch, off)) in waits {
        if b.wait_durable(tid, idx, Some(epoch), off + 1, Duration::from_secs(15))
            .await
            .is_err()
        {
            failed.push(key);
        }
    }
    failed
}

/// WriteTxnMarkers to another broker. Returns the failed partitions.
async fn write_remote(
    addr: &str,
    t: &TxnMeta,
    commit: bool,
    parts: &[(String, i32)],
) -> Vec<(String, i32)> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, p) in parts {
        topics.entry(topic).or_default().push(*p);
    }
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(t.producer_id))
        .with_producer_epoch(t.producer_epoch)
        .with_transaction_result(commit)
        .with_coordinator_epoch(0)
        .with_topics(
            topics
                .iter()
                .map(|(name, ps)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(crate::kafka::handlers::sb(*name)))
                        .with_partition_indexes(ps.clone())
                })
                .collect(),
        );
    let req = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
    let r = async {
        let mut c = crate::kafka::client::Client::connect(addr, Duration::from_secs(20)).await?;
        c.send(ApiKey::WriteTxnMarkers, RequestKind::WriteTxnMarkers(req))
            .await
    }
    .await;
    let Ok(ResponseKind::WriteTxnMarkers(resp)) = r else {
        tracing::debug!(addr, "WriteTxnMarkers failed: {:?}", r.err());
        return parts.to_vec();
    };
    let mut ok = HashSet::new();
    for m in &resp.markers {
        for tr in &m.topics {
            for pr in &tr.partitions {
                if pr.error_code == 0 {
                    ok.insert((tr.name.0.to_string(), pr.partition_index));
                }
            }
        }
    }
    parts.iter().filter(|k| !ok.contains(*k)).cloned().collect()
}
