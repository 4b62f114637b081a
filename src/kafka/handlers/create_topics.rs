//! CreateTopics (with validate_only, default partitions/replication, and the
//! resulting configs in v5+ responses).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::sb;
use crate::kafka::{code, Ctx};

pub async fn handle(ctx: &Ctx, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let b = &ctx.broker;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut result = CreatableTopicResult::default().with_name(t.name.clone());
        let partitions = if t.num_partitions == -1 {
            b.config.num_partitions
        } else {
            t.num_partitions
        };
        if !t.assignments.is_empty() {
            results.push(
                result
                    .with_error_code(code::INVALID_REQUEST)
                    .with_error_message(Some(sb("manual replica assignment is not supported: partitions are placed by the controller"))),
            );
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut bad = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.to_string(), v.to_string());
                }
                None => bad = Some(format!("config {} has a null value", c.name.as_str())),
            }
        }
        if let Some(msg) = bad {
            results.push(
                result
                    .with_error_code(code::INVALID_CONFIG)
                    .with_error_message(Some(sb(msg))),
            );
            continue;
        }
        let outcome = if req.validate_only {
            b.validate_create_topic(&name, partitions, t.replication_factor, configs.clone())
                .map(|_| uuid::Uuid::nil())
        } else {
            b.create_topic(&name, partitions, t.replication_factor, configs.clone())
                .await
        };
        match outcome {
            Ok(id) => {
                result = result
                    .with_topic_id(id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(1);
                if ctx.version >= 5 {
                    result = result.with_configs(Some(resulting_configs(ctx, &configs)));
                }
            }
            Err(e) => {
                result = result
                    .with_error_code(e.kafka_code())
                    .with_error_message(Some(sb(e.to_string())));
                if ctx.version >= 5 {
                    result = result.with_num_partitions(-1).with_replication_factor(-1);
                }
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

fn resulting_configs(
    ctx: &Ctx,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    crate::meta::topic_config::all()
        .iter()
        .map(|d| {
            let (value, source) = match overrides.get(d.name) {
                Some(v) => (v.clone(), 1i8), // DYNAMIC_TOPIC_CONFIG
                None => match ctx.broker.broker_defaults().get(d.name) {
                    Some(v) => (v.clone(), 4i8),          // STATIC_BROKER_CONFIG
                    None => (d.default.to_string(), 5i8), // DEFAULT_CONFIG
                },
            };
            CreatableTopicConfigs::default()
                .with_name(sb(d.name))
                .with_value(Some(sb(value)))
                .with_config_source(source)
        })
        .collect()
}
