//! IncrementalAlterConfigs (KIP-339): SET and DELETE of single topic
//! configs. APPEND and SUBTRACT apply to list configs (cleanup.policy).

use std::collections::BTreeMap;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::sb;
use crate::kafka::{code, Ctx};
use crate::meta::Command;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn handle(
    ctx: &Ctx,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let b = &ctx.broker;
    let validate_only = req.validate_only;
    let responses =
        futures_util::future::join_all(req.resources.into_iter().map(|res| async move {
            let r = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let fail = |r: AlterConfigsResourceResponse, c: i16, m: String| {
                r.with_error_code(c).with_error_message(Some(sb(m)))
            };
            match res.resource_type {
                RESOURCE_TOPIC => {
                    let name = res.resource_name.to_string();
                    let current = b
                        .meta()
                        .topic(&name)
                        .map(|t| t.configs.clone())
                        .unwrap_or_default();
                    let mut set = BTreeMap::new();
                    let mut delete = Vec::new();
                    for c in &res.configs {
                        let key = c.name.to_string();
                        let value = c.value.as_ref().map(|v| v.to_string());
                        match c.config_operation {
                            OP_SET => match value {
                                Some(v) => {
                                    set.insert(key, v);
                                }
                                None => {
                                    return fail(
                                        r,
                                        code::INVALID_CONFIG,
                                        format!("SET of {key} needs a value"),
                                    )
                                }
                            },
                            OP_DELETE => delete.push(key),
                            OP_APPEND | OP_SUBTRACT => {
                                let existing = set
                                    .get(&key)
                                    .cloned()
                                    .or_else(|| current.get(&key).cloned())
                                    .unwrap_or_default();
                                let mut items: Vec<String> = existing
                                    .split(',')
                                    .map(str::trim)
                                    .filter(|s| !s.is_empty())
                                    .map(String::from)
                                    .collect();
                                for v in value
                                    .unwrap_or_default()
                                    .split(',')
                                    .map(str::trim)
                                    .filter(|s| !s.is_empty())
                                {
                                    if c.config_operation == OP_APPEND {
                                        if !items.iter().any(|i| i == v) {
                                            items.push(v.to_string());
                                        }
                                    } else {
                                        items.retain(|i| i != v);
                                    }
                                }
                                if items.is_empty() {
                                    delete.push(key);
                                } else {
                                    set.insert(key, items.join(","));
                                }
                            }
                            op => {
                                return fail(
                                    r,
                                    code::INVALID_REQUEST,
                                    format!("unknown config operation {op}"),
                                )
                            }
                        }
                    }
                    if let Err(e) = super::strip_ignored_configs(&name, &mut set) {
                        return fail(r, e.kafka_code(), e.to_string());
                    }
                    let cmd = Command::AlterTopicConfigs {
                        topic_id: b.topic(&name).map(|h| h.id),
                        name,
                        set,
                        delete,
                        replace_all: false,
                    };
                    let outcome = b.submit_or_validate(cmd, validate_only).await;
                    match outcome {
                        Ok(()) => r,
                        Err(e) => fail(r, e.kafka_code(), e.to_string()),
                    }
                }
                RESOURCE_BROKER => fail(
                    r,
                    code::INVALID_REQUEST,
                    "broker configs are static: set them by flag, STRATA_* env or config file"
                        .into(),
                ),
                other => fail(
                    r,
                    code::INVALID_REQUEST,
                    format!("unsupported resource type {other}"),
                ),
            }
        }))
        .await;
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
