//! OffsetForLeaderEpoch (KIP-320): the end offset of a leader epoch, which
//! clients use after a leader change to check that their position is still
//! on the log.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::kafka::{code, Ctx};

pub fn handle(ctx: &Ctx, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let b = &ctx.broker;
    let meta = b.meta();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let handle = b.topic(&name);
            let authorized = crate::auth::allowed(
                ctx,
                crate::auth::acl::op::DESCRIBE,
                crate::auth::acl::resource::TOPIC,
                &name,
            );
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if !authorized {
                        return r.with_error_code(code::TOPIC_AUTHORIZATION_FAILED);
                    }
                    let (Some(ph), Some(pm)) = (
                        handle.as_ref().and_then(|h| h.partition(p.partition)),
                        meta.partition(&name, p.partition),
                    ) else {
                        return r.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let tid = handle.as_ref().map_or(uuid::Uuid::nil(), |h| h.id);
                    let ec = super::fetch::check_leader(b, tid, ph, p.current_leader_epoch);
                    if ec != code::NONE {
                        return r.with_error_code(ec);
                    }
                    match pm.end_offset_for_epoch(p.leader_epoch, ph.log.log_end_offset()) {
                        Some((epoch, end)) => r.with_leader_epoch(epoch).with_end_offset(end),
                        None => r,
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
