//! The controller's Raft log and vote on local disk.
//!
//! Files under the controller's `raft/` directory:
//! - `log`: records `[u32 magic][u32 len][u32 crc32c(len ++ payload)][payload]`,
//!   payload = JSON of one `openraft::Entry`. Appends go to one writer
//!   thread that writes every queued record, fdatasyncs once (group commit)
//!   and only then reports the write done to openraft.
//! - `vote`: the last persisted vote (written to a tmp file, fsynced,
//!   renamed, directory fsynced) before openraft relies on it.
//! - `purged`: the last purged log id, written the same way before the
//!   purged prefix is dropped from `log`.
//!
//! Recovery: a torn tail (an incomplete or damaged last record with no valid
//! record after it) is cut. A damaged record *followed by* a valid record is
//! corruption in the middle of the log: committed entries may be gone, so the
//! node refuses to start and names the file, byte and what to do, instead of
//! dropping them silently.
//!
//! Every entry not yet purged is also kept in memory (the log is purged
//! behind snapshots, so that is bounded by the snapshot policy).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{LogId, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::RwLock;

use super::{ControllerError, NodeId, TypeConfig};

type Entry = openraft::Entry<TypeConfig>;

const RECORD_MAGIC: u32 = 0x5354_524c; // "STRL"
const RECORD_HEADER: usize = 12;
/// A record longer than this is damage, never an allocation.
pub const MAX_ENTRY_BYTES: usize = 128 * 1024 * 1024;

fn encode(entry: &Entry) -> io::Result<Vec<u8>> {
    let payload = serde_json::to_vec(entry).map_err(io::Error::other)?;
    if payload.len() > MAX_ENTRY_BYTES {
        return Err(io::Error::other(format!(
            "log entry of {} bytes exceeds {MAX_ENTRY_BYTES}",
            payload.len()
        )));
    }
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32c::crc32c(&len);
    crc = crc32c::crc32c_append(crc, &payload);
    let mut buf = Vec::with_capacity(RECORD_HEADER + payload.len());
    buf.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(&payload);
    Ok(buf)
}

/// Parses the record at `data[pos..]`: `Some((entry, next_pos))` if it is
/// whole and intact.
fn decode_at(data: &[u8], pos: usize) -> Option<(Entry, usize)> {
    let h = data.get(pos..pos + RECORD_HEADER)?;
    if u32::from_le_bytes([h[0], h[1], h[2], h[3]]) != RECORD_MAGIC {
        return None;
    }
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
    if len > MAX_ENTRY_BYTES {
        return None;
    }
    let crc = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    let payload = data.get(pos + RECORD_HEADER..pos + RECORD_HEADER + len)?;
    let mut actual = crc32c::crc32c(&h[4..8]);
    actual = crc32c::crc32c_append(actual, payload);
    if actual != crc {
        return None;
    }
    let entry: Entry = serde_json::from_slice(payload).ok()?;
    Some((entry, pos + RECORD_HEADER + len))
}

/// Writes `bytes` to `path` durably: tmp file, fsync, rename, dir fsync.
pub(crate) fn write_file_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A small JSON value with a crc32c suffix line, so damage is detected.
pub(crate) fn write_checked_json<T: serde::Serialize>(path: &Path, v: &T) -> io::Result<()> {
    let json = serde_json::to_vec(v).map_err(io::Error::other)?;
    let mut buf = json.clone();
    buf.extend_from_slice(format!("\n{:08x}\n", crc32c::crc32c(&json)).as_bytes());
    write_file_synced(path, &buf)
}

pub(crate) fn read_checked_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, ControllerError> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ControllerError::io("read", path, e)),
    };
    let corrupt = |why: &str| ControllerError::Corrupt {
        path: path.to_path_buf(),
        reason: why.to_string(),
    };
    let text = std::str::from_utf8(&data).map_err(|_| corrupt("not UTF-8"))?;
    let mut lines = text.trim_end().rsplitn(2, '\n');
    let crc = lines.next().ok_or_else(|| corrupt("empty"))?;
    let json = lines.next().ok_or_else(|| corrupt("no checksum line"))?;
    if format!("{:08x}", crc32c::crc32c(json.as_bytes())) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    serde_json::from_str(json)
        .map(Some)
        .map_err(|e| corrupt(&format!("does not decode: {e}")))
}

enum WriteOp {
    Append {
        records: Vec<u8>,
        offsets: Vec<(u64, u64)>,
        callback: LogFlushed<TypeConfig>,
    },
    Truncate {
        index: u64,
        done: tokio::sync::oneshot::Sender<io::Result<()>>,
    },
    Purge {
        upto: LogId<NodeId>,
        done: tokio::sync::oneshot::Sender<io::Result<()>>,
    },
}

/// The in-memory copy of the log, shared by the store and its readers.
#[derive(Default)]
struct Mem {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId<NodeId>>,
}

/// openraft's log storage for one controller.
#[derive(Clone)]
pub struct LogStore {
    dir: PathBuf,
    mem: Arc<RwLock<Mem>>,
    vote: Arc<RwLock<Option<Vote<NodeId>>>>,
    writer: std::sync::mpsc::Sender<WriteOp>,
}

/// State of the writer thread: the open log and where each entry starts.
struct Writer {
    path: PathBuf,
    purged_path: PathBuf,
    file: File,
    len: u64,
    offsets: BTreeMap<u64, u64>,
}

impl Writer {
    fn run(mut self, rx: std::sync::mpsc::Receiver<WriteOp>) {
        while let Ok(op) = rx.recv() {
            // Group commit: write every append queued now, fsync once.
            let mut pending = vec![op];
            while let Ok(more) = rx.try_recv() {
                pending.push(more);
            }
            let mut callbacks = Vec::new();
            let mut result: io::Result<()> = Ok(());
            for op in pending {
                match op {
                    WriteOp::Append {
                        records,
                        offsets,
                        callback,
                    } => {
                        if result.is_ok() {
                            result = self.file.write_all(&records);
                            for (index, rel) in offsets {
                                self.offsets.insert(index, self.len + rel);
                            }
                            self.len += records.len() as u64;
                        }
                        callbacks.push(callback);
                    }
                    WriteOp::Truncate { index, done } => {
                        let r = result
                            .as_ref()
                            .map_err(|e| io::Error::new(e.kind(), e.to_string()))
                            .and_then(|()| self.flush_callbacks(&mut callbacks))
                            .and_then(|()| self.truncate(index));
                        let _ = done.send(r);
                    }
                    WriteOp::Purge { upto, done } => {
                        let r = result
                            .as_ref()
                            .map_err(|e| io::Error::new(e.kind(), e.to_string()))
                            .and_then(|()| self.flush_callbacks(&mut callbacks))
                            .and_then(|()| self.purge(upto));
                        let _ = done.send(r);
                    }
                }
            }
            let r = result.and_then(|()| self.flush_callbacks(&mut callbacks));
            if let Err(e) = r {
                tracing::error!(path = %self.path.display(), error = %e, "raft log write failed");
                for cb in callbacks.drain(..) {
                    cb.log_io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                }
                // openraft stops this node on a log I/O error; later ops
                // fail the same way.
            }
        }
    }

    fn flush_callbacks(&mut self, callbacks: &mut Vec<LogFlushed<TypeConfig>>) -> io::Result<()> {
        if callbacks.is_empty() {
            return Ok(());
        }
        self.file.sync_data()?;
        for cb in callbacks.drain(..) {
            cb.log_io_completed(Ok(()));
        }
        Ok(())
    }

    fn truncate(&mut self, index: u64) -> io::Result<()> {
        let Some(&at) = self.offsets.range(index..).next().map(|(_, o)| o) else {
            return Ok(());
        };
        self.file.set_len(at)?;
        self.file.sync_all()?;
        self.len = at;
        self.offsets.split_off(&index);
        Ok(())
    }

    /// Records the purge durably, then rewrites the log without the purged
    /// prefix once that prefix is at least half of the file.
    fn purge(&mut self, upto: LogId<NodeId>) -> io::Result<()> {
        write_checked_json(&self.purged_path, &upto)?;
        let keep = self.offsets.split_off(&(upto.index + 1));
        let cut = keep.values().next().copied().unwrap_or(self.len);
        self.offsets = keep;
        if cut == 0 || cut < self.len / 2 {
            return Ok(());
        }
        let mut data = Vec::new();
        File::open(&self.path)?.read_to_end(&mut data)?;
        let tail = data.get(cut as usize..).unwrap_or_default();
        write_file_synced(&self.path, tail)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.len = tail.len() as u64;
        for o in self.offsets.values_mut() {
            *o -= cut;
        }
        Ok(())
    }
}

fn sio(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

impl LogStore {
    /// Opens (creating) the log in `dir`, recovering it as described in the
    /// module docs.
    pub fn open(dir: &Path) -> Result<LogStore, ControllerError> {
        fs::create_dir_all(dir).map_err(|e| ControllerError::io("create", dir, e))?;
        let path = dir.join("log");
        let purged_path = dir.join("purged");
        let last_purged: Option<LogId<NodeId>> = read_checked_json(&purged_path)?;
        let vote: Option<Vote<NodeId>> = read_checked_json(&dir.join("vote"))?;
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(ControllerError::io("read", &path, e)),
        };
        let mut entries = BTreeMap::new();
        let mut offsets = BTreeMap::new();
        let mut pos = 0usize;
        while pos < data.len() {
            match decode_at(&data, pos) {
                Some((entry, next)) => {
                    let index = entry.log_id.index;
                    if last_purged.is_none_or(|p| index > p.index) {
                        offsets.insert(index, pos as u64);
                        entries.insert(index, entry);
                    }
                    pos = next;
                }
                None => {
                    // Is there any intact record after the damage?
                    let later = (pos + 1..data.len().saturating_sub(RECORD_HEADER - 1))
                        .find(|&p| decode_at(&data, p).is_some());
                    if let Some(later) = later {
                        return Err(ControllerError::Corrupt {
                            path: path.clone(),
                            reason: format!(
                                "damaged record at byte {pos} followed by intact records at byte {later}: \
                                 committed entries may be lost, so this node will not start. On a single \
                                 node restore the meta directory from a backup; in a quorum remove this node \
                                 (`strata controller remove --node-id N`) and add a fresh one with a new id"
                            ),
                        });
                    }
                    tracing::warn!(path = %path.display(), position = pos, "cutting torn raft log tail at byte {pos}");
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|e| ControllerError::io("open", &path, e))?;
                    f.set_len(pos as u64)
                        .and_then(|()| f.sync_all())
                        .map_err(|e| ControllerError::io("truncate", &path, e))?;
                    break;
                }
            }
        }
        let len = pos as u64;
        // Entries must be contiguous; a gap means lost records.
        let mut expect = last_purged.map(|p| p.index + 1);
        for &i in entries.keys() {
            if expect.is_some_and(|e| e != i) {
                return Err(ControllerError::Corrupt {
                    path: path.clone(),
                    reason: format!("log jumps from {} to entry {i}", expect.unwrap_or(0)),
                });
            }
            expect = Some(i + 1);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| ControllerError::io("open", &path, e))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = Writer {
            path: path.clone(),
            purged_path,
            file,
            len,
            offsets,
        };
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| ControllerError::io("spawn log writer", &path, e))?;
        Ok(LogStore {
            dir: dir.to_path_buf(),
            mem: Arc::new(RwLock::new(Mem {
                entries,
                last_purged,
            })),
            vote: Arc::new(RwLock::new(vote)),
            writer: tx,
        })
    }

    /// Is there nothing on disk yet (never initialized or joined)?
    pub fn is_empty(&self) -> bool {
        let m = self.mem.read();
        m.entries.is_empty() && m.last_purged.is_none() && self.vote.read().is_none()
    }

    /// Index of the last entry in the log (0 when empty).
    pub fn last_index(&self) -> u64 {
        let m = self.mem.read();
        m.entries
            .keys()
            .next_back()
            .copied()
            .or(m.last_purged.map(|p| p.index))
            .unwrap_or(0)
    }

    async fn op<F>(&self, make: F) -> Result<(), StorageError<NodeId>>
    where
        F: FnOnce(tokio::sync::oneshot::Sender<io::Result<()>>) -> WriteOp,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(make(tx))
            .map_err(|_| sio(io::Error::other("raft log writer stopped")))?;
        rx.await
            .map_err(|_| sio(io::Error::other("raft log writer stopped")))?
            .map_err(sio)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        let m = self.mem.read();
        Ok(m.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let m = self.mem.read();
        let last = m.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: m.last_purged,
            last_log_id: last.or(m.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let path = self.dir.join("vote");
        let v = *vote;
        tokio::task::spawn_blocking(move || write_checked_json(&path, &v))
            .await
            .map_err(|e| sio(io::Error::other(e.to_string())))?
            .map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        *self.vote.write() = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(*self.vote.read())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut records = Vec::new();
        let mut offsets = Vec::new();
        {
            let mut m = self.mem.write();
            for e in entries {
                offsets.push((e.log_id.index, records.len() as u64));
                records.extend_from_slice(&encode(&e).map_err(sio)?);
                m.entries.insert(e.log_id.index, e);
            }
        }
        self.writer
            .send(WriteOp::Append {
                records,
                offsets,
                callback,
            })
            .map_err(|_| sio(io::Error::other("raft log writer stopped")))
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.mem.write().entries.split_off(&log_id.index);
        let index = log_id.index;
        self.op(|done| WriteOp::Truncate { index, done }).await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.op(|done| WriteOp::Purge { upto: log_id, done })
            .await?;
        let mut m = self.mem.write();
        let keep = m.entries.split_off(&(log_id.index + 1));
        m.entries = keep;
        m.last_purged = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(crate::meta::Command::AllocateProducerIds {
                count: index as i64 + 1,
            }),
        }
    }

    fn write_raw(dir: &Path, n: u64) -> Vec<usize> {
        let mut data = Vec::new();
        let mut starts = Vec::new();
        for i in 1..=n {
            starts.push(data.len());
            data.extend_from_slice(&encode(&entry(i)).unwrap());
        }
        starts.push(data.len());
        fs::write(dir.join("log"), &data).unwrap();
        starts
    }

    fn indexes(s: &LogStore) -> Vec<u64> {
        s.mem.read().entries.keys().copied().collect()
    }

    #[test]
    fn torn_tail_at_every_byte_is_cut() {
        let src = tempfile::tempdir().unwrap();
        let starts = write_raw(src.path(), 4);
        let data = fs::read(src.path().join("log")).unwrap();
        for cut in starts[3]..starts[4] {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("log"), &data[..cut]).unwrap();
            let s = LogStore::open(dir.path()).unwrap();
            assert_eq!(indexes(&s), vec![1, 2, 3], "cut at {cut}");
            assert_eq!(
                fs::metadata(dir.path().join("log")).unwrap().len(),
                starts[3] as u64
            );
        }
    }

    #[test]
    fn damaged_last_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let starts = write_raw(dir.path(), 3);
        let mut data = fs::read(dir.path().join("log")).unwrap();
        data[starts[2] + RECORD_HEADER + 3] ^= 0x10;
        fs::write(dir.path().join("log"), &data).unwrap();
        let s = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&s), vec![1, 2]);
    }

    #[test]
    fn damage_in_the_middle_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let starts = write_raw(dir.path(), 5);
        let mut data = fs::read(dir.path().join("log")).unwrap();
        data[starts[1] + RECORD_HEADER + 2] ^= 0x01;
        fs::write(dir.path().join("log"), &data).unwrap();
        let e = LogStore::open(dir.path()).err().expect("must refuse");
        let msg = e.to_string();
        assert!(matches!(e, ControllerError::Corrupt { .. }), "{msg}");
        assert!(msg.contains(&format!("byte {}", starts[1])), "{msg}");
        // Nothing was cut.
        assert_eq!(fs::read(dir.path().join("log")).unwrap(), data);
        // A damaged length field in the middle is caught too.
        let mut data = fs::read(dir.path().join("log")).unwrap();
        data[starts[1] + RECORD_HEADER + 2] ^= 0x01;
        data[starts[2] + 5] = 0xff;
        fs::write(dir.path().join("log"), &data).unwrap();
        assert!(LogStore::open(dir.path()).is_err());
    }

    #[test]
    fn oversized_length_does_not_allocate() {
        let dir = tempfile::tempdir().unwrap();
        let starts = write_raw(dir.path(), 2);
        let mut data = fs::read(dir.path().join("log")).unwrap();
        data.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
        data.extend_from_slice(&u32::MAX.to_le_bytes());
        data.extend_from_slice(&[0; 4]);
        fs::write(dir.path().join("log"), &data).unwrap();
        let s = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&s), vec![1, 2]);
        assert_eq!(
            fs::metadata(dir.path().join("log")).unwrap().len(),
            starts[2] as u64
        );
    }

    #[test]
    fn corrupt_vote_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_checked_json(&dir.path().join("vote"), &Vote::<NodeId>::new(3, 1)).unwrap();
        let s = LogStore::open(dir.path()).unwrap();
        assert_eq!(*s.vote.read(), Some(Vote::new(3, 1)));
        drop(s);
        let mut v = fs::read(dir.path().join("vote")).unwrap();
        v[2] ^= 0x20;
        fs::write(dir.path().join("vote"), &v).unwrap();
        assert!(matches!(
            LogStore::open(dir.path()),
            Err(ControllerError::Corrupt { .. })
        ));
    }
}
