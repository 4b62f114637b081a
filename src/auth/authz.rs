//! Whole-request refusals of the ACL authorizer, checked once in
//! `kafka::dispatch` before the handler runs: group APIs (READ on the
//! group), transactional ids (WRITE), FindCoordinator (DESCRIBE) and the
//! cluster-level admin APIs (ACLs, SCRAM users). Per-topic checks sit in
//! the topic handlers (Produce, Fetch, Metadata, ListOffsets,
//! OffsetForLeaderEpoch, CreateTopics, DeleteTopics).

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::acl::{op, resource};
use super::{allowed, allowed_cluster};
use crate::kafka::Ctx;

/// `*_AUTHORIZATION_FAILED` codes.
pub mod code {
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const SECURITY_DISABLED: i16 = 54;
}

fn msg(s: &str) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.to_string()))
}

fn group(ctx: &Ctx, id: &str, operation: i8) -> bool {
    allowed(ctx, operation, resource::GROUP, id)
}

/// The refusal of `req`, when the principal may not make it at all.
pub fn refuse(ctx: &Ctx, req: &RequestKind) -> Option<ResponseKind> {
    if !ctx.session.security.authorizer.enabled {
        return None;
    }
    const G: i16 = code::GROUP_AUTHORIZATION_FAILED;
    const C: i16 = code::CLUSTER_AUTHORIZATION_FAILED;
    match req {
        RequestKind::JoinGroup(r) if !group(ctx, &r.group_id, op::READ) => {
            Some(ResponseKind::JoinGroup(
                JoinGroupResponse::default()
                    .with_error_code(G)
                    .with_generation_id(-1),
            ))
        }
        RequestKind::SyncGroup(r) if !group(ctx, &r.group_id, op::READ) => Some(
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(G)),
        ),
        RequestKind::Heartbeat(r) if !group(ctx, &r.group_id, op::READ) => Some(
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(G)),
        ),
        RequestKind::ConsumerGroupHeartbeat(r) if !group(ctx, &r.group_id, op::READ) => {
            Some(ResponseKind::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatResponse::default()
                    .with_error_code(G)
                    .with_member_epoch(-1),
            ))
        }
        RequestKind::LeaveGroup(r) if !group(ctx, &r.group_id, op::READ) => Some(
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(G)),
        ),
        RequestKind::OffsetCommit(r) if !group(ctx, &r.group_id, op::READ) => {
            Some(ResponseKind::OffsetCommit(
                OffsetCommitResponse::default().with_topics(
                    r.topics
                        .iter()
                        .map(|t| {
                            OffsetCommitResponseTopic::default()
                                .with_name(t.name.clone())
                                .with_topic_id(t.topic_id)
                                .with_partitions(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            OffsetCommitResponsePartition::default()
                                                .with_partition_index(p.partition_index)
                                                .with_error_code(G)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            ))
        }
        RequestKind::OffsetFetch(r) => offset_fetch(ctx, r),
        RequestKind::FindCoordinator(r) => find_coordinator(ctx, r),
        RequestKind::InitProducerId(r) => {
            let id = r.transactional_id.as_ref().filter(|i| !i.is_empty())?;
            (!allowed(ctx, op::WRITE, resource::TRANSACTIONAL_ID, id)).then(|| {
                ResponseKind::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_error_code(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
                        .with_producer_id((-1).into())
                        .with_producer_epoch(-1),
                )
            })
        }
        RequestKind::CreateAcls(r) if !allowed_cluster(ctx, op::ALTER) => {
            Some(ResponseKind::CreateAcls(
                CreateAclsResponse::default().with_results(
                    r.creations
                        .iter()
                        .map(|_| AclCreationResult::default().with_error_code(C))
                        .collect(),
                ),
            ))
        }
        RequestKind::DeleteAcls(r) if !allowed_cluster(ctx, op::ALTER) => {
            Some(ResponseKind::DeleteAcls(
                DeleteAclsResponse::default().with_filter_results(
                    r.filters
                        .iter()
                        .map(|_| DeleteAclsFilterResult::default().with_error_code(C))
                        .collect(),
                ),
            ))
        }
        RequestKind::DescribeAcls(_) if !allowed_cluster(ctx, op::DESCRIBE) => {
            Some(ResponseKind::DescribeAcls(
                DescribeAclsResponse::default()
                    .with_error_code(C)
                    .with_error_message(msg("Cluster authorization failed")),
            ))
        }
        RequestKind::AlterUserScramCredentials(r) if !allowed_cluster(ctx, op::ALTER) => {
            let mut users: Vec<StrBytes> = r
                .deletions
                .iter()
                .map(|d| d.name.clone())
                .chain(r.upsertions.iter().map(|u| u.name.clone()))
                .collect();
            users.sort();
            users.dedup();
            Some(ResponseKind::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(
                    users
                        .into_iter()
                        .map(|u| {
                            AlterUserScramCredentialsResult::default()
                                .with_user(u)
                                .with_error_code(C)
                        })
                        .collect(),
                ),
            ))
        }
        RequestKind::DescribeUserScramCredentials(_) if !allowed_cluster(ctx, op::DESCRIBE) => {
            Some(ResponseKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsResponse::default()
                    .with_error_code(C)
                    .with_error_message(msg("Cluster authorization failed")),
            ))
        }
        _ => None,
    }
}

fn offset_fetch(ctx: &Ctx, r: &OffsetFetchRequest) -> Option<ResponseKind> {
    const G: i16 = code::GROUP_AUTHORIZATION_FAILED;
    if ctx.version >= 8 {
        // Per group; a request with any refused group is answered whole
        // here only when every group is refused.
        if r.groups
            .iter()
            .all(|g| !group(ctx, &g.group_id, op::DESCRIBE))
        {
            return Some(ResponseKind::OffsetFetch(
                OffsetFetchResponse::default().with_groups(
                    r.groups
                        .iter()
                        .map(|g| {
                            OffsetFetchResponseGroup::default()
                                .with_group_id(g.group_id.clone())
                                .with_error_code(G)
                                .with_topics(
                                    g.topics
                                        .iter()
                                        .flatten()
                                        .map(|t| {
                                            OffsetFetchResponseTopics::default()
                                                .with_name(t.name.clone())
                                                .with_partitions(
                                                    t.partition_indexes
                                                        .iter()
                                                        .map(|p| {
                                                            OffsetFetchResponsePartitions::default()
                                                                .with_partition_index(*p)
                                                                .with_committed_offset(-1)
                                                                .with_error_code(G)
                                                        })
                                                        .collect(),
                                                )
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            ));
        }
        return None;
    }
    if group(ctx, &r.group_id, op::DESCRIBE) {
        return None;
    }
    Some(ResponseKind::OffsetFetch(
        OffsetFetchResponse::default()
            .with_error_code(G)
            .with_topics(
                r.topics
                    .iter()
                    .flatten()
                    .map(|t| {
                        OffsetFetchResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(-1)
                                            .with_error_code(G)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
    ))
}

fn find_coordinator(ctx: &Ctx, r: &FindCoordinatorRequest) -> Option<ResponseKind> {
    let check = |key: &str| -> Option<i16> {
        let ok = if r.key_type == 1 {
            allowed(ctx, op::DESCRIBE, resource::TRANSACTIONAL_ID, key)
        } else {
            group(ctx, key, op::DESCRIBE)
        };
        (!ok).then_some(if r.key_type == 1 {
            code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        } else {
            code::GROUP_AUTHORIZATION_FAILED
        })
    };
    if ctx.version < 4 {
        let c = check(&r.key)?;
        return Some(ResponseKind::FindCoordinator(
            FindCoordinatorResponse::default()
                .with_error_code(c)
                .with_node_id((-1).into())
                .with_port(-1),
        ));
    }
    let refused: Vec<(StrBytes, i16)> = r
        .coordinator_keys
        .iter()
        .filter_map(|k| check(k).map(|c| (k.clone(), c)))
        .collect();
    // Only a request whose every key is refused is answered here (the
    // handler answers mixed requests for the allowed keys).
    if refused.is_empty() || refused.len() != r.coordinator_keys.len() {
        return None;
    }
    Some(ResponseKind::FindCoordinator(
        FindCoordinatorResponse::default().with_coordinators(
            refused
                .into_iter()
                .map(|(k, c)| {
                    Coordinator::default()
                        .with_key(k)
                        .with_error_code(c)
                        .with_node_id((-1).into())
                        .with_port(-1)
                })
                .collect(),
        ),
    ))
}
