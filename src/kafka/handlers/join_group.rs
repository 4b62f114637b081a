//! JoinGroup: the first half of a rebalance. A long-poll: the answer comes
//! when the join phase completes (`Reply::Later`), so the connection keeps
//! serving meanwhile. v4+ requires the member-id round (MEMBER_ID_REQUIRED),
//! v5+ carries static membership, v9 lets a returning static leader skip
//! the assignment.

use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, ResponseKind};

use super::sb;
use crate::groups::{GroupError, JoinArgs, JoinResult};
use crate::kafka::{Ctx, Reply};

fn encode(version: i16, r: JoinResult) -> ResponseKind {
    let protocol_name = match r.protocol_name {
        Some(p) => Some(sb(p)),
        // Not nullable before v7.
        None if version < 7 => Some(sb("")),
        None => None,
    };
    let mut resp = JoinGroupResponse::default()
        .with_error_code(r.error.as_ref().map_or(0, GroupError::kafka_code))
        .with_generation_id(r.generation_id)
        .with_protocol_name(protocol_name)
        .with_leader(sb(r.leader))
        .with_member_id(sb(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    let jm = JoinGroupResponseMember::default()
                        .with_member_id(sb(m.member_id))
                        .with_metadata(m.metadata);
                    if version >= 5 {
                        jm.with_group_instance_id(m.group_instance_id.map(sb))
                    } else {
                        jm
                    }
                })
                .collect(),
        );
    if version >= 7 {
        resp = resp.with_protocol_type(r.protocol_type.map(sb));
    }
    if version >= 9 {
        resp = resp.with_skip_assignment(r.skip_assignment);
    }
    ResponseKind::JoinGroup(resp)
}

pub fn handle(ctx: &Ctx, req: JoinGroupRequest) -> Reply {
    let v = ctx.version;
    let coordinator = &ctx.broker.groups;
    // v0 has no rebalance timeout: Kafka uses the session timeout.
    let rebalance_timeout_ms = if v >= 1 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    let args = JoinArgs {
        member_id: req.member_id.to_string(),
        group_instance_id: if v >= 5 {
            req.group_instance_id.as_ref().map(|s| s.to_string())
        } else {
            None
        },
        require_known_member_id: v >= 4,
        support_skip_assignment: v >= 9,
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: String::new(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
    };
    let member_id = args.member_id.clone();
    if let Err(e) = coordinator.consumer_yield_to_classic(&ctx.broker.meta(), &req.group_id) {
        return Reply::Now(encode(v, JoinResult::error(member_id, e)));
    }
    let now = ctx.broker.clock.now_ms();
    let mut rx = coordinator.join(now, &req.group_id, args);
    if let Ok(r) = rx.try_recv() {
        return Reply::Now(encode(v, r));
    }
    // The group answers by its rebalance timeout or the new-member timeout;
    // the cap only guards the connection against a lost answer.
    let cap = Duration::from_millis(
        rebalance_timeout_ms.max(0) as u64
            + coordinator.config().new_member_join_timeout_ms.max(0) as u64
            + 30_000,
    );
    Reply::Later(Box::pin(async move {
        let r = match tokio::time::timeout(cap, rx).await {
            Ok(Ok(r)) => r,
            _ => JoinResult::error(
                member_id,
                GroupError::CoordinatorNotAvailable {
                    reason: "join was not answered".into(),
                },
            ),
        };
        encode(v, r)
    }))
}
