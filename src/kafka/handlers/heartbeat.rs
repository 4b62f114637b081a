//! Heartbeat: keeps a member's session alive and tells it when to rejoin
//! (REBALANCE_IN_PROGRESS).

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::kafka::Ctx;

pub fn handle(ctx: &Ctx, req: HeartbeatRequest) -> HeartbeatResponse {
    let instance = (ctx.version >= 3)
        .then_some(req.group_instance_id.as_deref())
        .flatten();
    let code = match ctx.broker.groups.heartbeat(
        ctx.broker.clock.now_ms(),
        &req.group_id,
        &req.member_id,
        instance,
        req.generation_id,
    ) {
        Ok(()) => 0,
        Err(e) => e.kafka_code(),
    };
    HeartbeatResponse::default().with_error_code(code)
}
