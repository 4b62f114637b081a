//! ListOffsets: latest (-1), earliest (-2), max timestamp (-3), earliest
//! local (-4) and by timestamp (the first record whose timestamp is >= it).

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::kafka::{code, Ctx};

pub fn handle(ctx: &Ctx, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let b = &ctx.broker;
    let read_committed = ctx.version >= 2 && req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let handle = b.topic(t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let Some(ph) = handle.as_ref().and_then(|h| h.partition(p.partition_index))
                    else {
                        return r.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let tid = handle.as_ref().map_or(uuid::Uuid::nil(), |h| h.id);
                    let ec =
                        super::fetch::check_leader(&ctx.broker, tid, ph, p.current_leader_epoch);
                    if ec != code::NONE {
                        return r.with_error_code(ec);
                    }
                    // leader_epoch exists from v4; older encodings refuse a non-default value.
                    let r = if ctx.version >= 4 {
                        r.with_leader_epoch(ph.leader_epoch)
                    } else {
                        r
                    };
                    // Latest is the high watermark (committed to object
                    // storage); earliest the log start in the metadata.
                    let (start, hw) = handle
                        .as_ref()
                        .and_then(|h| b.partition_bounds(&h.id, p.partition_index))
                        .unwrap_or((0, 0));
                    // read_committed: latest is the last stable offset.
                    let latest = if read_committed {
                        handle
                            .as_ref()
                            .and_then(|h| {
                                b.meta()
                                    .topic_by_id(&h.id)?
                                    .partitions
                                    .get(p.partition_index as usize)
                                    .map(|pm| pm.last_stable_offset())
                            })
                            .unwrap_or(hw)
                    } else {
                        hw
                    };
                    let found = match p.timestamp {
                        -1 => Ok(Some((latest, -1))),
                        -2 => Ok(Some((start, -1))),
                        -4 => Ok(Some((ph.log.log_start_offset().max(start), -1))),
                        -3 => ph.log.max_timestamp_offset(),
                        ts if ts >= 0 => ph.log.offset_for_timestamp(ts),
                        _ => return r.with_error_code(code::INVALID_REQUEST),
                    };
                    match found {
                        Ok(Some((offset, ts))) => r.with_offset(offset).with_timestamp(ts),
                        Ok(None) => r,
                        Err(e) => r.with_error_code(e.kafka_code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
