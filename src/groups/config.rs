//! Coordinator settings, with Apache Kafka's defaults (`group.*` and
//! `offsets.*` broker configs).

/// Settings of the group coordinator.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    /// This broker's id (coordinator of every group while single-node).
    pub broker_id: i32,
    /// `group.min.session.timeout.ms`: lower bound of a member's session
    /// timeout. Shorter sessions detect dead consumers sooner but cost more
    /// heartbeats and make GC pauses look like failures.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: upper bound of a member's session timeout.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an
    /// empty group waits for more members (extended while members keep
    /// arriving, up to the rebalance timeout). Saves a rebalance per member
    /// when a whole consumer fleet starts, at the cost of a slower first join.
    pub initial_rebalance_delay_ms: i64,
    /// `group.max.size`: members per group.
    pub max_group_size: usize,
    /// Groups held in memory by this coordinator (with or without members).
    pub max_groups: usize,
    /// Bytes of protocol metadata one member may send in JoinGroup.
    pub max_member_metadata_bytes: usize,
    /// Bytes of member metadata and assignments all groups may hold together;
    /// joins beyond it are refused with COORDINATOR_NOT_AVAILABLE.
    pub max_total_metadata_bytes: usize,
    /// How long a new member may wait in JoinGroup before it is dropped
    /// (Kafka's fixed 5 minutes).
    pub new_member_join_timeout_ms: i64,
    /// `offsets.retention.minutes` (in ms): committed offsets of a group that
    /// is empty (or never used group management) are kept this long after
    /// the group became empty / after their commit.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`: how often expiry runs.
    pub offsets_retention_check_interval_ms: u64,
    /// OffsetCommit requests queued for the metadata log at once; more are
    /// answered COORDINATOR_NOT_AVAILABLE (retriable).
    pub max_pending_commits: usize,
    /// OffsetCommit requests merged into one metadata command (one fsync).
    pub max_commit_batch: usize,
    /// Resolution of session, rebalance and join-delay timers.
    pub tick_ms: u64,
    /// `group.consumer.session.timeout.ms`: session of KIP-848 members (set
    /// by the broker, not the client). Shorter detects dead consumers
    /// sooner, at the cost of more false expiries on pauses.
    pub consumer_session_timeout_ms: i64,
    /// `group.consumer.heartbeat.interval.ms`: how often KIP-848 members
    /// heartbeat; also how late a member learns of a new assignment.
    pub consumer_heartbeat_interval_ms: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            broker_id: 1,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_group_size: 1_000,
            max_groups: 10_000,
            max_member_metadata_bytes: 1 << 20,
            max_total_metadata_bytes: 256 << 20,
            new_member_join_timeout_ms: 5 * 60 * 1000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            max_pending_commits: 8_192,
            max_commit_batch: 1_024,
            tick_ms: 100,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
        }
    }
}

impl GroupConfig {
    /// Defaults for a broker.
    pub fn for_broker(config: &crate::config::Config) -> GroupConfig {
        GroupConfig {
            broker_id: config.broker_id,
            consumer_session_timeout_ms: config.group_consumer_session_timeout_ms as i64,
            consumer_heartbeat_interval_ms: config
                .group_consumer_heartbeat_interval_ms
                .min(i32::MAX as u64) as i32,
            ..GroupConfig::default()
        }
    }
}
