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
use crate::controller::Metadata;
use crate::log::{LogConfig, LogError, LogManager, PartitionLog};
use crate::meta::command::LeadPartition;
use crate::meta::tier::{ExtentKind, WalExtent};
use crate::meta::{topic_config::TopicConfig, Command, CommandOutput, MetaError, MetaState};
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
    #[error(transparent)]
    Store(#[from] crate::objstore::StoreError),
}

impl BrokerError {
    /// Kafka error code.
    pub fn kafka_code(&self) -> i16 {
        match self {
            BrokerError::Meta(e) => e.kafka_code(),
            BrokerError::Log(e) => e.kafka_code(),
            BrokerError::UnknownTopicOrPartition(_) => 3,
            BrokerError::Io(_) | BrokerError::Store(_) => 56,
        }
    }
}

/// Does this broker commit its fsynced segment files in place (`--wal-mode`,
/// see `wal`)? Only a `file://` store on the data directory's filesystem
/// can take a hard link of a segment file.
fn local_mode(config: &Config, store: &crate::objstore::Store) -> Result<bool, BrokerError> {
    use crate::config::WalMode;
    use std::os::unix::fs::MetadataExt;
    if config.wal_mode == WalMode::Object {
        return Ok(false);
    }
    let dev = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    let same_fs = store
        .local_root()
        .is_some_and(|root| dev(root).is_some() && dev(root) == dev(&config.data_dir));
    if !same_fs && config.wal_mode == WalMode::Local {
        return Err(BrokerError::Io(std::io::Error::other(format!(
            "--wal-mode local needs a file:// object store on the filesystem of --data-dir {} (the store is {store:?}); use --wal-mode object or auto",
            config.data_dir.display()
        ))));
    }
    Ok(same_fs)
}

/// One partition as the hot path sees it.
#[derive(Debug, Clone)]
pub struct PartitionHandle {
    pub index: i32,
    /// Broker leading the partition (as of the handle's view).
    pub leader: i32,
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
    /// This process's incarnation epoch (fences writes of older ones); a
    /// broker fenced while alive registers again and gets a new one.
    broker_epoch: std::sync::atomic::AtomicI64,
    /// Until when this broker may write (its lease, counted on its own
    /// monotonic clock from when the heartbeat was sent, minus a margin).
    lease_until: Mutex<Option<std::time::Instant>>,
    /// Leader epoch at which each partition this broker leads is ready for
    /// writes (its tail rebuilt after a takeover).
    ready: RwLock<HashMap<(Uuid, i32), i32>>,
    /// Takeovers running now.
    taking_over: Mutex<std::collections::HashSet<(Uuid, i32, i32)>>,
    /// Set once startup recovery finished: takeovers run from then on.
    started: std::sync::atomic::AtomicBool,
    /// Set when a controlled shutdown starts: no more heartbeats, and no
    /// registering again after the self-fencing.
    draining: std::sync::atomic::AtomicBool,
    /// Transactions this broker's coordinator is finishing now.
    pub txn_finishing: crate::txn::Finishing,
    /// Writes refused because this broker did not lead the partition, had
    /// no lease, or had not finished taking it over.
    pub not_leader_refusals: std::sync::atomic::AtomicU64,
    /// Request bytes held over all Kafka connections.
    pub request_budget: crate::kafka::budget::RequestBudget,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: crate::kafka::fetch_session::FetchSessionCache,
    /// Client quota enforcement.
    pub quotas: crate::quotas::QuotaManager,
    store: Arc<Store>,
    wal: Arc<Wal>,
    /// Prices for the per-topic cost estimates (`--price-sheet`).
    prices: crate::cost::PriceSheet,
    reader: Arc<TierReader>,
    tier_config: crate::tier::TierConfig,
    tier_metrics: crate::tier::TierMetrics,
    retention_metrics: crate::jobs::RetentionMetrics,
    compaction_metrics: crate::jobs::compaction::CompactionMetrics,
    /// The metadata seam (in-process controller or remote quorum).
    metadata: Metadata,
    /// The view whose side effects (handles, deleted data) have run.
    handled_view: Mutex<Arc<MetaState>>,
    /// Index of `handled_view`: a submitter waits for it before it relies
    /// on the handles.
    handled: watch::Sender<u64>,
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
        require_keys: c.cleanup_policy_compact,
    }
}

/// Applies a command, retrying while no controller quorum answers.
async fn apply_retrying(metadata: &Metadata, cmd: Command) -> Result<CommandOutput, BrokerError> {
    loop {
        match metadata.apply(cmd.clone()).await {
            Ok(out) => return Ok(out),
            Err(MetaError::Unavailable { reason }) => {
                tracing::warn!(reason, "cannot reach the controllers yet; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn unexpected(out: CommandOutput) -> BrokerError {
    BrokerError::Io(std::io::Error::other(format!("unexpected output {out:?}")))
}

/// Bytes read from object storage at a time when a partition's local tail
/// is rebuilt ([`Broker::rebuild_extent`]).
const REBUILD_WINDOW: u64 = 8 << 20;

impl Broker {
    /// Open the data directory: wait for the cluster's metadata, register
    /// (a new incarnation epoch), open and recover every partition log,
    /// then follow the metadata: every later change's side effects run
    /// from what this process applied, whoever proposed it.
    pub async fn open(
        mut config: Config,
        clock: SharedClock,
        store: Arc<Store>,
        metadata: Metadata,
    ) -> Result<Arc<Broker>, BrokerError> {
        let data = config.data_dir.clone();
        std::fs::create_dir_all(&data)?;
        let view = wait_for_cluster(&metadata).await;
        let cluster_id = view.cluster_id.clone();
        // Never write to (or collect garbage in) another cluster's prefix.
        store.claim(&cluster_id).await?;
        if config.node_id_auto {
            match apply_retrying(&metadata, Command::AllocateBrokerId).await? {
                CommandOutput::BrokerIdAllocated { broker_id } => {
                    tracing::info!(broker_id, "broker id handed out by the controllers");
                    config.broker_id = broker_id;
                }
                other => return Err(unexpected(other)),
            }
        }
        let broker_id = config.broker_id;
        let register = Command::RegisterBroker {
            broker_id,
            host: config.advertised_host.clone(),
            port: config.advertised_port() as i32,
            rack: config.rack.clone(),
        };
        let broker_epoch = match apply_retrying(&metadata, register).await? {
            CommandOutput::BrokerRegistered { epoch } => epoch,
            other => return Err(unexpected(other)),
        };
        let view = metadata.view();
        let broker_defaults = config.topic_defaults();
        let (logs, view) = {
            let clock = clock.clone();
            let defaults = broker_defaults.clone();
            tokio::task::spawn_blocking(move || -> Result<_, BrokerError> {
                let logs = LogManager::new(&data, clock)?;
                // Remove logs of topics deleted while we were down.
                for id in logs.topic_dirs() {
                    if view.topic_by_id(&id).is_none() {
                        tracing::info!(topic_id = %id, "removing data of deleted topic");
                        logs.delete_topic(id);
                    }
                }
                // Recover every local log; `recover_tier` then reconciles
                // them with object storage and takes leadership.
                for t in view.topics.values() {
                    let tc = t.effective_config(&defaults);
                    for (i, p) in t.partitions.iter().enumerate() {
                        logs.open(t.topic_id, i as i32, p.log_start_offset, &log_config(&tc))?;
                    }
                }
                Ok((logs, view))
            })
            .await
            .map_err(|e| BrokerError::Io(std::io::Error::other(e.to_string())))??
        };
        let (appended, _) = watch::channel(0u64);
        let (handled, _) = watch::channel(view.applied_index);
        let groups = crate::groups::Coordinator::new(&config);
        let mut wal_config = config.wal_config();
        wal_config.local = local_mode(&config, &store)?;
        tracing::info!(
            mode = if wal_config.local { "local" } else { "object" },
            store = ?store,
            "acks=all durability"
        );
        let wal = Wal::new(wal_config);
        let prices = match &config.price_sheet {
            Some(p) => crate::cost::PriceSheet::load(p).map_err(|e| {
                BrokerError::Io(std::io::Error::other(format!("--price-sheet: {e}")))
            })?,
            None => crate::cost::PriceSheet::default(),
        };
        let reader = TierReader::new(store.clone(), config.cache_bytes);
        let tier_config = config.tier_config();
        let broker = Arc::new(Broker {
            broker_epoch: std::sync::atomic::AtomicI64::new(broker_epoch),
            lease_until: Mutex::new(None),
            ready: RwLock::new(HashMap::new()),
            taking_over: Mutex::new(Default::default()),
            started: std::sync::atomic::AtomicBool::new(false),
            draining: std::sync::atomic::AtomicBool::new(false),
            txn_finishing: Default::default(),
            not_leader_refusals: Default::default(),
            request_budget: crate::kafka::budget::RequestBudget::new(
                config.queued_max_request_bytes,
            ),
            fetch_sessions: crate::kafka::fetch_session::FetchSessionCache::new(
                config.fetch_session_limits(),
                Uuid::new_v4().as_u64_pair().0,
            ),
            quotas: crate::quotas::QuotaManager::new(config.quota_window()),
            store,
            wal,
            prices,
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
            metadata,
            handled_view: Mutex::new(view.clone()),
            handled,
            logs,
            topics: RwLock::new(HashMap::new()),
            topics_by_id: RwLock::new(HashMap::new()),
            appended,
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            broker_defaults,
        });
        broker.rebuild_handles(&view)?;
        broker.groups.set_live_brokers(&view);
        tokio::spawn(broker.clone().follow_metadata());
        Ok(broker)
    }

    /// Runs the side effects of every new metadata view in order.
    async fn follow_metadata(self: Arc<Self>) {
        let mut rx = self.metadata.watch();
        loop {
            if rx.changed().await.is_err() {
                return;
            }
            let view = rx.borrow_and_update().clone();
            let b = self.clone();
            let v = view.clone();
            match tokio::task::spawn_blocking(move || b.on_view(v)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "applying a metadata change locally failed")
                }
                Err(e) => tracing::error!(error = %e, "metadata side-effect task failed"),
            }
            self.handled.send_replace(view.applied_index);
            // Committed ends may have moved: wake long-polls and acks=all.
            self.notify_appended();
        }
    }

    /// Side effects of a new view: delete local data of deleted topics,
    /// rebuild hot-path handles when a topic's shape (partitions, configs,
    /// leaders) changed.
    fn on_view(self: &Arc<Self>, new: Arc<MetaState>) -> Result<(), BrokerError> {
        let old = std::mem::replace(&mut *self.handled_view.lock(), new.clone());
        let mut reshape = false;
        for d in old.topics.diff(&new.topics) {
            match d {
                imbl::ordmap::DiffItem::Add(..) => reshape = true,
                imbl::ordmap::DiffItem::Remove(_, t) => {
                    reshape = true;
                    if new.topic_by_id(&t.topic_id).is_none() {
                        tracing::info!(topic = %t.name, topic_id = %t.topic_id, "topic deleted: removing its local data");
                        self.logs.delete_topic(t.topic_id);
                    }
                }
                imbl::ordmap::DiffItem::Update {
                    old: (_, a),
                    new: (_, b),
                } => {
                    if a.topic_id != b.topic_id {
                        self.logs.delete_topic(a.topic_id);
                    }
                    reshape |= a.topic_id != b.topic_id
                        || a.configs != b.configs
                        || a.partitions.len() != b.partitions.len()
                        || a.partitions
                            .iter()
                            .zip(&b.partitions)
                            .any(|(x, y)| x.leader_epoch != y.leader_epoch || x.leader != y.leader);
                }
            }
        }
        if old.brokers != new.brokers {
            self.groups.set_live_brokers(&new);
        }
        if reshape {
            self.rebuild_handles(&new)?;
            self.reconcile_leadership(&new);
        }
        Ok(())
    }

    /// The price sheet of the cost estimates.
    pub fn prices(&self) -> &crate::cost::PriceSheet {
        &self.prices
    }

    /// Bytes a topic holds in the object store (its extents).
    pub fn stored_bytes(t: &crate::meta::Topic) -> u64 {
        t.partitions
            .iter()
            .flat_map(|p| p.extents.iter())
            .map(|e| e.byte_len)
            .sum()
    }

    /// What a topic has cost so far (this broker's requests).
    pub fn topic_cost(&self, t: &crate::meta::Topic) -> crate::cost::TopicCost {
        let meter = &self.store.cost;
        crate::cost::TopicCost::new(
            meter,
            &meter.topic(t.topic_id),
            Self::stored_bytes(t),
            &self.prices,
        )
    }

    /// Render the per-topic cost metrics (`cost::render`).
    pub fn render_costs(&self, out: &mut String) {
        let meta = self.meta();
        let meter = &self.store.cost;
        meter.retain_topics(|id| meta.topic_by_id(id).is_some());
        let rows: Vec<(String, crate::cost::Usage, u64)> = meter
            .snapshot()
            .into_iter()
            .map(|(payer, u)| match payer {
                crate::cost::Payer::Topic(id) => {
                    let t = meta.topic_by_id(&id);
                    (
                        t.map_or_else(|| id.to_string(), |t| t.name.clone()),
                        u,
                        t.map_or(0, Self::stored_bytes),
                    )
                }
                crate::cost::Payer::Cluster => ("__cluster".to_string(), u, 0),
            })
            .collect();
        crate::cost::render(out, meter, &rows, &self.prices);
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

    /// Commit a WAL object's extents. A commit whose answer was lost
    /// (quorum unavailable) is retried by the caller; a retry that meets
    /// "already committed" for this very object is success.
    pub async fn commit_wal(
        &self,
        key: String,
        size: u64,
        extents: Vec<WalExtent>,
    ) -> Result<(), BrokerError> {
        let r = self
            .submit(Command::CommitWal {
                broker_id: self.broker_id,
                broker_epoch: self.broker_epoch(),
                key: key.clone(),
                size,
                committed_at_ms: self.clock.now_ms(),
                extents: extents.clone(),
            })
            .await;
        match r {
            Err(BrokerError::Meta(
                MetaError::InvalidRequest { .. } | MetaError::OffsetMismatch { .. },
            )) if self.wal_extents_committed(&key, &extents) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Are these extents of object `key` all in the committed manifests?
    fn wal_extents_committed(&self, key: &str, extents: &[WalExtent]) -> bool {
        let meta = self.meta();
        extents.iter().all(|e| {
            let key = e.object.as_deref().unwrap_or(key);
            meta.topic_by_id(&e.topic_id)
                .and_then(|t| t.partitions.get(usize::try_from(e.partition).ok()?))
                .is_none_or(|p| {
                    p.extents
                        .iter()
                        .any(|x| x.key == key && x.base_offset == e.base_offset)
                        || p.committed_end >= e.end_offset && meta.tier.knows(key)
                })
        })
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
                    out.push((t, i, &**pm, ph.clone(), h.clone()));
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
    /// Rebuild, from object storage, the local tails of the partitions the
    /// current view says this broker leads; returns their takeovers.
    async fn rebuild_local_tails(self: &Arc<Self>) -> Result<Vec<LeadPartition>, BrokerError> {
        let meta = self.meta();
        let mut takeover = Vec::new();
        // Only partitions still assigned to this broker: the controller
        // places the others (and moves these if this broker stays away).
        for (t, i, pm, ph, h) in self.partitions_of(&meta) {
            if pm.leader != self.broker_id {
                continue;
            }
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
                    self.rebuild_extent(log, e, from, &h.log_config, REBUILD_WINDOW)
                        .await?;
                }
            }
            takeover.push(LeadPartition {
                topic_id: t.topic_id,
                partition: i as i32,
                expected_epoch: pm.leader_epoch,
                log_end_offset: log.log_end_offset().max(ce),
            });
        }
        Ok(takeover)
    }

    /// Append the batches of one extent at or past offset `from` to a
    /// partition's local log, in windows ([`Broker::extent_windows`]).
    pub(crate) async fn rebuild_extent(
        &self,
        log: &crate::log::partition::PartitionLog,
        e: &crate::meta::tier::Extent,
        from: i64,
        cfg: &crate::log::LogConfig,
        window: u64,
    ) -> Result<(), BrokerError> {
        self.extent_windows(e, from, window, |batches| {
            log.append_committed(batches, cfg)
                .map_err(|err| BrokerError::Io(std::io::Error::other(err.to_string())))
        })
        .await
    }

    /// Hand `each` the whole batches of one extent at or past offset
    /// `from`, in order, reading the object in windows of `window` bytes
    /// ([`REBUILD_WINDOW`]; a whole batch when one is larger): memory stays
    /// bounded however long the extent is (a segment extent, or a
    /// local-mode extent, can span a whole segment).
    async fn extent_windows(
        &self,
        e: &crate::meta::tier::Extent,
        from: i64,
        window: u64,
        mut each: impl FnMut(&[u8]) -> Result<(), BrokerError>,
    ) -> Result<(), BrokerError> {
        use crate::log::batch::{BatchHeader, HEADER_LEN};
        let store = self.reader.store();
        let get = |range: std::ops::Range<u64>| async move {
            store
                .get_range(&e.key, range)
                .await
                .map_err(|err| BrokerError::Io(std::io::Error::other(err.to_string())))
        };
        let corrupt = |at: u64, why: &str| {
            BrokerError::Io(std::io::Error::other(format!(
                "object {} at byte {at}: {why}",
                e.key
            )))
        };
        let end = e.byte_offset + e.byte_len;
        let mut pos = e.byte_offset;
        while pos < end {
            let mut buf = get(pos..end.min(pos + window)).await?;
            // Whole batches in the window; batches before `from` are
            // already local and skipped.
            let (mut skip, mut used) = (0usize, 0usize);
            let mut first_len = None;
            while used + HEADER_LEN <= buf.len() {
                let bh = BatchHeader::parse(&buf[used..]).map_err(|_| corrupt(pos, "bad batch"))?;
                if bh.batch_length < (HEADER_LEN - crate::log::batch::LOG_OVERHEAD) as i32 {
                    return Err(corrupt(pos + used as u64, "bad batch length"));
                }
                let len = bh.total_len();
                first_len.get_or_insert(len);
                if used + len > buf.len() {
                    break;
                }
                if bh.last_offset() < from {
                    skip = used + len;
                }
                used += len;
            }
            if used == 0 {
                // One batch larger than the window: read exactly it.
                let len = first_len.ok_or_else(|| corrupt(pos, "truncated batch header"))? as u64;
                if pos + len > end {
                    return Err(corrupt(pos, "batch past the end of its extent"));
                }
                buf = get(pos..pos + len).await?;
                used = buf.len();
                let bh = BatchHeader::parse(&buf).map_err(|_| corrupt(pos, "bad batch"))?;
                if bh.last_offset() < from {
                    skip = used;
                }
            }
            if skip < used {
                each(&buf[skip..used])?;
            }
            pos += used as u64;
        }
        Ok(())
    }

    pub async fn recover_tier(self: &Arc<Self>) -> Result<(), BrokerError> {
        // The view can be behind the controller (leadership moved while this
        // broker was down or starting): a Lead refused for a moved
        // partition is retried from a newer view, never fatal.
        let mut attempt = 0u32;
        loop {
            let mut handled = self.handled.subscribe();
            let takeover = self.rebuild_local_tails().await?;
            match self.lead(takeover).await {
                Ok(()) => break,
                Err(BrokerError::Meta(
                    e @ (MetaError::FencedLeaderEpoch { .. } | MetaError::NotLeader { .. }),
                )) if attempt < 50 => {
                    attempt += 1;
                    tracing::info!(error = %e, attempt, "leadership moved while recovering; retrying from a newer metadata view");
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_secs(1), handled.changed())
                            .await;
                }
                Err(e) => return Err(e),
            }
        }
        // Re-queue local data the WAL never committed.
        let meta = self.meta();
        for (t, i, pm, ph, _) in self.partitions_of(&meta) {
            if pm.leader != self.broker_id {
                continue;
            }
            self.ready
                .write()
                .insert((t.topic_id, i as i32), pm.leader_epoch);
            let mut off = pm.committed_end;
            let leo = ph.log.log_end_offset();
            ph.log.set_open_txns(&pm.ongoing_txns);
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
                        let mark = ph.log.replay_mark(&bh, &bytes[pos..end]);
                        let mut loc = ph.log.locate(bh.base_offset)?.ok_or_else(|| {
                            LogError::Corrupt(
                                format!("{}-{i}", t.name),
                                format!("batch at {} read but not found", bh.base_offset),
                            )
                        })?;
                        // The first re-committed batch starts a new extent.
                        loc.first_in_segment |= bh.base_offset == pm.committed_end;
                        self.wal.push(
                            crate::wal::Target {
                                topic_id: t.topic_id,
                                partition: i as i32,
                                leader_epoch: ph.leader_epoch,
                            },
                            &bh,
                            r.records.slice(pos..end),
                            loc,
                            mark,
                            None,
                        );
                    }
                    off = bh.last_offset() + 1;
                    pos = end;
                }
            }
        }
        self.started
            .store(true, std::sync::atomic::Ordering::Release);
        // Partitions assigned to this broker meanwhile.
        self.reconcile_leadership(&self.meta());
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
        records: Vec<u8>,
    ) -> Result<crate::log::AppendInfo, crate::log::AppendError> {
        self.append_inner(topic, partition, records, false).await
    }

    /// Writes a transaction's COMMIT or ABORT marker to a partition this
    /// broker leads (WriteTxnMarkers); returns the marker's offset.
    pub async fn append_marker(
        &self,
        topic: &TopicHandle,
        partition: &PartitionHandle,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<i64, crate::log::AppendError> {
        let b = crate::log::batch::build_control(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            self.clock.now_ms(),
        );
        self.append_inner(topic, partition, b.to_vec(), true)
            .await
            .map(|i| i.base_offset)
    }

    /// KIP-890 part 1: a transactional batch is accepted only from the
    /// current epoch of a producer whose ongoing transaction holds this
    /// partition. The AddPartitionsToTxn that added it may still be on its
    /// way to this broker's view: wait for it (bounded).
    async fn verify_txn_write(
        &self,
        topic: &TopicHandle,
        partition: &PartitionHandle,
        h: &crate::log::batch::BatchHeader,
    ) -> Result<(), crate::log::AppendError> {
        use crate::meta::txn::{codes, TxnStatus};
        let key = (topic.name.clone(), partition.index);
        let ok = |m: &MetaState| -> Result<bool, crate::log::AppendError> {
            let Some((id, t)) = m.txns.of_producer(h.producer_id) else {
                return Ok(false);
            };
            if h.producer_epoch < t.producer_epoch {
                return Err(crate::log::AppendError::Txn {
                    code: codes::INVALID_PRODUCER_EPOCH,
                    message: format!(
                        "transactional id {id}: producer epoch {} fenced by {}",
                        h.producer_epoch, t.producer_epoch
                    ),
                });
            }
            Ok(h.producer_epoch == t.producer_epoch
                && t.status == TxnStatus::Ongoing
                && t.partitions.contains(&key))
        };
        if ok(&self.meta())? {
            return Ok(());
        }
        let mut rx = self.metadata.watch();
        let waited = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            loop {
                if rx.changed().await.is_err() {
                    return Ok(false);
                }
                let m = rx.borrow_and_update().clone();
                if ok(&m)? {
                    return Ok(true);
                }
            }
        })
        .await;
        match waited {
            Ok(Ok(true)) => Ok(()),
            Ok(Err(e)) => Err(e),
            _ => Err(crate::log::AppendError::Txn {
                code: codes::INVALID_TXN_STATE,
                message: format!(
                    "producer {} epoch {} has no ongoing transaction holding {}-{}",
                    h.producer_id, h.producer_epoch, topic.name, partition.index
                ),
            }),
        }
    }

    async fn append_inner(
        &self,
        topic: &TopicHandle,
        partition: &PartitionHandle,
        mut records: Vec<u8>,
        internal: bool,
    ) -> Result<crate::log::AppendInfo, crate::log::AppendError> {
        use std::sync::atomic::Ordering::Relaxed;
        if let Err(reason) = self.writable(topic.id, partition) {
            self.not_leader_refusals.fetch_add(1, Relaxed);
            self.metrics.produce_errors.fetch_add(1, Relaxed);
            return Err(crate::log::AppendError::NotLeader {
                partition: format!("{}-{}", topic.name, partition.index),
                reason,
            });
        }
        let mut permit = Some(self.wal.reserve(records.len()).await.map_err(|e| {
            crate::log::AppendError::Log(LogError::Corrupt(topic.name.clone(), e.to_string()))
        })?);
        let target = crate::wal::Target {
            topic_id: topic.id,
            partition: partition.index,
            leader_epoch: partition.leader_epoch,
        };
        if let Ok(h) = crate::log::batch::BatchHeader::parse(&records) {
            if h.is_transactional() && !h.is_control() {
                self.verify_txn_write(topic, partition, &h).await?;
            }
        }
        let wal = &self.wal;
        let result = partition.log.append_with(
            &mut records,
            partition.leader_epoch,
            &topic.log_config,
            internal,
            |bh, data, loc, mark| {
                wal.push(target, bh, data, loc, mark, permit.take());
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
                partition.log.bytes_in.fetch_add(info.bytes as u64, Relaxed);
            }
            Ok(_) => {}
            Err(_) => {
                self.metrics.produce_errors.fetch_add(1, Relaxed);
            }
        }
        result
    }

    /// Wait until offsets below `upto` are committed to object storage;
    /// fails at once when the partition moves away from `leader_epoch`
    /// (default: the epoch of the current handle).
    pub async fn wait_durable(
        &self,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: Option<i32>,
        upto: i64,
        timeout: std::time::Duration,
    ) -> Result<(), crate::wal::WalError> {
        let epoch = leader_epoch
            .or_else(|| {
                self.topic_by_id(&topic_id)
                    .and_then(|h| h.partition(partition).map(|p| p.leader_epoch))
            })
            .unwrap_or(-1);
        self.wal
            .wait_committed(self, topic_id, partition, epoch, upto, timeout)
            .await
    }

    /// This incarnation's epoch.
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Can this broker prove a valid lease now?
    pub fn has_lease(&self) -> bool {
        self.lease_until
            .lock()
            .is_some_and(|t| std::time::Instant::now() < t)
    }

    /// May this broker write to the partition now: it leads it at the
    /// handle's epoch, finished taking it over, and holds a valid lease.
    pub fn writable(&self, topic_id: Uuid, p: &PartitionHandle) -> Result<(), &'static str> {
        if p.leader != self.broker_id {
            return Err("another broker leads it");
        }
        if self.ready.read().get(&(topic_id, p.index)) != Some(&p.leader_epoch) {
            return Err("leadership is being taken over");
        }
        if !self.has_lease() {
            return Err("this broker holds no valid lease");
        }
        Ok(())
    }

    /// Partitions this broker leads and has taken over.
    pub fn partitions_ready(&self) -> usize {
        self.ready.read().len()
    }

    /// Is this broker the cluster's one GC owner (the lowest-id live one)?
    pub fn is_gc_owner(&self) -> bool {
        self.meta()
            .brokers
            .values()
            .find(|b| !b.fenced)
            .is_some_and(|b| b.broker_id == self.broker_id)
    }

    /// Controlled hand-off (SIGTERM, or `strata drain` before it): stop
    /// accepting writes, wait (bounded) until everything appended is
    /// committed, fence this incarnation so the controller moves its
    /// partitions and group coordinators now instead of after the lease,
    /// then wait (bounded) until another live broker leads them. Returns
    /// the partitions this broker still leads (0 when handed off; a single
    /// broker keeps everything and returns at once).
    pub async fn drain(&self) -> usize {
        use std::sync::atomic::Ordering::Release;
        let me = self.broker_id;
        let others = |m: &MetaState| m.brokers.values().any(|b| b.broker_id != me && !b.fenced);
        let led = |m: &MetaState| {
            m.topics
                .values()
                .map(|t| t.partitions.iter().filter(|p| p.leader == me).count())
                .sum::<usize>()
        };
        if !others(&self.meta()) {
            return led(&self.meta()); // nobody to hand over to (a single broker)
        }
        self.draining.store(true, Release);
        // No valid lease: writes are refused from here on.
        *self.lease_until.lock() = None;
        if !self
            .wal
            .wait_empty(std::time::Duration::from_secs(10))
            .await
        {
            tracing::warn!("WAL not empty after 10 s; handing off anyway (acks=all waiters get a retriable error)");
        }
        let fence = Command::FenceBroker {
            broker_id: me,
            broker_epoch: self.broker_epoch(),
        };
        if let Err(e) = self.metadata.submit(fence).await {
            tracing::warn!(error = %e, "could not hand leadership off; it moves when the lease expires");
            return led(&self.meta());
        }
        let mut rx = self.metadata.watch();
        let moved = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            rx.wait_for(|m| !others(m) || led(m) == 0),
        )
        .await;
        match moved {
            Ok(Ok(_)) => tracing::info!("leadership handed off"),
            _ => tracing::warn!("leadership not handed off within 5 s"),
        }
        led(&self.meta())
    }

    /// Has a hand-off started (no more writes, heartbeats or takeovers)?
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Does this broker lead the partition at the handle's epoch and has
    /// it finished taking it over (reads)?
    pub fn leads(&self, topic_id: Uuid, p: &PartitionHandle) -> bool {
        p.leader == self.broker_id
            && self.ready.read().get(&(topic_id, p.index)) == Some(&p.leader_epoch)
    }

    /// Heartbeats the controller leader until shutdown: renews the lease,
    /// and registers again (new incarnation) when this one was fenced.
    pub async fn run_heartbeats(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        use std::time::{Duration, Instant};
        let mut period = Duration::from_millis(500);
        let mut meter = crate::controller::placement::RateMeter::default();
        loop {
            if self.draining.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            let sent = Instant::now();
            let rates = meter.sample(sent, self.led_byte_counters());
            let hb = crate::controller::placement::Heartbeat {
                broker_id: self.broker_id,
                broker_epoch: self.broker_epoch(),
                rates,
            };
            match self.metadata.heartbeat(hb).await {
                Ok(r) if r.granted => {
                    let lease = Duration::from_millis(r.lease_ms);
                    // Safety margin for clock rate differences and the
                    // time the reply took to be acted on.
                    let margin = (lease / 4).min(Duration::from_secs(1));
                    *self.lease_until.lock() = Some(sent + lease - margin);
                    period = (lease / 8).clamp(Duration::from_millis(100), Duration::from_secs(1));
                }
                Ok(_) if self.draining.load(std::sync::atomic::Ordering::Acquire) => return,
                Ok(_) => {
                    tracing::warn!(
                        broker_epoch = self.broker_epoch(),
                        "this broker was fenced; registering again"
                    );
                    *self.lease_until.lock() = None;
                    if let Err(e) = self.reregister().await {
                        tracing::warn!(error = %e, "registering again failed");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "heartbeat not answered"),
            }
            tokio::select! {
                _ = tokio::time::sleep_until((sent + period).into()) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Cumulative bytes appended to each partition this broker leads and
    /// has taken over.
    fn led_byte_counters(&self) -> Vec<((Uuid, i32), u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        // One lock at a time.
        let ready: Vec<((Uuid, i32), i32)> =
            self.ready.read().iter().map(|(k, e)| (*k, *e)).collect();
        let topics = self.topics_by_id.read();
        let mut out = Vec::with_capacity(ready.len());
        for (key, epoch) in ready.iter() {
            let Some(p) = topics.get(&key.0).and_then(|t| t.partition(key.1)) else {
                continue;
            };
            if p.leader == self.broker_id && p.leader_epoch == *epoch {
                out.push((*key, p.log.bytes_in.load(Relaxed)));
            }
        }
        out
    }

    /// A new incarnation after being fenced: register, then take the
    /// partitions still assigned to this broker with new leader epochs.
    async fn reregister(&self) -> Result<(), BrokerError> {
        let out = self
            .submit(Command::RegisterBroker {
                broker_id: self.broker_id,
                host: self.config.advertised_host.clone(),
                port: self.config.advertised_port() as i32,
                rack: self.config.rack.clone(),
            })
            .await?;
        if let CommandOutput::BrokerRegistered { epoch } = out {
            self.broker_epoch
                .store(epoch, std::sync::atomic::Ordering::Release);
        }
        self.ready.write().clear();
        let meta = self.meta();
        let mine: Vec<LeadPartition> = meta
            .topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.leader == self.broker_id)
                    .map(|(i, p)| LeadPartition {
                        topic_id: t.topic_id,
                        partition: i as i32,
                        expected_epoch: p.leader_epoch,
                        log_end_offset: p.committed_end,
                    })
            })
            .collect();
        self.lead(mine).await
    }

    /// Takes leadership of `partitions` with new leader epochs (this
    /// incarnation's own partitions, at start or after registering again).
    async fn lead(&self, partitions: Vec<LeadPartition>) -> Result<(), BrokerError> {
        if partitions.is_empty() {
            return Ok(());
        }
        self.submit(Command::Lead {
            broker_id: self.broker_id,
            broker_epoch: self.broker_epoch(),
            partitions,
        })
        .await
        .map(|_| ())
    }

    /// Starts takeovers for partitions this broker now leads but has not
    /// made ready at their current epoch; forgets partitions it lost.
    fn reconcile_leadership(self: &Arc<Self>, view: &MetaState) {
        if !self.started.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let mut want = Vec::new();
        {
            let mut ready = self.ready.write();
            ready.retain(|(tid, p), epoch| {
                view.topic_by_id(tid)
                    .and_then(|t| t.partitions.get(usize::try_from(*p).ok()?))
                    .is_some_and(|pm| pm.leader == self.broker_id && pm.leader_epoch == *epoch)
            });
            for t in view.topics.values() {
                for (i, p) in t.partitions.iter().enumerate() {
                    let key = (t.topic_id, i as i32);
                    if p.leader == self.broker_id && ready.get(&key) != Some(&p.leader_epoch) {
                        want.push((t.topic_id, i as i32, p.leader_epoch));
                    }
                }
            }
        }
        for (tid, p, epoch) in want {
            if !self.taking_over.lock().insert((tid, p, epoch)) {
                continue;
            }
            let b = self.clone();
            tokio::spawn(async move {
                b.take_over(tid, p, epoch).await;
                b.taking_over.lock().remove(&(tid, p, epoch));
            });
        }
    }

    /// Takes over a partition at `epoch`: drop the local copy, learn
    /// idempotent-producer state from the last segment, rebuild the tail
    /// from the committed WAL extents, then accept writes. Retries while
    /// this broker still leads it at that epoch.
    async fn take_over(self: &Arc<Self>, topic_id: Uuid, partition: i32, epoch: i32) {
        let mut attempt = 0u32;
        loop {
            let meta = self.meta();
            let Some(pm) = meta
                .topic_by_id(&topic_id)
                .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
                .cloned()
            else {
                return;
            };
            if pm.leader != self.broker_id || pm.leader_epoch != epoch {
                return;
            }
            match self.rebuild_partition(topic_id, partition, &pm).await {
                Ok(()) => {
                    self.ready.write().insert((topic_id, partition), epoch);
                    tracing::info!(%topic_id, partition, epoch, committed_end = pm.committed_end, "took over partition leadership");
                    return;
                }
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(%topic_id, partition, epoch, attempt, error = %e, "partition takeover failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(
                        (100u64 << attempt.min(5)).min(3_000),
                    ))
                    .await;
                }
            }
        }
    }

    async fn rebuild_partition(
        &self,
        topic_id: Uuid,
        partition: i32,
        pm: &crate::meta::PartitionMeta,
    ) -> Result<(), BrokerError> {
        let h = self
            .topic_by_id(&topic_id)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition(topic_id.to_string()))?;
        let ph = h.partition(partition).cloned().ok_or_else(|| {
            BrokerError::UnknownTopicOrPartition(format!("{topic_id}-{partition}"))
        })?;
        let last_segment = pm
            .extents
            .iter()
            .rposition(|e| e.kind == ExtentKind::Segment);
        let tail_start = last_segment
            .map(|i| pm.extents[i].end_offset)
            .unwrap_or_else(|| {
                pm.extents
                    .first()
                    .map_or(pm.committed_end, |e| e.base_offset)
            });
        let log = ph.log.clone();
        tokio::task::spawn_blocking(move || log.reset(tail_start))
            .await
            .map_err(|e| BrokerError::Io(std::io::Error::other(e.to_string())))??;
        if let Some(i) = last_segment {
            self.extent_windows(&pm.extents[i], 0, REBUILD_WINDOW, |batches| {
                ph.log.observe_producers(batches);
                Ok(())
            })
            .await?;
        }
        for e in pm.extents.iter().filter(|e| e.end_offset > tail_start) {
            self.rebuild_extent(&ph.log, e, tail_start, &h.log_config, REBUILD_WINDOW)
                .await?;
        }
        ph.log.set_open_txns(&pm.ongoing_txns);
        Ok(())
    }

    /// Broker-level defaults for topic configs (`log.*` equivalents).
    pub fn broker_defaults(&self) -> &BTreeMap<String, String> {
        &self.broker_defaults
    }

    /// The current metadata (a cheap shared snapshot).
    pub fn meta(&self) -> Arc<MetaState> {
        self.metadata.view()
    }

    /// The metadata seam.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Submit a metadata command; returns once this broker has applied it
    /// and run its side effects (handles rebuilt, deleted data removed), so
    /// the caller sees its own change. A refusal is `Err(Meta(..))`.
    pub async fn submit(&self, cmd: Command) -> Result<CommandOutput, BrokerError> {
        let (index, out) = self.metadata.submit(cmd).await?;
        let mut rx = self.handled.subscribe();
        let waited = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            rx.wait_for(|h| *h >= index),
        )
        .await;
        if !matches!(waited, Ok(Ok(_))) {
            return Err(MetaError::Unavailable {
                reason: format!("metadata index {index} not applied locally in time"),
            }
            .into());
        }
        Ok(out?)
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
    pub async fn submit_or_validate(
        &self,
        cmd: Command,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        if validate_only {
            self.validate(cmd)
        } else {
            self.submit(cmd).await.map(|_| ())
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
        self.validate(self.create_topic_cmd(name, partitions, replication_factor, configs))
    }

    /// A CreateTopic with a fresh id, first led by this broker (the
    /// controller's placement spreads the partitions right after).
    fn create_topic_cmd(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Command {
        Command::CreateTopic {
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
            leader: self.broker_id,
            created_at_ms: self.clock.now_ms(),
        }
    }

    /// Rebuild the hot-path topic handles from the metadata view, opening
    /// logs of new partitions.
    fn rebuild_handles(&self, view: &MetaState) -> Result<(), BrokerError> {
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
                    leader: p.leader,
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
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<Uuid, BrokerError> {
        let out = self
            .submit(self.create_topic_cmd(name, partitions, replication_factor, configs))
            .await?;
        match out {
            CommandOutput::TopicCreated { topic_id } => {
                tracing::info!(topic = name, partitions, %topic_id, "created topic");
                Ok(topic_id)
            }
            _ => Ok(Uuid::nil()),
        }
    }

    /// Auto-create a topic on first use, if enabled. Returns the handle.
    pub async fn auto_create(&self, name: &str) -> Option<Arc<TopicHandle>> {
        if let Some(t) = self.topic(name) {
            return Some(t);
        }
        if !self.config.auto_create_topics {
            return None;
        }
        match self
            .create_topic(name, self.config.num_partitions, -1, BTreeMap::new())
            .await
        {
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
    pub async fn allocate_producer_id(&self) -> Result<i64, BrokerError> {
        match self
            .submit(Command::AllocateProducerIds { count: 1 })
            .await?
        {
            CommandOutput::ProducerIdsAllocated { first, .. } => Ok(first),
            other => Err(BrokerError::Io(std::io::Error::other(format!(
                "unexpected output {other:?}"
            )))),
        }
    }

    pub fn partition_count(&self) -> usize {
        self.logs.len()
    }

    /// Graceful shutdown: fsync every log (the metadata is durable in the
    /// controllers' logs).
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        self.logs.sync_all()?;
        Ok(())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }
}

/// Waits until the cluster has an id (the controller leader's first
/// duty), logging while it waits.
async fn wait_for_cluster(metadata: &Metadata) -> Arc<MetaState> {
    let mut rx = metadata.watch();
    let mut waited = 0u32;
    loop {
        let v = rx.borrow_and_update().clone();
        if !v.cluster_id.is_empty() {
            return v;
        }
        match tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return v,
            Err(_) => {
                waited += 5;
                tracing::warn!(
                    waited_s = waited,
                    "waiting for the controller quorum (no cluster metadata yet)"
                );
            }
        }
    }
}
