//! Errors of the metadata state machine and its local store.
//!
//! One enum for the whole module so that every refusal of `MetaState::apply`
//! and every failure of `MetaStore` maps to exactly one Kafka error code in
//! one place ([`MetaError::kafka_code`]).

use std::path::PathBuf;

/// Kafka error codes used by this module (from the Kafka protocol's `Errors` table).
pub mod codes {
    /// OFFSET_OUT_OF_RANGE
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    /// UNKNOWN_TOPIC_OR_PARTITION
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// REQUEST_TIMED_OUT (retriable)
    pub const REQUEST_TIMED_OUT: i16 = 7;
    /// BROKER_NOT_AVAILABLE
    pub const BROKER_NOT_AVAILABLE: i16 = 8;
    /// INVALID_TOPIC_EXCEPTION
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    /// TOPIC_ALREADY_EXISTS
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    /// INVALID_PARTITIONS
    pub const INVALID_PARTITIONS: i16 = 37;
    /// INVALID_REPLICATION_FACTOR
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    /// INVALID_CONFIG
    pub const INVALID_CONFIG: i16 = 40;
    /// INVALID_REQUEST
    pub const INVALID_REQUEST: i16 = 42;
    /// POLICY_VIOLATION
    pub const POLICY_VIOLATION: i16 = 44;
    /// KAFKA_STORAGE_ERROR
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    /// UNKNOWN_TOPIC_ID
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

/// Why a metadata command was refused, or why the local store failed.
///
/// Refusals are deterministic outputs of `apply` and travel through the
/// replicated log and the controller API, so they serialize; the local I/O
/// variants never leave the process that hit them (`serde(skip)`).
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum MetaError {
    /// A broker wrote with an old incarnation epoch (it was restarted or fenced).
    #[error("stale broker epoch: broker={broker_id} epoch={epoch} current={current}")]
    StaleBrokerEpoch {
        broker_id: i32,
        epoch: i64,
        current: i64,
    },
    /// The writer does not lead the partition.
    #[error("not leader of {name}-{partition}: leader is {leader}")]
    NotLeader {
        name: String,
        partition: i32,
        leader: i32,
    },
    /// The writer's leader epoch is not the partition's current one.
    #[error("fenced leader epoch: partition={name}-{partition} epoch={epoch} current={current}")]
    FencedLeaderEpoch {
        name: String,
        partition: i32,
        epoch: i32,
        current: i32,
    },
    /// An extent does not continue the committed log.
    #[error("offset mismatch on {name}-{partition}: expected {expected}, got {got}")]
    OffsetMismatch {
        name: String,
        partition: i32,
        expected: i64,
        got: i64,
    },
    /// The topic name breaks Kafka's naming rules.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The offending name.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A topic with this name already exists.
    #[error("topic already exists: {name}")]
    TopicAlreadyExists {
        /// The existing topic's name.
        name: String,
    },
    /// The caller-supplied topic id is already taken by another topic.
    #[error("topic id {topic_id} is already used by topic {existing}")]
    TopicIdInUse {
        /// The duplicated id.
        topic_id: uuid::Uuid,
        /// Name of the topic that owns it.
        existing: String,
    },
    /// No topic with this name.
    #[error("unknown topic: {name}")]
    UnknownTopic {
        /// The requested name.
        name: String,
    },
    /// The topic exists but has no such partition.
    #[error("unknown partition: topic={name} partition={partition}")]
    UnknownPartition {
        /// Topic name.
        name: String,
        /// Requested partition index.
        partition: i32,
    },
    /// No topic with this id.
    #[error("unknown topic id: {topic_id}")]
    UnknownTopicId {
        /// The requested id.
        topic_id: uuid::Uuid,
    },
    /// Partition count out of range or not increasing.
    #[error("invalid partitions for topic {name}: {reason}")]
    InvalidPartitions {
        /// Topic name.
        name: String,
        /// E.g. "topic has 3 partitions, asked for 2".
        reason: String,
    },
    /// Replication factor other than -1 (default) or 1.
    #[error("invalid replication factor {replication_factor}: this store keeps one replica (object storage gives durability), use 1 or -1")]
    InvalidReplicationFactor {
        /// The requested factor.
        replication_factor: i16,
    },
    /// Unknown config key, or a value that does not validate.
    #[error("invalid config {key}={value:?}: {reason}")]
    InvalidConfig {
        /// Config name.
        key: String,
        /// Offered value (empty for deletions of unknown keys).
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The broker is not registered.
    #[error("broker not available: {broker_id}")]
    BrokerNotAvailable {
        /// The broker id that is not registered.
        broker_id: i32,
    },
    /// An offset outside the acceptable range (e.g. negative log start).
    #[error("offset out of range: topic={name} partition={partition} offset={offset}")]
    OffsetOutOfRange {
        /// Topic name.
        name: String,
        /// Partition index.
        partition: i32,
        /// The refused offset.
        offset: i64,
    },
    /// A request that is malformed in a way no more specific variant covers.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong with it.
        reason: String,
    },
    /// Refused by a cluster policy.
    #[error("policy violation: {reason}")]
    PolicyViolation {
        /// Which policy and why.
        reason: String,
    },
    /// Local disk I/O failed; the in-memory state did not change.
    #[serde(skip)]
    #[error("meta store I/O error during {op} on {path}: {source}", path = path.display())]
    Io {
        /// What the store was doing ("append", "fsync", "snapshot write", ...).
        op: String,
        /// File or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// On-disk data that cannot be trusted (bad snapshot, gap between snapshot and log).
    #[serde(skip)]
    #[error("meta store corrupt at {path}: {reason}", path = path.display())]
    Corrupt {
        /// File involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An earlier I/O failure left the store in an unknown state; reopen it.
    #[serde(skip)]
    #[error("meta store unusable after an earlier I/O failure ({reason}); reopen it")]
    Poisoned {
        /// The failure that poisoned it.
        reason: String,
    },
    /// The controller quorum could not commit the command in time (no
    /// leader, a majority down, or the controller unreachable). The command
    /// may or may not be committed later; retrying is safe for idempotent
    /// commands and the caller's own checks cover the rest.
    #[error("metadata quorum unavailable: {reason}")]
    Unavailable {
        /// What failed (timeout, connection refused, no leader...).
        reason: String,
    },
    /// A transaction coordinator refusal, with its Kafka code
    /// (PRODUCER_FENCED, INVALID_TXN_STATE, CONCURRENT_TRANSACTIONS, ...).
    #[error("transaction {transactional_id}: {reason}")]
    Txn {
        transactional_id: String,
        code: i16,
        reason: String,
    },
    /// A controller refused a request that is not a metadata command
    /// (membership change, unknown node id...).
    #[error("controller refused: {reason}")]
    Controller {
        /// Why.
        reason: String,
    },
}

impl MetaError {
    /// The Kafka error code a client should see for this error.
    pub fn kafka_code(&self) -> i16 {
        use codes::*;
        match self {
            MetaError::StaleBrokerEpoch { .. } => 77, // STALE_BROKER_EPOCH
            MetaError::NotLeader { .. } => 6,         // NOT_LEADER_OR_FOLLOWER
            MetaError::FencedLeaderEpoch { .. } => 74, // FENCED_LEADER_EPOCH
            MetaError::OffsetMismatch { .. } => 6,    // the writer lost leadership of the log tail
            MetaError::InvalidTopicName { .. } => INVALID_TOPIC_EXCEPTION,
            MetaError::TopicAlreadyExists { .. } => TOPIC_ALREADY_EXISTS,
            // Kafka has no dedicated code for a duplicate id; the id is
            // generated by the controller side, so a clash is a bad request.
            MetaError::TopicIdInUse { .. } => INVALID_REQUEST,
            MetaError::UnknownTopic { .. } | MetaError::UnknownPartition { .. } => {
                UNKNOWN_TOPIC_OR_PARTITION
            }
            MetaError::UnknownTopicId { .. } => UNKNOWN_TOPIC_ID,
            MetaError::InvalidPartitions { .. } => INVALID_PARTITIONS,
            MetaError::InvalidReplicationFactor { .. } => INVALID_REPLICATION_FACTOR,
            MetaError::InvalidConfig { .. } => INVALID_CONFIG,
            MetaError::BrokerNotAvailable { .. } => BROKER_NOT_AVAILABLE,
            MetaError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
            MetaError::InvalidRequest { .. } => INVALID_REQUEST,
            MetaError::PolicyViolation { .. } => POLICY_VIOLATION,
            MetaError::Io { .. } | MetaError::Corrupt { .. } | MetaError::Poisoned { .. } => {
                KAFKA_STORAGE_ERROR
            }
            MetaError::Unavailable { .. } => REQUEST_TIMED_OUT,
            MetaError::Controller { .. } => INVALID_REQUEST,
            MetaError::Txn { code, .. } => *code,
        }
    }

    /// Whether retrying the same request unchanged may succeed.
    ///
    /// Follows Kafka's own classification of the mapped code (clients already
    /// retry UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_ID and
    /// KAFKA_STORAGE_ERROR), except that corruption is not retriable: it needs
    /// an operator, not another attempt.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            MetaError::UnknownTopic { .. }
                | MetaError::UnknownPartition { .. }
                | MetaError::UnknownTopicId { .. }
                | MetaError::Io { .. }
                | MetaError::Unavailable { .. }
                | MetaError::StaleBrokerEpoch { .. }
                | MetaError::NotLeader { .. }
                | MetaError::FencedLeaderEpoch { .. }
        )
    }
}

/// Refusals travel inside batched outputs, which are cloned and compared;
/// the local I/O variants clone as an error of the same kind and message.
impl Clone for MetaError {
    fn clone(&self) -> Self {
        match self {
            MetaError::Io { op, path, source } => MetaError::Io {
                op: op.clone(),
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            MetaError::Corrupt { path, reason } => MetaError::Corrupt {
                path: path.clone(),
                reason: reason.clone(),
            },
            MetaError::Poisoned { reason } => MetaError::Poisoned {
                reason: reason.clone(),
            },
            other => serde_json::to_value(other)
                .ok()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_else(|| MetaError::InvalidRequest {
                    reason: other.to_string(),
                }),
        }
    }
}

impl PartialEq for MetaError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_retriability_and_messages() {
        let io = MetaError::Io {
            op: "fsync".into(),
            path: PathBuf::from("/x/meta.log"),
            source: std::io::Error::other("disk gone"),
        };
        assert_eq!(io.kafka_code(), 56);
        assert!(io.is_retriable());
        assert_eq!(
            io.to_string(),
            "meta store I/O error during fsync on /x/meta.log: disk gone"
        );
        let unknown = MetaError::UnknownTopic {
            name: "t".to_string(),
        };
        assert_eq!((unknown.kafka_code(), unknown.is_retriable()), (3, true));
        let id = MetaError::UnknownTopicId {
            topic_id: uuid::Uuid::nil(),
        };
        assert_eq!((id.kafka_code(), id.is_retriable()), (100, true));
        let exists = MetaError::TopicAlreadyExists {
            name: "t".to_string(),
        };
        assert_eq!((exists.kafka_code(), exists.is_retriable()), (36, false));
        let policy = MetaError::PolicyViolation {
            reason: "no".to_string(),
        };
        assert_eq!(policy.kafka_code(), 44);
        let corrupt = MetaError::Corrupt {
            path: PathBuf::from("s"),
            reason: "bad".to_string(),
        };
        assert_eq!((corrupt.kafka_code(), corrupt.is_retriable()), (56, false));
        let cfg = MetaError::InvalidConfig {
            key: "retention.ms".to_string(),
            value: "x".to_string(),
            reason: "expected a 64-bit integer".to_string(),
        };
        assert_eq!(
            cfg.to_string(),
            "invalid config retention.ms=\"x\": expected a 64-bit integer"
        );
    }
}
