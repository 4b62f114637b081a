//! ListPartitionReassignments and AlterPartitionReassignments. Partition
//! data lives in object storage and never moves between brokers, and the
//! controller's placement chooses leaders, so there is never a reassignment
//! in progress, and one asked for is refused per partition.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::sb;
use crate::kafka::{code, Ctx};

const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

/// Always empty: nothing is ever being reassigned.
pub fn list(
    _ctx: &Ctx,
    _req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default()
}

pub fn alter(
    ctx: &Ctx,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let meta = ctx.broker.meta();
    let allow_rf_change = req.allow_replication_factor_change;
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = meta.topic(t.name.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let i = p.partition_index;
                    let r = ReassignablePartitionResponse::default().with_partition_index(i);
                    let known = topic.is_some_and(|t| {
                        usize::try_from(i).is_ok_and(|i| i < t.partitions.len())
                    });
                    let (c, m) = if !known {
                        (
                            code::UNKNOWN_TOPIC_OR_PARTITION,
                            format!("unknown topic or partition {}-{i}", t.name.as_str()),
                        )
                    } else if p.replicas.is_none() {
                        (
                            NO_REASSIGNMENT_IN_PROGRESS,
                            "no reassignment is in progress".to_string(),
                        )
                    } else {
                        (
                            code::INVALID_REPLICA_ASSIGNMENT,
                            "partitions are not reassigned: their data lives in object storage and never moves; the controller places leaders on live brokers".to_string(),
                        )
                    };
                    r.with_error_code(c).with_error_message(Some(sb(m)))
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    let mut resp = AlterPartitionReassignmentsResponse::default().with_responses(responses);
    if ctx.version >= 1 {
        resp = resp.with_allow_replication_factor_change(allow_rf_change);
    }
    resp
}
