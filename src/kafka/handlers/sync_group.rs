//! SyncGroup: the second half of a rebalance. The leader brings the
//! assignment; followers long-poll (`Reply::Later`) until it arrives.

use std::time::Duration;

use kafka_protocol::messages::{ResponseKind, SyncGroupRequest, SyncGroupResponse};

use super::sb;
use crate::groups::{GroupError, SyncResult};
use crate::kafka::{Ctx, Reply};

fn encode(version: i16, r: SyncResult) -> ResponseKind {
    let mut resp = SyncGroupResponse::default()
        .with_error_code(r.error.as_ref().map_or(0, GroupError::kafka_code))
        .with_assignment(r.assignment);
    if version >= 5 {
        resp = resp
            .with_protocol_type(r.protocol_type.map(sb))
            .with_protocol_name(r.protocol_name.map(sb));
    }
    ResponseKind::SyncGroup(resp)
}

pub fn handle(ctx: &Ctx, req: SyncGroupRequest) -> Reply {
    let v = ctx.version;
    let coordinator = &ctx.broker.groups;
    let instance = (v >= 3)
        .then_some(req.group_instance_id.as_deref())
        .flatten();
    let (pt, pn) = if v >= 5 {
        (req.protocol_type.as_deref(), req.protocol_name.as_deref())
    } else {
        (None, None)
    };
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let mut rx = coordinator.sync(
        ctx.broker.clock.now_ms(),
        &req.group_id,
        req.generation_id,
        &req.member_id,
        instance,
        pt,
        pn,
        assignments,
    );
    if let Ok(r) = rx.try_recv() {
        return Reply::Now(encode(v, r));
    }
    let cfg = coordinator.config();
    let cap = Duration::from_millis(
        cfg.max_session_timeout_ms.max(0) as u64 + cfg.new_member_join_timeout_ms.max(0) as u64,
    );
    Reply::Later(Box::pin(async move {
        let r = match tokio::time::timeout(cap, rx).await {
            Ok(Ok(r)) => r,
            _ => SyncResult::error(GroupError::CoordinatorNotAvailable {
                reason: "sync was not answered".into(),
            }),
        };
        encode(v, r)
    }))
}
