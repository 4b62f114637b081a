//! CreateTopics (with validate_only, default partitions/replication, manual
//! replica assignments naming preferred leaders, and the resulting configs
//! in v5+ responses).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::sb;
use crate::kafka::{code, Ctx};
use crate::meta::command::LeaderMove;
use crate::meta::Command;

/// Most partitions a manual assignment may name (the metadata's own cap).
const MAX_ASSIGNED_PARTITIONS: usize = 10_000;

pub async fn handle(ctx: &Ctx, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let b = &ctx.broker;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut result = CreatableTopicResult::default().with_name(t.name.clone());
        if !crate::auth::allowed_cluster(ctx, crate::auth::acl::op::CREATE)
            && !crate::auth::allowed(
                ctx,
                crate::auth::acl::op::CREATE,
                crate::auth::acl::resource::TOPIC,
                &name,
            )
        {
            results.push(
                result
                    .with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
                    .with_error_message(Some(sb(format!("not authorized to create {name}")))),
            );
            continue;
        }
        let mut partitions = if t.num_partitions == -1 {
            b.config.num_partitions
        } else {
            t.num_partitions
        };
        // A manual assignment names the partitions and, first in each list,
        // the preferred leader. Data lives in object storage, so the other
        // replicas only name brokers that may lead it later.
        let mut preferred = Vec::new();
        if !t.assignments.is_empty() {
            match preferred_leaders(ctx, &t) {
                Ok(p) => {
                    partitions = p.len() as i32;
                    preferred = p;
                }
                Err((c, m)) => {
                    result = result.with_error_code(c).with_error_message(Some(sb(m)));
                    if ctx.version >= 5 {
                        result = result.with_num_partitions(-1).with_replication_factor(-1);
                    }
                    results.push(result);
                    continue;
                }
            }
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
        if bad.is_none() {
            if let Err(e) = super::strip_ignored_configs(&name, &mut configs) {
                bad = Some(e.to_string());
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
                if !req.validate_only && !preferred.is_empty() {
                    lead_preferred(ctx, &name, &preferred).await;
                }
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

/// The preferred leader of each partition of a manual assignment, checked
/// as Kafka checks it: partitions numbered 0..n, at least one replica each,
/// no broker twice, every broker known; num_partitions and
/// replication_factor left at -1.
fn preferred_leaders(ctx: &Ctx, t: &CreatableTopic) -> Result<Vec<i32>, (i16, String)> {
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err((
            code::INVALID_REQUEST,
            "both num_partitions or replication_factor and a replica assignment were set".into(),
        ));
    }
    let n = t.assignments.len();
    if n > MAX_ASSIGNED_PARTITIONS {
        return Err((
            code::INVALID_PARTITIONS,
            format!("{n} partitions: at most {MAX_ASSIGNED_PARTITIONS}"),
        ));
    }
    let meta = ctx.broker.meta();
    let mut leaders = vec![None; n];
    for a in &t.assignments {
        let bad = |m: String| (code::INVALID_REPLICA_ASSIGNMENT, m);
        let slot = usize::try_from(a.partition_index)
            .ok()
            .and_then(|i| leaders.get_mut(i))
            .ok_or_else(|| {
                bad(format!(
                    "partitions must be numbered 0..{n}, got {}",
                    a.partition_index
                ))
            })?;
        if slot.is_some() {
            return Err(bad(format!(
                "partition {} is assigned twice",
                a.partition_index
            )));
        }
        let ids = &a.broker_ids;
        let Some(first) = ids.first() else {
            return Err(bad(format!(
                "partition {} has no replicas",
                a.partition_index
            )));
        };
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                return Err(bad(format!(
                    "partition {} names broker {} twice",
                    a.partition_index, id.0
                )));
            }
            if !meta.brokers.contains_key(&id.0) {
                return Err(bad(format!(
                    "unknown broker {} in the assignment of partition {}",
                    id.0, a.partition_index
                )));
            }
        }
        *slot = Some(first.0);
    }
    Ok(leaders.into_iter().flatten().collect())
}

/// Moves the leadership of each new partition to its preferred broker when
/// that broker is live (the topic is created led by this broker). Later the
/// placement may move leadership again, as it does for every partition.
async fn lead_preferred(ctx: &Ctx, name: &str, preferred: &[i32]) {
    let b = &ctx.broker;
    let meta = b.meta();
    let Some(t) = meta.topic(name) else { return };
    let moves: Vec<LeaderMove> = t
        .partitions
        .iter()
        .zip(preferred)
        .enumerate()
        .filter(|(_, (p, want))| {
            p.leader != **want && meta.brokers.get(*want).is_some_and(|bi| !bi.fenced)
        })
        .map(|(i, (p, want))| LeaderMove {
            topic_id: t.topic_id,
            partition: i as i32,
            expected_epoch: p.leader_epoch,
            leader: *want,
        })
        .collect();
    if moves.is_empty() {
        return;
    }
    let count = moves.len();
    match b.submit(Command::MoveLeaders { moves }).await {
        Ok(_) => tracing::info!(
            topic = name,
            count,
            "partitions moved to their preferred leaders"
        ),
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "cannot move partitions to their preferred leaders")
        }
    }
}

fn resulting_configs(
    ctx: &Ctx,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    crate::meta::topic_config::all()
        .iter()
        .map(|d| {
            let (value, source) = match overrides.get(d.name) {
                _ if crate::meta::topic_config::is_ignored(d.name) => (d.default.to_string(), 5i8),
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
