//! OffsetFetch: committed offsets from the metadata state (v1-7: one group;
//! v8+: several). Any broker can answer from its copy of the metadata, which
//! is what lets a new coordinator serve a group's offsets after a failover.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::sb;
use crate::groups::{FetchedOffsets, GroupError};
use crate::kafka::Ctx;
use crate::meta::MetaState;

fn fetch(
    ctx: &Ctx,
    meta: &MetaState,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Result<FetchedOffsets, GroupError> {
    ctx.broker.groups.fetch_offsets(meta, group, wanted)
}

fn v8_group(
    group: kafka_protocol::messages::GroupId,
    r: Result<FetchedOffsets, GroupError>,
) -> OffsetFetchResponseGroup {
    match r {
        Err(e) => OffsetFetchResponseGroup::default()
            .with_group_id(group)
            .with_error_code(e.kafka_code()),
        Ok(topics) => OffsetFetchResponseGroup::default()
            .with_group_id(group)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, parts)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(sb(t)))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, c)| {
                                        let r = OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p);
                                        match c {
                                            Some(c) => r
                                                .with_committed_offset(c.offset)
                                                .with_committed_leader_epoch(c.leader_epoch)
                                                .with_metadata(Some(sb(c.metadata))),
                                            None => r
                                                .with_committed_offset(-1)
                                                .with_committed_leader_epoch(-1)
                                                .with_metadata(Some(sb(""))),
                                        }
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
    }
}

/// UNSTABLE_OFFSET_COMMIT: a transaction has staged an offset for this
/// partition and not ended yet (`require_stable`, KIP-447).
const UNSTABLE_OFFSET_COMMIT: i16 = 88;

pub fn handle(ctx: &Ctx, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let v = ctx.version;
    let meta = ctx.broker.meta();
    if v >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let r = ctx
                    .broker
                    .groups
                    .consumer_validate_fetch(
                        &meta,
                        &g.group_id,
                        (v >= 9).then_some(g.member_id.as_deref()).flatten(),
                        g.member_epoch,
                    )
                    .and_then(|()| fetch(ctx, &meta, &g.group_id, wanted));
                let gid = g.group_id.to_string();
                let mut out = v8_group(g.group_id, r);
                if req.require_stable {
                    for t in &mut out.topics {
                        for p in &mut t.partitions {
                            if meta.txns.pending_offset(&gid, &t.name, p.partition_index) {
                                p.error_code = UNSTABLE_OFFSET_COMMIT;
                            }
                        }
                    }
                }
                out
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let requested: Option<Vec<(String, Vec<i32>)>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let (group_code, topics) = match fetch(ctx, &meta, &req.group_id, requested.clone()) {
        Ok(t) => (0, t),
        // Before v2 there is no group-level error: every partition carries it.
        Err(e) => (
            e.kafka_code(),
            requested
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None)).collect()))
                .collect(),
        ),
    };
    let partition_code = if v < 2 { group_code } else { 0 };
    let topics = topics
        .into_iter()
        .map(|(t, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(sb(t.clone())))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, c)| {
                            let (offset, epoch, md) = match c {
                                Some(c) => (c.offset, c.leader_epoch, c.metadata),
                                None => (-1, -1, String::new()),
                            };
                            let unstable = v >= 7
                                && req.require_stable
                                && meta.txns.pending_offset(&req.group_id, &t, p);
                            let r = OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_metadata(Some(sb(md)))
                                .with_error_code(if unstable {
                                    UNSTABLE_OFFSET_COMMIT
                                } else {
                                    partition_code
                                });
                            if v >= 5 {
                                r.with_committed_leader_epoch(epoch)
                            } else {
                                r
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    let r = OffsetFetchResponse::default().with_topics(topics);
    if v >= 2 {
        r.with_error_code(group_code)
    } else {
        r
    }
}
