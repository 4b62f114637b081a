//! Produce: validate and append each partition's batches in request order,
//! queueing them for the WAL, then answer by `acks`: 0 → no response,
//! 1 → after the local append, all (-1) → after the WAL object holding the
//! batches is uploaded and its extents are committed to the metadata.
//! While the object store fails, acks=all requests end with a retriable
//! REQUEST_TIMED_OUT, never with an ack.

use std::time::Duration;
use tracing::Instrument;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use uuid::Uuid;

use super::sb;
use crate::kafka::{code, Ctx, Reply};
use crate::log::AppendError;
use crate::wal::WalError;

pub async fn handle(ctx: &Ctx, req: ProduceRequest) -> Reply {
    let b = &ctx.broker;
    let acks = req.acks;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut to_wait: Vec<(usize, usize, Uuid, i32, i32, i64)> = Vec::new();
    for (ti, topic) in req.topic_data.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        let authorized = crate::auth::allowed(
            ctx,
            crate::auth::acl::op::WRITE,
            crate::auth::acl::resource::TOPIC,
            &name,
        );
        let handle = match b.topic(&name) {
            _ if !authorized => None,
            Some(h) => Some(h),
            None => b.auto_create(&name).await,
        };
        let mut parts = Vec::with_capacity(topic.partition_data.len());
        for (pi, pd) in topic.partition_data.into_iter().enumerate() {
            let mut r = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let err = |r: PartitionProduceResponse, c: i16, m: String| {
                r.with_error_code(c).with_error_message(Some(sb(m)))
            };
            if !authorized {
                parts.push(err(
                    r,
                    code::TOPIC_AUTHORIZATION_FAILED,
                    format!("not authorized to write {name}"),
                ));
                continue;
            }
            if !(acks == -1 || acks == 0 || acks == 1) {
                parts.push(err(
                    r,
                    code::INVALID_REQUIRED_ACKS,
                    format!("acks must be -1, 0 or 1, got {acks}"),
                ));
                continue;
            }
            let (Some(h), Some(p)) = (
                handle.as_ref(),
                handle.as_ref().and_then(|h| h.partition(pd.index)),
            ) else {
                parts.push(err(
                    r,
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("unknown topic or partition {name}-{}", pd.index),
                ));
                continue;
            };
            let Some(records) = pd.records else {
                parts.push(err(r, code::CORRUPT_MESSAGE, "no records".into()));
                continue;
            };
            let (tid, idx, epoch) = (h.id, p.index, p.leader_epoch);
            let span = tracing::debug_span!(
                "append",
                topic = %name,
                partition = idx,
                bytes = records.len()
            );
            match b.append(h, p, records.to_vec()).instrument(span).await {
                Ok(info) => {
                    r = r
                        .with_base_offset(info.base_offset)
                        .with_log_append_time_ms(info.log_append_time)
                        .with_log_start_offset(
                            b.partition_bounds(&tid, idx).map(|x| x.0).unwrap_or(0),
                        );
                    if acks == -1 {
                        to_wait.push((ti, pi, tid, idx, epoch, info.last_offset + 1));
                    }
                }
                Err(e) => {
                    tracing::debug!(topic = %name, partition = pd.index, error = %e, "append refused");
                    if let (AppendError::KeylessRecords { indices, .. }, 8..) = (&e, ctx.version) {
                        // KIP-467: which records failed (v8+; older versions
                        // have only the partition's error code).
                        r = r.with_record_errors(
                            indices
                                .iter()
                                .map(|i| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(*i)
                                        .with_batch_index_error_message(Some(sb(format!(
                                            "Compacted topic cannot accept message without key in topic partition {name}-{}.",
                                            pd.index
                                        ))))
                                })
                                .collect(),
                        );
                    }
                    r = err(r, e.kafka_code(), e.to_string());
                }
            }
            parts.push(r);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(parts),
        );
    }
    match acks {
        0 => Reply::NoResponse,
        -1 if !to_wait.is_empty() => {
            let b = b.clone();
            let timeout = Duration::from_millis(req.timeout_ms.clamp(1_000, 120_000) as u64);
            Reply::Later(Box::pin(async move {
                for (ti, pi, tid, idx, epoch, upto) in to_wait {
                    if let Err(e) = b.wait_durable(tid, idx, Some(epoch), upto, timeout).await {
                        let c = match e {
                            WalError::Timeout(_) => code::REQUEST_TIMED_OUT,
                            WalError::Closed | WalError::NotLeader => code::NOT_LEADER_OR_FOLLOWER,
                        };
                        tracing::warn!(error = %e, "acks=all produce not acknowledged");
                        let r = &mut responses[ti].partition_responses[pi];
                        r.error_code = c;
                        r.error_message = Some(sb(e.to_string()));
                        r.base_offset = -1;
                    }
                }
                ResponseKind::Produce(ProduceResponse::default().with_responses(responses))
            }))
        }
        _ => Reply::Now(ResponseKind::Produce(
            ProduceResponse::default().with_responses(responses),
        )),
    }
}
