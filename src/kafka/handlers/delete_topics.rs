//! DeleteTopics by name (all versions) or by topic id (v6+).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::sb;
use crate::kafka::{code, Ctx};
use crate::meta::Command;

pub async fn handle(ctx: &Ctx, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let b = &ctx.broker;
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    for t in &req.topics {
        targets.push((t.name.as_ref().map(|n| n.0.to_string()), t.topic_id));
    }
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let resolved = match (&name, id.is_nil()) {
            (Some(n), _) => Some(n.clone()),
            (None, false) => b.topic_by_id(&id).map(|h| h.name.clone()),
            (None, true) => None,
        };
        let mut r = DeletableTopicResult::default()
            .with_topic_id(id)
            .with_name(name.clone().map(|n| TopicName(sb(n))));
        let Some(n) = resolved else {
            let err = if id.is_nil() {
                code::INVALID_REQUEST
            } else {
                code::UNKNOWN_TOPIC_ID
            };
            responses.push(
                r.with_error_code(err)
                    .with_error_message(Some(sb(format!("unknown topic id {id}")))),
            );
            continue;
        };
        if !crate::auth::allowed(
            ctx,
            crate::auth::acl::op::DELETE,
            crate::auth::acl::resource::TOPIC,
            &n,
        ) {
            responses.push(r.with_error_code(crate::kafka::code::TOPIC_AUTHORIZATION_FAILED));
            continue;
        }
        let topic_id = if id.is_nil() {
            b.topic(&n).map(|h| h.id)
        } else {
            Some(id)
        };
        match b
            .submit(Command::DeleteTopic {
                name: n.clone(),
                topic_id,
            })
            .await
        {
            Ok(out) => {
                if let crate::meta::CommandOutput::TopicDeleted { topic_id } = out {
                    r = r.with_topic_id(topic_id);
                }
                tracing::info!(topic = %n, "deleted topic");
                r = r.with_name(Some(TopicName(sb(n))));
            }
            Err(e) => {
                r = r
                    .with_error_code(e.kafka_code())
                    .with_error_message(Some(sb(e.to_string())))
            }
        }
        responses.push(r);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
