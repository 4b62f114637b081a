//! The KIP-848 consumer group protocol (`group.protocol=consumer`):
//! ConsumerGroupHeartbeat and ConsumerGroupDescribe, served next to the
//! classic protocol by the same coordinator.
//!
//! - `assignor`: server-side assignors (`uniform`, `range`)
//! - `reconcile`: one member's step towards its target (revoke first)
//! - `group`: one group's heartbeat state machine (pure)
//!
//! Durability: every heartbeat that changes epochs, members or assignments
//! writes one `GroupCommand::ConsumerGroup` through the coordinator's
//! writer and is answered once it is applied, so a coordinator that
//! restarts or takes the group over (`groups::place`) loads the group from
//! the metadata and members carry on with their epochs and assignments.
//!
//! Classic and consumer groups share the group id space, as in Kafka: a
//! heartbeat to an empty classic group converts it to a consumer group; to
//! a classic group with members it is refused (GROUP_ID_NOT_FOUND). A
//! JoinGroup to an empty consumer group converts it back to classic; to one
//! with members it is refused (INCONSISTENT_GROUP_PROTOCOL). Kafka's online
//! migration of a live group between protocols is not done.

pub mod assignor;
pub mod group;
pub mod reconcile;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;
use tokio::sync::oneshot;

pub use group::{ConsumerGroup, Heartbeat, HeartbeatReply, Settings};

use super::{Coordinator, GroupError, ListedGroup};
use crate::meta::consumer_groups::{ConsumerGroupRecord, ConsumerGroupUpdate};
use crate::meta::groups::{GroupCommand, GroupOutput};
use crate::meta::MetaState;

/// Protocol type of consumer groups in ListGroups and describes.
pub const PROTOCOL_TYPE: &str = "consumer";

/// The consumer groups a coordinator holds.
#[derive(Debug, Default)]
pub struct Groups {
    map: Mutex<HashMap<String, ConsumerGroup>>,
}

/// The durable write of a heartbeat, to await before answering.
pub type Pending = oneshot::Receiver<Result<GroupOutput, GroupError>>;

/// A consumer group as ConsumerGroupDescribe and the tools show it.
#[derive(Debug, Clone)]
pub struct Described {
    pub state: &'static str,
    pub record: ConsumerGroupRecord,
}

impl Coordinator {
    fn consumer_settings(&self) -> Settings {
        Settings {
            session_timeout_ms: self.cfg.consumer_session_timeout_ms,
            heartbeat_interval_ms: self.cfg.consumer_heartbeat_interval_ms,
            max_size: self.cfg.max_group_size,
        }
    }

    fn queue_update(&self, u: ConsumerGroupUpdate) -> Result<Pending, GroupError> {
        self.enqueue(GroupCommand::ConsumerGroup(u))
    }

    /// ConsumerGroupHeartbeat. The reply is valid once `Pending` (if any)
    /// reports the change durable.
    pub fn consumer_heartbeat(
        &self,
        now: i64,
        meta: &MetaState,
        group_id: &str,
        hb: Heartbeat,
    ) -> Result<(HeartbeatReply, Option<Pending>), GroupError> {
        self.check_member_api(group_id)?;
        {
            // A classic group with the same id: convert it when empty.
            let mut classic = self.inner.lock();
            if let Some(slot) = classic.groups.get(group_id) {
                if !slot.group.is_empty() {
                    return Err(GroupError::GroupIdNotFound {
                        group: group_id.to_string(),
                    });
                }
                let bytes = slot.bytes;
                classic.groups.remove(group_id);
                classic.bytes -= bytes;
            }
        }
        let s = self.consumer_settings();
        let mut map = self.consumer.map.lock();
        if !map.contains_key(group_id) {
            if map.len() >= self.cfg.max_groups {
                map.retain(|_, g| !g.is_empty());
            }
            if map.len() >= self.cfg.max_groups {
                return Err(GroupError::CoordinatorNotAvailable {
                    reason: format!(
                        "this coordinator holds {} groups already",
                        self.cfg.max_groups
                    ),
                });
            }
            let g = match meta.groups.consumer.get(group_id) {
                Some(rec) => ConsumerGroup::load(group_id, rec.clone(), now, &s),
                None => ConsumerGroup::new(group_id),
            };
            map.insert(group_id.to_string(), g);
        }
        let g = map.get_mut(group_id).expect("inserted");
        let new_id = uuid::Uuid::new_v4().to_string();
        let out = g.heartbeat(now, &s, meta, hb, new_id);
        let e = g.take_events();
        self.rebalances.fetch_add(e.rebalances, Relaxed);
        let pending = match g.take_update() {
            Some(u) => match self.queue_update(u) {
                Ok(rx) => Some(rx),
                Err(e) => {
                    // Memory ran ahead of the log: reload from the log.
                    map.remove(group_id);
                    return Err(e);
                }
            },
            None => None,
        };
        Ok((out?, pending))
    }

    /// Forgets a group's in-memory state (after a failed write), so the
    /// next heartbeat reloads it from the metadata.
    pub fn consumer_unload(&self, group_id: &str) {
        self.consumer.map.lock().remove(group_id);
    }

    /// Session and rebalance timeouts of every consumer group; unloads
    /// groups this broker no longer coordinates and drops empty groups
    /// that have no committed offsets.
    pub fn consumer_tick(&self, now: i64, meta: &MetaState) {
        let mut updates = Vec::new();
        {
            let mut map = self.consumer.map.lock();
            map.retain(|id, _| self.coordinator_for(id) == self.cfg.broker_id);
            let mut gone = Vec::new();
            for (id, g) in map.iter_mut() {
                g.tick(now, meta);
                let e = g.take_events();
                self.rebalances.fetch_add(e.rebalances, Relaxed);
                self.members_expired.fetch_add(e.members_expired, Relaxed);
                if let Some(u) = g.take_update() {
                    updates.push(u);
                }
                if g.is_empty() && meta.groups.group(id).is_none() {
                    gone.push(id.clone());
                }
            }
            for id in gone {
                map.remove(&id);
                if meta.groups.consumer.contains_key(&id) {
                    updates.push(ConsumerGroupUpdate {
                        group: id,
                        delete: true,
                        ..Default::default()
                    });
                }
            }
            for u in updates.drain(..) {
                let group = u.group.clone();
                match self.queue_update(u) {
                    Ok(rx) => {
                        if let Ok(h) = tokio::runtime::Handle::try_current() {
                            h.spawn(async move {
                                if let Ok(Err(e)) = rx.await {
                                    tracing::warn!(%group, error = %e, "consumer group update failed");
                                }
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%group, error = %e, "consumer group update not queued");
                        map.remove(&group);
                    }
                }
            }
        }
    }

    /// If `group_id` is a consumer group: its description.
    pub fn consumer_describe(
        &self,
        meta: &MetaState,
        group_id: &str,
    ) -> Result<Option<Described>, GroupError> {
        self.check_offset_api(group_id)?;
        let map = self.consumer.map.lock();
        let rec = match map.get(group_id) {
            Some(g) => g.rec.clone(),
            None => match meta.groups.consumer.get(group_id) {
                Some(r) => r.clone(),
                None => return Ok(None),
            },
        };
        Ok(Some(Described {
            state: group::state_name(&rec),
            record: rec,
        }))
    }

    /// Whether `group_id` is a consumer group (in memory or stored).
    pub fn is_consumer_group(&self, meta: &MetaState, group_id: &str) -> bool {
        self.consumer.map.lock().contains_key(group_id)
            || meta.groups.consumer.contains_key(group_id)
    }

    /// A classic JoinGroup for `group_id`: refused while a consumer group
    /// with members holds the id; an empty consumer group is dropped.
    pub fn consumer_yield_to_classic(
        &self,
        meta: &MetaState,
        group_id: &str,
    ) -> Result<(), GroupError> {
        let mut map = self.consumer.map.lock();
        let has_members = match map.get(group_id) {
            Some(g) => !g.is_empty(),
            None => meta
                .groups
                .consumer
                .get(group_id)
                .is_some_and(|r| !r.members.is_empty()),
        };
        if has_members {
            return Err(GroupError::InconsistentProtocol {
                group: group_id.to_string(),
            });
        }
        map.remove(group_id);
        if meta.groups.consumer.contains_key(group_id) {
            let _ = self.queue_update(ConsumerGroupUpdate {
                group: group_id.to_string(),
                delete: true,
                ..Default::default()
            });
        }
        Ok(())
    }

    /// OffsetCommit validation for consumer groups: `None` if `group_id`
    /// is not one.
    pub fn consumer_validate_commit(
        &self,
        meta: &MetaState,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Option<Result<(), GroupError>> {
        let map = self.consumer.map.lock();
        if let Some(g) = map.get(group_id) {
            return Some(g.validate_commit(member_id, epoch));
        }
        let rec = meta.groups.consumer.get(group_id)?;
        let g = ConsumerGroup::load(group_id, rec.clone(), 0, &Settings::default());
        Some(g.validate_commit(member_id, epoch))
    }

    /// OffsetFetch validation (v9+ member id and epoch) for consumer groups.
    pub fn consumer_validate_fetch(
        &self,
        meta: &MetaState,
        group_id: &str,
        member_id: Option<&str>,
        epoch: i32,
    ) -> Result<(), GroupError> {
        let map = self.consumer.map.lock();
        if let Some(g) = map.get(group_id) {
            return g.validate_fetch(member_id, epoch);
        }
        match meta.groups.consumer.get(group_id) {
            Some(rec) => ConsumerGroup::load(group_id, rec.clone(), 0, &Settings::default())
                .validate_fetch(member_id, epoch),
            None => Ok(()),
        }
    }

    /// Consumer groups for ListGroups.
    pub fn consumer_list(&self, meta: &MetaState) -> Vec<ListedGroup> {
        let map = self.consumer.map.lock();
        let mut out: std::collections::BTreeMap<String, ListedGroup> = meta
            .groups
            .consumer
            .iter()
            .map(|(id, r)| {
                (
                    id.clone(),
                    ListedGroup {
                        group_id: id.clone(),
                        protocol_type: PROTOCOL_TYPE.into(),
                        state: group::state_name(r),
                        group_type: PROTOCOL_TYPE,
                    },
                )
            })
            .collect();
        for (id, g) in map.iter() {
            out.insert(
                id.clone(),
                ListedGroup {
                    group_id: id.clone(),
                    protocol_type: PROTOCOL_TYPE.into(),
                    state: group::state_name(&g.rec),
                    group_type: PROTOCOL_TYPE,
                },
            );
        }
        out.into_values().collect()
    }

    /// Topics whose offsets offset expiry keeps for a consumer group with
    /// members (subscribed by name or assigned); `None` if `group_id` is
    /// not such a group here.
    pub fn consumer_keep_topics(&self, meta: &MetaState, group_id: &str) -> Option<Vec<String>> {
        let map = self.consumer.map.lock();
        let g = map.get(group_id).filter(|g| !g.is_empty())?;
        let mut keep = g.subscribed_names();
        for m in g.rec.members.values() {
            keep.extend(
                m.assigned
                    .keys()
                    .filter_map(|t| meta.topic_ids.get(t).cloned()),
            );
        }
        Some(keep.into_iter().collect())
    }

    /// Members of consumer groups (for the members gauge).
    pub fn consumer_member_counts(&self) -> Vec<(String, usize)> {
        self.consumer
            .map
            .lock()
            .iter()
            .filter(|(_, g)| !g.is_empty())
            .map(|(id, g)| (id.clone(), g.rec.members.len()))
            .collect()
    }

    /// DeleteGroups of a consumer group: refused while it has members;
    /// `Some(())` if it was one (and is now gone from memory).
    pub fn consumer_delete(
        &self,
        meta: &MetaState,
        group_id: &str,
    ) -> Option<Result<(), GroupError>> {
        let mut map = self.consumer.map.lock();
        let members = match map.get(group_id) {
            Some(g) => g.rec.members.len(),
            None => meta.groups.consumer.get(group_id)?.members.len(),
        };
        if members > 0 {
            return Some(Err(GroupError::NonEmptyGroup {
                group: group_id.to_string(),
            }));
        }
        map.remove(group_id);
        Some(Ok(()))
    }
}

#[cfg(test)]
mod tests;

/// A consumer group in DescribeGroups' shape (protocol type "consumer",
/// the assignor as protocol, assignments in the classic embedded format),
/// for tools built on the classic describe (the HTTP group resources).
pub fn as_classic_description(
    group_id: &str,
    d: &Described,
    meta: &MetaState,
) -> kafka_protocol::messages::describe_groups_response::DescribedGroup {
    use bytes::BufMut;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::describe_groups_response::{
        DescribedGroup, DescribedGroupMember,
    };
    use kafka_protocol::messages::{ConsumerProtocolAssignment, GroupId, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let sb = |s: &str| StrBytes::from_string(s.to_string());
    let members = d
        .record
        .members
        .values()
        .map(|m| {
            let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
                m.assigned
                    .iter()
                    .filter_map(|(t, parts)| {
                        let name = meta.topic_ids.get(t)?;
                        Some(
                            TopicPartition::default()
                                .with_topic(TopicName(sb(name)))
                                .with_partitions(parts.iter().copied().collect()),
                        )
                    })
                    .collect(),
            );
            let mut b = bytes::BytesMut::new();
            b.put_i16(0);
            // Encoding a plain in-memory assignment at v0 cannot fail.
            let _ = a.encode(&mut b, 0);
            DescribedGroupMember::default()
                .with_member_id(sb(&m.member_id))
                .with_group_instance_id(m.instance_id.as_deref().map(sb))
                .with_client_id(sb(&m.client_id))
                .with_client_host(sb(&m.client_host))
                .with_member_assignment(b.freeze())
        })
        .collect();
    DescribedGroup::default()
        .with_group_id(GroupId(sb(group_id)))
        .with_group_state(sb(d.state))
        .with_protocol_type(sb(PROTOCOL_TYPE))
        .with_protocol_data(sb(&d.record.assignor))
        .with_members(members)
}
