//! Durable state of KIP-848 consumer groups (`group.protocol=consumer`):
//! group and assignment epochs, members with their subscriptions, current
//! and target assignments. The coordinator (`crate::groups::consumer_protocol`)
//! decides; this module only stores what it decided, one
//! [`ConsumerGroupUpdate`] per change, so that a coordinator that restarts
//! or takes the group over carries on with the same epochs and assignments.
//!
//! Session deadlines are not stored: a coordinator that loads a group gives
//! every member a fresh session, as Kafka does.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::groups::validate_group_id;
use super::MetaError;

/// Most members one consumer group may hold (well above `group.max.size`).
pub const MAX_MEMBERS: usize = 10_000;
/// Most consumer groups held.
pub const MAX_CONSUMER_GROUPS: usize = 100_000;
/// Longest string field of a member (ids, regex, assignor name).
pub const MAX_FIELD_LEN: usize = 4_096;
/// Most subscribed topic names of one member.
pub const MAX_SUBSCRIBED_TOPICS: usize = 10_000;
/// Most partitions one member's assignment (current, pending, target) holds.
pub const MAX_MEMBER_PARTITIONS: usize = 1_000_000;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Where a member is in its reconciliation (Kafka's `MemberState`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MemberState {
    /// Owns its target assignment at the assignment epoch.
    #[default]
    Stable,
    /// Must give up `pending_revocation` before it gets anything new.
    UnrevokedPartitions,
    /// Waits for partitions that other members have not released yet.
    UnreleasedPartitions,
}

impl MemberState {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "STABLE",
            MemberState::UnrevokedPartitions => "UNREVOKED_PARTITIONS",
            MemberState::UnreleasedPartitions => "UNRELEASED_PARTITIONS",
        }
    }
}

/// One member of a consumer group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ConsumerMember {
    /// Member id (client- or coordinator-chosen).
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// Client id of its last join.
    pub client_id: String,
    /// Address it connected from.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed_topics: Vec<String>,
    /// Subscribed topic regex (full match).
    pub subscribed_regex: Option<String>,
    /// Preferred server assignor.
    pub server_assignor: Option<String>,
    /// `max.poll.interval.ms`: how long it may take to revoke.
    pub rebalance_timeout_ms: i32,
    /// Its epoch; -2 while a static member is away (left, assignment kept).
    pub member_epoch: i32,
    /// Epoch before the last bump (a lost response may still carry it).
    pub previous_member_epoch: i32,
    /// Reconciliation state.
    pub state: MemberState,
    /// Partitions it owns (as told to the client).
    pub assigned: Assignment,
    /// Partitions it must revoke.
    pub pending_revocation: Assignment,
    /// Its part of the target assignment.
    pub target: Assignment,
}

impl ConsumerMember {
    fn partitions(&self) -> usize {
        [&self.assigned, &self.pending_revocation, &self.target]
            .iter()
            .map(|a| a.values().map(BTreeSet::len).sum::<usize>())
            .sum()
    }
}

/// A consumer group as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ConsumerGroupRecord {
    /// Bumped on every membership, subscription or metadata change.
    pub group_epoch: i32,
    /// Group epoch the target assignment was computed at.
    pub assignment_epoch: i32,
    /// Assignor of the target assignment.
    pub assignor: String,
    /// Hash of the subscribed topics' ids and partition counts at
    /// `group_epoch` (a change bumps the epoch).
    pub metadata_hash: u64,
    /// Members by id.
    pub members: BTreeMap<String, ConsumerMember>,
}

/// One change of one consumer group: new group-level values, members
/// written whole, members removed. `delete` removes the group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ConsumerGroupUpdate {
    /// Group id.
    pub group: String,
    /// Group epoch after the change.
    pub group_epoch: i32,
    /// Assignment epoch after the change.
    pub assignment_epoch: i32,
    /// Assignor after the change.
    pub assignor: String,
    /// Metadata hash after the change.
    pub metadata_hash: u64,
    /// Members added or changed.
    pub upsert: Vec<ConsumerMember>,
    /// Member ids removed.
    pub remove: Vec<String>,
    /// Remove the whole group (a classic group replaced it, or it was deleted).
    #[serde(default)]
    pub delete: bool,
}

fn invalid(reason: String) -> MetaError {
    MetaError::InvalidRequest { reason }
}

fn check_str(what: &str, s: &str) -> Result<(), MetaError> {
    if s.len() > MAX_FIELD_LEN {
        return Err(invalid(format!(
            "{what} of {} bytes is longer than {MAX_FIELD_LEN}",
            s.len()
        )));
    }
    Ok(())
}

/// Would the update apply to `groups`?
pub fn check(
    groups: &super::Map<String, ConsumerGroupRecord>,
    u: &ConsumerGroupUpdate,
) -> Result<(), MetaError> {
    validate_group_id(&u.group)?;
    check_str("assignor", &u.assignor)?;
    if u.upsert.len() + u.remove.len() > MAX_MEMBERS {
        return Err(invalid(format!(
            "{} member changes in one update, more than {MAX_MEMBERS}",
            u.upsert.len() + u.remove.len()
        )));
    }
    if u.delete {
        return Ok(());
    }
    if u.group_epoch < 0 || u.assignment_epoch < 0 || u.assignment_epoch > u.group_epoch {
        return Err(invalid(format!(
            "consumer group {}: assignment epoch {} must lie in 0..={}",
            u.group, u.assignment_epoch, u.group_epoch
        )));
    }
    let existing = groups.get(&u.group);
    if existing.is_none() && groups.len() >= MAX_CONSUMER_GROUPS {
        return Err(invalid(format!(
            "at most {MAX_CONSUMER_GROUPS} consumer groups may be stored"
        )));
    }
    if let Some(g) = existing {
        if u.group_epoch < g.group_epoch {
            return Err(invalid(format!(
                "consumer group {}: epoch {} is older than the stored {}",
                u.group, u.group_epoch, g.group_epoch
            )));
        }
    }
    for m in &u.upsert {
        for s in [&m.member_id, &m.client_id, &m.client_host]
            .into_iter()
            .chain(m.instance_id.as_ref())
            .chain(m.rack_id.as_ref())
            .chain(m.subscribed_regex.as_ref())
            .chain(m.server_assignor.as_ref())
        {
            check_str("member field", s)?;
        }
        if m.member_id.is_empty() {
            return Err(invalid(format!(
                "consumer group {}: empty member id",
                u.group
            )));
        }
        if m.subscribed_topics.len() > MAX_SUBSCRIBED_TOPICS {
            return Err(invalid(format!(
                "member {} subscribes to {} topics, more than {MAX_SUBSCRIBED_TOPICS}",
                m.member_id,
                m.subscribed_topics.len()
            )));
        }
        if m.partitions() > MAX_MEMBER_PARTITIONS {
            return Err(invalid(format!(
                "member {} holds more than {MAX_MEMBER_PARTITIONS} partitions",
                m.member_id
            )));
        }
    }
    let have = existing.map_or(0, |g| g.members.len());
    let new = u
        .upsert
        .iter()
        .filter(|m| existing.is_none_or(|g| !g.members.contains_key(&m.member_id)))
        .count();
    if have + new > MAX_MEMBERS {
        return Err(invalid(format!(
            "consumer group {} would hold more than {MAX_MEMBERS} members",
            u.group
        )));
    }
    Ok(())
}

/// Applies a checked update; returns the group's member count after it.
pub fn apply(
    groups: &mut super::Map<String, ConsumerGroupRecord>,
    u: ConsumerGroupUpdate,
) -> usize {
    if u.delete {
        groups.remove(&u.group);
        return 0;
    }
    let g = groups.entry(u.group).or_default();
    g.group_epoch = u.group_epoch;
    g.assignment_epoch = u.assignment_epoch;
    g.assignor = u.assignor;
    g.metadata_hash = u.metadata_hash;
    for id in u.remove {
        g.members.remove(&id);
    }
    for m in u.upsert {
        g.members.insert(m.member_id.clone(), m);
    }
    g.members.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, epoch: i32) -> ConsumerMember {
        ConsumerMember {
            member_id: id.into(),
            member_epoch: epoch,
            ..Default::default()
        }
    }

    #[test]
    fn updates_merge_members_and_refuse_going_back() {
        let mut m = super::super::Map::new();
        let u = ConsumerGroupUpdate {
            group: "g".into(),
            group_epoch: 2,
            assignment_epoch: 2,
            assignor: "uniform".into(),
            upsert: vec![member("a", 2), member("b", 1)],
            ..Default::default()
        };
        check(&m, &u).unwrap();
        assert_eq!(apply(&mut m, u), 2);
        let u = ConsumerGroupUpdate {
            group: "g".into(),
            group_epoch: 3,
            assignment_epoch: 3,
            assignor: "uniform".into(),
            upsert: vec![member("b", 3)],
            remove: vec!["a".into()],
            ..Default::default()
        };
        check(&m, &u).unwrap();
        assert_eq!(apply(&mut m, u), 1);
        assert_eq!(m["g"].members["b"].member_epoch, 3);
        let back = ConsumerGroupUpdate {
            group: "g".into(),
            group_epoch: 1,
            ..Default::default()
        };
        assert!(check(&m, &back).is_err());
        let bad = ConsumerGroupUpdate {
            group: "g".into(),
            group_epoch: 4,
            assignment_epoch: 5,
            ..Default::default()
        };
        assert!(check(&m, &bad).is_err());
        let del = ConsumerGroupUpdate {
            group: "g".into(),
            delete: true,
            ..Default::default()
        };
        check(&m, &del).unwrap();
        apply(&mut m, del);
        assert!(m.is_empty());
    }
}
