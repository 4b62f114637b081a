//! DescribeTopicPartitions (KIP-966): topics and their partitions, sorted by
//! name, at most `response_partition_limit` partitions per answer with a
//! cursor to continue from. No ELR here (one replica: the leader).

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};

use super::sb;
use crate::kafka::{code, Ctx};

/// Kafka's `max.request.partition.size.limit` default: the most partitions
/// one answer carries, whatever the client asks for.
pub const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

pub fn handle(ctx: &Ctx, req: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let meta = ctx.broker.meta();
    let limit = req
        .response_partition_limit
        .clamp(1, MAX_PARTITIONS_PER_RESPONSE) as usize;
    let mut names: Vec<String> = if req.topics.is_empty() {
        meta.topics.values().map(|t| t.name.clone()).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (start_topic, start_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    let mut topics = Vec::new();
    let mut left = limit;
    let mut next_cursor = None;
    for name in names {
        if start_topic.as_ref().is_some_and(|s| name < *s) {
            continue;
        }
        let Some(t) = meta.topic(&name) else {
            let err = if crate::meta::validate_topic_name(&name).is_ok() {
                code::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                code::INVALID_TOPIC_EXCEPTION
            };
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(err)
                    .with_name(Some(TopicName(sb(name))))
                    .with_topic_authorized_operations(i32::MIN),
            );
            continue;
        };
        let first = if start_topic.as_deref() == Some(name.as_str()) {
            start_partition as usize
        } else {
            0
        };
        if left == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(sb(name)))
                    .with_partition_index(first as i32),
            );
            break;
        }
        let mut partitions = Vec::new();
        for (i, p) in t.partitions.iter().enumerate().skip(first) {
            if left == 0 {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(TopicName(sb(name.clone())))
                        .with_partition_index(i as i32),
                );
                break;
            }
            left -= 1;
            // A fenced leader is being replaced: no leader until it is.
            let live = meta.brokers.get(&p.leader).is_some_and(|b| !b.fenced);
            let leader = BrokerId(if live { p.leader } else { -1 });
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(if live {
                        code::NONE
                    } else {
                        code::LEADER_NOT_AVAILABLE
                    })
                    .with_partition_index(i as i32)
                    .with_leader_id(leader)
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(vec![leader])
                    .with_isr_nodes(vec![leader])
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new())),
            );
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(sb(name))))
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
                .with_topic_authorized_operations(i32::MIN),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}
