//! ConsumerGroupDescribe (KIP-848): epochs, members, current and target
//! assignments of `group.protocol=consumer` groups. Classic groups answer
//! GROUP_ID_NOT_FOUND, as in Kafka.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, TopicName,
};

use super::sb;
use crate::groups::GroupError;
use crate::kafka::Ctx;
use crate::meta::consumer_groups::Assignment as Parts;
use crate::meta::MetaState;

/// Groups described per request at most (a request names them all).
const MAX_GROUPS: usize = 1_000;

fn assignment(meta: &MetaState, a: &Parts) -> Assignment {
    Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(t, parts)| {
                TopicPartitions::default()
                    .with_topic_id(*t)
                    .with_topic_name(TopicName(sb(meta
                        .topic_ids
                        .get(t)
                        .cloned()
                        .unwrap_or_default())))
                    .with_partitions(parts.iter().copied().collect())
            })
            .collect(),
    )
}

fn describe(ctx: &Ctx, meta: &MetaState, id: &str) -> DescribedGroup {
    let base = DescribedGroup::default().with_group_id(GroupId(sb(id)));
    if ctx.session.security.authorizer.enabled
        && !crate::auth::allowed(
            ctx,
            crate::auth::acl::op::DESCRIBE,
            crate::auth::acl::resource::GROUP,
            id,
        )
    {
        return base
            .with_error_code(crate::auth::authz::code::GROUP_AUTHORIZATION_FAILED)
            .with_error_message(Some(sb("Group authorization failed")));
    }
    let d = match ctx.broker.groups.consumer_describe(meta, id) {
        Ok(Some(d)) => d,
        Ok(None) => {
            let e = GroupError::GroupIdNotFound {
                group: id.to_string(),
            };
            return base
                .with_error_code(e.kafka_code())
                .with_error_message(Some(sb(format!("group {id} is not a consumer group"))))
                .with_group_state(sb("Dead"));
        }
        Err(e) => {
            return base
                .with_error_code(e.kafka_code())
                .with_error_message(Some(sb(e.to_string())))
        }
    };
    let members = d
        .record
        .members
        .values()
        .map(|m| {
            let mut mm = Member::default()
                .with_member_id(sb(m.member_id.clone()))
                .with_instance_id(m.instance_id.clone().map(sb))
                .with_rack_id(m.rack_id.clone().map(sb))
                .with_member_epoch(m.member_epoch)
                .with_client_id(sb(m.client_id.clone()))
                .with_client_host(sb(m.client_host.clone()))
                .with_subscribed_topic_names(
                    m.subscribed_topics
                        .iter()
                        .map(|t| TopicName(sb(t.clone())))
                        .collect(),
                )
                .with_subscribed_topic_regex(m.subscribed_regex.clone().map(sb))
                .with_assignment(assignment(meta, &m.assigned))
                .with_target_assignment(assignment(meta, &m.target));
            if ctx.version >= 1 {
                mm = mm.with_member_type(1);
            }
            mm
        })
        .collect();
    base.with_group_state(sb(d.state))
        .with_group_epoch(d.record.group_epoch)
        .with_assignment_epoch(d.record.assignment_epoch)
        .with_assignor_name(sb(d.record.assignor))
        .with_members(members)
        .with_authorized_operations(i32::MIN)
}

pub fn handle(ctx: &Ctx, req: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let meta = ctx.broker.meta();
    let groups = req
        .group_ids
        .iter()
        .take(MAX_GROUPS)
        .map(|g| describe(ctx, &meta, g.as_str()))
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
