//! DescribeProducers (KIP-664): the idempotent and transactional producers
//! a partition's leader knows, from the partition's producer state.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::sb;
use crate::kafka::{code, Ctx};

/// Most producers listed per partition (the partition state keeps at most
/// `log::producer::MAX_PRODUCERS`).
pub const MAX_LISTED_PRODUCERS: usize = 1000;

pub fn handle(ctx: &Ctx, req: DescribeProducersRequest) -> DescribeProducersResponse {
    let b = &ctx.broker;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let handle = b.topic(t.name.as_str());
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&i| {
                    let r = PartitionResponse::default().with_partition_index(i);
                    let Some((h, p)) = handle.as_ref().and_then(|h| h.partition(i).map(|p| (h, p)))
                    else {
                        return r
                            .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(sb(format!(
                                "unknown topic or partition {}-{i}",
                                t.name.as_str()
                            ))));
                    };
                    if !b.leads(h.id, p) {
                        return r
                            .with_error_code(code::NOT_LEADER_OR_FOLLOWER)
                            .with_error_message(Some(sb(format!(
                                "broker {} does not lead {}-{i}",
                                b.broker_id,
                                t.name.as_str()
                            ))));
                    }
                    let active = p
                        .log
                        .producers(MAX_LISTED_PRODUCERS)
                        .into_iter()
                        .map(|(s, txn_start)| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(s.producer_id))
                                .with_producer_epoch(s.epoch as i32)
                                .with_last_sequence(s.last_sequence)
                                // Not tracked per producer here.
                                .with_last_timestamp(-1)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(txn_start.unwrap_or(-1))
                        })
                        .collect();
                    r.with_active_producers(active)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
