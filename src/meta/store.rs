//! Durable local persistence of the metadata state machine.
//!
//! Files in the store's directory:
//! - `meta.log`: a 20-byte header (`STRMLOG1`, u64 LE base index, u32 LE
//!   crc32c of the preceding 16 bytes) followed by records
//!   `[u32 LE len][u32 LE crc32c(payload)][payload = JSON of Command]`.
//!   Record `i` (1-based) of a log with base `b` is command number `b + i`.
//! - `meta.snapshot`: one record of the same framing whose payload is the JSON
//!   of `MetaState` (which carries `applied_index`). Written as a tmp file,
//!   fsynced, renamed, then the directory fsynced.
//! - `meta.lock`: held with an exclusive file lock while the store is open,
//!   so two processes never append to the same log.
//!
//! The base index in the log header is what makes snapshot + truncation
//! crash-safe: if we crash after the snapshot was renamed but before the log
//! was replaced, replay skips the records the snapshot already covers.
//! A torn tail (a damaged last record with nothing intact after it) is cut
//! with a warning naming the byte position; a damaged record followed by an
//! intact one is corruption and refuses to open, because cutting there would
//! drop acknowledged commands.
//!
//! Since the Raft controller, this store is only read: it is how metadata of
//! an earlier release is imported (`controller::upgrade`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::command::{Command, CommandOutput};
use super::error::MetaError;
use super::state::MetaState;

/// Records longer than this are treated as corruption: a length read from
/// disk must never drive an unbounded allocation.
pub const MAX_RECORD_LEN: usize = 64 * 1024 * 1024;
/// Default number of accepted commands between snapshots.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1024;

const LOG_FILE: &str = "meta.log";
const LOG_TMP: &str = "meta.log.tmp";
const SNAPSHOT_FILE: &str = "meta.snapshot";
const SNAPSHOT_TMP: &str = "meta.snapshot.tmp";
const LOCK_FILE: &str = "meta.lock";
const LOG_MAGIC: &[u8; 8] = b"STRMLOG1";
const LOG_HEADER_LEN: u64 = 20;
const RECORD_HEADER_LEN: usize = 8;

/// The metadata state plus its append-only, fsynced command log and snapshots.
#[derive(Debug)]
pub struct MetaStore {
    dir: PathBuf,
    state: MetaState,
    /// Append handle of `meta.log` (opened in append mode so a rolled-back
    /// partial write cannot leave a hole).
    log: File,
    /// Length of `meta.log` up to the end of the last good record.
    log_len: u64,
    /// Records in the current `meta.log` (including ones a snapshot covers).
    log_records: u64,
    snapshot_every: u64,
    /// Set when an I/O failure left the files in a state we could not restore.
    poisoned: Option<String>,
    _lock: File,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MetaError + 'a {
    move |source| MetaError::Io {
        op: op.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, reason: String) -> MetaError {
    MetaError::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}

fn encode_record(payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
    // Callers bound payload.len() by MAX_RECORD_LEN (or check it), so it fits.
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    buf.extend_from_slice(payload);
    buf
}

fn log_header(base_index: u64) -> [u8; LOG_HEADER_LEN as usize] {
    let mut h = [0u8; LOG_HEADER_LEN as usize];
    h[..8].copy_from_slice(LOG_MAGIC);
    h[8..16].copy_from_slice(&base_index.to_le_bytes());
    let crc = crc32c::crc32c(&h[..16]);
    h[16..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn remove_if_exists(path: &Path) -> Result<(), MetaError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), MetaError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("directory fsync", dir))
}

/// How reading one log record ended.
enum Next {
    Record(Command, u64),
    End,
    /// Torn or corrupt record at this position: cut here.
    Bad(String),
}

impl MetaStore {
    /// Opens (creating if needed) the store in `dir`, snapshotting every
    /// [`DEFAULT_SNAPSHOT_EVERY`] accepted commands.
    pub fn open(dir: &Path) -> Result<MetaStore, MetaError> {
        MetaStore::open_with(dir, DEFAULT_SNAPSHOT_EVERY)
    }

    /// Opens the store, snapshotting (and truncating the log) after every
    /// `snapshot_every` accepted commands; 0 disables automatic snapshots.
    ///
    /// Loads the snapshot, replays the log records it does not cover, and
    /// cuts a torn or corrupt log tail.
    pub fn open_with(dir: &Path, snapshot_every: u64) -> Result<MetaStore, MetaError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open lock", &lock_path))?;
        lock.try_lock().map_err(|e| match e {
            fs::TryLockError::WouldBlock => MetaError::Io {
                op: "lock (is another process using this store?)".into(),
                path: lock_path.clone(),
                source: io::Error::from(io::ErrorKind::WouldBlock),
            },
            fs::TryLockError::Error(source) => MetaError::Io {
                op: "lock".into(),
                path: lock_path.clone(),
                source,
            },
        })?;
        // Leftovers of a crash mid-write; the renamed files are the truth.
        remove_if_exists(&dir.join(SNAPSHOT_TMP))?;
        remove_if_exists(&dir.join(LOG_TMP))?;

        let mut state = read_snapshot(&dir.join(SNAPSHOT_FILE))?.unwrap_or_default();
        let snap_index = state.applied_index;

        let log_path = dir.join(LOG_FILE);
        let existing_len = match fs::metadata(&log_path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err("stat", &log_path)(e)),
        };
        let (log, log_len, log_records) = if existing_len == 0 {
            // Missing or empty (never got a header): nothing to replay.
            (create_log(dir, snap_index)?, LOG_HEADER_LEN, 0)
        } else {
            let (end_index, log_len, log_records) = replay(&log_path, &mut state, snap_index)?;
            if end_index < snap_index {
                // The snapshot covers more than the log holds: start a log
                // whose numbering continues from the snapshot.
                (create_log(dir, snap_index)?, LOG_HEADER_LEN, 0)
            } else {
                let log = OpenOptions::new()
                    .append(true)
                    .open(&log_path)
                    .map_err(io_err("open", &log_path))?;
                (log, log_len, log_records)
            }
        };
        Ok(MetaStore {
            dir: dir.to_path_buf(),
            state,
            log,
            log_len,
            log_records,
            snapshot_every,
            poisoned: None,
            _lock: lock,
        })
    }

    /// The current state (every command in it is durable).
    pub fn state(&self) -> &MetaState {
        &self.state
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checks, persists (append + fsync), then applies `cmd`.
    ///
    /// Refused commands are not written. The new state becomes visible only
    /// after the record is durable; if writing fails the state is unchanged
    /// and [`MetaError::Io`] is returned.
    pub fn submit(&mut self, cmd: Command) -> Result<CommandOutput, MetaError> {
        self.check_usable()?;
        self.state.check(&cmd)?;
        let payload = serde_json::to_vec(&cmd).map_err(|e| MetaError::InvalidRequest {
            reason: format!("command does not serialize: {e}"),
        })?;
        if payload.len() > MAX_RECORD_LEN {
            return Err(MetaError::InvalidRequest {
                reason: format!(
                    "command is {} bytes, more than the {MAX_RECORD_LEN} a log record may hold",
                    payload.len()
                ),
            });
        }
        let record = encode_record(&payload);
        self.append(&record)?;
        self.log_len += record.len() as u64;
        self.log_records += 1;
        let out = self.state.apply_checked(cmd);
        if self.snapshot_every > 0 && self.log_records >= self.snapshot_every {
            // The command is already durable, so a failed snapshot only
            // delays truncation; the next submit tries again.
            if let Err(e) = self.snapshot_now() {
                tracing::warn!(error = %e, dir = %self.dir.display(), "meta snapshot failed");
            }
        }
        Ok(out)
    }

    /// Writes a snapshot of the current state and replaces the log by an
    /// empty one whose numbering continues after it.
    pub fn snapshot_now(&mut self) -> Result<(), MetaError> {
        self.check_usable()?;
        self.write_snapshot()?;
        self.rotate_log()
    }

    fn check_usable(&self) -> Result<(), MetaError> {
        match &self.poisoned {
            Some(reason) => Err(MetaError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn append(&mut self, record: &[u8]) -> Result<(), MetaError> {
        let path = self.dir.join(LOG_FILE);
        let res = self
            .log
            .write_all(record)
            .map_err(io_err("append", &path))
            .and_then(|()| self.log.sync_data().map_err(io_err("fsync", &path)));
        if let Err(e) = res {
            // A partial record left in place would hide every later record
            // from replay, so cut back to the last good record.
            let undo = self
                .log
                .set_len(self.log_len)
                .and_then(|()| self.log.sync_data());
            if let Err(u) = undo {
                self.poisoned = Some(format!("{e}; rolling back failed too: {u}"));
            }
            return Err(e);
        }
        Ok(())
    }

    fn write_snapshot(&self) -> Result<(), MetaError> {
        let path = self.dir.join(SNAPSHOT_FILE);
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let json = serde_json::to_vec(&self.state)
            .map_err(|e| corrupt(&path, format!("state does not serialize: {e}")))?;
        if u32::try_from(json.len()).is_err() {
            return Err(corrupt(
                &path,
                format!("snapshot of {} bytes is too large", json.len()),
            ));
        }
        let buf = encode_record(&json);
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(&buf).map_err(io_err("snapshot write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
        // Until the rename is durable the old log must stay: it is what
        // recovery would pair with the old snapshot.
        sync_dir(&self.dir)
    }

    fn rotate_log(&mut self) -> Result<(), MetaError> {
        let new_log = create_log_tmp(&self.dir, self.state.applied_index)?;
        let tmp = self.dir.join(LOG_TMP);
        let path = self.dir.join(LOG_FILE);
        fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
        // From here `meta.log` names the new file; appending to the old
        // (now unlinked) handle would lose commands.
        self.log = new_log;
        self.log_len = LOG_HEADER_LEN;
        self.log_records = 0;
        if let Err(e) = sync_dir(&self.dir) {
            // After a crash the old log could reappear without the commands
            // appended to the new one; stop accepting until reopened.
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        Ok(())
    }
}

/// Writes `meta.log.tmp` with just a header, fsynced, open for appending.
fn create_log_tmp(dir: &Path, base_index: u64) -> Result<File, MetaError> {
    let tmp = dir.join(LOG_TMP);
    remove_if_exists(&tmp)?;
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    f.write_all(&log_header(base_index))
        .map_err(io_err("write header", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    Ok(f)
}

/// Atomically replaces `meta.log` by an empty log starting after `base_index`.
fn create_log(dir: &Path, base_index: u64) -> Result<File, MetaError> {
    let f = create_log_tmp(dir, base_index)?;
    let path = dir.join(LOG_FILE);
    fs::rename(dir.join(LOG_TMP), &path).map_err(io_err("rename", &path))?;
    sync_dir(dir)?;
    Ok(f)
}

fn read_snapshot(path: &Path) -> Result<Option<MetaState>, MetaError> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    // A snapshot is only ever renamed into place complete, so any damage is
    // real corruption; the log it replaced is gone, so refuse to guess.
    if data.len() < RECORD_HEADER_LEN {
        return Err(corrupt(
            path,
            format!("snapshot is only {} bytes", data.len()),
        ));
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let crc = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    let payload = &data[RECORD_HEADER_LEN..];
    if payload.len() != len {
        return Err(corrupt(
            path,
            format!("snapshot says {len} bytes but holds {}", payload.len()),
        ));
    }
    let actual = crc32c::crc32c(payload);
    if actual != crc {
        return Err(corrupt(
            path,
            format!("snapshot crc mismatch: stored {crc:#010x}, computed {actual:#010x}"),
        ));
    }
    let state: MetaState = serde_json::from_slice(payload)
        .map_err(|e| corrupt(path, format!("snapshot does not decode: {e}")))?;
    let consistent = state.topic_ids.len() == state.topics.len()
        && state
            .topics
            .iter()
            .all(|(name, t)| &t.name == name && state.topic_ids.get(&t.topic_id) == Some(name));
    if !consistent {
        return Err(corrupt(
            path,
            "snapshot topic index is inconsistent".to_string(),
        ));
    }
    Ok(Some(state))
}

fn read_record(r: &mut impl Read, pos: u64, remaining: u64) -> io::Result<Next> {
    let mut header = [0u8; RECORD_HEADER_LEN];
    let n = read_full(r, &mut header)?;
    if n == 0 {
        return Ok(Next::End);
    }
    if n < RECORD_HEADER_LEN {
        return Ok(Next::Bad(format!("torn record header ({n} of 8 bytes)")));
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD_LEN {
        return Ok(Next::Bad(format!(
            "record length {len} exceeds the {MAX_RECORD_LEN} limit"
        )));
    }
    // Never allocate more than the file can still hold.
    if len as u64 > remaining.saturating_sub(RECORD_HEADER_LEN as u64) {
        return Ok(Next::Bad(format!(
            "torn record: {len} bytes announced, {} left",
            remaining.saturating_sub(RECORD_HEADER_LEN as u64)
        )));
    }
    let mut payload = vec![0u8; len];
    let got = read_full(r, &mut payload)?;
    if got < len {
        return Ok(Next::Bad(format!("torn record: {got} of {len} bytes")));
    }
    let actual = crc32c::crc32c(&payload);
    if actual != crc {
        return Ok(Next::Bad(format!(
            "crc mismatch: stored {crc:#010x}, computed {actual:#010x}"
        )));
    }
    match serde_json::from_slice::<Command>(&payload) {
        Ok(cmd) => Ok(Next::Record(cmd, pos + (RECORD_HEADER_LEN + len) as u64)),
        Err(e) => Ok(Next::Bad(format!("record does not decode: {e}"))),
    }
}

/// The first position at or after `from` where a whole record with a valid
/// crc that decodes as a command starts.
fn intact_record_after(data: &[u8], from: usize) -> Option<usize> {
    (from..data.len().saturating_sub(RECORD_HEADER_LEN)).find(|&p| {
        let h = &data[p..p + RECORD_HEADER_LEN];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        len > 0
            && len <= MAX_RECORD_LEN
            && data
                .get(p + RECORD_HEADER_LEN..p + RECORD_HEADER_LEN + len)
                .is_some_and(|payload| {
                    crc32c::crc32c(payload) == crc
                        && serde_json::from_slice::<Command>(payload).is_ok()
                })
    })
}

/// Replays `meta.log` into `state`, skipping records the snapshot covers and
/// cutting a bad tail. Returns (index of the last record, good length,
/// record count).
fn replay(
    path: &Path,
    state: &mut MetaState,
    snap_index: u64,
) -> Result<(u64, u64, u64), MetaError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let file_len = file.metadata().map_err(io_err("stat", path))?.len();
    let mut r = io::BufReader::new(file);
    let mut h = [0u8; LOG_HEADER_LEN as usize];
    let n = read_full(&mut r, &mut h).map_err(io_err("read", path))?;
    // The header is written before the log is renamed into place, so a bad
    // one means damage we cannot repair by cutting.
    if n < h.len() || &h[..8] != LOG_MAGIC {
        return Err(corrupt(path, "bad log header".to_string()));
    }
    let base = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    let crc = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
    if crc32c::crc32c(&h[..16]) != crc {
        return Err(corrupt(path, "log header crc mismatch".to_string()));
    }
    if base > snap_index {
        return Err(corrupt(
            path,
            format!("log starts after command {base} but the snapshot covers only {snap_index}"),
        ));
    }
    let mut pos = LOG_HEADER_LEN;
    let mut index = base;
    loop {
        match read_record(&mut r, pos, file_len - pos).map_err(io_err("read", path))? {
            Next::End => break,
            Next::Record(cmd, next) => {
                index += 1;
                if index > snap_index {
                    // The log holds only commands that were accepted, so a
                    // refusal now means apply is not deterministic.
                    state.check(&cmd).map_err(|e| {
                        corrupt(
                            path,
                            format!("command {index} at byte {pos} is refused on replay: {e}"),
                        )
                    })?;
                    state.apply_checked(cmd);
                }
                pos = next;
            }
            Next::Bad(reason) => {
                // A damaged record followed by an intact one is not a torn
                // tail: cutting there would drop acknowledged commands.
                drop(r);
                let data = fs::read(path).map_err(io_err("read", path))?;
                if let Some(later) = intact_record_after(&data, pos as usize + 1) {
                    return Err(corrupt(
                        path,
                        format!(
                            "record at byte {pos} is damaged ({reason}) but an intact record follows at byte {later}; \
                             refusing to drop the commands after it (restore the directory from a backup)"
                        ),
                    ));
                }
                tracing::warn!(
                    path = %path.display(),
                    position = pos,
                    reason = %reason,
                    "cutting meta log tail at byte {pos}"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err("open", path))?;
                f.set_len(pos).map_err(io_err("truncate", path))?;
                f.sync_all().map_err(io_err("fsync", path))?;
                break;
            }
        }
    }
    Ok((index, pos, index - base))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn register(broker_id: i32) -> Command {
        Command::RegisterBroker {
            broker_id,
            host: "localhost".to_string(),
            port: 9092,
            rack: None,
        }
    }

    /// A mixed, valid command sequence of length `n` (broker 1 first).
    fn cmds(n: usize) -> Vec<Command> {
        (0..n)
            .map(|i| match i % 4 {
                0 => register(1),
                1 => Command::CreateTopic {
                    name: format!("t{i}"),
                    topic_id: Uuid::from_u128(i as u128 + 1),
                    partitions: 2,
                    replication_factor: -1,
                    configs: BTreeMap::from([("retention.ms".to_string(), i.to_string())]),
                    leader: 1,
                    created_at_ms: i as i64,
                },
                2 => Command::AllocateProducerIds { count: 7 },
                _ => Command::BecomeLeader {
                    broker_id: 1,
                    partitions: vec![(format!("t{}", i - 2), 1, i as i64 * 10)],
                },
            })
            .collect()
    }

    fn submit_all(store: &mut MetaStore, cmds: Vec<Command>) {
        for c in cmds {
            store.submit(c).unwrap();
        }
    }

    fn log_len(dir: &Path) -> u64 {
        fs::metadata(dir.join(LOG_FILE)).unwrap().len()
    }

    #[test]
    fn reopen_after_commands_gives_equal_state() {
        let dir = tempfile::tempdir().unwrap();
        let expected = {
            let mut s = MetaStore::open(dir.path()).unwrap();
            submit_all(&mut s, cmds(40));
            s.state().clone()
        };
        assert_eq!(expected.applied_index, 40);
        let s = MetaStore::open(dir.path()).unwrap();
        assert_eq!(s.state(), &expected);
        // The reference: the same commands applied in memory.
        let mut mem = MetaState::new();
        for c in cmds(40) {
            mem.apply(c).unwrap();
        }
        assert_eq!(s.state(), &mem);
    }

    #[test]
    fn open_creates_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        let mut s = MetaStore::open(&nested).unwrap();
        s.submit(register(1)).unwrap();
        assert_eq!(s.dir(), nested.as_path());
        assert!(nested.join(LOG_FILE).exists());
    }

    #[test]
    fn torn_tail_at_every_offset_recovers_previous_state() {
        let src = tempfile::tempdir().unwrap();
        let all = cmds(6);
        let (before_last, last_start, last_end) = {
            let mut s = MetaStore::open(src.path()).unwrap();
            submit_all(&mut s, all[..5].to_vec());
            let before = s.state().clone();
            let start = log_len(src.path());
            s.submit(all[5].clone()).unwrap();
            (before, start, log_len(src.path()))
        };
        let log = fs::read(src.path().join(LOG_FILE)).unwrap();
        for cut in last_start..last_end {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(LOG_FILE), &log[..cut as usize]).unwrap();
            let after = {
                let mut s = MetaStore::open(dir.path()).unwrap();
                assert_eq!(s.state(), &before_last, "cut at {cut}");
                assert_eq!(log_len(dir.path()), last_start, "tail not cut at {cut}");
                s.submit(all[5].clone()).unwrap();
                s.submit(Command::AllocateProducerIds { count: 1 }).unwrap();
                s.state().clone()
            };
            assert_eq!(after.applied_index, 7);
            assert_eq!(MetaStore::open(dir.path()).unwrap().state(), &after);
        }
    }

    #[test]
    fn corrupt_record_in_middle_is_refused_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let all = cmds(8);
        let third_start = {
            let mut s = MetaStore::open(dir.path()).unwrap();
            submit_all(&mut s, all[..2].to_vec());
            let at = log_len(dir.path());
            submit_all(&mut s, all[2..].to_vec());
            at
        };
        let path = dir.path().join(LOG_FILE);
        let mut log = fs::read(&path).unwrap();
        // Flip a payload byte of record 3: records 4..8 are intact.
        log[third_start as usize + RECORD_HEADER_LEN + 2] ^= 0x40;
        fs::write(&path, &log).unwrap();
        let e = MetaStore::open(dir.path()).unwrap_err();
        assert!(matches!(e, MetaError::Corrupt { .. }), "{e}");
        assert!(
            e.to_string().contains(&format!("byte {third_start}")),
            "{e}"
        );
        // Nothing was cut.
        assert_eq!(fs::read(&path).unwrap(), log);
    }

    #[test]
    fn oversized_record_length_is_cut_without_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let expected = {
            let mut s = MetaStore::open(dir.path()).unwrap();
            submit_all(&mut s, cmds(3));
            s.state().clone()
        };
        let path = dir.path().join(LOG_FILE);
        let good = log_len(dir.path());
        for len in [MAX_RECORD_LEN as u32 + 1, u32::MAX, 1000] {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(&len.to_le_bytes()).unwrap();
            f.write_all(&[0u8; 12]).unwrap();
            drop(f);
            let s = MetaStore::open(dir.path()).unwrap();
            assert_eq!(s.state(), &expected);
            assert_eq!(log_len(dir.path()), good);
        }
    }

    #[test]
    fn snapshot_truncation_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let expected = {
            let mut s = MetaStore::open_with(dir.path(), 4).unwrap();
            submit_all(&mut s, cmds(10));
            // Snapshots after commands 4 and 8; commands 9 and 10 are in the log.
            assert_eq!(s.log_records, 2);
            s.state().clone()
        };
        assert!(dir.path().join(SNAPSHOT_FILE).exists());
        let snap = read_snapshot(&dir.path().join(SNAPSHOT_FILE))
            .unwrap()
            .unwrap();
        assert_eq!(snap.applied_index, 8);
        let mut s = MetaStore::open_with(dir.path(), 4).unwrap();
        assert_eq!(s.state(), &expected);
        s.snapshot_now().unwrap();
        assert_eq!(log_len(dir.path()), LOG_HEADER_LEN);
        drop(s);
        assert_eq!(MetaStore::open(dir.path()).unwrap().state(), &expected);
    }

    #[test]
    fn crash_between_snapshot_and_log_truncation_skips_covered_records() {
        let dir = tempfile::tempdir().unwrap();
        let expected = {
            let mut s = MetaStore::open_with(dir.path(), 0).unwrap();
            submit_all(&mut s, cmds(9));
            // Snapshot written, but "crash" before the log is replaced.
            s.write_snapshot().unwrap();
            s.state().clone()
        };
        let mut s = MetaStore::open_with(dir.path(), 0).unwrap();
        // Re-applying would double-allocate producer ids and bump epochs twice.
        assert_eq!(s.state(), &expected);
        s.submit(Command::AllocateProducerIds { count: 1 }).unwrap();
        let after = s.state().clone();
        drop(s);
        let s = MetaStore::open_with(dir.path(), 0).unwrap();
        assert_eq!(s.state(), &after);
        assert_eq!(after.applied_index, 10);
    }

    #[test]
    fn snapshot_beyond_log_end_restarts_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let expected = {
            let mut s = MetaStore::open_with(dir.path(), 0).unwrap();
            submit_all(&mut s, cmds(5));
            s.write_snapshot().unwrap();
            s.state().clone()
        };
        // The log lost its tail (e.g. cut as torn) but the snapshot covers it.
        let path = dir.path().join(LOG_FILE);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(LOG_HEADER_LEN + 3).unwrap();
        drop(f);
        let mut s = MetaStore::open_with(dir.path(), 0).unwrap();
        assert_eq!(s.state(), &expected);
        s.submit(Command::AllocateProducerIds { count: 1 }).unwrap();
        let after = s.state().clone();
        drop(s);
        assert_eq!(MetaStore::open_with(dir.path(), 0).unwrap().state(), &after);
    }

    #[test]
    fn refused_commands_leave_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = MetaStore::open(dir.path()).unwrap();
        s.submit(register(1)).unwrap();
        let len = log_len(dir.path());
        let before = s.state().clone();
        let e = s
            .submit(Command::DeleteTopic {
                topic_id: None,
                name: "nope".to_string(),
            })
            .unwrap_err();
        assert!(matches!(e, MetaError::UnknownTopic { .. }));
        let e = s
            .submit(Command::AllocateProducerIds { count: 0 })
            .unwrap_err();
        assert!(matches!(e, MetaError::InvalidRequest { .. }));
        assert_eq!(log_len(dir.path()), len);
        assert_eq!(s.state(), &before);
        drop(s);
        assert_eq!(
            MetaStore::open(dir.path()).unwrap().state().applied_index,
            1
        );
    }

    #[test]
    fn failed_append_leaves_state_unchanged_and_poisons() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = MetaStore::open(dir.path()).unwrap();
        s.submit(register(1)).unwrap();
        let before = s.state().clone();
        // A read-only handle makes both the write and the rollback fail.
        s.log = File::open(dir.path().join(LOG_FILE)).unwrap();
        let e = s
            .submit(Command::AllocateProducerIds { count: 1 })
            .unwrap_err();
        assert!(matches!(e, MetaError::Io { .. }), "{e}");
        assert_eq!(e.kafka_code(), 56);
        assert_eq!(s.state(), &before);
        let e = s
            .submit(Command::AllocateProducerIds { count: 1 })
            .unwrap_err();
        assert!(matches!(e, MetaError::Poisoned { .. }), "{e}");
        drop(s);
        let mut s = MetaStore::open(dir.path()).unwrap();
        assert_eq!(s.state(), &before);
        s.submit(Command::AllocateProducerIds { count: 1 }).unwrap();
    }

    #[test]
    fn corrupt_snapshot_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = MetaStore::open(dir.path()).unwrap();
            submit_all(&mut s, cmds(3));
            s.snapshot_now().unwrap();
        }
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut data = fs::read(&path).unwrap();
        let last = data.len() - 2;
        data[last] ^= 1;
        fs::write(&path, &data).unwrap();
        let e = MetaStore::open(dir.path()).unwrap_err();
        assert!(matches!(e, MetaError::Corrupt { .. }), "{e}");
        fs::write(&path, &data[..4]).unwrap();
        assert!(matches!(
            MetaStore::open(dir.path()).unwrap_err(),
            MetaError::Corrupt { .. }
        ));
    }

    #[test]
    fn missing_snapshot_behind_truncated_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = MetaStore::open_with(dir.path(), 2).unwrap();
            submit_all(&mut s, cmds(3));
        }
        fs::remove_file(dir.path().join(SNAPSHOT_FILE)).unwrap();
        let e = MetaStore::open(dir.path()).unwrap_err();
        assert!(matches!(e, MetaError::Corrupt { .. }), "{e}");
    }

    #[test]
    fn bad_log_header_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        drop(MetaStore::open(dir.path()).unwrap());
        fs::write(dir.path().join(LOG_FILE), b"garbage that is not a header").unwrap();
        let e = MetaStore::open(dir.path()).unwrap_err();
        assert!(matches!(e, MetaError::Corrupt { .. }), "{e}");
    }

    #[test]
    fn stale_tmp_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let expected = {
            let mut s = MetaStore::open(dir.path()).unwrap();
            submit_all(&mut s, cmds(3));
            s.state().clone()
        };
        fs::write(dir.path().join(SNAPSHOT_TMP), b"half a snapshot").unwrap();
        fs::write(dir.path().join(LOG_TMP), b"half a log").unwrap();
        let s = MetaStore::open(dir.path()).unwrap();
        assert_eq!(s.state(), &expected);
        assert!(!dir.path().join(SNAPSHOT_TMP).exists());
    }

    #[test]
    fn second_open_of_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _s = MetaStore::open(dir.path()).unwrap();
        let e = MetaStore::open(dir.path()).unwrap_err();
        assert!(matches!(e, MetaError::Io { .. }), "{e}");
    }
}
