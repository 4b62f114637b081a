//! The log engine: per-partition logs of RecordBatch v2 bytes on local disk.
//!
//! Layout under the data directory: `logs/<topic-id>/<partition>/` holding
//! `<base-offset>.log` segments with `.index`, `.timeindex` and `.meta` files
//! written when a segment is sealed. The active segment is recovered by a
//! scan on start (torn tail cut, indexes rebuilt, producer state rebuilt).

pub mod batch;
pub mod decode;
pub mod index;
pub mod partition;
pub mod producer;
pub mod segment;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use uuid::Uuid;

pub use partition::{AppendError, AppendInfo, LogConfig, PartitionLog, ReadInfo, SealedSegment};

use crate::clock::SharedClock;

/// Errors of the log engine.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt log {0}: {1}")]
    Corrupt(String, String),
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
}

impl LogError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> LogError {
        LogError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Kafka error code for responses.
    pub fn kafka_code(&self) -> i16 {
        match self {
            LogError::Io { .. } | LogError::Corrupt(..) => 56, // KAFKA_STORAGE_ERROR
            LogError::OffsetOutOfRange { .. } => 1,            // OFFSET_OUT_OF_RANGE
        }
    }
}

/// All partition logs of this broker.
pub struct LogManager {
    root: PathBuf,
    logs: RwLock<HashMap<(Uuid, i32), Arc<PartitionLog>>>,
    clock: SharedClock,
}

impl LogManager {
    pub fn new(data_dir: &Path, clock: SharedClock) -> Result<LogManager, LogError> {
        let root = data_dir.join("logs");
        std::fs::create_dir_all(&root).map_err(|e| LogError::io(&root, e))?;
        Ok(LogManager {
            root,
            logs: RwLock::new(HashMap::new()),
            clock,
        })
    }

    fn dir_for(&self, topic_id: Uuid, partition: i32) -> PathBuf {
        self.root
            .join(topic_id.simple().to_string())
            .join(partition.to_string())
    }

    /// The log of a partition, if open.
    pub fn get(&self, topic_id: Uuid, partition: i32) -> Option<Arc<PartitionLog>> {
        self.logs.read().get(&(topic_id, partition)).cloned()
    }

    /// Open (recovering) or create the log of a partition.
    pub fn open(
        &self,
        topic_id: Uuid,
        partition: i32,
        log_start: i64,
        cfg: &LogConfig,
    ) -> Result<Arc<PartitionLog>, LogError> {
        if let Some(l) = self.get(topic_id, partition) {
            return Ok(l);
        }
        let dir = self.dir_for(topic_id, partition);
        let log = Arc::new(PartitionLog::open(
            &dir,
            log_start,
            cfg,
            self.clock.clone(),
        )?);
        let mut logs = self.logs.write();
        Ok(logs.entry((topic_id, partition)).or_insert(log).clone())
    }

    /// Drop and delete every log of a topic.
    pub fn delete_topic(&self, topic_id: Uuid) {
        self.logs.write().retain(|(t, _), _| *t != topic_id);
        let _ = std::fs::remove_dir_all(self.root.join(topic_id.simple().to_string()));
    }

    /// Topic directories on disk (to clean up topics deleted while down).
    pub fn topic_dirs(&self) -> Vec<Uuid> {
        std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| Uuid::parse_str(&e.file_name().to_string_lossy()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// fsync every log (graceful shutdown).
    pub fn sync_all(&self) -> Result<(), LogError> {
        let logs: Vec<_> = self.logs.read().values().cloned().collect();
        for l in logs {
            l.sync_all()?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.logs.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.logs.read().is_empty()
    }
}

/// Run blocking file work (a timestamp lookup's reads) from async code
/// without stalling a tokio worker: on the multi-threaded runtime the
/// worker hands its other tasks to the rest of the pool first
/// (`block_in_place`); elsewhere (current-thread tests, no runtime) it just
/// runs.
pub fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
