//! The metadata state machine as openraft sees it: applies committed
//! commands with [`MetaState::apply_entry`], publishes a read-only view after
//! each batch, keeps the most recent commands for brokers that follow the
//! log, and writes / installs snapshots.
//!
//! Snapshot file format (`raft/snapshot`): one JSON header line
//! `{"format":"strata-meta-snapshot","version":1,"meta":<SnapshotMeta>}`
//! followed by the JSON of [`MetaState`]. Both are streamed to and from the
//! file on a blocking thread, so building or installing one never holds a
//! second serialized copy in memory.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, EntryPayload, LogId, RaftSnapshotBuilder, StorageError, StorageIOError,
    StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{ControllerError, NodeId, TypeConfig};
use crate::meta::command::ApplyResult;
use crate::meta::{Command, MetaState};

type Entry = openraft::Entry<TypeConfig>;

/// Recent committed commands kept for brokers following the log; a broker
/// further behind gets the whole state instead.
pub const RECENT_COMMANDS: usize = 4096;
const SNAPSHOT_FORMAT: &str = "strata-meta-snapshot";
const SNAPSHOT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    meta: SnapshotMeta<NodeId, BasicNode>,
}

/// A committed command and its log index.
pub type IndexedCommand = (u64, Arc<Command>);

/// What the state machine shares with the rest of the process.
pub struct Shared {
    /// The latest applied state (structurally shared, so cheap to hold).
    pub view: watch::Sender<Arc<MetaState>>,
    recent: Mutex<Recent>,
}

/// The most recent commands, and the newest index no longer among them.
#[derive(Default)]
struct Recent {
    cmds: VecDeque<(u64, Arc<Command>)>,
    /// Commands at or below this index are not kept (evicted, or covered by
    /// a snapshot this node loaded or installed).
    dropped_upto: u64,
}

impl Shared {
    /// Committed commands after index `after`, at most `max`, with the
    /// applied index they bring a follower to; `None` when some command
    /// after `after` is no longer kept (the follower then takes the state).
    pub fn commands_after(&self, after: u64, max: usize) -> Option<(Vec<IndexedCommand>, u64)> {
        let recent = self.recent.lock();
        let applied = self.view.borrow().applied_index;
        if after >= applied {
            return Some((Vec::new(), applied));
        }
        if after < recent.dropped_upto {
            return None;
        }
        let out: Vec<_> = recent
            .cmds
            .iter()
            .filter(|(i, _)| *i > after)
            .take(max)
            .cloned()
            .collect();
        // Cut short: the follower is at the last command sent, not beyond.
        let upto = if out.len() == max {
            out.last().map_or(applied, |(i, _)| *i)
        } else {
            applied
        };
        Some((out, upto))
    }
}

/// openraft's state machine for one controller.
pub struct StateMachine {
    dir: PathBuf,
    state: MetaState,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    shared: Arc<Shared>,
    snapshot_seq: u64,
}

impl StateMachine {
    /// Loads the current snapshot of `dir`, if any.
    pub fn open(dir: &Path) -> Result<(StateMachine, Arc<Shared>), ControllerError> {
        fs::create_dir_all(dir).map_err(|e| ControllerError::io("create", dir, e))?;
        let path = dir.join("snapshot");
        let (state, meta) = match File::open(&path) {
            Ok(f) => {
                let (state, meta) = read_snapshot(f).map_err(|e| ControllerError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                (state, Some(meta))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (MetaState::new(), None),
            Err(e) => return Err(ControllerError::io("open", &path, e)),
        };
        let state_index = state.applied_index;
        let (view, _) = watch::channel(Arc::new(state.clone()));
        let shared = Arc::new(Shared {
            view,
            recent: Mutex::new(Recent {
                cmds: VecDeque::new(),
                dropped_upto: state_index,
            }),
        });
        let sm = StateMachine {
            dir: dir.to_path_buf(),
            state,
            last_applied: meta.as_ref().and_then(|m| m.last_log_id),
            membership: meta.map(|m| m.last_membership).unwrap_or_default(),
            shared: shared.clone(),
            snapshot_seq: 0,
        };
        Ok((sm, shared))
    }

    fn publish(&self) {
        self.shared.view.send_replace(Arc::new(self.state.clone()));
    }
}

fn read_snapshot(f: File) -> io::Result<(MetaState, SnapshotMeta<NodeId, BasicNode>)> {
    let mut r = BufReader::new(f);
    let mut line = String::new();
    // The header is one short line; bound it.
    (&mut r).take(1 << 20).read_line(&mut line)?;
    let h: Header = serde_json::from_str(line.trim_end()).map_err(io::Error::other)?;
    if h.format != SNAPSHOT_FORMAT || h.version != SNAPSHOT_VERSION {
        return Err(io::Error::other(format!(
            "unsupported snapshot format {} version {}",
            h.format, h.version
        )));
    }
    let state: MetaState = serde_json::from_reader(r).map_err(io::Error::other)?;
    state.check_invariants().map_err(io::Error::other)?;
    Ok((state, h.meta))
}

use std::io::Read as _;

fn write_snapshot(
    path: &Path,
    state: &MetaState,
    meta: &SnapshotMeta<NodeId, BasicNode>,
) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut w = BufWriter::new(File::create(&tmp)?);
        let h = Header {
            format: SNAPSHOT_FORMAT.into(),
            version: SNAPSHOT_VERSION,
            meta: meta.clone(),
        };
        serde_json::to_writer(&mut w, &h).map_err(io::Error::other)?;
        w.write_all(b"\n")?;
        serde_json::to_writer(&mut w, state).map_err(io::Error::other)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

fn sm_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&io::Error::other(e.to_string())).into()
}

/// Builds a snapshot from a copy of the state (cheap: structurally shared).
pub struct Builder {
    dir: PathBuf,
    state: MetaState,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                self.last_applied.map(|l| l.index).unwrap_or(0),
                self.seq
            ),
        };
        let path = self.dir.join("snapshot");
        let state = self.state.clone();
        let m = meta.clone();
        let p = path.clone();
        tokio::task::spawn_blocking(move || write_snapshot(&p, &state, &m))
            .await
            .map_err(sm_err)?
            .map_err(sm_err)?;
        tracing::info!(index = ?self.last_applied.map(|l| l.index), "controller snapshot written");
        let f = tokio::fs::File::open(&path).await.map_err(sm_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(f),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResult>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let mut recent = Vec::new();
        for e in entries {
            let index = e.log_id.index;
            self.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {
                    self.state.applied_index = index;
                    out.push(Ok(crate::meta::CommandOutput::ConfigsAltered));
                }
                EntryPayload::Membership(m) => {
                    self.state.applied_index = index;
                    self.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Ok(crate::meta::CommandOutput::ConfigsAltered));
                }
                EntryPayload::Normal(cmd) => {
                    let keep = Arc::new(cmd.clone());
                    let r = self.state.apply_entry(index, cmd);
                    if let Err(err) = &r {
                        tracing::debug!(index, error = %err, "command refused");
                    }
                    recent.push((index, keep));
                    out.push(r);
                }
            }
        }
        {
            let mut q = self.shared.recent.lock();
            for r in recent {
                if q.cmds.len() >= RECENT_COMMANDS {
                    if let Some((i, _)) = q.cmds.pop_front() {
                        q.dropped_upto = i;
                    }
                }
                q.cmds.push_back(r);
            }
        }
        self.publish();
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        Builder {
            dir: self.dir.clone(),
            state: self.state.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            seq: self.snapshot_seq,
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<tokio::fs::File>, StorageError<NodeId>> {
        let path = self.dir.join("snapshot.recv");
        let f = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .await
            .map_err(sm_err)?;
        Ok(Box::new(f))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<NodeId>> {
        let f = snapshot.into_std().await;
        let recv = self.dir.join("snapshot.recv");
        let path = self.dir.join("snapshot");
        let (state, _) = tokio::task::spawn_blocking(move || {
            f.sync_all()?;
            let r = File::open(&recv)?;
            let loaded = read_snapshot(r)?;
            fs::rename(&recv, &path)?;
            File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()?;
            Ok::<_, io::Error>(loaded)
        })
        .await
        .map_err(sm_err)?
        .map_err(sm_err)?;
        tracing::info!(index = ?meta.last_log_id.map(|l| l.index), "installed controller snapshot");
        self.state = state;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        if let Some(l) = meta.last_log_id {
            self.state.applied_index = l.index;
        }
        // Commands before the snapshot are no longer known here.
        {
            let mut q = self.shared.recent.lock();
            q.cmds.clear();
            q.dropped_upto = self.state.applied_index;
        }
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let path = self.dir.join("snapshot");
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(sm_err(e)),
        };
        let p = path.clone();
        let meta = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(f).take(1 << 20).read_line(&mut line)?;
            let h: Header = serde_json::from_str(line.trim_end()).map_err(io::Error::other)?;
            Ok::<_, io::Error>(h.meta)
        })
        .await
        .map_err(sm_err)?
        .map_err(sm_err)?;
        let f = tokio::fs::File::open(&p).await.map_err(sm_err)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(f),
        }))
    }
}
