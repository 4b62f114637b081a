//! LeaveGroup: a member (v0-2) or a batch of members (v3+, by member id or
//! by group instance id alone) leaves; the group rebalances at once.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::kafka::Ctx;

pub fn handle(ctx: &Ctx, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let now = ctx.broker.clock.now_ms();
    match ctx.broker.groups.leave(now, &req.group_id, &members) {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.kafka_code()),
        Ok(results) if ctx.version >= 3 => LeaveGroupResponse::default().with_members(
            req.members
                .into_iter()
                .zip(results)
                .map(|(m, r)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(r.err().map_or(0, |e| e.kafka_code()))
                })
                .collect(),
        ),
        Ok(results) => LeaveGroupResponse::default().with_error_code(
            results
                .into_iter()
                .next()
                .and_then(Result::err)
                .map_or(0, |e| e.kafka_code()),
        ),
    }
}
