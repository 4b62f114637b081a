//! OffsetCommit: validates the member and generation (as Kafka's
//! coordinator does), then writes the offsets through the coordinator's
//! batching writer into the metadata log; answered once they are durable.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, ResponseKind, TopicName,
};

use crate::groups::GroupError;
use crate::kafka::{Ctx, Reply};
use crate::meta::groups::OffsetEntry;

/// The request's (topic, partitions) layout, to answer in the same order.
type Layout = Vec<(TopicName, Vec<i32>)>;

fn response(layout: &Layout, codes: &[i16]) -> ResponseKind {
    let mut it = codes.iter();
    let topics = layout
        .iter()
        .map(|(name, parts)| {
            OffsetCommitResponseTopic::default()
                .with_name(name.clone())
                .with_partitions(
                    parts
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(*p)
                                .with_error_code(it.next().copied().unwrap_or(0))
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
}

pub fn handle(ctx: &Ctx, req: OffsetCommitRequest) -> Reply {
    let v = ctx.version;
    let mut layout: Layout = Vec::with_capacity(req.topics.len());
    let mut entries = Vec::new();
    for t in &req.topics {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            parts.push(p.partition_index);
            entries.push(OffsetEntry {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            });
        }
        layout.push((t.name.clone(), parts));
    }
    let instance = (v >= 7)
        .then_some(req.group_instance_id.as_deref())
        .flatten();
    let meta = ctx.broker.meta();
    if v < 9
        && !req.member_id.is_empty()
        && ctx.broker.groups.is_consumer_group(&meta, &req.group_id)
    {
        // As Kafka: members of KIP-848 groups commit with v9+.
        let e = GroupError::UnsupportedVersion {
            reason: "OffsetCommit v9+ is required in a consumer-protocol group".into(),
        };
        return Reply::Now(response(&layout, &vec![e.kafka_code(); entries.len()]));
    }
    let ticket = ctx.broker.groups.commit(
        ctx.broker.clock.now_ms(),
        &meta,
        &req.group_id,
        req.generation_id_or_member_epoch,
        &req.member_id,
        instance,
        entries,
    );
    let refused = ticket.refused;
    match ticket.pending {
        None => {
            let codes: Vec<i16> = refused
                .iter()
                .map(|e| e.as_ref().map_or(0, GroupError::kafka_code))
                .collect();
            Reply::Now(response(&layout, &codes))
        }
        Some(rx) => Reply::Later(Box::pin(async move {
            let written = rx.await.unwrap_or_else(|_| {
                Err(GroupError::CoordinatorNotAvailable {
                    reason: "the metadata writer stopped".into(),
                })
            });
            let code = written.err().map_or(0, |e| e.kafka_code());
            let codes: Vec<i16> = refused
                .iter()
                .map(|e| e.as_ref().map_or(code, GroupError::kafka_code))
                .collect();
            response(&layout, &codes)
        })),
    }
}
