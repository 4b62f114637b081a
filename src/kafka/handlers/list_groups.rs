//! ListGroups: groups with members or committed offsets, filtered by state
//! (v4+) and type (v5+: "classic" or "consumer", KIP-848).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::sb;
use crate::kafka::Ctx;

pub fn handle(ctx: &Ctx, req: ListGroupsRequest) -> ListGroupsResponse {
    let v = ctx.version;
    let states: Vec<String> = if v >= 4 {
        req.states_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if v >= 5 {
        req.types_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let groups = ctx
        .broker
        .groups
        .list(&ctx.broker.meta())
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            let mut lg = ListedGroup::default()
                .with_group_id(GroupId(sb(g.group_id)))
                .with_protocol_type(sb(g.protocol_type));
            if v >= 4 {
                lg = lg.with_group_state(sb(g.state));
            }
            if v >= 5 {
                lg = lg.with_group_type(sb(g.group_type));
            }
            lg
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
