//! Metadata: brokers, topics and partition leaders; auto-creates requested
//! topics when the broker allows it and the client asks for it.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::sb;
use crate::kafka::{code, Ctx};
use crate::meta::MetaState;

pub async fn handle(ctx: &Ctx, req: MetadataRequest) -> MetadataResponse {
    let b = &ctx.broker;
    // v0 has no allow_auto_topic_creation field: it always auto-creates.
    let allow_auto = ctx.version < 4 || req.allow_auto_topic_creation;
    let mut topics = Vec::new();
    match &req.topics {
        None => {
            let meta = b.meta();
            // Topics the principal may not describe are left out.
            for t in meta.topics.values().filter(|t| {
                crate::auth::allowed(
                    ctx,
                    crate::auth::acl::op::DESCRIBE,
                    crate::auth::acl::resource::TOPIC,
                    &t.name,
                )
            }) {
                topics.push(topic_entry(&meta, &t.name));
            }
        }
        Some(list) if list.is_empty() && ctx.version == 0 => {
            // v0: an empty list means all topics.
            let meta = b.meta();
            // Topics the principal may not describe are left out.
            for t in meta.topics.values().filter(|t| {
                crate::auth::allowed(
                    ctx,
                    crate::auth::acl::op::DESCRIBE,
                    crate::auth::acl::resource::TOPIC,
                    &t.name,
                )
            }) {
                topics.push(topic_entry(&meta, &t.name));
            }
        }
        Some(list) => {
            for rt in list {
                let name = match (&rt.name, rt.topic_id.is_nil()) {
                    (Some(n), _) => n.0.to_string(),
                    (None, false) => match b.topic_by_id(&rt.topic_id) {
                        Some(h) => h.name.clone(),
                        None => {
                            topics.push(
                                MetadataResponseTopic::default()
                                    .with_error_code(code::UNKNOWN_TOPIC_ID)
                                    .with_topic_id(rt.topic_id),
                            );
                            continue;
                        }
                    },
                    (None, true) => {
                        topics.push(
                            MetadataResponseTopic::default().with_error_code(code::INVALID_REQUEST),
                        );
                        continue;
                    }
                };
                if !crate::auth::allowed(
                    ctx,
                    crate::auth::acl::op::DESCRIBE,
                    crate::auth::acl::resource::TOPIC,
                    &name,
                ) {
                    topics.push(
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(sb(name))))
                            .with_error_code(code::TOPIC_AUTHORIZATION_FAILED),
                    );
                    continue;
                }
                let may_create = crate::auth::allowed_cluster(ctx, crate::auth::acl::op::CREATE)
                    || crate::auth::allowed(
                        ctx,
                        crate::auth::acl::op::CREATE,
                        crate::auth::acl::resource::TOPIC,
                        &name,
                    );
                if b.topic(&name).is_none() && allow_auto && may_create {
                    b.auto_create(&name).await;
                }
                let meta = b.meta();
                topics.push(topic_entry(&meta, &name));
            }
        }
    }
    let meta = b.meta();
    let brokers = meta
        .brokers
        .values()
        // Fenced brokers (dead or left) are not offered to clients.
        .filter(|bi| !bi.fenced)
        .map(|bi| {
            // The address of the listener the client connected on.
            let (host, port) = crate::auth::advertised(&ctx.session, &meta, b.broker_id, bi);
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(bi.broker_id))
                .with_host(sb(host))
                .with_port(port)
                .with_rack(bi.rack.clone().map(sb))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(sb(b.cluster_id.clone())))
        .with_controller_id(BrokerId(b.broker_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(i32::MIN)
}

fn topic_entry(meta: &MetaState, name: &str) -> MetadataResponseTopic {
    let Some(t) = meta.topic(name) else {
        let err = if crate::meta::validate_topic_name(name).is_ok() {
            code::UNKNOWN_TOPIC_OR_PARTITION
        } else {
            code::INVALID_TOPIC_EXCEPTION
        };
        return MetadataResponseTopic::default()
            .with_name(Some(TopicName(sb(name))))
            .with_error_code(err);
    };
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // A fenced leader is being replaced: no leader until it is.
            let live = meta.brokers.get(&p.leader).is_some_and(|b| !b.fenced);
            let leader = BrokerId(if live { p.leader } else { -1 });
            MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_error_code(if !live {
                    code::LEADER_NOT_AVAILABLE
                } else {
                    code::NONE
                })
                .with_leader_id(leader)
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(vec![leader])
                .with_isr_nodes(vec![leader])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(name))))
        .with_topic_id(t.topic_id)
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}
