//! The metadata state and its deterministic `apply`.
//!
//! `apply` is a pure function of (state, command): no clock, no randomness,
//! no I/O, and iteration only over `BTreeMap`s, so replaying the same command
//! log (locally today, through raft later) always yields the same state.
//! Every command is checked completely before anything is mutated, so a
//! refused command leaves the state untouched.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::command::{Command, CommandOutput};
use super::error::MetaError;
use super::topic_config::{self, TopicConfig};

/// Most partitions a topic may have (keeps one command's work bounded).
pub const MAX_PARTITIONS: i32 = 10_000;
/// Most producer ids one `AllocateProducerIds` may take.
pub const MAX_PRODUCER_ID_BLOCK: i64 = 1_000_000;
/// First producer id handed out by a fresh state.
pub const FIRST_PRODUCER_ID: i64 = 1000;
/// Highest broker id a node may be given by hand (Kafka's
/// `reserved.broker.max.id`); `--node-id auto` ids come after it.
pub const RESERVED_BROKER_MAX_ID: i32 = 1000;
/// Epoch history kept per partition; older epochs answer `None` in
/// [`PartitionMeta::end_offset_for_epoch`], which clients treat as "truncate
/// to what you have", so the cap only bounds memory.
pub const MAX_EPOCH_ENTRIES: usize = 64;
/// Longest topic name Kafka allows.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// The whole metadata state: plain data, cheap to serialize as a snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MetaState {
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics by name.
    pub topics: super::Map<String, Topic>,
    /// Topic id -> name; always the exact inverse of `topics`.
    pub topic_ids: super::Map<Uuid, String>,
    /// Next producer id to hand out.
    pub next_producer_id: i64,
    /// Number of commands applied successfully so far (the log index).
    pub applied_index: u64,
    /// Consumer groups' durable state (committed offsets).
    #[serde(default)]
    pub groups: super::groups::GroupsState,
    /// Objects in the bucket and their reference counts.
    #[serde(default)]
    pub tier: super::tier::TierState,
    /// Latest wall-clock time carried by any applied command; stamps events
    /// of commands that carry no time of their own (deterministic).
    #[serde(default)]
    pub clock_ms: i64,
    /// The cluster id (Kafka's cluster.id), set once by the first leader.
    #[serde(default)]
    pub cluster_id: String,
    /// Controller node ids that left the quorum (never reused).
    #[serde(default)]
    pub retired_controllers: BTreeSet<u64>,
    /// Transaction coordinator state.
    #[serde(default)]
    pub txns: super::txn::TxnsState,
    /// Last broker id handed out by `AllocateBrokerId` (0: none yet).
    #[serde(default)]
    pub last_auto_broker_id: i32,
    /// Epoch floor of a registration of an id not registered now: above
    /// every epoch an unregistered broker had.
    #[serde(default)]
    pub broker_epoch_floor: i64,
    /// Client quotas (user, client-id and their defaults).
    #[serde(default)]
    pub quotas: crate::quotas::QuotasState,
    /// SCRAM credentials and brokers' advertised listeners.
    #[serde(default)]
    pub security: crate::auth::state::SecurityState,
}

/// A registered broker.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BrokerInfo {
    /// Broker id.
    pub broker_id: i32,
    /// Incarnation: 1 on first registration, +1 per re-registration, so
    /// stale requests from a previous process can be fenced.
    pub epoch: i64,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack / zone.
    pub rack: Option<String>,
    /// Fenced: its lease expired or it shut down; it leads nothing until it
    /// registers again (with a new epoch).
    #[serde(default)]
    pub fenced: bool,
}

/// A topic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Id, unique for the life of the cluster.
    pub topic_id: Uuid,
    /// Only the explicitly set overrides, as raw Kafka strings.
    pub configs: BTreeMap<String, String>,
    /// Partitions; index = partition id.
    pub partitions: Vec<std::sync::Arc<PartitionMeta>>,
    /// Creation time as supplied by the creator.
    pub created_at_ms: i64,
}

/// Metadata of one partition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PartitionMeta {
    /// Leader broker id, -1 for none.
    pub leader: i32,
    /// Current leader epoch.
    pub leader_epoch: i32,
    /// First offset still readable.
    pub log_start_offset: i64,
    /// (leader epoch, first offset written in it), ascending in both.
    pub epoch_start_offsets: Vec<(i32, i64)>,
    /// Offsets below this are durable in object storage.
    #[serde(default)]
    pub committed_end: i64,
    /// Where the committed offsets live, ascending and contiguous.
    #[serde(default)]
    pub extents: Vec<super::tier::Extent>,
    /// Transactions with committed data and no committed marker yet:
    /// producer id -> first offset. The last stable offset is the smallest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ongoing_txns: BTreeMap<i64, i64>,
    /// Aborted transactions whose data is still readable (Fetch
    /// `aborted_transactions`), ascending by last offset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aborted_txns: Vec<super::tier::AbortedTxn>,
}

impl Default for MetaState {
    fn default() -> Self {
        MetaState {
            brokers: BTreeMap::new(),
            topics: super::Map::new(),
            topic_ids: super::Map::new(),
            next_producer_id: FIRST_PRODUCER_ID,
            applied_index: 0,
            groups: Default::default(),
            tier: Default::default(),
            clock_ms: 0,
            retired_controllers: BTreeSet::new(),
            cluster_id: String::new(),
            last_auto_broker_id: 0,
            broker_epoch_floor: 0,
            txns: Default::default(),
            quotas: Default::default(),
            security: Default::default(),
        }
    }
}

/// Checks a topic name against Kafka's rules: 1..=249 characters of
/// `[a-zA-Z0-9._-]`, and not `.` or `..` (they would be path components).
pub fn validate_topic_name(name: &str) -> Result<(), MetaError> {
    let bad = |reason: &str| MetaError::InvalidTopicName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("name is empty"));
    }
    if name == "." || name == ".." {
        return Err(bad("name cannot be '.' or '..'"));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(bad("name is longer than 249 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(bad(
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

/// Kafka refuses topics whose names differ only in '.' vs '_' because metric
/// names replace '.' with '_' and would merge them.
fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

impl PartitionMeta {
    fn new(leader: i32) -> PartitionMeta {
        PartitionMeta {
            leader,
            leader_epoch: 0,
            log_start_offset: 0,
            epoch_start_offsets: vec![(0, 0)],
            committed_end: 0,
            extents: Vec::new(),
            ongoing_txns: BTreeMap::new(),
            aborted_txns: Vec::new(),
        }
    }

    /// Last stable offset: consumers reading committed data stop here.
    pub fn last_stable_offset(&self) -> i64 {
        self.ongoing_txns
            .values()
            .copied()
            .min()
            .unwrap_or(self.committed_end)
            .min(self.committed_end)
    }

    /// Were the offsets below `upto` committed while `epoch` led (so the
    /// writer at `epoch` may acknowledge them)? The epoch must still be in
    /// the history and must have ended, if it has, at or after `upto`;
    /// otherwise a later epoch wrote those offsets.
    pub fn committed_in_epoch(&self, epoch: i32, upto: i64) -> bool {
        self.committed_end >= upto
            && self
                .end_offset_for_epoch(epoch, self.committed_end)
                .is_some_and(|(e, end)| e == epoch && end >= upto)
    }

    /// Aborted transactions overlapping `[from, to)`.
    pub fn aborted_in(&self, from: i64, to: i64) -> impl Iterator<Item = &super::tier::AbortedTxn> {
        self.aborted_txns
            .iter()
            .filter(move |a| a.last_offset >= from && a.first_offset < to)
    }

    /// Makes `broker_id` the leader with the next epoch starting at `leo`;
    /// returns the new epoch.
    fn take_leadership(&mut self, broker_id: i32, leo: i64) -> i32 {
        self.leader = broker_id;
        self.leader_epoch += 1;
        let hist = &mut self.epoch_start_offsets;
        // Like Kafka's LeaderEpochFileCache: drop epochs that started beyond
        // the new leader's log end, so start offsets stay ascending; equal
        // starts (epochs with no records) are kept and answer with an empty
        // range.
        while hist.last().is_some_and(|&(_, start)| start > leo) {
            hist.pop();
        }
        hist.push((self.leader_epoch, leo));
        if hist.len() > MAX_EPOCH_ENTRIES {
            let excess = hist.len() - MAX_EPOCH_ENTRIES;
            hist.drain(..excess);
        }
        self.leader_epoch
    }

    /// Kafka's OffsetForLeaderEpoch answer for this partition.
    ///
    /// Returns the largest known epoch <= `requested_epoch` and the offset at
    /// which it ended: the start offset of the next higher known epoch, or
    /// `log_end_offset` when no higher epoch exists (requested >= current).
    /// `None` when `requested_epoch` is below every known epoch.
    pub fn end_offset_for_epoch(
        &self,
        requested_epoch: i32,
        log_end_offset: i64,
    ) -> Option<(i32, i64)> {
        // Entries are ascending by epoch, so the split point is a binary search.
        let higher = self
            .epoch_start_offsets
            .partition_point(|&(e, _)| e <= requested_epoch);
        let (floor_epoch, _) = *self.epoch_start_offsets.get(higher.checked_sub(1)?)?;
        let end = match self.epoch_start_offsets.get(higher) {
            Some(&(_, start)) => start,
            None => log_end_offset,
        };
        Some((floor_epoch, end))
    }
}

impl Topic {
    /// Typed effective configs: overrides > `broker_defaults` (keyed by
    /// topic-level names) > Kafka defaults.
    pub fn effective_config(&self, broker_defaults: &BTreeMap<String, String>) -> TopicConfig {
        TopicConfig::resolve(&self.configs, broker_defaults)
    }
}

fn partition_index(p: i32) -> Option<usize> {
    usize::try_from(p).ok()
}

impl MetaState {
    /// An empty state (producer ids start at [`FIRST_PRODUCER_ID`]).
    pub fn new() -> MetaState {
        MetaState::default()
    }

    /// Topic by name.
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.get(name)
    }

    /// Topic by id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Topic> {
        self.topic_ids
            .get(id)
            .and_then(|name| self.topics.get(name))
    }

    /// One partition of a topic.
    pub fn partition(&self, name: &str, p: i32) -> Option<&PartitionMeta> {
        self.topics
            .get(name)?
            .partitions
            .get(partition_index(p)?)
            .map(|p| &**p)
    }

    /// Applies `cmd`: on `Ok` the state changed and `applied_index` grew by
    /// one; on `Err` the state is exactly as before.
    pub fn apply(&mut self, cmd: Command) -> Result<CommandOutput, MetaError> {
        self.check(&cmd)?;
        Ok(self.apply_checked(cmd))
    }

    /// Applies the command at replicated-log position `index`: accepted or
    /// refused, `applied_index` becomes `index` (a refusal is an output of the
    /// log entry, not a missing entry). The state is unchanged on refusal.
    pub fn apply_entry(&mut self, index: u64, cmd: Command) -> Result<CommandOutput, MetaError> {
        let out = self.apply(cmd);
        self.applied_index = index;
        out
    }

    /// Would `apply(cmd)` succeed? Lets the store refuse a command before it
    /// writes it to the log, and the log then holds only applicable commands.
    pub fn check(&self, cmd: &Command) -> Result<(), MetaError> {
        match cmd {
            Command::RegisterBroker {
                broker_id,
                host,
                port,
                rack: _,
            } => {
                if *broker_id < 0 {
                    return Err(invalid(format!("broker id must be >= 0, got {broker_id}")));
                }
                if host.is_empty() {
                    return Err(invalid(format!("broker {broker_id} has an empty host")));
                }
                if !(1..=65535).contains(port) {
                    return Err(invalid(format!(
                        "broker {broker_id} port must be in 1..=65535, got {port}"
                    )));
                }
                Ok(())
            }
            Command::CreateTopic {
                name,
                topic_id,
                partitions,
                replication_factor,
                configs,
                leader,
                created_at_ms: _,
            } => {
                validate_topic_name(name)?;
                if self.topics.contains_key(name) {
                    return Err(MetaError::TopicAlreadyExists { name: name.clone() });
                }
                let key = collision_key(name);
                if let Some(other) = self.topics.keys().find(|t| collision_key(t) == key) {
                    return Err(MetaError::InvalidTopicName {
                        name: name.clone(),
                        reason: format!("collides with existing topic {other} ('.' and '_' are interchangeable in metric names)"),
                    });
                }
                if let Some(existing) = self.topic_ids.get(topic_id) {
                    return Err(MetaError::TopicIdInUse {
                        topic_id: *topic_id,
                        existing: existing.clone(),
                    });
                }
                if *topic_id == Uuid::nil() {
                    return Err(invalid("topic id must not be the nil UUID".to_string()));
                }
                if *partitions < 1 || *partitions > MAX_PARTITIONS {
                    return Err(MetaError::InvalidPartitions {
                        name: name.clone(),
                        reason: format!(
                            "partition count must be in 1..={MAX_PARTITIONS}, asked for {partitions}"
                        ),
                    });
                }
                if *replication_factor != -1 && *replication_factor != 1 {
                    return Err(MetaError::InvalidReplicationFactor {
                        replication_factor: *replication_factor,
                    });
                }
                for (k, v) in configs {
                    topic_config::validate(k, v)?;
                }
                self.check_broker(*leader)
            }
            Command::DeleteTopic { name, topic_id } => {
                self.check_topic_id(name, topic_id).map(|_| ())
            }
            Command::CreatePartitions {
                name,
                new_total,
                leader,
                topic_id,
            } => {
                let topic = self.check_topic_id(name, topic_id)?;
                let current = topic.partitions.len();
                if usize::try_from(*new_total).map_or(true, |n| n <= current) {
                    return Err(MetaError::InvalidPartitions {
                        name: name.clone(),
                        reason: format!("topic has {current} partitions, asked for {new_total}"),
                    });
                }
                if *new_total > MAX_PARTITIONS {
                    return Err(MetaError::InvalidPartitions {
                        name: name.clone(),
                        reason: format!(
                            "partition count must be at most {MAX_PARTITIONS}, asked for {new_total}"
                        ),
                    });
                }
                self.check_broker(*leader)
            }
            Command::AlterTopicConfigs {
                name,
                set,
                delete,
                replace_all: _,
                topic_id,
            } => {
                self.check_topic_id(name, topic_id)?;
                for (k, v) in set {
                    topic_config::validate(k, v)?;
                }
                for k in delete {
                    if topic_config::lookup(k).is_none() {
                        return Err(MetaError::InvalidConfig {
                            key: k.clone(),
                            value: String::new(),
                            reason: "unknown topic config".to_string(),
                        });
                    }
                }
                Ok(())
            }
            Command::BecomeLeader {
                broker_id,
                partitions,
            } => {
                self.check_broker(*broker_id)?;
                let mut seen = BTreeSet::new();
                for (name, p, leo) in partitions {
                    let part = self.check_partition(name, *p)?;
                    if !seen.insert((name.as_str(), *p)) {
                        return Err(invalid(format!(
                            "partition {name}-{p} is listed more than once"
                        )));
                    }
                    if *leo < 0 {
                        return Err(invalid(format!(
                            "negative log end offset {leo} for {name}-{p}"
                        )));
                    }
                    if part.leader_epoch == i32::MAX {
                        return Err(invalid(format!("leader epoch of {name}-{p} is exhausted")));
                    }
                }
                Ok(())
            }
            Command::AdvanceLogStart {
                name,
                partition,
                offset,
                topic_id,
                leader_epoch,
            } => {
                self.check_topic_id(name, topic_id)?;
                let part = self.check_partition(name, *partition)?;
                if *offset > part.committed_end {
                    return Err(MetaError::OffsetOutOfRange {
                        name: name.clone(),
                        partition: *partition,
                        offset: *offset,
                    });
                }
                if let Some(epoch) = leader_epoch {
                    if *epoch != part.leader_epoch {
                        return Err(MetaError::FencedLeaderEpoch {
                            name: name.clone(),
                            partition: *partition,
                            epoch: *epoch,
                            current: part.leader_epoch,
                        });
                    }
                }
                if *offset < 0 {
                    return Err(MetaError::OffsetOutOfRange {
                        name: name.clone(),
                        partition: *partition,
                        offset: *offset,
                    });
                }
                Ok(())
            }
            Command::AllocateProducerIds { count } => {
                if *count < 1 || *count > MAX_PRODUCER_ID_BLOCK {
                    return Err(invalid(format!(
                        "producer id block must be in 1..={MAX_PRODUCER_ID_BLOCK}, asked for {count}"
                    )));
                }
                if self.next_producer_id.checked_add(*count).is_none() {
                    return Err(invalid("producer ids are exhausted".to_string()));
                }
                Ok(())
            }
            Command::Group(g) => self.groups.check(g, &self.topics),
            Command::Txn(t) => self.txns.check(t, self),
            Command::Quota(q) => self.quotas.check(q).map_err(Into::into),
            Command::Security(c) => self.security.check(c),
            Command::CommitWal {
                broker_id,
                broker_epoch,
                key,
                extents,
                ..
            } => super::tier::check_commit_wal(self, *broker_id, *broker_epoch, key, extents),
            Command::CommitSegment { segment, .. } => {
                super::tier::check_commit_segment(self, segment)
            }
            Command::ForgetObjects { .. } => Ok(()),
            Command::CondemnObjects { keys, .. } => {
                if keys.len() > 100_000 {
                    return Err(invalid(format!("{} keys in one command", keys.len())));
                }
                Ok(())
            }
            Command::Lead {
                broker_id,
                broker_epoch,
                partitions,
            } => {
                self.check_broker_epoch(*broker_id, *broker_epoch)?;
                let mut seen = BTreeSet::new();
                for lp in partitions {
                    let t = self
                        .topic_by_id(&lp.topic_id)
                        .ok_or(MetaError::UnknownTopicId {
                            topic_id: lp.topic_id,
                        })?;
                    let part = t
                        .partitions
                        .get(partition_index(lp.partition).unwrap_or(usize::MAX))
                        .ok_or_else(|| MetaError::UnknownPartition {
                            name: t.name.clone(),
                            partition: lp.partition,
                        })?;
                    if !seen.insert((lp.topic_id, lp.partition)) {
                        return Err(invalid(format!(
                            "partition {}-{} is listed more than once",
                            t.name, lp.partition
                        )));
                    }
                    if part.leader_epoch != lp.expected_epoch {
                        return Err(MetaError::FencedLeaderEpoch {
                            name: t.name.clone(),
                            partition: lp.partition,
                            epoch: lp.expected_epoch,
                            current: part.leader_epoch,
                        });
                    }
                    if lp.log_end_offset < 0 {
                        return Err(invalid(format!(
                            "negative log end offset {} for {}-{}",
                            lp.log_end_offset, t.name, lp.partition
                        )));
                    }
                    if part.leader_epoch == i32::MAX {
                        return Err(invalid(format!(
                            "leader epoch of {}-{} is exhausted",
                            t.name, lp.partition
                        )));
                    }
                }
                Ok(())
            }
            Command::ImportState { state } => {
                if !self.topics.is_empty()
                    || !self.groups.groups.is_empty()
                    || !self.tier.objects.is_empty()
                {
                    return Err(invalid(
                        "a state can be imported only into an empty cluster".to_string(),
                    ));
                }
                state.check_invariants().map_err(invalid)
            }
            Command::RetireController { .. } => Ok(()),
            Command::Batch(cmds) => {
                if cmds.len() > 10_000 || cmds.iter().any(|c| matches!(c, Command::Batch(_))) {
                    return Err(invalid(
                        "a batch holds at most 10000 commands and no batch".to_string(),
                    ));
                }
                Ok(())
            }
            Command::FenceBroker {
                broker_id,
                broker_epoch,
            } => {
                self.check_broker_epoch(*broker_id, *broker_epoch)?;
                Ok(())
            }
            Command::AllocateBrokerId => {
                if self.last_auto_broker_id == i32::MAX {
                    return Err(invalid("no broker ids left to hand out".to_string()));
                }
                Ok(())
            }
            Command::UnregisterBroker {
                broker_id,
                broker_epoch,
            } => {
                let b = self.check_broker_epoch(*broker_id, *broker_epoch)?;
                if !b.fenced {
                    return Err(invalid(format!(
                        "broker {broker_id} is live; only a fenced broker is unregistered"
                    )));
                }
                if self
                    .topics
                    .values()
                    .any(|t| t.partitions.iter().any(|p| p.leader == *broker_id))
                {
                    return Err(invalid(format!(
                        "broker {broker_id} still leads partitions"
                    )));
                }
                Ok(())
            }
            Command::MoveLeaders { moves } => {
                if moves.len() > MAX_PARTITIONS as usize * 10 {
                    return Err(invalid(format!("{} moves in one command", moves.len())));
                }
                let mut seen = BTreeSet::new();
                for m in moves {
                    if self.brokers.get(&m.leader).is_none_or(|b| b.fenced) {
                        return Err(MetaError::BrokerNotAvailable {
                            broker_id: m.leader,
                        });
                    }
                    let t = self
                        .topic_by_id(&m.topic_id)
                        .ok_or(MetaError::UnknownTopicId {
                            topic_id: m.topic_id,
                        })?;
                    let part = t
                        .partitions
                        .get(partition_index(m.partition).unwrap_or(usize::MAX))
                        .ok_or_else(|| MetaError::UnknownPartition {
                            name: t.name.clone(),
                            partition: m.partition,
                        })?;
                    if part.leader_epoch != m.expected_epoch {
                        return Err(MetaError::FencedLeaderEpoch {
                            name: t.name.clone(),
                            partition: m.partition,
                            epoch: m.expected_epoch,
                            current: part.leader_epoch,
                        });
                    }
                    if part.leader_epoch == i32::MAX || !seen.insert((m.topic_id, m.partition)) {
                        return Err(invalid(format!(
                            "partition {}-{} cannot move (listed twice or epochs exhausted)",
                            t.name, m.partition
                        )));
                    }
                }
                Ok(())
            }
            Command::InitCluster { cluster_id } => {
                if !self.cluster_id.is_empty() {
                    return Err(invalid(format!(
                        "the cluster already has id {}",
                        self.cluster_id
                    )));
                }
                if cluster_id.is_empty() || cluster_id.len() > 64 {
                    return Err(invalid("cluster id must be 1..=64 characters".to_string()));
                }
                Ok(())
            }
            Command::ReplaceSegments {
                topic_id,
                partition,
                leader_epoch,
                replaced,
                segments,
                ..
            } => super::tier::check_replace_segments(
                self,
                *topic_id,
                *partition,
                *leader_epoch,
                replaced,
                segments,
            ),
        }
    }

    fn check_broker(&self, broker_id: i32) -> Result<(), MetaError> {
        if self.brokers.contains_key(&broker_id) {
            Ok(())
        } else {
            Err(MetaError::BrokerNotAvailable { broker_id })
        }
    }

    /// The broker, if `epoch` is its current incarnation.
    pub(super) fn check_broker_epoch(
        &self,
        broker_id: i32,
        epoch: i64,
    ) -> Result<&BrokerInfo, MetaError> {
        let b = self
            .brokers
            .get(&broker_id)
            .ok_or(MetaError::BrokerNotAvailable { broker_id })?;
        if b.epoch != epoch {
            return Err(MetaError::StaleBrokerEpoch {
                broker_id,
                epoch,
                current: b.epoch,
            });
        }
        Ok(b)
    }

    /// The topic named `name`, and when the command carries the id it was
    /// computed against, only if that is still the topic's id.
    fn check_topic_id(&self, name: &str, topic_id: &Option<Uuid>) -> Result<&Topic, MetaError> {
        let t = self.check_topic(name)?;
        match topic_id {
            Some(id) if *id != t.topic_id => Err(MetaError::UnknownTopicId { topic_id: *id }),
            _ => Ok(t),
        }
    }

    fn check_topic(&self, name: &str) -> Result<&Topic, MetaError> {
        self.topics
            .get(name)
            .ok_or_else(|| MetaError::UnknownTopic {
                name: name.to_string(),
            })
    }

    fn check_partition(&self, name: &str, p: i32) -> Result<&PartitionMeta, MetaError> {
        self.check_topic(name)?
            .partitions
            .get(partition_index(p).unwrap_or(usize::MAX))
            .map(|p| &**p)
            .ok_or_else(|| MetaError::UnknownPartition {
                name: name.to_string(),
                partition: p,
            })
    }

    /// Applies a command that [`MetaState::check`] accepted. Infallible by
    /// construction: every condition that could refuse it was checked, so a
    /// missing entry here can only be skipped, never half-applied.
    pub(super) fn apply_checked(&mut self, cmd: Command) -> CommandOutput {
        self.applied_index += 1;
        match cmd {
            Command::RegisterBroker {
                broker_id,
                host,
                port,
                rack,
            } => {
                let epoch = self
                    .brokers
                    .get(&broker_id)
                    .map_or(self.broker_epoch_floor.max(1), |b| b.epoch + 1);
                self.brokers.insert(
                    broker_id,
                    BrokerInfo {
                        broker_id,
                        epoch,
                        host,
                        port,
                        rack,
                        fenced: false,
                    },
                );
                CommandOutput::BrokerRegistered { epoch }
            }
            Command::CreateTopic {
                name,
                topic_id,
                partitions,
                replication_factor: _,
                configs,
                leader,
                created_at_ms,
            } => {
                let count = partition_index(partitions).unwrap_or(0);
                self.topic_ids.insert(topic_id, name.clone());
                self.topics.insert(
                    name.clone(),
                    Topic {
                        name,
                        topic_id,
                        configs,
                        partitions: (0..count)
                            .map(|_| std::sync::Arc::new(PartitionMeta::new(leader)))
                            .collect(),
                        created_at_ms,
                    },
                );
                CommandOutput::TopicCreated { topic_id }
            }
            Command::DeleteTopic { name, .. } => {
                let topic_id = match self.topics.remove(&name) {
                    Some(t) => {
                        let extents = t
                            .partitions
                            .into_iter()
                            .flat_map(|p| p.extents.clone())
                            .collect();
                        let now = self.clock_ms;
                        super::tier::release_topic(self, extents, now);
                        t.topic_id
                    }
                    None => Uuid::nil(),
                };
                self.topic_ids.remove(&topic_id);
                self.groups.on_topic_deleted(&name);
                CommandOutput::TopicDeleted { topic_id }
            }
            Command::CreatePartitions {
                name,
                new_total,
                leader,
                ..
            } => {
                if let Some(t) = self.topics.get_mut(&name) {
                    let n = partition_index(new_total).unwrap_or(0);
                    while t.partitions.len() < n {
                        t.partitions
                            .push(std::sync::Arc::new(PartitionMeta::new(leader)));
                    }
                }
                CommandOutput::PartitionsCreated { total: new_total }
            }
            Command::AlterTopicConfigs {
                name,
                set,
                delete,
                replace_all,
                ..
            } => {
                if let Some(t) = self.topics.get_mut(&name) {
                    if replace_all {
                        t.configs = set;
                    } else {
                        t.configs.extend(set);
                        for k in &delete {
                            t.configs.remove(k);
                        }
                    }
                }
                CommandOutput::ConfigsAltered
            }
            Command::BecomeLeader {
                broker_id,
                partitions,
            } => {
                let mut epochs = Vec::with_capacity(partitions.len());
                for (name, p, leo) in partitions {
                    let Some(part) = self
                        .topics
                        .get_mut(&name)
                        .and_then(|t| t.partitions.get_mut(partition_index(p)?))
                    else {
                        continue;
                    };
                    let epoch = std::sync::Arc::make_mut(part).take_leadership(broker_id, leo);
                    epochs.push((name, p, epoch));
                }
                CommandOutput::LeadersChanged { epochs }
            }
            Command::Lead {
                broker_id,
                partitions,
                ..
            } => {
                let mut epochs = Vec::with_capacity(partitions.len());
                for lp in partitions {
                    let Some(name) = self.topic_ids.get(&lp.topic_id).cloned() else {
                        continue;
                    };
                    let Some(part) = self
                        .topics
                        .get_mut(&name)
                        .and_then(|t| t.partitions.get_mut(partition_index(lp.partition)?))
                    else {
                        continue;
                    };
                    let epoch = std::sync::Arc::make_mut(part)
                        .take_leadership(broker_id, lp.log_end_offset);
                    epochs.push((name, lp.partition, epoch));
                }
                CommandOutput::LeadersChanged { epochs }
            }
            Command::ImportState { state } => {
                let index = self.applied_index;
                let cluster_id = std::mem::take(&mut self.cluster_id);
                let retired = std::mem::take(&mut self.retired_controllers);
                *self = *state;
                self.applied_index = index;
                if self.cluster_id.is_empty() {
                    self.cluster_id = cluster_id;
                }
                self.retired_controllers.extend(retired);
                CommandOutput::StateImported
            }
            Command::InitCluster { cluster_id } => {
                self.cluster_id = cluster_id;
                CommandOutput::ClusterInitialized
            }
            Command::FenceBroker { broker_id, .. } => {
                if let Some(b) = self.brokers.get_mut(&broker_id) {
                    b.fenced = true;
                }
                CommandOutput::BrokerFenced
            }
            Command::AllocateBrokerId => {
                let used = self.brokers.keys().next_back().copied().unwrap_or(0);
                let id = self
                    .last_auto_broker_id
                    .max(used)
                    .max(RESERVED_BROKER_MAX_ID)
                    .saturating_add(1);
                self.last_auto_broker_id = id;
                CommandOutput::BrokerIdAllocated { broker_id: id }
            }
            Command::UnregisterBroker { broker_id, .. } => {
                if let Some(b) = self.brokers.remove(&broker_id) {
                    self.broker_epoch_floor = self.broker_epoch_floor.max(b.epoch + 1);
                }
                CommandOutput::BrokerUnregistered
            }
            Command::MoveLeaders { moves } => {
                let mut epochs = Vec::with_capacity(moves.len());
                for m in moves {
                    let Some(name) = self.topic_ids.get(&m.topic_id).cloned() else {
                        continue;
                    };
                    let Some(part) = self
                        .topics
                        .get_mut(&name)
                        .and_then(|t| t.partitions.get_mut(partition_index(m.partition)?))
                    else {
                        continue;
                    };
                    let part = std::sync::Arc::make_mut(part);
                    let end = part.committed_end;
                    let epoch = part.take_leadership(m.leader, end);
                    epochs.push((name, m.partition, epoch));
                }
                CommandOutput::LeadersChanged { epochs }
            }
            Command::Batch(cmds) => {
                let index = self.applied_index;
                let out = cmds.into_iter().map(|c| self.apply(c)).collect();
                self.applied_index = index;
                CommandOutput::Batch(out)
            }
            Command::RetireController { node_id } => {
                self.retired_controllers.insert(node_id);
                CommandOutput::ControllerRetired
            }
            Command::AdvanceLogStart {
                name,
                partition,
                offset,
                ..
            } => {
                let mut current = offset;
                if let Some(part) = self
                    .topics
                    .get_mut(&name)
                    .and_then(|t| t.partitions.get_mut(partition_index(partition)?))
                {
                    let part = std::sync::Arc::make_mut(part);
                    part.log_start_offset = part.log_start_offset.max(offset);
                    let start = part.log_start_offset;
                    part.aborted_txns.retain(|a| a.last_offset >= start);
                    current = part.log_start_offset;
                }
                let now = self.clock_ms;
                if let Some(p) = partition_index(partition) {
                    super::tier::trim_below(self, &name, p, current, now);
                }
                CommandOutput::LogStartAdvanced {
                    log_start_offset: current,
                }
            }
            Command::AllocateProducerIds { count } => {
                let first = self.next_producer_id;
                self.next_producer_id += count;
                CommandOutput::ProducerIdsAllocated { first, count }
            }
            Command::Group(g) => CommandOutput::Group(self.groups.apply_checked(g, &self.topics)),
            Command::Quota(q) => {
                self.quotas.apply_checked(q);
                CommandOutput::QuotasAltered
            }
            Command::Security(c) => CommandOutput::Security(self.security.apply_checked(c)),
            Command::Txn(t) => CommandOutput::Txn(self.txns.apply_checked(
                t,
                &mut self.next_producer_id,
                &mut self.groups,
                &self.topics,
            )),
            Command::CommitWal {
                broker_id,
                key,
                size,
                committed_at_ms,
                extents,
                ..
            } => {
                self.clock_ms = self.clock_ms.max(committed_at_ms);
                let (n, fenced) = super::tier::apply_commit_wal(
                    self,
                    broker_id,
                    key,
                    size,
                    extents,
                    self.clock_ms,
                );
                CommandOutput::WalCommitted { extents: n, fenced }
            }
            Command::CommitSegment {
                segment,
                committed_at_ms,
            } => {
                self.clock_ms = self.clock_ms.max(committed_at_ms);
                super::tier::apply_commit_segment(self, segment, self.clock_ms);
                CommandOutput::SegmentCommitted
            }
            Command::CondemnObjects { keys, at_ms } => {
                let mut count = 0;
                for k in keys {
                    if !self.tier.knows(&k) {
                        self.tier.deletable.insert(k, at_ms);
                        count += 1;
                    }
                }
                CommandOutput::ObjectsCondemned { count }
            }
            Command::ForgetObjects { keys } => {
                let mut count = 0;
                for k in keys {
                    if self.tier.deletable.remove(&k).is_some() {
                        count += 1;
                    }
                }
                CommandOutput::ObjectsForgotten { count }
            }
            Command::ReplaceSegments {
                topic_id,
                partition,
                replaced,
                segments,
                committed_at_ms,
                ..
            } => {
                self.clock_ms = self.clock_ms.max(committed_at_ms);
                let now = self.clock_ms;
                super::tier::apply_replace_segments(
                    self, topic_id, partition, replaced, segments, now,
                );
                CommandOutput::SegmentsReplaced
            }
        }
    }
}

impl MetaState {
    /// The structural invariants every reachable state keeps: the id index
    /// is the exact inverse of the topics, each partition's extents are
    /// ordered and contiguous and end at its committed end, the log start is
    /// at most the committed end, and every live object's reference count
    /// equals the extents that reference it.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.topic_ids.len() != self.topics.len() {
            return Err(format!(
                "{} topic ids for {} topics",
                self.topic_ids.len(),
                self.topics.len()
            ));
        }
        let mut refs: BTreeMap<&str, u32> = BTreeMap::new();
        for (name, t) in self.topics.iter() {
            if &t.name != name || self.topic_ids.get(&t.topic_id) != Some(name) {
                return Err(format!("topic index broken at {name}"));
            }
            for (i, p) in t.partitions.iter().enumerate() {
                let mut next: Option<i64> = None;
                for e in &p.extents {
                    if e.end_offset <= e.base_offset {
                        return Err(format!("{name}-{i}: empty extent {}", e.key));
                    }
                    if next.is_some_and(|n| n != e.base_offset) {
                        return Err(format!(
                            "{name}-{i}: extent {} starts at {} after {:?}",
                            e.key, e.base_offset, next
                        ));
                    }
                    next = Some(e.end_offset);
                    *refs.entry(e.key.as_str()).or_default() += 1;
                    if let Some(k) = &e.index_key {
                        *refs.entry(k.as_str()).or_default() += 1;
                    }
                }
                if let Some(end) = next {
                    if end != p.committed_end {
                        return Err(format!(
                            "{name}-{i}: extents end at {end}, committed end {}",
                            p.committed_end
                        ));
                    }
                }
                if p.log_start_offset > p.committed_end {
                    return Err(format!(
                        "{name}-{i}: log start {} beyond committed end {}",
                        p.log_start_offset, p.committed_end
                    ));
                }
            }
        }
        for (key, o) in self.tier.objects.iter() {
            let n = refs.remove(key.as_str()).unwrap_or(0);
            if n != o.live_extents {
                return Err(format!(
                    "object {key}: count {} but {n} references",
                    o.live_extents
                ));
            }
            if self.tier.deletable.contains_key(key) {
                return Err(format!("object {key} is both live and deletable"));
            }
        }
        if let Some((key, n)) = refs.into_iter().next() {
            return Err(format!("{n} references to unknown object {key}"));
        }
        Ok(())
    }
}

fn invalid(reason: String) -> MetaError {
    MetaError::InvalidRequest { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn register(broker_id: i32) -> Command {
        Command::RegisterBroker {
            broker_id,
            host: "localhost".to_string(),
            port: 9092,
            rack: None,
        }
    }

    fn create(name: &str, topic_id: Uuid, partitions: i32) -> Command {
        Command::CreateTopic {
            name: name.to_string(),
            topic_id,
            partitions,
            replication_factor: -1,
            configs: BTreeMap::new(),
            leader: 1,
            created_at_ms: 1_700_000_000_000,
        }
    }

    fn cfg(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A state with broker 1 and topic "t" (2 partitions, id 1).
    fn base() -> MetaState {
        let mut s = MetaState::new();
        s.apply(register(1)).unwrap();
        s.apply(create("t", id(1), 2)).unwrap();
        s
    }

    /// Applies a command that must be refused and checks nothing changed.
    fn refuse(s: &mut MetaState, cmd: Command) -> MetaError {
        let before = s.clone();
        let err = s.apply(cmd).unwrap_err();
        assert_eq!(*s, before, "refused command changed the state");
        err
    }

    #[test]
    fn new_state_defaults() {
        let s = MetaState::new();
        assert_eq!(s.next_producer_id, 1000);
        assert_eq!(s.applied_index, 0);
        assert!(s.brokers.is_empty() && s.topics.is_empty() && s.topic_ids.is_empty());
    }

    #[test]
    fn register_broker_new_and_reregister() {
        let mut s = MetaState::new();
        assert_eq!(
            s.apply(register(1)).unwrap(),
            CommandOutput::BrokerRegistered { epoch: 1 }
        );
        let out = s
            .apply(Command::RegisterBroker {
                broker_id: 1,
                host: "h2".to_string(),
                port: 9093,
                rack: Some("az1".to_string()),
            })
            .unwrap();
        assert_eq!(out, CommandOutput::BrokerRegistered { epoch: 2 });
        let b = &s.brokers[&1];
        assert_eq!(
            (b.epoch, b.host.as_str(), b.port, b.rack.as_deref()),
            (2, "h2", 9093, Some("az1"))
        );
        assert_eq!(s.applied_index, 2);
    }

    #[test]
    fn auto_broker_ids_and_unregistering() {
        let mut s = MetaState::new();
        s.apply(register(7)).unwrap();
        let alloc = |s: &mut MetaState| match s.apply(Command::AllocateBrokerId).unwrap() {
            CommandOutput::BrokerIdAllocated { broker_id } => broker_id,
            o => panic!("{o:?}"),
        };
        assert_eq!(alloc(&mut s), RESERVED_BROKER_MAX_ID + 1);
        assert_eq!(alloc(&mut s), RESERVED_BROKER_MAX_ID + 2);
        s.apply(register(1002)).unwrap();
        s.apply(register(1002)).unwrap();
        // Live, or leading a partition: refused.
        refuse(
            &mut s,
            Command::UnregisterBroker {
                broker_id: 1002,
                broker_epoch: 2,
            },
        );
        s.apply(Command::CreateTopic {
            name: "t".into(),
            topic_id: Uuid::from_u128(9),
            partitions: 1,
            replication_factor: -1,
            configs: BTreeMap::new(),
            leader: 1002,
            created_at_ms: 0,
        })
        .unwrap();
        s.apply(Command::FenceBroker {
            broker_id: 1002,
            broker_epoch: 2,
        })
        .unwrap();
        refuse(
            &mut s,
            Command::UnregisterBroker {
                broker_id: 1002,
                broker_epoch: 2,
            },
        );
        s.apply(Command::MoveLeaders {
            moves: vec![crate::meta::command::LeaderMove {
                topic_id: Uuid::from_u128(9),
                partition: 0,
                expected_epoch: 0,
                leader: 7,
            }],
        })
        .unwrap();
        // A stale incarnation cannot unregister the broker.
        refuse(
            &mut s,
            Command::UnregisterBroker {
                broker_id: 1002,
                broker_epoch: 1,
            },
        );
        assert_eq!(
            s.apply(Command::UnregisterBroker {
                broker_id: 1002,
                broker_epoch: 2,
            })
            .unwrap(),
            CommandOutput::BrokerUnregistered
        );
        assert!(!s.brokers.contains_key(&1002));
        // Never handed out again; a re-registration starts above epoch 2.
        assert_eq!(alloc(&mut s), RESERVED_BROKER_MAX_ID + 3);
        assert_eq!(
            s.apply(register(1002)).unwrap(),
            CommandOutput::BrokerRegistered { epoch: 3 }
        );
        s.check_invariants().unwrap();
    }

    #[test]
    fn register_broker_refusals() {
        let mut s = MetaState::new();
        let bad = [(-1, "h", 9092), (1, "", 9092), (1, "h", 0), (1, "h", 65536)];
        for (broker_id, host, port) in bad {
            let e = refuse(
                &mut s,
                Command::RegisterBroker {
                    broker_id,
                    host: host.to_string(),
                    port,
                    rack: None,
                },
            );
            assert!(matches!(e, MetaError::InvalidRequest { .. }), "{e}");
            assert_eq!(e.kafka_code(), 42);
        }
    }

    #[test]
    fn create_topic_success() {
        let mut s = MetaState::new();
        s.apply(register(1)).unwrap();
        let out = s
            .apply(Command::CreateTopic {
                name: "orders".to_string(),
                topic_id: id(7),
                partitions: 3,
                replication_factor: 1,
                configs: cfg(&[("retention.ms", "1000")]),
                leader: 1,
                created_at_ms: 42,
            })
            .unwrap();
        assert_eq!(out, CommandOutput::TopicCreated { topic_id: id(7) });
        let t = s.topic("orders").unwrap();
        assert_eq!(t.partitions.len(), 3);
        assert_eq!(t.created_at_ms, 42);
        assert_eq!(t.configs, cfg(&[("retention.ms", "1000")]));
        assert_eq!(s.topic_by_id(&id(7)).unwrap().name, "orders");
        assert_eq!(
            s.partition("orders", 2).unwrap(),
            &PartitionMeta {
                leader: 1,
                leader_epoch: 0,
                log_start_offset: 0,
                epoch_start_offsets: vec![(0, 0)],
                committed_end: 0,
                extents: Vec::new(),
                ongoing_txns: BTreeMap::new(),
                aborted_txns: Vec::new(),
            }
        );
        assert!(s.partition("orders", 3).is_none());
        assert!(s.partition("orders", -1).is_none());
        assert!(s.partition("nope", 0).is_none());
    }

    #[test]
    fn create_topic_refuses_invalid_names() {
        let mut s = base();
        let long = "a".repeat(250);
        for name in ["", ".", "..", "a b", "é", "a/b", long.as_str()] {
            let e = refuse(&mut s, create(name, id(99), 1));
            assert!(
                matches!(e, MetaError::InvalidTopicName { .. }),
                "{name}: {e}"
            );
            assert_eq!(e.kafka_code(), 17);
        }
        // The longest legal name and all legal characters are accepted.
        s.apply(create(&"a".repeat(249), id(100), 1)).unwrap();
        s.apply(create("A-z_0.9", id(101), 1)).unwrap();
    }

    #[test]
    fn create_topic_refuses_dot_underscore_collision() {
        let mut s = base();
        s.apply(create("a.b", id(2), 1)).unwrap();
        let e = refuse(&mut s, create("a_b", id(3), 1));
        assert!(matches!(e, MetaError::InvalidTopicName { .. }), "{e}");
        assert!(e.to_string().contains("a.b"));
    }

    #[test]
    fn create_topic_refuses_existing_name() {
        let mut s = base();
        let e = refuse(&mut s, create("t", id(2), 1));
        assert!(matches!(e, MetaError::TopicAlreadyExists { ref name } if name == "t"));
        assert_eq!(e.kafka_code(), 36);
        assert_eq!(e.to_string(), "topic already exists: t");
    }

    #[test]
    fn create_topic_refuses_used_or_nil_id() {
        let mut s = base();
        let e = refuse(&mut s, create("u", id(1), 1));
        assert!(matches!(e, MetaError::TopicIdInUse { ref existing, .. } if existing == "t"));
        let e = refuse(&mut s, create("u", Uuid::nil(), 1));
        assert!(matches!(e, MetaError::InvalidRequest { .. }), "{e}");
    }

    #[test]
    fn create_topic_refuses_partition_counts() {
        let mut s = base();
        for p in [0, -1, 10_001, i32::MAX] {
            let e = refuse(&mut s, create("u", id(2), p));
            assert!(matches!(e, MetaError::InvalidPartitions { .. }), "{p}: {e}");
            assert_eq!(e.kafka_code(), 37);
        }
        s.apply(create("u", id(2), 10_000)).unwrap();
    }

    #[test]
    fn create_topic_refuses_replication_factor() {
        let mut s = base();
        for rf in [0, 2, 3, -2] {
            let mut cmd = create("u", id(2), 1);
            if let Command::CreateTopic {
                replication_factor, ..
            } = &mut cmd
            {
                *replication_factor = rf;
            }
            let e = refuse(&mut s, cmd);
            assert!(
                matches!(e, MetaError::InvalidReplicationFactor { .. }),
                "{e}"
            );
            assert_eq!(e.kafka_code(), 38);
        }
    }

    #[test]
    fn create_topic_refuses_bad_configs() {
        let mut s = base();
        for (k, v) in [("no.such.config", "1"), ("retention.ms", "soon")] {
            let mut cmd = create("u", id(2), 1);
            if let Command::CreateTopic { configs, .. } = &mut cmd {
                *configs = cfg(&[(k, v)]);
            }
            let e = refuse(&mut s, cmd);
            assert!(
                matches!(e, MetaError::InvalidConfig { ref key, ref value, .. } if key == k && value == v),
                "{e}"
            );
            assert_eq!(e.kafka_code(), 40);
        }
    }

    #[test]
    fn create_topic_refuses_unregistered_leader() {
        let mut s = base();
        let mut cmd = create("u", id(2), 1);
        if let Command::CreateTopic { leader, .. } = &mut cmd {
            *leader = 2;
        }
        let e = refuse(&mut s, cmd);
        assert!(matches!(e, MetaError::BrokerNotAvailable { broker_id: 2 }));
        assert_eq!(e.kafka_code(), 8);
    }

    #[test]
    fn delete_topic_success_and_unknown() {
        let mut s = base();
        let out = s
            .apply(Command::DeleteTopic {
                topic_id: None,
                name: "t".to_string(),
            })
            .unwrap();
        assert_eq!(out, CommandOutput::TopicDeleted { topic_id: id(1) });
        assert!(s.topics.is_empty() && s.topic_ids.is_empty());
        let e = refuse(
            &mut s,
            Command::DeleteTopic {
                topic_id: None,
                name: "t".to_string(),
            },
        );
        assert!(matches!(e, MetaError::UnknownTopic { .. }));
        assert_eq!(e.kafka_code(), 3);
        // The name can be reused with a new id.
        s.apply(create("t", id(2), 1)).unwrap();
        assert_eq!(s.topic_by_id(&id(2)).unwrap().name, "t");
        assert!(s.topic_by_id(&id(1)).is_none());
    }

    fn grow(name: &str, new_total: i32, leader: i32) -> Command {
        Command::CreatePartitions {
            topic_id: None,
            name: name.to_string(),
            new_total,
            leader,
        }
    }

    #[test]
    fn create_partitions_success() {
        let mut s = base();
        s.apply(register(2)).unwrap();
        assert_eq!(
            s.apply(grow("t", 5, 2)).unwrap(),
            CommandOutput::PartitionsCreated { total: 5 }
        );
        let t = s.topic("t").unwrap();
        assert_eq!(t.partitions.len(), 5);
        assert_eq!(t.partitions[1].leader, 1);
        assert_eq!(t.partitions[4].leader, 2);
        assert_eq!(t.partitions[4].epoch_start_offsets, vec![(0, 0)]);
    }

    #[test]
    fn create_partitions_refusals() {
        let mut s = base();
        let e = refuse(&mut s, grow("nope", 5, 1));
        assert!(matches!(e, MetaError::UnknownTopic { .. }));
        for n in [2, 1, 0, -3] {
            let e = refuse(&mut s, grow("t", n, 1));
            assert!(matches!(e, MetaError::InvalidPartitions { .. }), "{e}");
            assert!(
                e.to_string()
                    .contains(&format!("topic has 2 partitions, asked for {n}")),
                "{e}"
            );
        }
        let e = refuse(&mut s, grow("t", 10_001, 1));
        assert!(matches!(e, MetaError::InvalidPartitions { .. }), "{e}");
        let e = refuse(&mut s, grow("t", 3, 9));
        assert!(matches!(e, MetaError::BrokerNotAvailable { broker_id: 9 }));
    }

    fn alter(set: &[(&str, &str)], delete: &[&str], replace_all: bool) -> Command {
        Command::AlterTopicConfigs {
            topic_id: None,
            name: "t".to_string(),
            set: cfg(set),
            delete: delete.iter().map(|k| k.to_string()).collect(),
            replace_all,
        }
    }

    #[test]
    fn alter_configs_incremental_and_replace_all() {
        let mut s = base();
        s.apply(alter(
            &[("retention.ms", "1000"), ("cleanup.policy", "compact")],
            &[],
            false,
        ))
        .unwrap();
        let out = s
            .apply(alter(&[("segment.ms", "10")], &["retention.ms"], false))
            .unwrap();
        assert_eq!(out, CommandOutput::ConfigsAltered);
        assert_eq!(
            s.topic("t").unwrap().configs,
            cfg(&[("cleanup.policy", "compact"), ("segment.ms", "10")])
        );
        // A key both set and deleted ends up deleted (delete runs after set).
        s.apply(alter(&[("retention.ms", "5")], &["retention.ms"], false))
            .unwrap();
        assert!(!s.topic("t").unwrap().configs.contains_key("retention.ms"));
        s.apply(alter(&[("retention.bytes", "100")], &[], true))
            .unwrap();
        assert_eq!(
            s.topic("t").unwrap().configs,
            cfg(&[("retention.bytes", "100")])
        );
        s.apply(alter(&[], &[], true)).unwrap();
        assert!(s.topic("t").unwrap().configs.is_empty());
    }

    #[test]
    fn alter_configs_refusals() {
        let mut s = base();
        s.apply(alter(&[("retention.ms", "1000")], &[], false))
            .unwrap();
        let mut cmd = alter(&[], &[], false);
        if let Command::AlterTopicConfigs { name, .. } = &mut cmd {
            *name = "nope".to_string();
        }
        assert!(matches!(
            refuse(&mut s, cmd),
            MetaError::UnknownTopic { .. }
        ));
        for cmd in [
            alter(&[("bogus", "1")], &[], false),
            alter(&[("segment.ms", "0")], &[], true),
            alter(&[("retention.ms", "1")], &["bogus"], false),
        ] {
            let e = refuse(&mut s, cmd);
            assert!(matches!(e, MetaError::InvalidConfig { .. }), "{e}");
        }
    }

    fn lead(broker_id: i32, parts: &[(&str, i32, i64)]) -> Command {
        Command::BecomeLeader {
            broker_id,
            partitions: parts
                .iter()
                .map(|&(t, p, o)| (t.to_string(), p, o))
                .collect(),
        }
    }

    #[test]
    fn become_leader_bumps_epochs() {
        let mut s = base();
        s.apply(register(2)).unwrap();
        let out = s.apply(lead(2, &[("t", 1, 50), ("t", 0, 7)])).unwrap();
        assert_eq!(
            out,
            CommandOutput::LeadersChanged {
                epochs: vec![("t".to_string(), 1, 1), ("t".to_string(), 0, 1)]
            }
        );
        s.apply(lead(1, &[("t", 1, 80)])).unwrap();
        let p = s.partition("t", 1).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (1, 2));
        assert_eq!(p.epoch_start_offsets, vec![(0, 0), (1, 50), (2, 80)]);
        assert_eq!(s.partition("t", 0).unwrap().leader, 2);
    }

    #[test]
    fn become_leader_drops_epochs_starting_past_new_end() {
        let mut s = base();
        s.apply(lead(1, &[("t", 0, 100)])).unwrap();
        s.apply(lead(1, &[("t", 0, 60)])).unwrap();
        let p = s.partition("t", 0).unwrap();
        assert_eq!(p.epoch_start_offsets, vec![(0, 0), (2, 60)]);
        assert_eq!(p.leader_epoch, 2);
    }

    #[test]
    fn become_leader_keeps_last_64_epochs() {
        let mut s = base();
        for i in 1..=100 {
            s.apply(lead(1, &[("t", 0, i * 10)])).unwrap();
        }
        let p = s.partition("t", 0).unwrap();
        assert_eq!(p.leader_epoch, 100);
        assert_eq!(p.epoch_start_offsets.len(), MAX_EPOCH_ENTRIES);
        assert_eq!(p.epoch_start_offsets[0], (37, 370));
        assert_eq!(*p.epoch_start_offsets.last().unwrap(), (100, 1000));
    }

    #[test]
    fn become_leader_refusals() {
        let mut s = base();
        let e = refuse(&mut s, lead(9, &[("t", 0, 0)]));
        assert!(matches!(e, MetaError::BrokerNotAvailable { broker_id: 9 }));
        // One bad partition refuses the whole command.
        let e = refuse(&mut s, lead(1, &[("t", 0, 0), ("nope", 0, 0)]));
        assert!(matches!(e, MetaError::UnknownTopic { .. }));
        for p in [2, -1] {
            let e = refuse(&mut s, lead(1, &[("t", 0, 0), ("t", p, 0)]));
            assert!(matches!(e, MetaError::UnknownPartition { partition, .. } if partition == p));
            assert_eq!(e.kafka_code(), 3);
        }
        let e = refuse(&mut s, lead(1, &[("t", 0, 0), ("t", 0, 5)]));
        assert!(matches!(e, MetaError::InvalidRequest { .. }), "{e}");
        let e = refuse(&mut s, lead(1, &[("t", 0, -1)]));
        assert!(matches!(e, MetaError::InvalidRequest { .. }), "{e}");
        std::sync::Arc::make_mut(&mut s.topics.get_mut("t").unwrap().partitions[0]).leader_epoch =
            i32::MAX;
        let e = refuse(&mut s, lead(1, &[("t", 0, 0)]));
        assert!(matches!(e, MetaError::InvalidRequest { .. }), "{e}");
    }

    fn advance(partition: i32, offset: i64) -> Command {
        Command::AdvanceLogStart {
            topic_id: None,
            leader_epoch: None,
            name: "t".to_string(),
            partition,
            offset,
        }
    }

    #[test]
    fn advance_log_start_never_moves_back() {
        let mut s = base();
        // Past the committed end is refused: nothing there to delete yet.
        let e = refuse(&mut s, advance(1, 100));
        assert!(matches!(e, MetaError::OffsetOutOfRange { .. }), "{e}");
        std::sync::Arc::make_mut(&mut s.topics.get_mut("t").unwrap().partitions[1]).committed_end =
            200;
        assert_eq!(
            s.apply(advance(1, 100)).unwrap(),
            CommandOutput::LogStartAdvanced {
                log_start_offset: 100
            }
        );
        assert_eq!(
            s.apply(advance(1, 50)).unwrap(),
            CommandOutput::LogStartAdvanced {
                log_start_offset: 100
            }
        );
        assert_eq!(s.partition("t", 1).unwrap().log_start_offset, 100);
        assert_eq!(s.partition("t", 0).unwrap().log_start_offset, 0);
        // The no-op is still an applied command.
        assert_eq!(s.applied_index, 4);
    }

    #[test]
    fn advance_log_start_refusals() {
        let mut s = base();
        let e = refuse(
            &mut s,
            Command::AdvanceLogStart {
                topic_id: None,
                leader_epoch: None,
                name: "nope".to_string(),
                partition: 0,
                offset: 1,
            },
        );
        assert!(matches!(e, MetaError::UnknownTopic { .. }));
        let e = refuse(&mut s, advance(2, 1));
        assert!(matches!(e, MetaError::UnknownPartition { .. }));
        let e = refuse(&mut s, advance(0, -1));
        assert!(matches!(e, MetaError::OffsetOutOfRange { offset: -1, .. }));
        assert_eq!(e.kafka_code(), 1);
    }

    #[test]
    fn allocate_producer_ids() {
        let mut s = MetaState::new();
        assert_eq!(
            s.apply(Command::AllocateProducerIds { count: 10 }).unwrap(),
            CommandOutput::ProducerIdsAllocated {
                first: 1000,
                count: 10
            }
        );
        assert_eq!(
            s.apply(Command::AllocateProducerIds { count: 1_000_000 })
                .unwrap(),
            CommandOutput::ProducerIdsAllocated {
                first: 1010,
                count: 1_000_000
            }
        );
        assert_eq!(s.next_producer_id, 1_001_010);
    }

    #[test]
    fn allocate_producer_ids_refusals() {
        let mut s = MetaState::new();
        for count in [0, -1, 1_000_001] {
            let e = refuse(&mut s, Command::AllocateProducerIds { count });
            assert!(matches!(e, MetaError::InvalidRequest { .. }), "{e}");
        }
        s.next_producer_id = i64::MAX - 5;
        let e = refuse(&mut s, Command::AllocateProducerIds { count: 10 });
        assert!(matches!(e, MetaError::InvalidRequest { .. }), "{e}");
    }

    /// Epoch 1 wrote from offset 10, epoch 3 from 30, epoch 5 (current)
    /// from 50.
    fn three_epochs(committed_end: i64) -> PartitionMeta {
        PartitionMeta {
            leader: 1,
            leader_epoch: 5,
            log_start_offset: 0,
            epoch_start_offsets: vec![(1, 10), (3, 30), (5, 50)],
            committed_end,
            extents: Vec::new(),
            ongoing_txns: BTreeMap::new(),
            aborted_txns: Vec::new(),
        }
    }

    #[test]
    fn end_offset_for_epoch_answers_like_kafka() {
        let p = three_epochs(0);
        assert_eq!(p.end_offset_for_epoch(0, 99), None);
        assert_eq!(p.end_offset_for_epoch(1, 99), Some((1, 30)));
        assert_eq!(p.end_offset_for_epoch(2, 99), Some((1, 30)));
        assert_eq!(p.end_offset_for_epoch(3, 99), Some((3, 50)));
        assert_eq!(p.end_offset_for_epoch(4, 99), Some((3, 50)));
        assert_eq!(p.end_offset_for_epoch(5, 99), Some((5, 99)));
        assert_eq!(p.end_offset_for_epoch(9, 99), Some((5, 99)));
        let empty = PartitionMeta {
            epoch_start_offsets: vec![],
            ..p
        };
        assert_eq!(empty.end_offset_for_epoch(5, 99), None);
    }

    #[test]
    fn only_offsets_committed_while_an_epoch_led_count_as_its_writes() {
        let p = three_epochs(60);
        assert!(p.committed_in_epoch(1, 30));
        assert!(p.committed_in_epoch(3, 31));
        assert!(p.committed_in_epoch(3, 50));
        assert!(p.committed_in_epoch(5, 60));
        // Offsets a later epoch wrote, an epoch the history lacks, and
        // offsets not committed yet.
        assert!(!p.committed_in_epoch(1, 31));
        assert!(!p.committed_in_epoch(3, 51));
        assert!(!p.committed_in_epoch(2, 20));
        assert!(!p.committed_in_epoch(0, 5));
        assert!(!p.committed_in_epoch(5, 61));
    }

    #[test]
    fn end_offset_for_epoch_with_empty_epochs() {
        let mut s = base();
        s.apply(lead(1, &[("t", 0, 0)])).unwrap();
        s.apply(lead(1, &[("t", 0, 20)])).unwrap();
        let p = s.partition("t", 0).unwrap();
        // Epoch 0 wrote nothing: it ends where it started.
        assert_eq!(p.end_offset_for_epoch(0, 25), Some((0, 0)));
        assert_eq!(p.end_offset_for_epoch(1, 25), Some((1, 20)));
        assert_eq!(p.end_offset_for_epoch(2, 25), Some((2, 25)));
    }

    #[test]
    fn effective_config_uses_overrides_then_broker_defaults() {
        let mut s = base();
        s.apply(alter(&[("retention.ms", "1000")], &[], false))
            .unwrap();
        let broker = cfg(&[("retention.ms", "5"), ("segment.ms", "77")]);
        let c = s.topic("t").unwrap().effective_config(&broker);
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.segment_ms, 77);
        assert_eq!(c.retention_bytes, -1);
    }

    #[test]
    fn apply_is_deterministic() {
        let cmds = vec![
            register(1),
            create("a", id(1), 3),
            create("b", id(2), 1),
            lead(1, &[("a", 2, 9)]),
            Command::AllocateProducerIds { count: 5 },
            grow("b", 4, 1),
            Command::DeleteTopic {
                topic_id: None,
                name: "a".to_string(),
            },
        ];
        let run = || {
            let mut s = MetaState::new();
            for c in cmds.clone() {
                s.apply(c).unwrap();
            }
            s
        };
        assert_eq!(run(), run());
        assert_eq!(run().applied_index, 7);
    }
}
