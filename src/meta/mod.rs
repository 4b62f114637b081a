//! Metadata: the deterministic state machine every broker agrees on.
//!
//! [`MetaState::apply`] is a pure function over plain data (brokers, topics,
//! partitions, producer ids): callers put every clock reading and random id
//! into the [`Command`] itself, so the same command sequence always gives the
//! same state. [`MetaStore`] makes it durable on one node with a fsynced
//! command log plus snapshots; later, raft replicates the very same commands.
//!
//! - `command`: the commands and their outputs (the unit of log and raft)
//! - `state`: the data and `apply`
//! - `topic_config`: the Kafka topic configs we know, their defaults and validation
//! - `store`: log + snapshot persistence
//! - `error`: one error enum with Kafka error codes
//! - `tier`: object-storage manifests (extents, object reference counts)
//! - `groups`: consumer groups' durable state (committed offsets)
//! - `consumer_groups`: KIP-848 consumer groups (epochs, members, assignments)
//! - `txn`: transaction coordinator state (exactly-once)

/// The persistent (structurally shared) map of the state: cloning the
/// state for a reader view costs O(1) and a command copies only the paths
/// it changes, so no command clones the whole state.
pub type Map<K, V> = imbl::OrdMap<K, V>;

pub mod command;
pub mod consumer_groups;
pub mod error;
pub mod groups;
#[cfg(test)]
mod proptests;
pub mod state;
pub mod store;
pub mod tier;
pub mod topic_config;
pub mod txn;

pub use command::{Command, CommandOutput};
pub use error::MetaError;
pub use state::{validate_topic_name, BrokerInfo, MetaState, PartitionMeta, Topic};
pub use store::MetaStore;
pub use topic_config::{ConfigDef, ConfigKind, ConfigSource, TopicConfig};
