//! Consumer groups' durable state: committed offsets with their metadata.
//! Membership is soft state in the coordinating broker (`crate::groups`);
//! only what must survive a coordinator's death is here.
//!
//! A group exists here while it has at least one committed offset: every
//! command that removes the last offset of a group removes the group too, so
//! the map never holds empty entries. Like the rest of `apply`, nothing here
//! reads a clock: commit and expiry times come inside the commands.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::state::Topic;
use super::MetaError;

/// Longest group id accepted (bytes). Kafka has no limit of its own beyond
/// the protocol's; this keeps keys, metric labels and log lines small.
pub const MAX_GROUP_ID_LEN: usize = 255;
/// Longest offset metadata string (Kafka's `offset.metadata.max.bytes`).
pub const MAX_OFFSET_METADATA_LEN: usize = 4096;
/// Most offsets one group may hold (one per partition it ever committed).
pub const MAX_OFFSETS_PER_GROUP: usize = 100_000;
/// Most groups with committed offsets.
pub const MAX_GROUPS: usize = 100_000;
/// Most entries (offsets, partitions or groups) one command may carry.
pub const MAX_ENTRIES_PER_COMMAND: usize = 100_000;

/// One offset to commit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct OffsetEntry {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Next offset to consume (>= 0).
    pub offset: i64,
    /// Leader epoch of the last consumed record, -1 if unknown.
    pub leader_epoch: i32,
    /// Client metadata, at most [`MAX_OFFSET_METADATA_LEN`] bytes.
    pub metadata: String,
}

/// The offsets one OffsetCommit request commits for one group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GroupCommit {
    /// Group id.
    pub group: String,
    /// Offsets, applied in order (a later entry for the same partition wins).
    pub offsets: Vec<OffsetEntry>,
}

/// A group the expiry pass considers, with what protects its offsets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ExpireGroup {
    /// Group id.
    pub group: String,
    /// When the group last became empty, as the coordinator saw it. An
    /// offset's retention counts from the later of this and its commit time.
    pub empty_since_ms: Option<i64>,
    /// Topics whose offsets never expire in this pass (the topics a stable
    /// consumer group is subscribed to).
    pub keep_topics: Vec<String>,
}

/// Commands on group state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum GroupCommand {
    /// Commits offsets for one or more groups: one batch of OffsetCommit
    /// requests becomes one command (one log record, one fsync).
    CommitOffsets {
        /// Commit time, chosen by the coordinator.
        timestamp_ms: i64,
        /// Commits in arrival order.
        commits: Vec<GroupCommit>,
    },
    /// Removes groups and all their offsets (DeleteGroups). Unknown groups
    /// are reported, not refused: the coordinator may also have held them
    /// as soft state only.
    DeleteGroups {
        /// Group ids.
        groups: Vec<String>,
    },
    /// Removes some offsets of one group (OffsetDelete).
    DeleteOffsets {
        /// Group id.
        group: String,
        /// (topic, partition) pairs; unknown ones are ignored.
        partitions: Vec<(String, i32)>,
    },
    /// Expires offsets older than `retention_ms` in the listed groups
    /// (`offsets.retention.minutes` for groups that are empty or do not use
    /// group management).
    ExpireOffsets {
        /// Time of the expiry pass, chosen by the coordinator.
        now_ms: i64,
        /// Retention (> 0).
        retention_ms: i64,
        /// The groups to consider; groups not listed are untouched.
        groups: Vec<ExpireGroup>,
    },
    /// Records a change of a KIP-848 consumer group (`super::consumer_groups`).
    ConsumerGroup(super::consumer_groups::ConsumerGroupUpdate),
}

/// Outputs of group commands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum GroupOutput {
    /// Offsets stored.
    OffsetsCommitted {
        /// Number of offsets written (duplicates counted once per entry).
        count: usize,
    },
    /// Groups removed.
    GroupsDeleted {
        /// Groups that had offsets and were removed.
        deleted: Vec<String>,
        /// Groups that had no offsets.
        not_found: Vec<String>,
    },
    /// Offsets removed by `DeleteOffsets`.
    OffsetsDeleted {
        /// How many offsets existed and were removed.
        removed: usize,
    },
    /// Offsets removed by `ExpireOffsets`.
    OffsetsExpired {
        /// How many offsets expired.
        offsets: usize,
        /// Groups left with no offsets, hence removed.
        groups_removed: Vec<String>,
    },
    /// A consumer group change was stored.
    ConsumerGroupUpdated {
        /// Members of the group after it.
        members: usize,
    },
}

/// A committed offset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CommittedOffset {
    /// Next offset to consume.
    pub offset: i64,
    /// Leader epoch the client reported, -1 if none.
    pub leader_epoch: i32,
    /// Client metadata string.
    pub metadata: String,
    /// When it was committed (coordinator's clock).
    pub commit_timestamp_ms: i64,
}

/// Committed offsets of one group: topic -> partition -> offset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct GroupOffsets {
    /// Offsets by topic name, then partition.
    pub offsets: super::Map<String, super::Map<i32, CommittedOffset>>,
    /// Offsets were committed by a transaction (an exactly-once consumer,
    /// which reads with read_committed): its lag counts to the last stable
    /// offset.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transactional: bool,
}

impl GroupOffsets {
    /// Number of committed offsets.
    pub fn len(&self) -> usize {
        self.offsets.values().map(|p| p.len()).sum()
    }

    /// Whether no offset is committed.
    pub fn is_empty(&self) -> bool {
        self.offsets.values().all(|p| p.is_empty())
    }

    /// One partition's committed offset.
    pub fn get(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.offsets.get(topic)?.get(&partition)
    }

    /// Latest commit time of any offset (for listing and expiry fallbacks).
    pub fn last_commit_ms(&self) -> Option<i64> {
        self.offsets
            .values()
            .flat_map(|p| p.values())
            .map(|o| o.commit_timestamp_ms)
            .max()
    }

    fn remove(&mut self, topic: &str, partition: i32) -> bool {
        let Some(parts) = self.offsets.get_mut(topic) else {
            return false;
        };
        let removed = parts.remove(&partition).is_some();
        if parts.is_empty() {
            self.offsets.remove(topic);
        }
        removed
    }
}

/// Every group's durable state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct GroupsState {
    /// Groups with at least one committed offset.
    #[serde(default)]
    pub groups: super::Map<String, GroupOffsets>,
    /// KIP-848 consumer groups (membership, epochs, assignments).
    #[serde(default, skip_serializing_if = "super::Map::is_empty")]
    pub consumer: super::Map<String, super::consumer_groups::ConsumerGroupRecord>,
}

fn invalid(reason: String) -> MetaError {
    MetaError::InvalidRequest { reason }
}

/// Checks a group id: at most [`MAX_GROUP_ID_LEN`] bytes. Empty ids are
/// allowed, as Kafka allows them for offset storage.
pub fn validate_group_id(group: &str) -> Result<(), MetaError> {
    if group.len() > MAX_GROUP_ID_LEN {
        return Err(invalid(format!(
            "group id of {} bytes is longer than {MAX_GROUP_ID_LEN}",
            group.len()
        )));
    }
    Ok(())
}

fn check_count(what: &str, n: usize) -> Result<(), MetaError> {
    if n > MAX_ENTRIES_PER_COMMAND {
        return Err(invalid(format!(
            "{n} {what} in one command, more than {MAX_ENTRIES_PER_COMMAND}"
        )));
    }
    Ok(())
}

impl GroupsState {
    /// A group's committed offsets.
    pub fn group(&self, group: &str) -> Option<&GroupOffsets> {
        self.groups.get(group)
    }

    /// Would the command apply? Checks everything `apply_checked` relies on.
    pub fn check(
        &self,
        cmd: &GroupCommand,
        topics: &super::Map<String, Topic>,
    ) -> Result<(), MetaError> {
        match cmd {
            GroupCommand::CommitOffsets {
                timestamp_ms: _,
                commits,
            } => {
                check_count("commits", commits.len())?;
                let total: usize = commits.iter().map(|c| c.offsets.len()).sum();
                check_count("offsets", total)?;
                // Sizes after the command, to hold the bounds.
                let mut new_keys: BTreeMap<&str, BTreeSet<(&str, i32)>> = BTreeMap::new();
                for c in commits {
                    validate_group_id(&c.group)?;
                    for o in &c.offsets {
                        let known = topics
                            .get(&o.topic)
                            .and_then(|t| {
                                usize::try_from(o.partition)
                                    .ok()
                                    .map(|p| p < t.partitions.len())
                            })
                            .unwrap_or(false);
                        if !known {
                            return Err(MetaError::UnknownPartition {
                                name: o.topic.clone(),
                                partition: o.partition,
                            });
                        }
                        if o.offset < 0 {
                            return Err(MetaError::OffsetOutOfRange {
                                name: o.topic.clone(),
                                partition: o.partition,
                                offset: o.offset,
                            });
                        }
                        if o.metadata.len() > MAX_OFFSET_METADATA_LEN {
                            return Err(invalid(format!(
                                "offset metadata of {} bytes for {}-{} is longer than {MAX_OFFSET_METADATA_LEN}",
                                o.metadata.len(),
                                o.topic,
                                o.partition
                            )));
                        }
                        let existing = self
                            .groups
                            .get(&c.group)
                            .is_some_and(|g| g.get(&o.topic, o.partition).is_some());
                        if !existing {
                            new_keys
                                .entry(c.group.as_str())
                                .or_default()
                                .insert((o.topic.as_str(), o.partition));
                        }
                    }
                }
                let new_groups = new_keys
                    .keys()
                    .filter(|g| !self.groups.contains_key(**g))
                    .count();
                if self.groups.len() + new_groups > MAX_GROUPS {
                    return Err(invalid(format!(
                        "at most {MAX_GROUPS} groups may hold committed offsets"
                    )));
                }
                for (g, keys) in &new_keys {
                    let have = self.groups.get(*g).map_or(0, |x| x.len());
                    if have + keys.len() > MAX_OFFSETS_PER_GROUP {
                        return Err(invalid(format!(
                            "group {g} would hold more than {MAX_OFFSETS_PER_GROUP} offsets"
                        )));
                    }
                }
                Ok(())
            }
            GroupCommand::DeleteGroups { groups } => {
                check_count("groups", groups.len())?;
                for g in groups {
                    validate_group_id(g)?;
                }
                Ok(())
            }
            GroupCommand::DeleteOffsets { group, partitions } => {
                validate_group_id(group)?;
                check_count("partitions", partitions.len())
            }
            GroupCommand::ExpireOffsets {
                now_ms: _,
                retention_ms,
                groups,
            } => {
                if *retention_ms <= 0 {
                    return Err(invalid(format!(
                        "offset retention must be > 0 ms, got {retention_ms}"
                    )));
                }
                check_count("groups", groups.len())?;
                let topics: usize = groups.iter().map(|g| g.keep_topics.len()).sum();
                check_count("topics", topics)?;
                for g in groups {
                    validate_group_id(&g.group)?;
                }
                Ok(())
            }
            GroupCommand::ConsumerGroup(u) => super::consumer_groups::check(&self.consumer, u),
        }
    }

    /// Apply a checked command.
    pub fn apply_checked(
        &mut self,
        cmd: GroupCommand,
        _topics: &super::Map<String, Topic>,
    ) -> GroupOutput {
        match cmd {
            GroupCommand::CommitOffsets {
                timestamp_ms,
                commits,
            } => {
                let mut count = 0;
                for c in commits {
                    if c.offsets.is_empty() {
                        continue;
                    }
                    let g = self.groups.entry(c.group).or_default();
                    for o in c.offsets {
                        g.offsets.entry(o.topic).or_default().insert(
                            o.partition,
                            CommittedOffset {
                                offset: o.offset,
                                leader_epoch: o.leader_epoch,
                                metadata: o.metadata,
                                commit_timestamp_ms: timestamp_ms,
                            },
                        );
                        count += 1;
                    }
                }
                GroupOutput::OffsetsCommitted { count }
            }
            GroupCommand::DeleteGroups { groups } => {
                let mut deleted = Vec::new();
                let mut not_found = Vec::new();
                for g in groups {
                    let consumer = self.consumer.remove(&g).is_some();
                    if self.groups.remove(&g).is_some() || consumer {
                        deleted.push(g);
                    } else {
                        not_found.push(g);
                    }
                }
                GroupOutput::GroupsDeleted { deleted, not_found }
            }
            GroupCommand::DeleteOffsets { group, partitions } => {
                let mut removed = 0;
                if let Some(g) = self.groups.get_mut(&group) {
                    for (t, p) in &partitions {
                        if g.remove(t, *p) {
                            removed += 1;
                        }
                    }
                    if g.is_empty() {
                        self.groups.remove(&group);
                    }
                }
                GroupOutput::OffsetsDeleted { removed }
            }
            GroupCommand::ExpireOffsets {
                now_ms,
                retention_ms,
                groups,
            } => {
                let mut offsets = 0;
                let mut groups_removed = Vec::new();
                for eg in groups {
                    let Some(g) = self.groups.get_mut(&eg.group) else {
                        continue;
                    };
                    let floor = eg.empty_since_ms.unwrap_or(i64::MIN);
                    let topics: Vec<String> = g.offsets.keys().cloned().collect();
                    for topic in topics {
                        if eg.keep_topics.contains(&topic) {
                            continue;
                        }
                        let Some(parts) = g.offsets.get_mut(&topic) else {
                            continue;
                        };
                        let expired: Vec<i32> = parts
                            .iter()
                            .filter(|(_, o)| {
                                let base = o.commit_timestamp_ms.max(floor);
                                // An overflowing deadline lies beyond any clock: keep.
                                base.checked_add(retention_ms).is_some_and(|d| d <= now_ms)
                            })
                            .map(|(p, _)| *p)
                            .collect();
                        offsets += expired.len();
                        for p in expired {
                            parts.remove(&p);
                        }
                        if parts.is_empty() {
                            g.offsets.remove(&topic);
                        }
                    }
                    if g.is_empty() {
                        self.groups.remove(&eg.group);
                        groups_removed.push(eg.group);
                    }
                }
                GroupOutput::OffsetsExpired {
                    offsets,
                    groups_removed,
                }
            }
            GroupCommand::ConsumerGroup(u) => GroupOutput::ConsumerGroupUpdated {
                members: super::consumer_groups::apply(&mut self.consumer, u),
            },
        }
    }

    /// Drop what refers to a deleted topic.
    pub fn on_topic_deleted(&mut self, name: &str) {
        let touched: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.offsets.contains_key(name))
            .map(|(k, _)| k.clone())
            .collect();
        for k in touched {
            if let Some(g) = self.groups.get_mut(&k) {
                g.offsets.remove(name);
                if g.is_empty() {
                    self.groups.remove(&k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Command, CommandOutput, MetaState};
    use uuid::Uuid;

    fn base() -> MetaState {
        let mut s = MetaState::new();
        s.apply(Command::RegisterBroker {
            broker_id: 1,
            host: "h".into(),
            port: 9092,
            rack: None,
        })
        .unwrap();
        for (i, (name, parts)) in [("t", 3), ("u", 1)].into_iter().enumerate() {
            s.apply(Command::CreateTopic {
                name: name.into(),
                topic_id: Uuid::from_u128(i as u128 + 1),
                partitions: parts,
                replication_factor: -1,
                configs: BTreeMap::new(),
                leader: 1,
                created_at_ms: 0,
            })
            .unwrap();
        }
        s
    }

    fn entry(topic: &str, partition: i32, offset: i64) -> OffsetEntry {
        OffsetEntry {
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: 3,
            metadata: format!("m{offset}"),
        }
    }

    fn commit(ts: i64, commits: &[(&str, Vec<OffsetEntry>)]) -> Command {
        Command::Group(GroupCommand::CommitOffsets {
            timestamp_ms: ts,
            commits: commits
                .iter()
                .map(|(g, o)| GroupCommit {
                    group: g.to_string(),
                    offsets: o.clone(),
                })
                .collect(),
        })
    }

    fn out(s: &mut MetaState, c: Command) -> GroupOutput {
        match s.apply(c).unwrap() {
            CommandOutput::Group(g) => g,
            other => panic!("unexpected output {other:?}"),
        }
    }

    fn refuse(s: &mut MetaState, c: Command) -> MetaError {
        let before = s.clone();
        let e = s.apply(c).unwrap_err();
        assert_eq!(*s, before, "a refused command changed the state");
        e
    }

    fn offset_of(s: &MetaState, g: &str, t: &str, p: i32) -> Option<i64> {
        s.groups.group(g)?.get(t, p).map(|o| o.offset)
    }

    #[test]
    fn commit_stores_offsets_in_order_with_metadata_and_time() {
        let mut s = base();
        let o = out(
            &mut s,
            commit(
                100,
                &[
                    (
                        "g1",
                        vec![entry("t", 0, 5), entry("t", 1, 7), entry("t", 0, 9)],
                    ),
                    ("g2", vec![entry("u", 0, 1)]),
                    ("g1", vec![entry("u", 0, 4)]),
                ],
            ),
        );
        assert_eq!(o, GroupOutput::OffsetsCommitted { count: 5 });
        assert_eq!(offset_of(&s, "g1", "t", 0), Some(9));
        assert_eq!(offset_of(&s, "g1", "t", 1), Some(7));
        assert_eq!(offset_of(&s, "g1", "u", 0), Some(4));
        assert_eq!(offset_of(&s, "g2", "u", 0), Some(1));
        let c = s.groups.group("g1").unwrap().get("t", 0).unwrap();
        assert_eq!(
            c,
            &CommittedOffset {
                offset: 9,
                leader_epoch: 3,
                metadata: "m9".into(),
                commit_timestamp_ms: 100
            }
        );
        // A later commit overwrites, and may move backwards (offset resets).
        out(&mut s, commit(200, &[("g1", vec![entry("t", 0, 2)])]));
        assert_eq!(offset_of(&s, "g1", "t", 0), Some(2));
        assert_eq!(s.groups.group("g1").unwrap().last_commit_ms(), Some(200));
        assert_eq!(s.groups.group("g1").unwrap().len(), 3);
    }

    #[test]
    fn commit_with_no_offsets_creates_no_group() {
        let mut s = base();
        let o = out(&mut s, commit(1, &[("g", vec![])]));
        assert_eq!(o, GroupOutput::OffsetsCommitted { count: 0 });
        assert!(s.groups.groups.is_empty());
    }

    #[test]
    fn commit_refusals() {
        let mut s = base();
        // Unknown topic or partition: the whole command is refused.
        let e = refuse(
            &mut s,
            commit(1, &[("g", vec![entry("t", 0, 1), entry("nope", 0, 1)])]),
        );
        assert!(matches!(e, MetaError::UnknownPartition { .. }), "{e}");
        assert_eq!(e.kafka_code(), 3);
        for p in [3, -1] {
            let e = refuse(&mut s, commit(1, &[("g", vec![entry("t", p, 1)])]));
            assert!(matches!(e, MetaError::UnknownPartition { partition, .. } if partition == p));
        }
        let e = refuse(&mut s, commit(1, &[("g", vec![entry("t", 0, -1)])]));
        assert!(
            matches!(e, MetaError::OffsetOutOfRange { offset: -1, .. }),
            "{e}"
        );
        let mut big = entry("t", 0, 1);
        big.metadata = "x".repeat(MAX_OFFSET_METADATA_LEN + 1);
        let e = refuse(&mut s, commit(1, &[("g", vec![big])]));
        assert!(matches!(e, MetaError::InvalidRequest { .. }), "{e}");
        let long = "g".repeat(MAX_GROUP_ID_LEN + 1);
        let e = refuse(
            &mut s,
            commit(1, &[(long.as_str(), vec![entry("t", 0, 1)])]),
        );
        assert!(e.to_string().contains("longer than"), "{e}");
        let many: Vec<OffsetEntry> = (0..=MAX_ENTRIES_PER_COMMAND)
            .map(|_| entry("t", 0, 1))
            .collect();
        let e = refuse(&mut s, commit(1, &[("g", many)]));
        assert!(e.to_string().contains("in one command"), "{e}");
        // Metadata exactly at the limit and the longest id are fine.
        let mut edge = entry("t", 0, 1);
        edge.metadata = "x".repeat(MAX_OFFSET_METADATA_LEN);
        let id = "g".repeat(MAX_GROUP_ID_LEN);
        out(&mut s, commit(1, &[(id.as_str(), vec![edge])]));
    }

    #[test]
    fn commit_refuses_past_group_and_offset_bounds() {
        let mut s = base();
        // Pretend the state is full: fill the map with cheap entries.
        for i in 0..MAX_GROUPS {
            let mut g = GroupOffsets::default();
            g.offsets.entry("t".into()).or_default().insert(
                0,
                CommittedOffset {
                    offset: 0,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp_ms: 0,
                },
            );
            s.groups.groups.insert(format!("g{i}"), g);
        }
        let e = refuse(&mut s, commit(1, &[("new", vec![entry("t", 0, 1)])]));
        assert!(e.to_string().contains("groups may hold"), "{e}");
        // Existing groups can still commit.
        out(&mut s, commit(1, &[("g7", vec![entry("t", 1, 1)])]));

        let mut s = base();
        let mut g = GroupOffsets::default();
        let parts = g.offsets.entry("t".into()).or_default();
        for p in 0..MAX_OFFSETS_PER_GROUP as i32 {
            parts.insert(
                p,
                CommittedOffset {
                    offset: 0,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp_ms: 0,
                },
            );
        }
        s.groups.groups.insert("full".into(), g);
        let e = refuse(&mut s, commit(1, &[("full", vec![entry("u", 0, 1)])]));
        assert!(e.to_string().contains("more than"), "{e}");
        // Overwriting an existing offset does not grow the group.
        out(&mut s, commit(1, &[("full", vec![entry("t", 2, 9)])]));
    }

    #[test]
    fn delete_groups_reports_unknown() {
        let mut s = base();
        out(
            &mut s,
            commit(
                1,
                &[("a", vec![entry("t", 0, 1)]), ("b", vec![entry("u", 0, 1)])],
            ),
        );
        let o = out(
            &mut s,
            Command::Group(GroupCommand::DeleteGroups {
                groups: vec!["a".into(), "zz".into()],
            }),
        );
        assert_eq!(
            o,
            GroupOutput::GroupsDeleted {
                deleted: vec!["a".into()],
                not_found: vec!["zz".into()]
            }
        );
        assert!(s.groups.group("a").is_none());
        assert!(s.groups.group("b").is_some());
        let e = refuse(
            &mut s,
            Command::Group(GroupCommand::DeleteGroups {
                groups: vec!["x".repeat(MAX_GROUP_ID_LEN + 1)],
            }),
        );
        assert!(matches!(e, MetaError::InvalidRequest { .. }));
        let e = refuse(
            &mut s,
            Command::Group(GroupCommand::DeleteGroups {
                groups: vec![String::new(); MAX_ENTRIES_PER_COMMAND + 1],
            }),
        );
        assert!(matches!(e, MetaError::InvalidRequest { .. }));
    }

    #[test]
    fn delete_offsets_removes_group_when_last_goes() {
        let mut s = base();
        out(
            &mut s,
            commit(
                1,
                &[(
                    "g",
                    vec![entry("t", 0, 1), entry("t", 1, 2), entry("u", 0, 3)],
                )],
            ),
        );
        let del = |parts: &[(&str, i32)]| {
            Command::Group(GroupCommand::DeleteOffsets {
                group: "g".into(),
                partitions: parts.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
            })
        };
        assert_eq!(
            out(&mut s, del(&[("t", 0), ("t", 2), ("nope", 0)])),
            GroupOutput::OffsetsDeleted { removed: 1 }
        );
        assert_eq!(offset_of(&s, "g", "t", 1), Some(2));
        assert_eq!(
            out(&mut s, del(&[("t", 1)])),
            GroupOutput::OffsetsDeleted { removed: 1 }
        );
        assert!(!s.groups.group("g").unwrap().offsets.contains_key("t"));
        assert_eq!(
            out(&mut s, del(&[("u", 0)])),
            GroupOutput::OffsetsDeleted { removed: 1 }
        );
        assert!(s.groups.group("g").is_none());
        // Unknown group: nothing to do, still applied.
        assert_eq!(
            out(&mut s, del(&[("u", 0)])),
            GroupOutput::OffsetsDeleted { removed: 0 }
        );
        let e = refuse(
            &mut s,
            Command::Group(GroupCommand::DeleteOffsets {
                group: "x".repeat(MAX_GROUP_ID_LEN + 1),
                partitions: vec![],
            }),
        );
        assert!(matches!(e, MetaError::InvalidRequest { .. }));
        let e = refuse(
            &mut s,
            Command::Group(GroupCommand::DeleteOffsets {
                group: "g".into(),
                partitions: vec![("t".into(), 0); MAX_ENTRIES_PER_COMMAND + 1],
            }),
        );
        assert!(matches!(e, MetaError::InvalidRequest { .. }));
    }

    fn expire(now: i64, retention: i64, groups: Vec<ExpireGroup>) -> Command {
        Command::Group(GroupCommand::ExpireOffsets {
            now_ms: now,
            retention_ms: retention,
            groups,
        })
    }

    fn eg(group: &str, empty_since: Option<i64>, keep: &[&str]) -> ExpireGroup {
        ExpireGroup {
            group: group.into(),
            empty_since_ms: empty_since,
            keep_topics: keep.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn expire_offsets_by_commit_time_and_empty_time() {
        let mut s = base();
        out(
            &mut s,
            commit(
                100,
                &[("a", vec![entry("t", 0, 1)]), ("b", vec![entry("t", 0, 1)])],
            ),
        );
        out(
            &mut s,
            commit(
                500,
                &[("a", vec![entry("t", 1, 1)]), ("c", vec![entry("u", 0, 1)])],
            ),
        );
        // Retention 1000 at t=1100: a/t-0 (committed at 100) expires, a/t-1 stays.
        // b is not listed: untouched. c became empty at 1000: protected.
        let o = out(
            &mut s,
            expire(
                1100,
                1000,
                vec![
                    eg("a", None, &[]),
                    eg("c", Some(1000), &[]),
                    eg("zz", None, &[]),
                ],
            ),
        );
        assert_eq!(
            o,
            GroupOutput::OffsetsExpired {
                offsets: 1,
                groups_removed: vec![]
            }
        );
        assert_eq!(offset_of(&s, "a", "t", 0), None);
        assert_eq!(offset_of(&s, "a", "t", 1), Some(1));
        assert_eq!(offset_of(&s, "b", "t", 0), Some(1));
        // Exactly at the boundary the offset expires (Kafka: base + retention <= now).
        let o = out(
            &mut s,
            expire(
                1500,
                1000,
                vec![eg("a", None, &[]), eg("c", Some(1000), &[])],
            ),
        );
        assert_eq!(
            o,
            GroupOutput::OffsetsExpired {
                offsets: 1,
                groups_removed: vec!["a".into()]
            }
        );
        assert!(s.groups.group("a").is_none());
        assert!(s.groups.group("c").is_some());
        // Kept topics never expire in the pass.
        let o = out(
            &mut s,
            expire(
                10_000,
                1000,
                vec![eg("b", None, &["t"]), eg("c", Some(1000), &[])],
            ),
        );
        assert_eq!(
            o,
            GroupOutput::OffsetsExpired {
                offsets: 1,
                groups_removed: vec!["c".into()]
            }
        );
        assert_eq!(offset_of(&s, "b", "t", 0), Some(1));
    }

    #[test]
    fn expire_refusals() {
        let mut s = base();
        for r in [0, -5] {
            let e = refuse(&mut s, expire(1, r, vec![]));
            assert!(matches!(e, MetaError::InvalidRequest { .. }), "{e}");
        }
        let e = refuse(
            &mut s,
            expire(1, 1, vec![eg(&"x".repeat(MAX_GROUP_ID_LEN + 1), None, &[])]),
        );
        assert!(matches!(e, MetaError::InvalidRequest { .. }), "{e}");
        let many = vec![eg("g", None, &[]); MAX_ENTRIES_PER_COMMAND + 1];
        let e = refuse(&mut s, expire(1, 1, many));
        assert!(matches!(e, MetaError::InvalidRequest { .. }), "{e}");
        // Huge timestamps do not overflow.
        out(
            &mut s,
            commit(i64::MAX - 1, &[("g", vec![entry("t", 0, 1)])]),
        );
        out(&mut s, expire(i64::MAX, i64::MAX, vec![eg("g", None, &[])]));
        assert!(s.groups.group("g").is_some());
    }

    #[test]
    fn topic_deletion_drops_offsets_and_empty_groups() {
        let mut s = base();
        out(
            &mut s,
            commit(
                1,
                &[
                    ("a", vec![entry("t", 0, 1), entry("u", 0, 1)]),
                    ("b", vec![entry("t", 2, 1)]),
                ],
            ),
        );
        s.apply(Command::DeleteTopic {
            name: "t".into(),
            topic_id: None,
        })
        .unwrap();
        assert_eq!(offset_of(&s, "a", "u", 0), Some(1));
        assert!(s.groups.group("a").unwrap().get("t", 0).is_none());
        assert!(s.groups.group("b").is_none());
        // Recreating the topic does not bring offsets back.
        s.apply(Command::CreateTopic {
            name: "t".into(),
            topic_id: Uuid::from_u128(9),
            partitions: 3,
            replication_factor: -1,
            configs: BTreeMap::new(),
            leader: 1,
            created_at_ms: 0,
        })
        .unwrap();
        assert!(s.groups.group("b").is_none());
    }

    #[test]
    fn group_commands_round_trip_json_and_replay_deterministically() {
        let cmds = vec![
            commit(5, &[("g", vec![entry("t", 0, 1), entry("u", 0, 2)])]),
            Command::Group(GroupCommand::DeleteOffsets {
                group: "g".into(),
                partitions: vec![("u".into(), 0)],
            }),
            expire(9, 100, vec![eg("g", Some(3), &["u"])]),
            Command::Group(GroupCommand::DeleteGroups {
                groups: vec!["g".into()],
            }),
        ];
        for c in &cmds {
            let json = serde_json::to_vec(c).unwrap();
            assert_eq!(&serde_json::from_slice::<Command>(&json).unwrap(), c);
        }
        let run = || {
            let mut s = base();
            for c in cmds.iter().take(3) {
                s.apply(c.clone()).unwrap();
            }
            s
        };
        let a = run();
        assert_eq!(a, run());
        // The state (with integer partition keys) survives a snapshot round trip.
        let json = serde_json::to_vec(&a).unwrap();
        assert_eq!(serde_json::from_slice::<MetaState>(&json).unwrap(), a);
    }
}
