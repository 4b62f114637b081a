//! AlterConfigs: replace a topic's whole set of config overrides. Broker
//! settings are static (flags, env, file) and refused here.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::sb;
use crate::kafka::{code, Ctx};
use crate::meta::Command;

pub async fn handle(ctx: &Ctx, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let b = &ctx.broker;
    let validate_only = req.validate_only;
    let responses =
        futures_util::future::join_all(req.resources.into_iter().map(|res| async move {
            let r = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            match res.resource_type {
                RESOURCE_TOPIC => {
                    let mut set = BTreeMap::new();
                    for c in &res.configs {
                        if let Some(v) = &c.value {
                            set.insert(c.name.to_string(), v.to_string());
                        }
                    }
                    if let Err(e) = super::strip_ignored_configs(&res.resource_name, &mut set) {
                        return r
                            .with_error_code(e.kafka_code())
                            .with_error_message(Some(sb(e.to_string())));
                    }
                    let cmd = Command::AlterTopicConfigs {
                        name: res.resource_name.to_string(),
                        set,
                        delete: Vec::new(),
                        replace_all: true,
                        topic_id: b.topic(&res.resource_name).map(|h| h.id),
                    };
                    let outcome = b.submit_or_validate(cmd, validate_only).await;
                    match outcome {
                        Ok(()) => r,
                        Err(e) => r
                            .with_error_code(e.kafka_code())
                            .with_error_message(Some(sb(e.to_string()))),
                    }
                }
                RESOURCE_BROKER => {
                    r.with_error_code(code::INVALID_REQUEST)
                        .with_error_message(Some(sb(
                        "broker configs are static: set them by flag, STRATA_* env or config file",
                    )))
                }
                other => r
                    .with_error_code(code::INVALID_REQUEST)
                    .with_error_message(Some(sb(format!("unsupported resource type {other}")))),
            }
        }))
        .await;
    AlterConfigsResponse::default().with_responses(responses)
}
