//! The commands that change metadata, and what applying them returns.
//!
//! Commands are the unit of persistence (one log record each) and, later, of
//! raft replication, so they must carry every input `apply` needs: ids,
//! timestamps and anything else that would need a clock or an RNG are chosen
//! by the caller before the command is submitted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A request to change the metadata state. See [`super::MetaState::apply`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Command {
    /// Registers a broker, or re-registers it with a new incarnation epoch.
    RegisterBroker {
        /// Broker id (>= 0).
        broker_id: i32,
        /// Advertised host.
        host: String,
        /// Advertised port (1..=65535).
        port: i32,
        /// Rack / zone, if known.
        rack: Option<String>,
    },
    /// Creates a topic with `partitions` partitions, all led by `leader`.
    CreateTopic {
        /// Topic name (Kafka naming rules).
        name: String,
        /// Id chosen by the caller (random v4), never reused.
        topic_id: Uuid,
        /// Partition count, 1..=10_000.
        partitions: i32,
        /// -1 (default) or 1.
        replication_factor: i16,
        /// Explicit config overrides (raw Kafka strings).
        configs: BTreeMap<String, String>,
        /// Broker that leads every new partition; must be registered.
        leader: i32,
        /// Creation time, chosen by the caller.
        created_at_ms: i64,
    },
    /// Deletes a topic (its data is removed later, see two-phase deletion).
    DeleteTopic {
        /// Topic name.
        name: String,
        /// The id the caller resolved the name to: a topic deleted and
        /// re-created under the same name in between is not touched. `None`
        /// only in logs written before ids were carried.
        #[serde(default)]
        topic_id: Option<Uuid>,
    },
    /// Grows a topic to `new_total` partitions; new ones are led by `leader`.
    CreatePartitions {
        /// Topic name.
        name: String,
        /// Total partition count after the change (> current, <= 10_000).
        new_total: i32,
        /// Broker that leads the new partitions; must be registered.
        leader: i32,
        /// See [`Command::DeleteTopic::topic_id`].
        #[serde(default)]
        topic_id: Option<Uuid>,
    },
    /// Changes a topic's config overrides.
    AlterTopicConfigs {
        /// Topic name.
        name: String,
        /// Keys to set.
        set: BTreeMap<String, String>,
        /// Keys to remove (incremental mode only; validated but otherwise
        /// ignored when `replace_all`).
        delete: Vec<String>,
        /// `true`: AlterConfigs semantics, the overrides become exactly `set`.
        /// `false`: IncrementalAlterConfigs, apply `set` then remove `delete`.
        replace_all: bool,
        /// See [`Command::DeleteTopic::topic_id`].
        #[serde(default)]
        topic_id: Option<Uuid>,
    },
    /// Makes `broker_id` leader of the listed partitions with a new leader
    /// epoch, naming partitions by topic name. Kept so that logs written
    /// before [`Command::Lead`] replay; new code proposes `Lead`.
    BecomeLeader {
        /// New leader; must be registered.
        broker_id: i32,
        /// (topic, partition, log end offset at takeover), each at most once.
        partitions: Vec<(String, i32, i64)>,
    },
    /// Moves a partition's log start offset forward (DeleteRecords, retention).
    AdvanceLogStart {
        /// Topic name.
        name: String,
        /// Partition index.
        partition: i32,
        /// New log start offset; a lower value than the current one is a no-op.
        offset: i64,
        /// See [`Command::DeleteTopic::topic_id`].
        #[serde(default)]
        topic_id: Option<Uuid>,
        /// The leader epoch the caller computed `offset` under; refused when
        /// the partition has moved on (`None` only in old logs).
        #[serde(default)]
        leader_epoch: Option<i32>,
    },
    /// Hands out a block of producer ids.
    AllocateProducerIds {
        /// Block size, 1..=1_000_000.
        count: i64,
    },
    /// Consumer-group metadata (committed offsets); see [`super::groups`].
    Group(super::groups::GroupCommand),
    /// Records a WAL object's extents: refused when the broker's incarnation
    /// is stale, it does not lead a partition, the leader epoch is old or an
    /// extent does not continue the partition's committed log.
    CommitWal {
        broker_id: i32,
        broker_epoch: i64,
        key: String,
        size: u64,
        committed_at_ms: i64,
        extents: Vec<super::tier::WalExtent>,
    },
    /// Swaps the extents of `[base, end)` for one uploaded segment object.
    CommitSegment {
        segment: super::tier::SegmentCommit,
        committed_at_ms: i64,
    },
    /// GC found these objects in the bucket with no manifest entry (orphans
    /// of fenced or crashed writers): mark them deletable as of `at_ms`, so
    /// a late commit of any of them is refused before GC deletes them.
    /// Keys the state knows are skipped.
    CondemnObjects { keys: Vec<String>, at_ms: i64 },
    /// GC deleted these unreferenced objects: forget them.
    ForgetObjects { keys: Vec<String> },
    /// Makes `broker_id` (at incarnation `broker_epoch`) leader of the listed
    /// partitions, each with a new leader epoch. Partitions are named by
    /// topic id and carry the epoch the caller saw, so a stale or repeated
    /// takeover is refused instead of bumping twice.
    Lead {
        broker_id: i32,
        broker_epoch: i64,
        partitions: Vec<LeadPartition>,
    },
    /// Loads a whole state written by an earlier release (see
    /// `controller::upgrade`). Accepted only by a state that holds no
    /// topics, groups or objects yet, so it can run once, first.
    ImportState { state: Box<super::MetaState> },
    /// Fences a broker incarnation: its lease expired (proposed by the
    /// controller leader) or it is shutting down (proposed by itself). It
    /// leads nothing from now on; the placement moves its partitions.
    FenceBroker { broker_id: i32, broker_epoch: i64 },
    /// Moves partition leadership (placement, failover, rebalancing): each
    /// move bumps the leader epoch and starts the new epoch at the
    /// committed end. Refused as a whole if any partition's epoch moved on
    /// or a new leader is not a live (registered, unfenced) broker.
    MoveLeaders { moves: Vec<LeaderMove> },
    /// Transaction coordinator state; see [`super::txn`].
    Txn(super::txn::TxnCommand),
    /// SCRAM credentials and advertised listeners; see [`crate::auth::state`].
    Security(crate::auth::state::SecurityCommand),
    /// Hands out a broker id for a broker started with `--node-id auto`
    /// (ids above [`super::state::RESERVED_BROKER_MAX_ID`], never reused).
    AllocateBrokerId,
    /// Forgets a fenced broker that leads nothing (long gone, e.g. a pod
    /// scaled away). A later registration of the same id starts above every
    /// epoch it ever had, so its old incarnations stay fenced.
    UnregisterBroker { broker_id: i32, broker_epoch: i64 },
    /// Several independent commands proposed as one log entry (the
    /// controller batches concurrent proposals): each is applied (or
    /// refused) on its own, in order; the output lists each result.
    Batch(Vec<Command>),
    /// Gives the cluster its id (once; refused when it has one).
    InitCluster { cluster_id: String },
    /// Records that a controller node id left the quorum: ids are never
    /// reused, so a removed id cannot be added again.
    RetireController { node_id: u64 },
    /// Compaction: swap a contiguous run of extents for rewritten segments.
    ReplaceSegments {
        topic_id: uuid::Uuid,
        partition: i32,
        leader_epoch: i32,
        replaced: Vec<String>,
        segments: Vec<super::tier::SegmentCommit>,
        committed_at_ms: i64,
    },
    /// Client quota configuration (AlterClientQuotas); see
    /// [`crate::quotas::state`].
    Quota(crate::quotas::QuotaCommand),
}

/// One partition of a [`Command::Lead`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LeadPartition {
    pub topic_id: Uuid,
    pub partition: i32,
    /// The leader epoch the caller saw; the command is refused for this
    /// partition's takeover if the epoch has changed since.
    pub expected_epoch: i32,
    /// Log end offset at takeover (where the new epoch starts).
    pub log_end_offset: i64,
}

/// One partition of a [`Command::MoveLeaders`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LeaderMove {
    pub topic_id: Uuid,
    pub partition: i32,
    /// The leader epoch the placement saw.
    pub expected_epoch: i32,
    /// The new leader.
    pub leader: i32,
}

/// What applying a command returned: its output, or the deterministic
/// refusal (the same on every replica).
pub type ApplyResult = Result<CommandOutput, super::MetaError>;

/// What a successfully applied [`Command`] produced.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum CommandOutput {
    /// The broker's incarnation epoch after registering (1 for a new broker).
    BrokerRegistered {
        /// New epoch.
        epoch: i64,
    },
    /// The topic was created.
    TopicCreated {
        /// Its id.
        topic_id: Uuid,
    },
    /// The topic was deleted.
    TopicDeleted {
        /// Id of the deleted topic (data cleanup is keyed by it).
        topic_id: Uuid,
    },
    /// The topic now has `total` partitions.
    PartitionsCreated {
        /// New partition count.
        total: i32,
    },
    /// The overrides were changed.
    ConfigsAltered,
    /// New leader epochs, in the order the partitions were listed.
    LeadersChanged {
        /// (topic, partition, new leader epoch).
        epochs: Vec<(String, i32, i32)>,
    },
    /// The partition's log start offset after the command.
    LogStartAdvanced {
        /// Current log start offset (unchanged if the request was lower).
        log_start_offset: i64,
    },
    /// Producer ids `first..first + count` belong to the caller.
    ProducerIdsAllocated {
        /// First id of the block.
        first: i64,
        /// Block size.
        count: i64,
    },
    /// Output of a [`Command::Group`].
    Group(super::groups::GroupOutput),
    /// Extents recorded from a WAL object.
    WalCommitted {
        extents: u32,
        /// Partitions whose extents were dropped because the writer no
        /// longer leads them at that epoch (their acks=all requests fail
        /// with a retriable error); the other partitions committed.
        #[serde(default)]
        fenced: Vec<(Uuid, i32)>,
    },
    /// A segment replaced WAL extents.
    SegmentCommitted,
    /// Orphans now deletable.
    ObjectsCondemned { count: usize },
    /// Objects forgotten after deletion.
    ObjectsForgotten { count: usize },
    /// Compaction's segments replaced the old extents.
    SegmentsReplaced,
    /// A whole earlier state was imported.
    StateImported,
    /// The controller id is retired.
    ControllerRetired,
    /// The cluster id is set.
    ClusterInitialized,
    /// Results of a [`Command::Batch`], in order.
    Batch(Vec<ApplyResult>),
    /// The broker is fenced.
    BrokerFenced,
    /// A transaction command's result.
    Txn(super::txn::TxnOutput),
    /// A security command's result.
    Security(crate::auth::state::SecurityOutput),
    /// A broker id for `--node-id auto`.
    BrokerIdAllocated { broker_id: i32 },
    /// The broker is no longer registered.
    BrokerUnregistered,
    /// Client quotas altered.
    QuotasAltered,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Commands are the log's payload: JSON must round-trip them exactly.
        #[test]
        fn command_json_round_trip(
            name in "[a-zA-Z0-9._-]{1,20}",
            n in any::<i32>(),
            off in any::<i64>(),
            id in any::<u128>(),
            rack in proptest::option::of(".{0,8}"),
            cfgs in proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4),
            flag in any::<bool>(),
        ) {
            let cmds = vec![
                Command::RegisterBroker { broker_id: n, host: name.clone(), port: n, rack },
                Command::CreateTopic {
                    name: name.clone(), topic_id: Uuid::from_u128(id), partitions: n,
                    replication_factor: n as i16, configs: cfgs.clone(), leader: n, created_at_ms: off,
                },
                Command::DeleteTopic { name: name.clone(), topic_id: Some(Uuid::from_u128(id)) },
                Command::CreatePartitions { name: name.clone(), new_total: n, leader: n, topic_id: None },
                Command::AlterTopicConfigs {
                    name: name.clone(), set: cfgs.clone(), delete: cfgs.keys().cloned().collect(), replace_all: flag, topic_id: None,
                },
                Command::BecomeLeader { broker_id: n, partitions: vec![(name.clone(), n, off)] },
                Command::AdvanceLogStart { name: name.clone(), partition: n, offset: off, topic_id: None, leader_epoch: Some(n) },
                Command::AllocateProducerIds { count: off },
            ];
            for c in cmds {
                let json = serde_json::to_vec(&c).unwrap();
                prop_assert_eq!(serde_json::from_slice::<Command>(&json).unwrap(), c);
            }
            let out = CommandOutput::LeadersChanged { epochs: vec![(name, n, n)] };
            let json = serde_json::to_vec(&out).unwrap();
            prop_assert_eq!(serde_json::from_slice::<CommandOutput>(&json).unwrap(), out);
        }
    }
}
