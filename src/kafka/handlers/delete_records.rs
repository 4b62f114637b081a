//! DeleteRecords: advance a partition's log start offset (`-1` = up to the
//! high watermark). Readers see the new start at once; data below it is
//! reclaimed by the local log and by object-storage GC.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::kafka::{code, Ctx};

pub async fn handle(ctx: &Ctx, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let b = &ctx.broker;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let handle = b.topic(&name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let r = async {
                let r = DeleteRecordsPartitionResult::default()
                    .with_partition_index(p.partition_index)
                    .with_low_watermark(-1);
                let Some((start, hw)) = handle
                    .as_ref()
                    .and_then(|h| b.partition_bounds(&h.id, p.partition_index))
                else {
                    return r.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                };
                let target = if p.offset == -1 { hw } else { p.offset };
                if target < 0 || target > hw {
                    return r
                        .with_error_code(code::OFFSET_OUT_OF_RANGE)
                        .with_low_watermark(start);
                }
                match crate::jobs::advance_log_start(b, &name, p.partition_index, target).await {
                    Ok(low) => {
                        b.retention_metrics().offsets_reclaimed.fetch_add(
                            (low - start).max(0) as u64,
                            std::sync::atomic::Ordering::Relaxed,
                        );
                        r.with_low_watermark(low)
                    }
                    Err(e) => r.with_error_code(e.kafka_code()),
                }
            }
            .await;
            partitions.push(r);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
