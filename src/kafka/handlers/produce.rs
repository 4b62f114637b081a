//! Produce: validate and append each partition's batches in request order,
//! then answer by `acks`: 0 → no response, 1 → after the local append,
//! all (-1) → after the appended bytes are fsynced (single node; the object
//! storage tier later makes it "after the WAL object is committed").

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};

use super::sb;
use crate::kafka::{code, Ctx, Reply};
use crate::log::PartitionLog;

pub fn handle(ctx: &Ctx, req: ProduceRequest) -> Reply {
    let b = &ctx.broker;
    let acks = req.acks;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut to_sync: Vec<(usize, usize, Arc<PartitionLog>, i64)> = Vec::new();
    let mut appended_any = false;
    for (ti, topic) in req.topic_data.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        let handle = b.topic(&name).or_else(|| b.auto_create(&name));
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
            if !(acks == -1 || acks == 0 || acks == 1) {
                parts.push(err(
                    r,
                    code::INVALID_REQUIRED_ACKS,
                    format!("acks must be -1, 0 or 1, got {acks}"),
                ));
                continue;
            }
            if req.transactional_id.is_some() {
                parts.push(err(
                    r,
                    code::INVALID_REQUEST,
                    "transactions are not supported yet".into(),
                ));
                continue;
            }
            let Some(p) = handle.as_ref().and_then(|h| h.partition(pd.index)) else {
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
            let cfg = handle.as_ref().map(|h| h.log_config).unwrap_or_default();
            let mut bytes = records.to_vec();
            match p.log.append(&mut bytes, p.leader_epoch, &cfg) {
                Ok(info) => {
                    if !info.duplicate {
                        appended_any = true;
                        b.metrics.bytes_in.fetch_add(info.bytes as u64, Relaxed);
                        b.metrics.records_in.fetch_add(
                            (info.last_offset - info.base_offset + 1).max(0) as u64,
                            Relaxed,
                        );
                    }
                    r = r
                        .with_base_offset(info.base_offset)
                        .with_log_append_time_ms(info.log_append_time)
                        .with_log_start_offset(p.log.log_start_offset());
                    if acks == -1 {
                        to_sync.push((ti, pi, p.log.clone(), info.last_offset + 1));
                    }
                }
                Err(e) => {
                    b.metrics.produce_errors.fetch_add(1, Relaxed);
                    tracing::debug!(topic = %name, partition = pd.index, error = %e, "append refused");
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
    if appended_any {
        b.notify_appended();
    }
    match acks {
        0 => Reply::NoResponse,
        -1 if !to_sync.is_empty() => Reply::Later(Box::pin(async move {
            for (ti, pi, log, upto) in to_sync {
                if let Err(e) = log.sync_to(upto).await {
                    tracing::error!(error = %e, "fsync failed; acks=all produce not acknowledged");
                    let r = &mut responses[ti].partition_responses[pi];
                    r.error_code = e.kafka_code();
                    r.error_message = Some(sb(e.to_string()));
                    r.base_offset = -1;
                }
            }
            ResponseKind::Produce(ProduceResponse::default().with_responses(responses))
        })),
        _ => Reply::Now(ResponseKind::Produce(
            ProduceResponse::default().with_responses(responses),
        )),
    }
}
