//! DescribeConfigs for topics (every known config with its value and source)
//! and for this broker (its static settings under their Kafka names).

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::sb;
use crate::kafka::{code, Ctx};
use crate::meta::topic_config::{self, ConfigKind};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Broker settings as Kafka names them (read-only: they are static flags).
pub fn broker_configs(ctx: &Ctx) -> Vec<(&'static str, String)> {
    let c = &ctx.broker.config;
    vec![
        ("broker.id", c.broker_id.to_string()),
        ("node.id", c.broker_id.to_string()),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
        ),
        ("num.partitions", c.num_partitions.to_string()),
        ("default.replication.factor", "1".into()),
        ("log.segment.bytes", c.segment_bytes.to_string()),
        ("log.roll.ms", c.segment_ms.to_string()),
        ("log.retention.ms", c.retention_ms.to_string()),
        ("log.retention.bytes", c.retention_bytes.to_string()),
        (
            "log.message.timestamp.type",
            c.message_timestamp_type.clone(),
        ),
        ("log.cleanup.policy", c.cleanup_policy.clone()),
        ("socket.request.max.bytes", c.request_max_bytes.to_string()),
        ("fetch.max.bytes", c.fetch_max_bytes.to_string()),
        (
            "connections.max.idle.ms",
            c.connections_max_idle_ms.to_string(),
        ),
        (
            "advertised.listeners",
            format!("PLAINTEXT://{}:{}", c.advertised_host, c.advertised_port()),
        ),
        ("log.dirs", c.data_dir.display().to_string()),
    ]
}

pub fn handle(ctx: &Ctx, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let b = &ctx.broker;
    let results =
        req.resources
            .into_iter()
            .map(|res| {
                let r = DescribeConfigsResult::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
                let wanted = |name: &str| {
                    res.configuration_keys
                        .as_ref()
                        .is_none_or(|ks| ks.is_empty() || ks.iter().any(|k| k.as_str() == name))
                };
                match res.resource_type {
                    RESOURCE_TOPIC => {
                        let meta = b.meta();
                        let Some(t) = meta.topic(res.resource_name.as_str()) else {
                            return r
                                .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                                .with_error_message(Some(sb(format!(
                                    "unknown topic {}",
                                    res.resource_name.as_str()
                                ))));
                        };
                        let configs = topic_config::all()
                            .iter()
                            .filter(|d| wanted(d.name))
                            .map(|d| {
                                let default_source = match b.broker_defaults().get(d.name) {
                                    Some(v) => (v.clone(), SOURCE_STATIC_BROKER),
                                    None => (d.default.to_string(), SOURCE_DEFAULT),
                                };
                                // Accepted and ignored: always the default, read-only.
                                let ignored = topic_config::is_ignored(d.name);
                                let default_source = if ignored {
                                    (d.default.to_string(), SOURCE_DEFAULT)
                                } else {
                                    default_source
                                };
                                let (value, source) = match t.configs.get(d.name) {
                                    Some(v) if !ignored => (v.clone(), SOURCE_DYNAMIC_TOPIC),
                                    _ => default_source.clone(),
                                };
                                let mut synonyms = Vec::new();
                                if req.include_synonyms {
                                    if source == SOURCE_DYNAMIC_TOPIC {
                                        synonyms.push(
                                            DescribeConfigsSynonym::default()
                                                .with_name(sb(d.name))
                                                .with_value(Some(sb(value.clone())))
                                                .with_source(source),
                                        );
                                    }
                                    synonyms.push(
                                        DescribeConfigsSynonym::default()
                                            .with_name(sb(d.name))
                                            .with_value(Some(sb(default_source.0.clone())))
                                            .with_source(default_source.1),
                                    );
                                }
                                DescribeConfigsResourceResult::default()
                                    .with_name(sb(d.name))
                                    .with_value(Some(sb(value)))
                                    .with_read_only(ignored)
                                    .with_config_source(source)
                                    .with_is_sensitive(false)
                                    .with_synonyms(synonyms)
                                    .with_config_type(kafka_type_code(d.kind))
                                    .with_documentation(
                                        req.include_documentation.then(|| sb(d.doc)),
                                    )
                            })
                            .collect();
                        r.with_configs(configs)
                    }
                    RESOURCE_BROKER => {
                        let id_ok = res.resource_name.is_empty()
                            || res.resource_name.as_str() == b.broker_id.to_string();
                        if !id_ok {
                            return r.with_error_code(code::INVALID_REQUEST).with_error_message(
                                Some(sb(format!("unknown broker {}", res.resource_name.as_str()))),
                            );
                        }
                        let configs = broker_configs(ctx)
                            .into_iter()
                            .filter(|(n, _)| wanted(n))
                            .map(|(n, v)| {
                                DescribeConfigsResourceResult::default()
                                    .with_name(sb(n))
                                    .with_value(Some(sb(v)))
                                    .with_read_only(true)
                                    .with_config_source(SOURCE_STATIC_BROKER)
                                    .with_config_type(2)
                            })
                            .collect();
                        r.with_configs(configs)
                    }
                    other => r
                        .with_error_code(code::INVALID_REQUEST)
                        .with_error_message(Some(sb(format!("unsupported resource type {other}")))),
                }
            })
            .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Kafka's ConfigType codes (KIP-569).
fn kafka_type_code(kind: ConfigKind) -> i8 {
    match kind {
        ConfigKind::Boolean => 1,
        ConfigKind::Enum(_) | ConfigKind::Text => 2,
        ConfigKind::Int { .. } => 3,
        ConfigKind::Long { .. } => 5,
        ConfigKind::Double { .. } => 6,
        ConfigKind::List(_) => 7,
    }
}
