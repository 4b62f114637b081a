//! Sparse offset and time indexes of one segment.
//!
//! The offset index maps a relative offset to the byte position of the batch
//! that starts there, one entry per `index.interval.bytes` of log. The time
//! index maps "largest timestamp seen so far" to the relative offset of the
//! batch that carried it, so a timestamp lookup can skip everything before.
//! Both live in memory and are written next to the segment when it is sealed
//! (`.index`, `.timeindex`); the active segment's indexes are rebuilt by a
//! scan on start.

use std::io::Write;
use std::path::Path;

/// Offset index: `(relative offset, byte position)` entries, ascending.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn push(&mut self, rel_offset: u32, position: u32) {
        if self
            .entries
            .last()
            .is_none_or(|e| e.0 < rel_offset && e.1 < position)
        {
            self.entries.push((rel_offset, position));
        }
    }

    /// Position of the last indexed batch starting at or before `rel_offset`
    /// (0 when none is), where a forward scan for `rel_offset` can start.
    pub fn floor(&self, rel_offset: u32) -> u32 {
        match self.entries.partition_point(|e| e.0 <= rel_offset) {
            0 => 0,
            i => self.entries[i - 1].1,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encode as big-endian `(u32, u32)` pairs.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.entries.len() * 8);
        for (o, p) in &self.entries {
            buf.extend_from_slice(&o.to_be_bytes());
            buf.extend_from_slice(&p.to_be_bytes());
        }
        buf
    }

    /// Write [`OffsetIndex::encode`] durably.
    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        write_synced(path, &self.encode())
    }

    /// Decode; `None` if the file is malformed (caller rebuilds by scanning).
    pub fn read_from(bytes: &[u8], segment_len: u64) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let mut idx = OffsetIndex::default();
        for c in bytes.chunks_exact(8) {
            let o = u32::from_be_bytes(c[..4].try_into().ok()?);
            let p = u32::from_be_bytes(c[4..].try_into().ok()?);
            if p as u64 >= segment_len || idx.entries.last().is_some_and(|e| e.0 >= o || e.1 >= p) {
                return None;
            }
            idx.entries.push((o, p));
        }
        Some(idx)
    }
}

/// Time index: `(max timestamp so far, relative offset of that batch)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub fn push(&mut self, max_ts: i64, rel_offset: u32) {
        if self
            .entries
            .last()
            .is_none_or(|e| e.0 < max_ts && e.1 < rel_offset)
        {
            self.entries.push((max_ts, rel_offset));
        }
    }

    /// Relative offset from which a scan for the first record with
    /// timestamp >= `ts` can start: the batch after the last entry whose
    /// running maximum is still below `ts` cannot hold an earlier match, so
    /// the scan starts at that entry (conservative, never skips a match).
    pub fn floor(&self, ts: i64) -> u32 {
        match self.entries.partition_point(|e| e.0 < ts) {
            0 => 0,
            i => self.entries[i - 1].1,
        }
    }

    /// Encode as big-endian `(i64, u32)` pairs.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.entries.len() * 12);
        for (t, o) in &self.entries {
            buf.extend_from_slice(&t.to_be_bytes());
            buf.extend_from_slice(&o.to_be_bytes());
        }
        buf
    }

    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        write_synced(path, &self.encode())
    }

    pub fn read_from(bytes: &[u8]) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(12) {
            return None;
        }
        let mut idx = TimeIndex::default();
        for c in bytes.chunks_exact(12) {
            let t = i64::from_be_bytes(c[..8].try_into().ok()?);
            let o = u32::from_be_bytes(c[8..].try_into().ok()?);
            idx.entries.push((t, o));
        }
        Some(idx)
    }
}

/// Write a small file durably: tmp + fsync + rename.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_floor_finds_preceding_entry() {
        let mut i = OffsetIndex::default();
        i.push(0, 0);
        i.push(10, 4096);
        i.push(20, 8192);
        assert_eq!(i.floor(0), 0);
        assert_eq!(i.floor(9), 0);
        assert_eq!(i.floor(10), 4096);
        assert_eq!(i.floor(25), 8192);
        // non-monotonic pushes are ignored
        i.push(15, 100);
        assert_eq!(i.len(), 3);
    }

    #[test]
    fn offset_index_roundtrip_and_corruption() {
        let mut i = OffsetIndex::default();
        i.push(1, 10);
        i.push(5, 100);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.index");
        i.write_to(&p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(OffsetIndex::read_from(&bytes, 1000), Some(i));
        assert_eq!(OffsetIndex::read_from(&bytes[..7], 1000), None);
        assert_eq!(
            OffsetIndex::read_from(&bytes, 50),
            None,
            "position past segment end"
        );
    }

    #[test]
    fn time_floor_is_conservative() {
        let mut t = TimeIndex::default();
        t.push(100, 0);
        t.push(200, 10);
        t.push(300, 20);
        assert_eq!(t.floor(50), 0);
        assert_eq!(t.floor(150), 0);
        assert_eq!(t.floor(250), 10);
        assert_eq!(t.floor(1000), 20);
    }
}
