//! Transactions: AddPartitionsToTxn (v0-3 and the v4+ batched form),
//! AddOffsetsToTxn, TxnOffsetCommit, EndTxn, WriteTxnMarkers (between
//! brokers: the coordinator asks a partition's leader to write markers),
//! DescribeTransactions and ListTransactions. The coordinator logic is
//! [`crate::txn::TxnCoordinator`].

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;

use super::sb;
use crate::kafka::{code, Ctx};
use crate::meta::groups::{GroupCommit, OffsetEntry};
use crate::txn::{TxnCoordinator, TxnError};

fn partitions_of(
    topics: &[add_partitions_to_txn_request::AddPartitionsToTxnTopic],
) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), *p)))
        .collect()
}

fn results(
    topics: &[add_partitions_to_txn_request::AddPartitionsToTxnTopic],
    code: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect()
}

/// Checks (v4 `verify_only`) that the partitions are in the ongoing
/// transaction of this producer.
fn verify(
    ctx: &Ctx,
    id: &str,
    pid: i64,
    epoch: i16,
    parts: &[(String, i32)],
) -> Result<(), TxnError> {
    let meta = ctx.broker.meta();
    let t = meta.txns.txns.get(id).ok_or_else(|| TxnError {
        code: crate::meta::txn::codes::INVALID_PRODUCER_ID_MAPPING,
        message: "unknown transactional id".into(),
    })?;
    if t.producer_id != pid || t.producer_epoch != epoch {
        return Err(TxnError {
            code: crate::meta::txn::codes::PRODUCER_FENCED,
            message: "fenced".into(),
        });
    }
    if parts.iter().all(|k| t.partitions.contains(k)) {
        Ok(())
    } else {
        Err(TxnError {
            code: crate::meta::txn::codes::INVALID_TXN_STATE,
            message: "partition not in the transaction".into(),
        })
    }
}

pub async fn add_partitions(
    ctx: &Ctx,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let b = &ctx.broker;
    if ctx.version <= 3 {
        let id = req.v3_and_below_transactional_id.0.to_string();
        let parts = partitions_of(&req.v3_and_below_topics);
        let code = match TxnCoordinator::add_partitions(
            b,
            &id,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            parts,
        )
        .await
        {
            Ok(()) => code::NONE,
            Err(e) => {
                tracing::debug!(transactional_id = id, error = %e, "AddPartitionsToTxn refused");
                e.code
            }
        };
        return AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(results(&req.v3_and_below_topics, code));
    }
    let mut out = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let id = t.transactional_id.0.to_string();
        let parts = partitions_of(&t.topics);
        let r = if t.verify_only {
            verify(ctx, &id, t.producer_id.0, t.producer_epoch, &parts)
        } else {
            TxnCoordinator::add_partitions(b, &id, t.producer_id.0, t.producer_epoch, parts).await
        };
        let code = r.map_or_else(|e| e.code, |_| code::NONE);
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(results(&t.topics, code)),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

pub async fn add_offsets(ctx: &Ctx, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let id = req.transactional_id.0.to_string();
    let r = TxnCoordinator::add_group(
        &ctx.broker,
        &id,
        req.producer_id.0,
        req.producer_epoch,
        req.group_id.0.to_string(),
    )
    .await;
    AddOffsetsToTxnResponse::default().with_error_code(r.map_or_else(|e| e.code, |_| code::NONE))
}

pub async fn txn_offset_commit(ctx: &Ctx, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let b = &ctx.broker;
    let group = req.group_id.0.to_string();
    let commit = GroupCommit {
        group: group.clone(),
        offsets: req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| OffsetEntry {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                })
            })
            .collect(),
    };
    // The group's coordinator answers TxnOffsetCommit, as in Kafka.
    let coord = b.groups.coordinator_for(&group);
    let r = if coord != b.broker_id {
        Err(TxnError {
            code: crate::txn::NOT_COORDINATOR,
            message: format!("group {group} is coordinated by broker {coord}"),
        })
    } else {
        TxnCoordinator::stage_offsets(
            b,
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
            commit,
        )
        .await
    };
    let code = r.map_or_else(|e| e.code, |_| code::NONE);
    TxnOffsetCommitResponse::default().with_topics(
        req.topics
            .iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

pub async fn end_txn(ctx: &Ctx, req: EndTxnRequest) -> EndTxnResponse {
    let r = TxnCoordinator::end(
        &ctx.broker,
        &req.transactional_id.0,
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
    )
    .await;
    if let Err(e) = &r {
        tracing::debug!(transactional_id = %req.transactional_id.0, error = %e, "EndTxn refused");
    }
    EndTxnResponse::default()
        .with_error_code(r.map_or_else(|e| e.code, |_| code::NONE))
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// The partition leader's side: write each marker, answer once committed.
pub async fn write_markers(ctx: &Ctx, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let b = &ctx.broker;
    let mut out = Vec::with_capacity(req.markers.len());
    for m in &req.markers {
        let t = crate::meta::txn::TxnMeta {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            timeout_ms: 0,
            status: crate::meta::txn::TxnStatus::Empty,
            partitions: Default::default(),
            groups: Default::default(),
            pending_offsets: Vec::new(),
            started_ms: 0,
            updated_ms: 0,
        };
        let parts: Vec<(String, i32)> = m
            .topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(move |p| (t.name.0.to_string(), *p))
            })
            .collect();
        let failed = crate::txn::write_local(b, &t, m.transaction_result, &parts).await;
        out.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(
                    m.topics
                        .iter()
                        .map(|t| {
                            WritableTxnMarkerTopicResult::default()
                                .with_name(t.name.clone())
                                .with_partitions(
                                    t.partition_indexes
                                        .iter()
                                        .map(|p| {
                                            let bad = failed
                                                .iter()
                                                .any(|(n, q)| n == t.name.0.as_str() && q == p);
                                            WritableTxnMarkerPartitionResult::default()
                                                .with_partition_index(*p)
                                                .with_error_code(if bad {
                                                    code::NOT_LEADER_OR_FOLLOWER
                                                } else {
                                                    code::NONE
                                                })
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(out)
}

pub fn describe(ctx: &Ctx, req: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let b = &ctx.broker;
    let meta = b.meta();
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            let s = TransactionState::default().with_transactional_id(id.clone());
            if let Err(e) = TxnCoordinator::check_local(b, id) {
                return s.with_error_code(e.code).with_transaction_state(sb(""));
            }
            let Some(t) = meta.txns.txns.get(id.0.as_str()) else {
                return s
                    .with_error_code(105) // TRANSACTIONAL_ID_NOT_FOUND
                    .with_transaction_state(sb(""));
            };
            let mut topics: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
            for (topic, p) in &t.partitions {
                topics.entry(topic).or_default().push(*p);
            }
            s.with_transaction_state(sb(t.status.kafka_name()))
                .with_transaction_timeout_ms(t.timeout_ms)
                .with_transaction_start_time_ms(
                    if t.status == crate::meta::txn::TxnStatus::Ongoing {
                        t.started_ms
                    } else {
                        -1
                    },
                )
                .with_producer_id(ProducerId(t.producer_id))
                .with_producer_epoch(t.producer_epoch)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, ps)| {
                            TopicData::default()
                                .with_topic(TopicName(sb(name)))
                                .with_partitions(ps)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub fn list(ctx: &Ctx, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let b = &ctx.broker;
    let meta = b.meta();
    let known = [
        "Empty",
        "Ongoing",
        "PrepareCommit",
        "PrepareAbort",
        "CompleteCommit",
        "CompleteAbort",
    ];
    let unknown: Vec<_> = req
        .state_filters
        .iter()
        .filter(|s| !known.contains(&s.as_str()))
        .cloned()
        .collect();
    let now = b.clock.now_ms();
    let states = meta
        .txns
        .txns
        .iter()
        .filter(|(id, _)| b.groups.coordinator_for(id) == b.broker_id)
        .filter(|(_, t)| {
            req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|s| s.as_str() == t.status.kafka_name())
        })
        .filter(|(_, t)| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.iter().any(|p| p.0 == t.producer_id)
        })
        .filter(|(_, t)| {
            req.duration_filter < 0
                || (t.status == crate::meta::txn::TxnStatus::Ongoing
                    && now - t.started_ms >= req.duration_filter)
        })
        .map(|(id, t)| {
            ListedState::default()
                .with_transactional_id(TransactionalId(sb(id.clone())))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(sb(t.status.kafka_name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}
