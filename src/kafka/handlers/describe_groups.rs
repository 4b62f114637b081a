//! DescribeGroups: state, protocol, members and (when stable) their
//! metadata and assignments. Unknown groups are "Dead" (v6+: GROUP_ID_NOT_FOUND).

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::sb;
use crate::groups::codes;
use crate::kafka::Ctx;

pub fn handle(ctx: &Ctx, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let v = ctx.version;
    let meta = ctx.broker.meta();
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let d = DescribedGroup::default().with_group_id(id.clone());
            match ctx.broker.groups.describe(&meta, &id) {
                Err(e) => d.with_error_code(e.kafka_code()),
                Ok(None) if v >= 6 => d
                    .with_error_code(codes::GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(sb(format!("Group {} not found.", id.as_str()))))
                    .with_group_state(sb("Dead")),
                Ok(None) => d.with_group_state(sb("Dead")),
                Ok(Some(s)) => d
                    .with_group_state(sb(s.state.name()))
                    .with_protocol_type(sb(s.protocol_type))
                    .with_protocol_data(sb(s.protocol))
                    .with_members(
                        s.members
                            .into_iter()
                            .map(|m| {
                                let dm = DescribedGroupMember::default()
                                    .with_member_id(sb(m.member_id))
                                    .with_client_id(sb(m.client_id))
                                    .with_client_host(sb(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment);
                                if v >= 4 {
                                    dm.with_group_instance_id(m.group_instance_id.map(sb))
                                } else {
                                    dm
                                }
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
