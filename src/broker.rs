//! The broker: ties the metadata store, the partition logs and the clock
//! together and offers the operations the protocol handlers need (create a
//! topic, find a partition, append, read). Handlers never touch the metadata
//! store or the log manager directly; they go through here so that the later
//! Raft controller and object-storage tier slot in behind the same calls.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::log::{LogConfig, LogError, LogManager, PartitionLog};
use crate::meta::{
    topic_config::TopicConfig, Command, CommandOutput, MetaError, MetaState, MetaStore,
};
use crate::metrics::Metrics;

/// Errors surfaced by broker operations.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("unknown topic or partition: {0}")]
    UnknownTopicOrPartition(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl BrokerError {
    /// Kafka error code.
    pub fn kafka_code(&self) -> i16 {
        match self {
            BrokerError::Meta(e) => e.kafka_code(),
            BrokerError::Log(e) => e.kafka_code(),
            BrokerError::UnknownTopicOrPartition(_) => 3,
            BrokerError::Io(_) => 56,
        }
    }
}

/// One partition as the hot path sees it.
#[derive(Debug, Clone)]
pub struct PartitionHandle {
    pub index: i32,
    pub leader_epoch: i32,
    pub log: Arc<PartitionLog>,
}

/// One topic as the hot path sees it: resolved configs and open logs,
/// rebuilt whenever the topic's metadata changes.
#[derive(Debug, Clone)]
pub struct TopicHandle {
    pub name: String,
    pub id: Uuid,
    pub config: TopicConfig,
    pub log_config: LogConfig,
    pub partitions: Vec<PartitionHandle>,
}

impl TopicHandle {
    pub fn partition(&self, p: i32) -> Option<&PartitionHandle> {
        usize::try_from(p).ok().and_then(|i| self.partitions.get(i))
    }
}

/// The broker process state.
pub struct Broker {
    pub config: Config,
    pub broker_id: i32,
    pub cluster_id: String,
    pub clock: SharedClock,
    pub metrics: Metrics,
    /// Consumer group coordinator.
    pub groups: crate::groups::Coordinator,
    meta: Mutex<MetaStore>,
    /// A copy of the metadata for readers (swapped after each command).
    view: RwLock<Arc<MetaState>>,
    logs: LogManager,
    topics: RwLock<HashMap<String, Arc<TopicHandle>>>,
    topics_by_id: RwLock<HashMap<Uuid, Arc<TopicHandle>>>,
    /// Bumped on every append; long-polling fetches wait on it.
    appended: watch::Sender<u64>,
    broker_defaults: BTreeMap<String, String>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("broker_id", &self.broker_id)
            .finish()
    }
}

pub(crate) fn log_config(c: &TopicConfig) -> LogConfig {
    LogConfig {
        segment_bytes: c.segment_bytes,
        segment_ms: c.segment_ms,
        index_interval_bytes: c.index_interval_bytes as u64,
        log_append_time: c.log_append_time,
        max_message_bytes: c.max_message_bytes.max(0) as usize,
    }
}

impl Broker {
    /// Open the data directory: metadata, then every partition log
    /// (recovering it), then take leadership with a new leader epoch.
    pub fn open(config: Config, clock: SharedClock) -> Result<Arc<Broker>, BrokerError> {
        let data = config.data_dir.clone();
        std::fs::create_dir_all(&data)?;
        let cluster_id = load_cluster_id(&data.join("cluster.id"))?;
        let mut store = MetaStore::open(&data.join("meta"))?;
        let broker_id = config.broker_id;
        store.submit(Command::RegisterBroker {
            broker_id,
            host: config.advertised_host.clone(),
            port: config.advertised_port() as i32,
            rack: config.rack.clone(),
        })?;
        let logs = LogManager::new(&data, clock.clone())?;
        let broker_defaults = config.topic_defaults();
        // Remove logs of topics deleted while we were down.
        for id in logs.topic_dirs() {
            if store.state().topic_by_id(&id).is_none() {
                tracing::info!(topic_id = %id, "removing data of deleted topic");
                logs.delete_topic(id);
            }
        }
        // Recover every log, then become leader of everything with a new epoch.
        let mut takeover = Vec::new();
        for t in store.state().topics.values() {
            let tc = t.effective_config(&broker_defaults);
            for (i, p) in t.partitions.iter().enumerate() {
                let log = logs.open(t.topic_id, i as i32, p.log_start_offset, &log_config(&tc))?;
                takeover.push((t.name.clone(), i as i32, log.log_end_offset()));
            }
        }
        if !takeover.is_empty() {
            store.submit(Command::BecomeLeader {
                broker_id,
                partitions: takeover,
            })?;
        }
        let view = Arc::new(store.state().clone());
        let (appended, _) = watch::channel(0u64);
        let groups = crate::groups::Coordinator::new(&config);
        let broker = Arc::new(Broker {
            config,
            broker_id,
            cluster_id,
            clock,
            metrics: Metrics::default(),
            groups,
            meta: Mutex::new(store),
            view: RwLock::new(view),
            logs,
            topics: RwLock::new(HashMap::new()),
            topics_by_id: RwLock::new(HashMap::new()),
            appended,
            broker_defaults,
        });
        broker.rebuild_handles()?;
        Ok(broker)
    }

    /// Broker-level defaults for topic configs (`log.*` equivalents).
    pub fn broker_defaults(&self) -> &BTreeMap<String, String> {
        &self.broker_defaults
    }

    /// The current metadata (a cheap shared snapshot).
    pub fn meta(&self) -> Arc<MetaState> {
        self.view.read().clone()
    }

    /// Submit a metadata command and refresh the views it affects.
    pub fn submit(&self, cmd: Command) -> Result<CommandOutput, BrokerError> {
        let out = {
            let mut store = self.meta.lock();
            let out = store.submit(cmd)?;
            *self.view.write() = Arc::new(store.state().clone());
            out
        };
        if let CommandOutput::TopicDeleted { topic_id } = &out {
            self.logs.delete_topic(*topic_id);
        }
        self.rebuild_handles()?;
        Ok(out)
    }

    /// Check a command against a copy of the state without applying it
    /// (`validate_only` requests). `apply` is pure, so this is exact.
    pub fn validate(&self, cmd: Command) -> Result<(), BrokerError> {
        let mut copy = (*self.meta()).clone();
        copy.apply(cmd)?;
        Ok(())
    }

    /// `validate_only` variant of [`Broker::create_topic`].
    pub fn validate_create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        self.validate(Command::CreateTopic {
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
            leader: self.broker_id,
            created_at_ms: self.clock.now_ms(),
        })
    }

    /// Rebuild the hot-path topic handles from the metadata view, opening
    /// logs of new partitions.
    fn rebuild_handles(&self) -> Result<(), BrokerError> {
        let view = self.meta();
        let mut by_name = HashMap::with_capacity(view.topics.len());
        let mut by_id = HashMap::with_capacity(view.topics.len());
        for t in view.topics.values() {
            let config = t.effective_config(&self.broker_defaults);
            let lc = log_config(&config);
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for (i, p) in t.partitions.iter().enumerate() {
                let log = self
                    .logs
                    .open(t.topic_id, i as i32, p.log_start_offset, &lc)?;
                partitions.push(PartitionHandle {
                    index: i as i32,
                    leader_epoch: p.leader_epoch,
                    log,
                });
            }
            let h = Arc::new(TopicHandle {
                name: t.name.clone(),
                id: t.topic_id,
                config,
                log_config: lc,
                partitions,
            });
            by_id.insert(t.topic_id, h.clone());
            by_name.insert(t.name.clone(), h);
        }
        *self.topics.write() = by_name;
        *self.topics_by_id.write() = by_id;
        Ok(())
    }

    pub fn topic(&self, name: &str) -> Option<Arc<TopicHandle>> {
        self.topics.read().get(name).cloned()
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<TopicHandle>> {
        self.topics_by_id.read().get(id).cloned()
    }

    /// Create a topic led by this broker.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<Uuid, BrokerError> {
        let out = self.submit(Command::CreateTopic {
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
            leader: self.broker_id,
            created_at_ms: self.clock.now_ms(),
        })?;
        match out {
            CommandOutput::TopicCreated { topic_id } => {
                tracing::info!(topic = name, partitions, %topic_id, "created topic");
                Ok(topic_id)
            }
            _ => Ok(Uuid::nil()),
        }
    }

    /// Auto-create a topic on first use, if enabled. Returns the handle.
    pub fn auto_create(&self, name: &str) -> Option<Arc<TopicHandle>> {
        if let Some(t) = self.topic(name) {
            return Some(t);
        }
        if !self.config.auto_create_topics {
            return None;
        }
        match self.create_topic(name, self.config.num_partitions, -1, BTreeMap::new()) {
            Ok(_) => {}
            Err(BrokerError::Meta(MetaError::TopicAlreadyExists { .. })) => {}
            Err(e) => {
                tracing::warn!(topic = name, error = %e, "auto-create failed");
                return None;
            }
        }
        self.topic(name)
    }

    /// Tell long-polling fetchers that data arrived.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Allocate one producer id.
    pub fn allocate_producer_id(&self) -> Result<i64, BrokerError> {
        match self.submit(Command::AllocateProducerIds { count: 1 })? {
            CommandOutput::ProducerIdsAllocated { first, .. } => Ok(first),
            other => Err(BrokerError::Io(std::io::Error::other(format!(
                "unexpected output {other:?}"
            )))),
        }
    }

    pub fn partition_count(&self) -> usize {
        self.logs.len()
    }

    /// Graceful shutdown: fsync every log and snapshot the metadata.
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        self.logs.sync_all()?;
        self.meta.lock().snapshot_now()?;
        Ok(())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }
}

fn load_cluster_id(path: &std::path::Path) -> Result<String, BrokerError> {
    if let Ok(s) = std::fs::read_to_string(path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    // Kafka cluster ids are 22-character URL-safe base64 of a UUID; a UUID's
    // simple form is equally opaque to clients.
    let id = format!("strata-{}", &Uuid::new_v4().simple().to_string()[..16]);
    crate::log::index::write_synced(path, id.as_bytes())?;
    Ok(id)
}
