//! One file per Kafka API: each exposes `handle(ctx, request)`.

pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod partition_reassignments;
pub mod produce;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;
pub mod txn;

use kafka_protocol::protocol::StrBytes;

/// A protocol string from a Rust string.
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Drops the topic configs this broker accepts and ignores (see
/// [`crate::meta::topic_config::is_ignored`]) from a create or alter, after
/// checking their values, with a warning naming them.
pub(crate) fn strip_ignored_configs(
    topic: &str,
    configs: &mut std::collections::BTreeMap<String, String>,
) -> Result<(), crate::meta::MetaError> {
    let removed = crate::meta::topic_config::strip_ignored(configs)?;
    if !removed.is_empty() {
        tracing::warn!(
            topic,
            configs = ?removed,
            "topic configs accepted and ignored: they have no effect on this broker"
        );
    }
    Ok(())
}
