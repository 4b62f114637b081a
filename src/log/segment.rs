//! One segment of a partition log: a file of RecordBatch v2 bytes exactly as
//! stored (`<base offset, 20 digits>.log`) plus its sparse indexes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use super::index::{OffsetIndex, TimeIndex};
use super::LogError;

/// Largest batch the scanner will accept from disk; bounds what a corrupt
/// length field can make recovery allocate.
const MAX_BATCH_ON_DISK: usize = 64 * 1024 * 1024;

/// A segment file with its in-memory indexes.
#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    /// Offset after the last batch of this segment.
    pub next_offset: i64,
    pub size: u64,
    pub max_timestamp: i64,
    /// Wall-clock time the segment was opened for appends (for `segment.ms`).
    pub created_ms: i64,
    pub file: Arc<File>,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    bytes_since_index: u64,
    path: Arc<Path>,
    /// Set when the files are deleted; a seal job that runs later writes
    /// nothing (held while writing and while deleting).
    gone: Arc<parking_lot::Mutex<bool>>,
}

/// What sealing a segment writes: its data fsync, the index files and the
/// footer. Taken under the partition lock (memory copies only) and run off
/// the hot path (`run` blocks: call it from a blocking thread).
pub struct SealJob {
    file: Arc<File>,
    path: PathBuf,
    index: Vec<u8>,
    time_index: Vec<u8>,
    footer: [u8; 24],
    gone: Arc<parking_lot::Mutex<bool>>,
}

impl SealJob {
    pub fn run(self) -> Result<(), LogError> {
        let gone = self.gone.lock();
        if *gone {
            return Ok(());
        }
        self.file
            .sync_data()
            .map_err(|e| LogError::io(&self.path, e))?;
        let (ip, tp, mp) = index_paths(&self.path);
        for (p, bytes) in [
            (&ip, &self.index[..]),
            (&tp, &self.time_index[..]),
            (&mp, &self.footer[..]),
        ] {
            super::index::write_synced(p, bytes).map_err(|e| LogError::io(p, e))?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn index_paths(path: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        path.with_extension("index"),
        path.with_extension("timeindex"),
        path.with_extension("meta"),
    )
}

/// File name of a segment's log file.
pub fn log_name(base: i64) -> String {
    format!("{base:020}.log")
}

impl Segment {
    /// Create a new empty segment (fails if the file exists).
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Segment, LogError> {
        let path = dir.join(log_name(base_offset));
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?;
        Ok(Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: -1,
            created_ms: now_ms,
            file: Arc::new(file),
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            path: path.into(),
            gone: Default::default(),
        })
    }

    /// Open an existing segment. When `trust_indexes` and valid index files
    /// exist they are loaded; otherwise the file is scanned, validating every
    /// batch, and cut at the first torn or corrupt one.
    pub fn open(
        path: &Path,
        base_offset: i64,
        trust_indexes: bool,
        index_interval: u64,
        now_ms: i64,
        mut on_batch: impl FnMut(&BatchHeader),
    ) -> Result<Segment, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| LogError::io(path, e))?;
        let len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
        let mut seg = Segment {
            base_offset,
            next_offset: base_offset,
            size: len,
            max_timestamp: -1,
            created_ms: now_ms,
            file: Arc::new(file),
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            path: Arc::from(path),
            gone: Default::default(),
        };
        if trust_indexes && seg.load_indexes(len) {
            return Ok(seg);
        }
        seg.scan_and_repair(index_interval, &mut on_batch)?;
        Ok(seg)
    }

    fn index_paths(&self) -> (PathBuf, PathBuf, PathBuf) {
        index_paths(&self.path)
    }

    /// Load sealed indexes plus the `.meta` footer (next offset, max ts).
    fn load_indexes(&mut self, len: u64) -> bool {
        let (ip, tp, mp) = self.index_paths();
        let (Ok(ib), Ok(tb), Ok(mb)) = (std::fs::read(ip), std::fs::read(tp), std::fs::read(mp))
        else {
            return false;
        };
        let (Some(oi), Some(ti)) = (
            OffsetIndex::read_from(&ib, len.max(1)),
            TimeIndex::read_from(&tb),
        ) else {
            return false;
        };
        if mb.len() != 24 {
            return false;
        }
        let next = i64::from_be_bytes(mb[0..8].try_into().expect("8"));
        let max_ts = i64::from_be_bytes(mb[8..16].try_into().expect("8"));
        let size = u64::from_be_bytes(mb[16..24].try_into().expect("8"));
        if size != len || next < self.base_offset {
            return false;
        }
        self.next_offset = next;
        self.max_timestamp = max_ts;
        self.offset_index = oi;
        self.time_index = ti;
        true
    }

    /// Scan every batch, rebuild indexes, truncate a torn or corrupt tail.
    fn scan_and_repair(
        &mut self,
        index_interval: u64,
        on_batch: &mut impl FnMut(&BatchHeader),
    ) -> Result<(), LogError> {
        let len = self.size;
        let mut pos = 0u64;
        let mut expected = self.base_offset;
        let mut head = [0u8; HEADER_LEN];
        let mut body = Vec::new();
        while pos + HEADER_LEN as u64 <= len {
            if self.file.read_exact_at(&mut head, pos).is_err() {
                break;
            }
            let Ok(h) = BatchHeader::parse(&head) else {
                break;
            };
            let total = h.batch_length as i64 + LOG_OVERHEAD as i64;
            if h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32
                || total as usize > MAX_BATCH_ON_DISK
                || pos + total as u64 > len
                || h.base_offset < expected
            {
                break;
            }
            body.resize(total as usize, 0);
            if self.file.read_exact_at(&mut body, pos).is_err() {
                break;
            }
            if batch::validate(&body, usize::MAX).is_err() {
                break;
            }
            self.index_batch(&h, pos, total as u64, index_interval);
            on_batch(&h);
            expected = h.last_offset() + 1;
            pos += total as u64;
        }
        if pos != len {
            tracing::warn!(segment = %self.path.display(), valid_bytes = pos, file_bytes = len, "cutting torn or corrupt segment tail");
            self.file
                .set_len(pos)
                .map_err(|e| LogError::io(&self.path, e))?;
            self.file
                .sync_all()
                .map_err(|e| LogError::io(&self.path, e))?;
            self.size = pos;
        }
        self.next_offset = expected;
        Ok(())
    }

    fn index_batch(&mut self, h: &BatchHeader, pos: u64, len: u64, index_interval: u64) {
        let rel = (h.base_offset - self.base_offset) as u32;
        if self.offset_index.is_empty() || self.bytes_since_index >= index_interval {
            self.offset_index.push(rel, pos as u32);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += len;
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.time_index.push(h.max_timestamp, rel);
        }
        self.next_offset = h.last_offset() + 1;
    }

    /// Append validated, offset-assigned batch bytes (one batch).
    pub fn append(
        &mut self,
        h: &BatchHeader,
        bytes: &[u8],
        index_interval: u64,
    ) -> Result<(), LogError> {
        let pos = self.size;
        (&*self.file)
            .write_all(bytes)
            .map_err(|e| LogError::io(&self.path, e))?;
        self.size += bytes.len() as u64;
        self.index_batch(h, pos, bytes.len() as u64, index_interval);
        Ok(())
    }

    /// What sealing writes (indexes and footer as of now), to run off the
    /// hot path.
    pub fn seal_job(&self) -> SealJob {
        let mut footer = [0u8; 24];
        footer[0..8].copy_from_slice(&self.next_offset.to_be_bytes());
        footer[8..16].copy_from_slice(&self.max_timestamp.to_be_bytes());
        footer[16..24].copy_from_slice(&self.size.to_be_bytes());
        SealJob {
            file: self.file.clone(),
            path: self.path.to_path_buf(),
            index: self.offset_index.encode(),
            time_index: self.time_index.encode(),
            footer,
            gone: self.gone.clone(),
        }
    }

    /// Persist indexes and the footer now (blocking).
    pub fn seal(&self) -> Result<(), LogError> {
        self.seal_job().run()
    }

    /// The segment's log file.
    pub fn path(&self) -> &Arc<Path> {
        &self.path
    }

    /// Remove the segment's files.
    pub fn delete_files(&self) {
        let mut gone = self.gone.lock();
        *gone = true;
        let (ip, tp, mp) = self.index_paths();
        for p in [&*self.path, &*ip, &*tp, &*mp] {
            let _ = std::fs::remove_file(p);
        }
    }

    /// A snapshot for reading `offset` without holding the partition lock:
    /// the file handle, the size written so far and the index's starting
    /// position for the scan. Segments are append-only, so everything below
    /// `size` stays valid (even if the file is unlinked by retention meanwhile).
    pub fn view(&self, offset: i64) -> SegmentView {
        let rel = (offset - self.base_offset).max(0) as u32;
        self.view_from(self.offset_index.floor(rel) as u64)
    }

    fn view_from(&self, scan_from: u64) -> SegmentView {
        SegmentView {
            base_offset: self.base_offset,
            next_offset: self.next_offset,
            size: self.size,
            scan_from,
            file: self.file.clone(),
            path: self.path.to_path_buf(),
        }
    }

    /// A view for a lookup by timestamp: the scan starts at the index
    /// position of the last indexed time below `ts`.
    pub fn view_for_time(&self, ts: i64) -> SegmentView {
        let rel = self.time_index.floor(ts);
        self.view_from(self.offset_index.floor(rel) as u64)
    }
}

/// See [`Segment::view`].
#[derive(Debug, Clone)]
pub struct SegmentView {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size: u64,
    scan_from: u64,
    file: Arc<File>,
    path: PathBuf,
}

impl SegmentView {
    /// Visit batch headers from `pos` to the end (bounded by `limit`).
    pub fn scan_headers(
        &self,
        mut pos: u64,
        limit: u64,
        mut f: impl FnMut(u64, &BatchHeader) -> bool,
    ) -> Result<(), LogError> {
        let limit = limit.min(self.size);
        let mut head = [0u8; HEADER_LEN];
        while pos + HEADER_LEN as u64 <= limit {
            self.file
                .read_exact_at(&mut head, pos)
                .map_err(|e| LogError::io(&self.path, e))?;
            let h = BatchHeader::parse(&head)
                .map_err(|e| LogError::Corrupt(self.path.display().to_string(), e.to_string()))?;
            if !f(pos, &h) {
                break;
            }
            pos += h.total_len() as u64;
        }
        Ok(())
    }

    /// Read one whole batch at `pos`.
    pub fn read_batch(&self, pos: u64, h: &BatchHeader) -> Result<Vec<u8>, LogError> {
        let mut buf = vec![0u8; h.total_len().min(MAX_BATCH_ON_DISK)];
        self.file
            .read_exact_at(&mut buf, pos)
            .map_err(|e| LogError::io(&self.path, e))?;
        Ok(buf)
    }

    /// Where a scan for a time (see [`Segment::view_for_time`]) starts.
    pub fn scan_from(&self) -> u64 {
        self.scan_from
    }

    /// Byte position of the batch containing `offset`, found from the sparse
    /// index position plus a header scan.
    pub fn position_of(&self, offset: i64) -> Result<Option<u64>, LogError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let mut pos = if offset > self.base_offset {
            self.scan_from
        } else {
            0
        };
        let mut head = [0u8; HEADER_LEN];
        while pos + HEADER_LEN as u64 <= self.size {
            self.file
                .read_exact_at(&mut head, pos)
                .map_err(|e| LogError::io(&self.path, e))?;
            let h = BatchHeader::parse(&head)
                .map_err(|e| LogError::Corrupt(self.path.display().to_string(), e.to_string()))?;
            if h.last_offset() >= offset {
                return Ok(Some(pos));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Read up to `max_bytes` of whole batches from `pos` (at least one whole
    /// batch when `min_one`, even if it is larger than `max_bytes`).
    pub fn read_at(&self, pos: u64, max_bytes: usize, min_one: bool) -> Result<Vec<u8>, LogError> {
        let limit = self.size;
        if pos >= limit {
            return Ok(Vec::new());
        }
        let avail = (limit - pos) as usize;
        let mut want = avail.min(max_bytes);
        if min_one {
            let mut head = [0u8; LOG_OVERHEAD];
            self.file
                .read_exact_at(&mut head, pos)
                .map_err(|e| LogError::io(&self.path, e))?;
            let first = batch::peek_batch_len(&head).unwrap_or(0).max(0) as usize + LOG_OVERHEAD;
            want = want.max(first.min(avail).min(MAX_BATCH_ON_DISK));
        }
        if want < LOG_OVERHEAD {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; want];
        self.file
            .read_exact_at(&mut buf, pos)
            .map_err(|e| LogError::io(&self.path, e))?;
        // Cut at the last whole batch.
        let mut end = 0usize;
        while end + LOG_OVERHEAD <= buf.len() {
            let n = batch::peek_batch_len(&buf[end..]).unwrap_or(0).max(0) as usize + LOG_OVERHEAD;
            if end + n > buf.len() {
                break;
            }
            end += n;
        }
        buf.truncate(end);
        Ok(buf)
    }
}
