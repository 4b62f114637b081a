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
use crate::meta::tier::{ExtentKind, WalExtent};
use crate::meta::{
    topic_config::TopicConfig, Command, CommandOutput, MetaError, MetaState, MetaStore,
};
use crate::metrics::Metrics;
use crate::objstore::Store;
use crate::tier::reader::TierReader;
use crate::wal::Wal;

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
    /// Traffic counters, carried over when the handle is rebuilt.
    pub stats: Arc<crate::metrics::TopicStats>,
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
    /// This process's incarnation epoch (fences writes of older ones).
    pub broker_epoch: i64,
    store: Arc<Store>,
    wal: Arc<Wal>,
    reader: Arc<TierReader>,
    tier_config: crate::tier::TierConfig,
    tier_metrics: crate::tier::TierMetrics,
    retention_metrics: crate::jobs::RetentionMetrics,
    compaction_metrics: crate::jobs::compaction::CompactionMetrics,
    meta: Mutex<MetaStore>,
    /// A copy of the metadata for readers (swapped after each command).
    view: RwLock<Arc<MetaState>>,
    logs: LogManager,
    topics: RwLock<HashMap<String, Arc<TopicHandle>>>,
    topics_by_id: RwLock<HashMap<Uuid, Arc<TopicHandle>>>,
    /// Bumped when the high watermark moves; long-polling fetches wait on it.
    appended: watch::Sender<u64>,
    /// Set once shutdown starts: long-polls answer at once.
    shutting_down: std::sync::atomic::AtomicBool,
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
    pub fn open(
        config: Config,
        clock: SharedClock,
        store: Arc<Store>,
    ) -> Result<Arc<Broker>, BrokerError> {
        let data = config.data_dir.clone();
        std::fs::create_dir_all(&data)?;
        let meta_dir = config.meta_dir();
        std::fs::create_dir_all(&meta_dir)?;
        let cluster_id = load_cluster_id(&meta_dir.join("cluster.id"))?;
        let objects = store;
        let mut store = MetaStore::open(&meta_dir)?;
        let broker_id = config.broker_id;
        let broker_epoch = match store.submit(Command::RegisterBroker {
            broker_id,
            host: config.advertised_host.clone(),
            port: config.advertised_port() as i32,
            rack: config.rack.clone(),
        })? {
            CommandOutput::BrokerRegistered { epoch } => epoch,
            _ => 0,
        };
        let logs = LogManager::new(&data, clock.clone())?;
        let broker_defaults = config.topic_defaults();
        // Remove logs of topics deleted while we were down.
        for id in logs.topic_dirs() {
            if store.state().topic_by_id(&id).is_none() {
                tracing::info!(topic_id = %id, "removing data of deleted topic");
                logs.delete_topic(id);
            }
        }
        // Recover every local log; `recover_tier` then reconciles them with
        // object storage and takes leadership with a new epoch.
        for t in store.state().topics.values() {
            let tc = t.effective_config(&broker_defaults);
            for (i, p) in t.partitions.iter().enumerate() {
                logs.open(t.topic_id, i as i32, p.log_start_offset, &log_config(&tc))?;
            }
        }
        let view = Arc::new(store.state().clone());
        let (appended, _) = watch::channel(0u64);
        let groups = crate::groups::Coordinator::new(&config);
        let wal = Wal::new(config.wal_config());
        let reader = TierReader::new(objects.clone(), config.cache_bytes);
        let tier_config = config.tier_config();
        let broker = Arc::new(Broker {
            broker_epoch,
            store: objects,
            wal,
            reader,
            tier_config,
            tier_metrics: crate::tier::TierMetrics::default(),
            retention_metrics: crate::jobs::RetentionMetrics::default(),
            compaction_metrics: Default::default(),
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
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            broker_defaults,
        });
        broker.rebuild_handles()?;
        Ok(broker)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn wal(&self) -> &Arc<Wal> {
        &self.wal
    }

    pub fn reader(&self) -> &Arc<TierReader> {
        &self.reader
    }

    pub fn tier_config(&self) -> &crate::tier::TierConfig {
        &self.tier_config
    }

    pub fn tier_metrics(&self) -> &crate::tier::TierMetrics {
        &self.tier_metrics
    }

    pub fn retention_metrics(&self) -> &crate::jobs::RetentionMetrics {
        &self.retention_metrics
    }

    pub fn compaction_metrics(&self) -> &crate::jobs::compaction::CompactionMetrics {
        &self.compaction_metrics
    }

    /// Every topic's hot-path handle.
    pub fn topic_handles(&self) -> Vec<Arc<TopicHandle>> {
        self.topics.read().values().cloned().collect()
    }

    /// Offsets below this are durable in object storage (the high watermark).
    pub fn committed_end(&self, topic_id: &Uuid, partition: i32) -> Option<i64> {
        let meta = self.meta();
        meta.topic_by_id(topic_id)?
            .partitions
            .get(usize::try_from(partition).ok()?)
            .map(|p| p.committed_end)
    }

    /// (log start, committed end) of a partition from the metadata.
    pub fn partition_bounds(&self, topic_id: &Uuid, partition: i32) -> Option<(i64, i64)> {
        let meta = self.meta();
        let p = meta
            .topic_by_id(topic_id)?
            .partitions
            .get(usize::try_from(partition).ok()?)?;
        Some((p.log_start_offset, p.committed_end))
    }

    /// Commit a WAL object's extents (blocking: the metadata log fsyncs).
    pub fn commit_wal(
        &self,
        key: String,
        size: u64,
        extents: Vec<WalExtent>,
    ) -> Result<(), BrokerError> {
        self.submit_quiet(Command::CommitWal {
            broker_id: self.broker_id,
            broker_epoch: self.broker_epoch,
            key,
            size,
            committed_at_ms: self.clock.now_ms(),
            extents,
        })?;
        Ok(())
    }

    /// Every partition with both its metadata and its open log.
    fn partitions_of<'a>(
        &self,
        meta: &'a MetaState,
    ) -> Vec<(
        &'a crate::meta::Topic,
        usize,
        &'a crate::meta::PartitionMeta,
        PartitionHandle,
        Arc<TopicHandle>,
    )> {
        let mut out = Vec::new();
        for t in meta.topics.values() {
            let Some(h) = self.topic_by_id(&t.topic_id) else {
                continue;
            };
            for (i, pm) in t.partitions.iter().enumerate() {
                if let Some(ph) = h.partition(i as i32) {
                    out.push((t, i, pm, ph.clone(), h.clone()));
                }
            }
        }
        out
    }

    /// Reconcile every local log with object storage, then take leadership
    /// with a new leader epoch. Local logs behind the committed end (disk
    /// lost or wiped) are rebuilt from the WAL extents after the last
    /// uploaded segment; older offsets are served from object storage. Local
    /// data beyond the committed end (acks=1 data not yet in a WAL object)
    /// is queued to the WAL again under the new epoch.
    pub async fn recover_tier(self: &Arc<Self>) -> Result<(), BrokerError> {
        let meta = self.meta();
        let mut takeover = Vec::new();
        for (t, i, pm, ph, h) in self.partitions_of(&meta) {
            let log = &ph.log;
            let ce = pm.committed_end;
            let leo = log.log_end_offset();
            if leo < ce {
                let tail_start = pm
                    .extents
                    .iter()
                    .rposition(|e| e.kind == ExtentKind::Segment)
                    .map(|i| pm.extents[i].end_offset)
                    .unwrap_or_else(|| pm.extents.first().map(|e| e.base_offset).unwrap_or(ce));
                let from = if leo >= tail_start && log.log_start_offset() <= leo {
                    leo
                } else {
                    log.reset(tail_start)?;
                    tail_start
                };
                tracing::info!(topic = %t.name, partition = i, local_end = leo, committed_end = ce, rebuild_from = from, "rebuilding local log tail from object storage");
                for e in pm.extents.iter().filter(|e| e.end_offset > from) {
                    let bytes = self
                        .reader
                        .extent_bytes(e)
                        .await
                        .map_err(|e| BrokerError::Io(std::io::Error::other(e.to_string())))?;
                    // Skip batches already present locally.
                    let mut pos = 0usize;
                    while pos + crate::log::batch::HEADER_LEN <= bytes.len() {
                        let Ok(bh) = crate::log::batch::BatchHeader::parse(&bytes[pos..]) else {
                            break;
                        };
                        if bh.last_offset() >= from {
                            break;
                        }
                        pos += bh.total_len();
                    }
                    log.append_committed(&bytes[pos..], &h.log_config)
                        .map_err(|e| BrokerError::Io(std::io::Error::other(e.to_string())))?;
                }
            }
            takeover.push((t.name.clone(), i as i32, log.log_end_offset().max(ce)));
        }
        if !takeover.is_empty() {
            let b = self.clone();
            tokio::task::spawn_blocking(move || {
                b.submit(Command::BecomeLeader {
                    broker_id: b.broker_id,
                    partitions: takeover,
                })
            })
            .await
            .map_err(|e| BrokerError::Io(std::io::Error::other(e.to_string())))??;
        }
        // Re-queue local data the WAL never committed.
        let meta = self.meta();
        for (t, i, pm, ph, _) in self.partitions_of(&meta) {
            let mut off = pm.committed_end;
            let leo = ph.log.log_end_offset();
            if off < leo {
                tracing::info!(topic = %t.name, partition = i, from = off, to = leo, "re-committing local data not yet in object storage");
            }
            while off < leo {
                let r = ph.log.read(off, 1 << 20, true)?;
                if r.records.is_empty() {
                    break;
                }
                let mut pos = 0usize;
                let bytes = &r.records[..];
                while pos + crate::log::batch::HEADER_LEN <= bytes.len() {
                    let Ok(bh) = crate::log::batch::BatchHeader::parse(&bytes[pos..]) else {
                        break;
                    };
                    let end = pos + bh.total_len();
                    if bh.base_offset >= off {
                        self.wal.push(
                            crate::wal::Target {
                                topic_id: t.topic_id,
                                partition: i as i32,
                                leader_epoch: ph.leader_epoch,
                            },
                            &bh,
                            r.records.slice(pos..end),
                            bh.base_offset == off && off == pm.committed_end,
                            None,
                        );
                    }
                    off = bh.last_offset() + 1;
                    pos = end;
                }
            }
        }
        Ok(())
    }

    /// Append record batches to a partition: wait for WAL buffer space
    /// (back-pressure), validate and append under the partition lock, and
    /// queue the stored batches for the WAL. Used by Kafka produce and the
    /// HTTP API alike; `wait_durable` then gives acks=all.
    pub async fn append(
        &self,
        topic: &TopicHandle,
        partition: &PartitionHandle,
        mut records: Vec<u8>,
    ) -> Result<crate::log::AppendInfo, crate::log::AppendError> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut permit = Some(self.wal.reserve(records.len()).await.map_err(|e| {
            crate::log::AppendError::Log(LogError::Corrupt(topic.name.clone(), e.to_string()))
        })?);
        let target = crate::wal::Target {
            topic_id: topic.id,
            partition: partition.index,
            leader_epoch: partition.leader_epoch,
        };
        let wal = &self.wal;
        let result = partition.log.append_with(
            &mut records,
            partition.leader_epoch,
            &topic.log_config,
            |bh, data, first| {
                wal.push(target, bh, data, first, permit.take());
            },
        );
        match &result {
            Ok(info) if !info.duplicate => {
                let records = (info.last_offset - info.base_offset + 1).max(0) as u64;
                for (bytes, recs) in [
                    (&self.metrics.bytes_in, &self.metrics.records_in),
                    (&topic.stats.bytes_in, &topic.stats.records_in),
                ] {
                    bytes.fetch_add(info.bytes as u64, Relaxed);
                    recs.fetch_add(records, Relaxed);
                }
            }
            Ok(_) => {}
            Err(_) => {
                self.metrics.produce_errors.fetch_add(1, Relaxed);
            }
        }
        result
    }

    /// Wait until offsets below `upto` are committed to object storage.
    pub async fn wait_durable(
        &self,
        topic_id: Uuid,
        partition: i32,
        upto: i64,
        timeout: std::time::Duration,
    ) -> Result<(), crate::wal::WalError> {
        self.wal
            .wait_committed(self, topic_id, partition, upto, timeout)
            .await
    }

    /// Broker-level defaults for topic configs (`log.*` equivalents).
    pub fn broker_defaults(&self) -> &BTreeMap<String, String> {
        &self.broker_defaults
    }

    /// The current metadata (a cheap shared snapshot).
    pub fn meta(&self) -> Arc<MetaState> {
        self.view.read().clone()
    }

    /// Submit a command that changes no topic handle (WAL and segment
    /// commits): only the metadata view is refreshed.
    pub fn submit_quiet(&self, cmd: Command) -> Result<CommandOutput, BrokerError> {
        let mut store = self.meta.lock();
        let out = store.submit(cmd)?;
        *self.view.write() = Arc::new(store.state().clone());
        Ok(out)
    }

    /// Submit a metadata command and refresh the views it affects.
    pub fn submit(&self, cmd: Command) -> Result<CommandOutput, BrokerError> {
        let out = {
            let mut store = self.meta.lock();
            let out = store.submit(cmd)?;
            *self.view.write() = Arc::new(store.state().clone());
            out
        };
        match &out {
            CommandOutput::TopicDeleted { topic_id } => {
                self.logs.delete_topic(*topic_id);
                self.rebuild_handles()?;
            }
            // Only these change what the hot-path topic handles hold.
            CommandOutput::TopicCreated { .. }
            | CommandOutput::PartitionsCreated { .. }
            | CommandOutput::ConfigsAltered
            | CommandOutput::LeadersChanged { .. } => {
                self.rebuild_handles()?;
            }
            _ => {}
        }
        Ok(out)
    }

    /// Check a command against a copy of the state without applying it
    /// (`validate_only` requests). `apply` is pure, so this is exact.
    pub fn validate(&self, cmd: Command) -> Result<(), BrokerError> {
        let mut copy = (*self.meta()).clone();
        copy.apply(cmd)?;
        Ok(())
    }

    /// Submit `cmd`, or with `validate_only` only check it (Kafka's
    /// validate_only admin requests).
    pub fn submit_or_validate(&self, cmd: Command, validate_only: bool) -> Result<(), BrokerError> {
        if validate_only {
            self.validate(cmd)
        } else {
            self.submit(cmd).map(|_| ())
        }
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
        let old = self.topics_by_id.read().clone();
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
                stats: old
                    .get(&t.topic_id)
                    .map(|h| h.stats.clone())
                    .unwrap_or_default(),
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

    /// Start shutting down: wake every long-poll so it answers now.
    pub fn begin_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::Release);
        self.notify_appended();
    }

    /// Has shutdown started?
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
            .load(std::sync::atomic::Ordering::Acquire)
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
