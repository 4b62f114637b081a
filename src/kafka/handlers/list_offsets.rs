//! ListOffsets: latest (-1), earliest (-2), max timestamp (-3), earliest
//! local (-4) and by timestamp (the first record whose timestamp is >= it).

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, ResponseKind};

use crate::broker::Broker;
use crate::kafka::{code, Ctx, Reply};
use crate::meta::tier::Extent;

/// Most extents one timestamp lookup reads from object storage.
const MAX_REMOTE_EXTENTS: usize = 64;

/// A timestamp lookup that the local log cannot answer: the first record
/// at or after `ts` may be in data that is only in object storage.
struct Remote {
    topic: usize,
    part: usize,
    ts: i64,
    extents: Vec<Extent>,
}

/// Answers now, or after reading older data from object storage.
pub fn handle(ctx: &Ctx, req: ListOffsetsRequest) -> Reply {
    let (resp, remotes) = answer(ctx, req);
    if remotes.is_empty() {
        return Reply::Now(ResponseKind::ListOffsets(resp));
    }
    let b = ctx.broker.clone();
    Reply::Later(Box::pin(async move {
        let mut resp = resp;
        for r in remotes {
            if let Some((offset, ts)) = first_at_or_after(&b, &r.extents, r.ts).await {
                let p = &mut resp.topics[r.topic].partitions[r.part];
                p.offset = offset;
                p.timestamp = ts;
                p.error_code = code::NONE;
            }
        }
        ResponseKind::ListOffsets(resp)
    }))
}

/// The first record with a timestamp at or after `ts` in `extents`.
async fn first_at_or_after(b: &Broker, extents: &[Extent], ts: i64) -> Option<(i64, i64)> {
    use crate::log::batch::{BatchHeader, HEADER_LEN};
    for e in extents {
        let bytes = match b.reader().extent_bytes(e).await {
            Ok(x) => x,
            Err(err) => {
                tracing::warn!(key = e.key, error = %err, "timestamp lookup in object storage failed");
                return None;
            }
        };
        let mut pos = 0usize;
        while pos + HEADER_LEN <= bytes.len() {
            let h = BatchHeader::parse(&bytes[pos..]).ok()?;
            let end = pos + h.total_len();
            if end > bytes.len() {
                break;
            }
            if h.max_timestamp >= ts && !h.is_control() {
                let mut one = bytes.slice(pos..end);
                let Ok(set) = crate::log::decode::decode_batch(
                    &mut one,
                    crate::log::decode::MAX_DECOMPRESSED_BATCH_BYTES,
                ) else {
                    // Undecodable within the bound: its first offset.
                    return Some((h.base_offset, h.max_timestamp));
                };
                if let Some(r) = set.records.iter().find(|r| r.timestamp >= ts) {
                    return Some((r.offset, r.timestamp));
                }
            }
            pos = end;
        }
    }
    None
}

fn answer(ctx: &Ctx, req: ListOffsetsRequest) -> (ListOffsetsResponse, Vec<Remote>) {
    let b = &ctx.broker;
    let read_committed = ctx.version >= 2 && req.isolation_level == 1;
    let meta = b.meta();
    let mut remotes = Vec::new();
    let topics = req
        .topics
        .into_iter()
        .enumerate()
        .map(|(ti, t)| {
            let handle = b.topic(t.name.0.as_str());
            let authorized = crate::auth::allowed(
                ctx,
                crate::auth::acl::op::DESCRIBE,
                crate::auth::acl::resource::TOPIC,
                t.name.0.as_str(),
            );
            let partitions = t
                .partitions
                .iter()
                .enumerate()
                .map(|(pi, p)| {
                    let r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    if !authorized {
                        return r.with_error_code(code::TOPIC_AUTHORIZATION_FAILED);
                    }
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
                        -3 => crate::log::off_worker(|| ph.log.max_timestamp_offset()),
                        ts if ts >= 0 => {
                            // Older data only in object storage may hold
                            // an earlier match than the local log.
                            let local_start = ph.log.log_start_offset();
                            let pm = handle.as_ref().and_then(|h| {
                                meta.topic_by_id(&h.id)?
                                    .partitions
                                    .get(usize::try_from(p.partition_index).ok()?)
                            });
                            let older: Vec<Extent> = pm
                                .map(|pm| {
                                    pm.extents
                                        .iter()
                                        .filter(|e| e.base_offset < local_start)
                                        .skip_while(|e| {
                                            e.max_timestamp >= 0 && e.max_timestamp < ts
                                        })
                                        .take(MAX_REMOTE_EXTENTS)
                                        .cloned()
                                        .collect()
                                })
                                .unwrap_or_default();
                            if !older.is_empty() {
                                remotes.push(Remote {
                                    topic: ti,
                                    part: pi,
                                    ts,
                                    extents: older,
                                });
                            }
                            crate::log::off_worker(|| ph.log.offset_for_timestamp(ts))
                        }
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
    (ListOffsetsResponse::default().with_topics(topics), remotes)
}
