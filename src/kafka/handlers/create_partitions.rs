//! CreatePartitions: grow a topic's partition count.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::sb;
use crate::kafka::{code, Ctx};
use crate::meta::Command;

pub async fn handle(ctx: &Ctx, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let b = &ctx.broker;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            results.push(
                r.with_error_code(code::INVALID_REQUEST)
                    .with_error_message(Some(sb("manual replica assignment is not supported"))),
            );
            continue;
        }
        let cmd = Command::CreatePartitions {
            name: t.name.0.to_string(),
            new_total: t.count,
            leader: b.broker_id,
            topic_id: b.topic(t.name.as_str()).map(|h| h.id),
        };
        let outcome = b.submit_or_validate(cmd, req.validate_only).await;
        results.push(match outcome {
            Ok(()) => r,
            Err(e) => r
                .with_error_code(e.kafka_code())
                .with_error_message(Some(sb(e.to_string()))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
