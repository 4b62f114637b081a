//! Errors of the group coordinator, each mapped to exactly one Kafka error
//! code in [`GroupError::kafka_code`].

/// Kafka error codes of the group APIs (from the protocol's `Errors` table).
pub mod codes {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const INVALID_REQUEST: i16 = 42;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    pub const UNRELEASED_INSTANCE_ID: i16 = 111;
    pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
    pub const STALE_MEMBER_EPOCH: i16 = 113;
    pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
}

/// Why a group operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("invalid group id {group:?}: {reason}")]
    InvalidGroupId { group: String, reason: &'static str },
    #[error("group {group} is coordinated by broker {coordinator}, not by this one")]
    NotCoordinator { group: String, coordinator: i32 },
    #[error("coordinator not available: {reason}")]
    CoordinatorNotAvailable { reason: String },
    #[error("session timeout {timeout_ms} ms is outside {min}..={max} ms")]
    InvalidSessionTimeout { timeout_ms: i32, min: i32, max: i32 },
    #[error("unknown member {member_id:?} of group {group}")]
    UnknownMember { group: String, member_id: String },
    #[error("illegal generation {generation} of group {group} (current {current})")]
    IllegalGeneration {
        group: String,
        generation: i32,
        current: i32,
    },
    #[error("group {group} is rebalancing")]
    RebalanceInProgress { group: String },
    #[error("member {member_id} of group {group} is fenced: instance id {instance_id} belongs to {current}")]
    FencedInstanceId {
        group: String,
        member_id: String,
        instance_id: String,
        current: String,
    },
    #[error("protocol type or protocols of member do not match group {group}")]
    InconsistentProtocol { group: String },
    #[error("group {group} has reached its maximum size of {max} members")]
    GroupMaxSizeReached { group: String, max: usize },
    #[error("group {group}: rejoin with the assigned member id {member_id}")]
    MemberIdRequired { group: String, member_id: String },
    #[error("group {group} is not empty")]
    NonEmptyGroup { group: String },
    #[error("group {group} not found")]
    GroupIdNotFound { group: String },
    #[error("group {group} is subscribed to topic {topic}")]
    SubscribedToTopic { group: String, topic: String },
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition { topic: String, partition: i32 },
    #[error("offset metadata of {len} bytes is longer than {max}")]
    MetadataTooLarge { len: usize, max: usize },
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    #[error("metadata store failed: {reason}")]
    Storage { reason: String },
    #[error("member {member_id} of group {group} is fenced: epoch {epoch}, current {current}")]
    FencedMemberEpoch {
        group: String,
        member_id: String,
        epoch: i32,
        current: i32,
    },
    #[error("member {member_id} of group {group} sent stale epoch {epoch} (current {current})")]
    StaleMemberEpoch {
        group: String,
        member_id: String,
        epoch: i32,
        current: i32,
    },
    #[error("instance id {instance_id} of group {group} is still held by an active member")]
    UnreleasedInstanceId { group: String, instance_id: String },
    #[error("unsupported assignor {assignor:?} (served: uniform, range)")]
    UnsupportedAssignor { assignor: String },
    #[error("invalid regular expression {regex:?}: {reason}")]
    InvalidRegex { regex: String, reason: String },
    #[error("unsupported version: {reason}")]
    UnsupportedVersion { reason: String },
}

impl GroupError {
    /// The Kafka error code a client sees.
    pub fn kafka_code(&self) -> i16 {
        use codes::*;
        match self {
            GroupError::InvalidGroupId { .. } => INVALID_GROUP_ID,
            GroupError::NotCoordinator { .. } => NOT_COORDINATOR,
            GroupError::CoordinatorNotAvailable { .. } => COORDINATOR_NOT_AVAILABLE,
            GroupError::InvalidSessionTimeout { .. } => INVALID_SESSION_TIMEOUT,
            GroupError::UnknownMember { .. } => UNKNOWN_MEMBER_ID,
            GroupError::IllegalGeneration { .. } => ILLEGAL_GENERATION,
            GroupError::RebalanceInProgress { .. } => REBALANCE_IN_PROGRESS,
            GroupError::FencedInstanceId { .. } => FENCED_INSTANCE_ID,
            GroupError::InconsistentProtocol { .. } => INCONSISTENT_GROUP_PROTOCOL,
            GroupError::GroupMaxSizeReached { .. } => GROUP_MAX_SIZE_REACHED,
            GroupError::MemberIdRequired { .. } => MEMBER_ID_REQUIRED,
            GroupError::NonEmptyGroup { .. } => NON_EMPTY_GROUP,
            GroupError::GroupIdNotFound { .. } => GROUP_ID_NOT_FOUND,
            GroupError::SubscribedToTopic { .. } => GROUP_SUBSCRIBED_TO_TOPIC,
            GroupError::UnknownTopicOrPartition { .. } => UNKNOWN_TOPIC_OR_PARTITION,
            GroupError::MetadataTooLarge { .. } => OFFSET_METADATA_TOO_LARGE,
            GroupError::InvalidRequest { .. } => INVALID_REQUEST,
            // Kafka turns a failed offsets-log append (KAFKA_STORAGE_ERROR,
            // NOT_LEADER) into NOT_COORDINATOR: the client looks the
            // coordinator up again and retries.
            GroupError::Storage { .. } => NOT_COORDINATOR,
            GroupError::FencedMemberEpoch { .. } => FENCED_MEMBER_EPOCH,
            GroupError::StaleMemberEpoch { .. } => STALE_MEMBER_EPOCH,
            GroupError::UnreleasedInstanceId { .. } => UNRELEASED_INSTANCE_ID,
            GroupError::UnsupportedAssignor { .. } => UNSUPPORTED_ASSIGNOR,
            GroupError::InvalidRegex { .. } => INVALID_REGULAR_EXPRESSION,
            GroupError::UnsupportedVersion { .. } => UNSUPPORTED_VERSION,
        }
    }

    /// Whether the client may retry the same request (Kafka's classification
    /// of the mapped code).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            GroupError::NotCoordinator { .. }
                | GroupError::CoordinatorNotAvailable { .. }
                | GroupError::RebalanceInProgress { .. }
                | GroupError::UnknownTopicOrPartition { .. }
                | GroupError::Storage { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let e = GroupError::IllegalGeneration {
            group: "g".into(),
            generation: 3,
            current: 5,
        };
        assert_eq!(e.kafka_code(), 22);
        assert!(!e.is_retriable());
        assert_eq!(e.to_string(), "illegal generation 3 of group g (current 5)");
        let e = GroupError::Storage {
            reason: "disk".into(),
        };
        assert_eq!((e.kafka_code(), e.is_retriable()), (16, true));
        let e = GroupError::MemberIdRequired {
            group: "g".into(),
            member_id: "m-1".into(),
        };
        assert_eq!(e.kafka_code(), 79);
    }
}
