//! ConsumerGroupHeartbeat (KIP-848): join, heartbeat, reconcile and leave
//! of a `group.protocol=consumer` member. Answered once any change it made
//! to the group is durable in the metadata log (`Reply::Later`).

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ResponseKind,
};

use super::sb;
use crate::groups::consumer_protocol::{Heartbeat, HeartbeatReply};
use crate::groups::GroupError;
use crate::kafka::{Ctx, Reply};
use crate::meta::consumer_groups::MAX_SUBSCRIBED_TOPICS;

fn error(e: &GroupError) -> ResponseKind {
    ResponseKind::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.kafka_code())
            .with_error_message(Some(sb(e.to_string())))
            .with_member_epoch(-1),
    )
}

fn ok(r: HeartbeatReply) -> ResponseKind {
    let assignment = r.assignment.map(|a| {
        Assignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(t, parts)| {
                    TopicPartitions::default()
                        .with_topic_id(t)
                        .with_partitions(parts.into_iter().collect())
                })
                .collect(),
        )
    });
    ResponseKind::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(assignment),
    )
}

pub fn handle(ctx: &Ctx, req: ConsumerGroupHeartbeatRequest) -> Reply {
    if req
        .subscribed_topic_names
        .as_ref()
        .is_some_and(|t| t.len() > MAX_SUBSCRIBED_TOPICS)
    {
        return Reply::Now(error(&GroupError::InvalidRequest {
            reason: format!("more than {MAX_SUBSCRIBED_TOPICS} subscribed topics"),
        }));
    }
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topics: req
            .subscribed_topic_names
            .as_ref()
            .map(|v| v.iter().map(|t| t.0.to_string()).collect()),
        subscribed_regex: (ctx.version >= 1)
            .then(|| req.subscribed_topic_regex.as_ref().map(|s| s.to_string()))
            .flatten(),
        server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned: req.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|tp| (tp.topic_id, tp.partitions.iter().copied().collect()))
                .collect()
        }),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: String::new(),
    };
    let meta = ctx.broker.meta();
    let now = ctx.broker.clock.now_ms();
    let group = req.group_id.to_string();
    match ctx.broker.groups.consumer_heartbeat(now, &meta, &group, hb) {
        Err(e) => Reply::Now(error(&e)),
        Ok((r, None)) => Reply::Now(ok(r)),
        Ok((r, Some(rx))) => {
            let broker = ctx.broker.clone();
            Reply::Later(Box::pin(async move {
                let e = match rx.await {
                    Ok(Ok(_)) => return ok(r),
                    Ok(Err(e)) => e,
                    Err(_) => GroupError::CoordinatorNotAvailable {
                        reason: "the metadata writer stopped".into(),
                    },
                };
                tracing::warn!(%group, error = %e, "consumer group change not stored");
                broker.groups.consumer_unload(&group);
                error(&e)
            }))
        }
    }
}
