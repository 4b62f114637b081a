//! Kafka RecordBatch v2 framing: parse the 61-byte header, validate a batch
//! exactly as it arrives from a producer, and rewrite the few fields the
//! broker owns (base offset, partition leader epoch, LogAppendTime).
//!
//! Batches are stored as sent: the hot path never decompresses or re-encodes
//! records. For uncompressed batches the record framing is walked to check the
//! record count and offset deltas; compressed batches are checked by their
//! header (CRC32C over the whole compressed payload, counts, deltas).

use bytes::{Buf, BufMut, BytesMut};

/// Size of the fixed RecordBatch v2 header.
pub const HEADER_LEN: usize = 61;
/// Bytes before the `batchLength` field ends: baseOffset(8) + batchLength(4).
pub const LOG_OVERHEAD: usize = 12;

const OFF_BASE_OFFSET: usize = 0;
const OFF_BATCH_LENGTH: usize = 8;
const OFF_LEADER_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;
const OFF_RECORD_COUNT: usize = 57;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Why a batch was refused. Every variant maps to Kafka's CORRUPT_MESSAGE or
/// a more specific code (see [`BatchError::kafka_code`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch truncated: have {have} bytes, need {need}")]
    Truncated { have: usize, need: usize },
    #[error("unsupported record batch magic {magic} (only v2)")]
    BadMagic { magic: i8 },
    #[error("batch length {length} is invalid")]
    BadLength { length: i32 },
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("record count {count} does not match last offset delta {last_offset_delta}")]
    BadCount { count: i32, last_offset_delta: i32 },
    #[error("invalid record framing: {0}")]
    BadRecord(&'static str),
    #[error("unknown compression codec {0}")]
    BadCompression(i16),
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
}

impl BatchError {
    /// Kafka error code for a produce response.
    pub fn kafka_code(&self) -> i16 {
        match self {
            BatchError::TooLarge { .. } => 10,   // MESSAGE_TOO_LARGE
            BatchError::BadCompression(_) => 76, // UNSUPPORTED_COMPRESSION_TYPE
            _ => 2,                              // CORRUPT_MESSAGE
        }
    }
}

/// The header fields of one batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// Decode the header from the first [`HEADER_LEN`] bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<BatchHeader, BatchError> {
        if b.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                have: b.len(),
                need: HEADER_LEN,
            });
        }
        Ok(BatchHeader {
            base_offset: be_i64(b, OFF_BASE_OFFSET),
            batch_length: be_i32(b, OFF_BATCH_LENGTH),
            partition_leader_epoch: be_i32(b, OFF_LEADER_EPOCH),
            magic: b[OFF_MAGIC] as i8,
            crc: u32::from_be_bytes(b[OFF_CRC..OFF_CRC + 4].try_into().expect("4")),
            attributes: be_i16(b, OFF_ATTRIBUTES),
            last_offset_delta: be_i32(b, OFF_LAST_OFFSET_DELTA),
            base_timestamp: be_i64(b, OFF_BASE_TIMESTAMP),
            max_timestamp: be_i64(b, OFF_MAX_TIMESTAMP),
            producer_id: be_i64(b, OFF_PRODUCER_ID),
            producer_epoch: be_i16(b, OFF_PRODUCER_EPOCH),
            base_sequence: be_i32(b, OFF_BASE_SEQUENCE),
            record_count: be_i32(b, OFF_RECORD_COUNT),
        })
    }

    /// Total bytes of the batch on the wire / on disk.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }
    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// Sequence number of the last record (wrapping as Kafka does).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let v = self.base_sequence as i64 + self.last_offset_delta as i64;
        if v > i32::MAX as i64 {
            (v - i32::MAX as i64 - 1) as i32
        } else {
            v as i32
        }
    }
}

/// Size of the first batch in `buf` according to its length field, if the
/// header prefix is present. Used to walk a byte range batch by batch.
pub fn peek_batch_len(buf: &[u8]) -> Option<i32> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    Some(be_i32(buf, OFF_BATCH_LENGTH))
}

/// Validate one complete batch (`b` is exactly the batch bytes).
pub fn validate(b: &[u8], max_bytes: usize) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(b)?;
    if h.magic != 2 {
        return Err(BatchError::BadMagic { magic: h.magic });
    }
    if h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 || h.total_len() != b.len() {
        return Err(BatchError::BadLength {
            length: h.batch_length,
        });
    }
    if b.len() > max_bytes {
        return Err(BatchError::TooLarge {
            size: b.len(),
            max: max_bytes,
        });
    }
    let computed = crc32c::crc32c(&b[OFF_ATTRIBUTES..]);
    if computed != h.crc {
        return Err(BatchError::BadCrc {
            stored: h.crc,
            computed,
        });
    }
    if h.record_count < 0
        || h.last_offset_delta < 0
        || (h.record_count > 0 && h.last_offset_delta < h.record_count - 1)
    {
        return Err(BatchError::BadCount {
            count: h.record_count,
            last_offset_delta: h.last_offset_delta,
        });
    }
    match h.compression() {
        0 => walk_records(&b[HEADER_LEN..], h.record_count, h.last_offset_delta)?,
        1..=4 => {}
        c => return Err(BatchError::BadCompression(c)),
    }
    Ok(h)
}

fn read_varint(buf: &mut &[u8]) -> Result<i64, BatchError> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return Err(BatchError::BadRecord("varint truncated"));
        }
        let byte = buf.get_u8();
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            // zig-zag decode
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(BatchError::BadRecord("varint too long"))
}

/// Walk uncompressed records: each is `length varint` + body; check count,
/// strictly increasing offset deltas within `last_offset_delta`.
fn walk_records(mut buf: &[u8], count: i32, last_delta: i32) -> Result<(), BatchError> {
    let mut seen = 0i32;
    let mut prev_delta = -1i64;
    while buf.has_remaining() {
        let len = read_varint(&mut buf)?;
        if len < 0 || len as usize > buf.len() {
            return Err(BatchError::BadRecord("record length out of bounds"));
        }
        let mut rec = &buf[..len as usize];
        buf = &buf[len as usize..];
        if !rec.has_remaining() {
            return Err(BatchError::BadRecord("empty record"));
        }
        rec.advance(1); // attributes
        let _ts_delta = read_varint(&mut rec)?;
        let off_delta = read_varint(&mut rec)?;
        if off_delta <= prev_delta || off_delta > last_delta as i64 {
            return Err(BatchError::BadRecord("offset delta out of order"));
        }
        prev_delta = off_delta;
        seen += 1;
        if seen > count {
            return Err(BatchError::BadCount {
                count,
                last_offset_delta: last_delta,
            });
        }
    }
    if seen != count {
        return Err(BatchError::BadCount {
            count,
            last_offset_delta: last_delta,
        });
    }
    Ok(())
}

/// Indices (within the batch) of records without a key, at most `max_listed`
/// of them, and how many there are in all. `b` must be a validated batch.
/// Compressed records are decompressed with the bounded decoder (at most
/// `limit` bytes); only each record's prefix up to the key length is read.
pub fn keyless_records(
    b: &[u8],
    limit: usize,
    max_listed: usize,
) -> Result<(Vec<i32>, usize), BatchError> {
    let h = BatchHeader::parse(b)?;
    let body = b.get(HEADER_LEN..).unwrap_or_default();
    let inflated;
    let mut buf: &[u8] = match h.compression() {
        0 => body,
        c => {
            use kafka_protocol::records::Compression;
            let codec = match c {
                1 => Compression::Gzip,
                2 => Compression::Snappy,
                3 => Compression::Lz4,
                4 => Compression::Zstd,
                c => return Err(BatchError::BadCompression(c)),
            };
            let mut raw = bytes::Bytes::copy_from_slice(body);
            inflated =
                crate::log::decode::decompress(&mut raw, codec, limit).map_err(|e| match e {
                    crate::log::decode::DecodeError::TooLarge { limit } => BatchError::TooLarge {
                        size: limit + 1,
                        max: limit,
                    },
                    crate::log::decode::DecodeError::Invalid(_) => {
                        BatchError::BadRecord("cannot decompress records")
                    }
                })?;
            &inflated[..]
        }
    };
    let mut listed = Vec::new();
    let mut total = 0usize;
    let mut index = 0i32;
    while buf.has_remaining() {
        let len = read_varint(&mut buf)?;
        if len < 0 || len as usize > buf.len() {
            return Err(BatchError::BadRecord("record length out of bounds"));
        }
        let mut rec = &buf[..len as usize];
        buf = &buf[len as usize..];
        if !rec.has_remaining() {
            return Err(BatchError::BadRecord("empty record"));
        }
        rec.advance(1); // attributes
        let _ts_delta = read_varint(&mut rec)?;
        let _off_delta = read_varint(&mut rec)?;
        if read_varint(&mut rec)? < 0 {
            total += 1;
            if listed.len() < max_listed {
                listed.push(index);
            }
        }
        index = index.saturating_add(1);
    }
    Ok((listed, total))
}

/// Rewrite the broker-owned fields of a validated batch in place. With
/// `log_append_time = Some(ts)` the timestamp type becomes LogAppendTime and
/// the max timestamp `ts`, which changes CRC-covered bytes, so the CRC is
/// recomputed; otherwise the producer's CRC stays valid.
pub fn assign(b: &mut [u8], base_offset: i64, leader_epoch: i32, log_append_time: Option<i64>) {
    b[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    b[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
    if let Some(ts) = log_append_time {
        let attrs = be_i16(b, OFF_ATTRIBUTES) | ATTR_TIMESTAMP_TYPE;
        b[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
        b[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&ts.to_be_bytes());
        let crc = crc32c::crc32c(&b[OFF_ATTRIBUTES..]);
        b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Set the base sequence of a batch without a producer id back to -1 and
/// fix its CRC (see compaction: the encoder needs sequences to group records).
pub fn clear_sequence_if_anonymous(b: &mut [u8]) {
    if b.len() < HEADER_LEN || be_i64(b, OFF_PRODUCER_ID) >= 0 {
        return;
    }
    b[OFF_BASE_SEQUENCE..OFF_BASE_SEQUENCE + 4].copy_from_slice(&(-1i32).to_be_bytes());
    let crc = crc32c::crc32c(&b[OFF_ATTRIBUTES..]);
    b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// `(key, value, timestamp)` of one record given to [`build`].
pub type SimpleRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

/// Build an uncompressed batch from `(key, value, headers, timestamp)`
/// records. Used by tests, benchmarks and internal writers (control records
/// later); producers' batches are never rebuilt.
pub fn build(
    base_offset: i64,
    records: &[SimpleRecord<'_>],
    producer: Option<(i64, i16, i32)>,
) -> BytesMut {
    let base_ts = records.first().map(|r| r.2).unwrap_or(0);
    let max_ts = records.iter().map(|r| r.2).max().unwrap_or(0);
    let mut body = BytesMut::new();
    for (i, (k, v, ts)) in records.iter().enumerate() {
        let mut rec = BytesMut::new();
        rec.put_u8(0);
        put_varint(&mut rec, ts - base_ts);
        put_varint(&mut rec, i as i64);
        match k {
            Some(k) => {
                put_varint(&mut rec, k.len() as i64);
                rec.put_slice(k);
            }
            None => put_varint(&mut rec, -1),
        }
        match v {
            Some(v) => {
                put_varint(&mut rec, v.len() as i64);
                rec.put_slice(v);
            }
            None => put_varint(&mut rec, -1),
        }
        put_varint(&mut rec, 0);
        put_varint(&mut body, rec.len() as i64);
        body.put_slice(&rec);
    }
    let (pid, pepoch, seq) = producer.unwrap_or((-1, -1, -1));
    let mut b = BytesMut::with_capacity(HEADER_LEN + body.len());
    b.put_i64(base_offset);
    b.put_i32((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32);
    b.put_i32(-1);
    b.put_i8(2);
    b.put_u32(0);
    b.put_i16(0);
    b.put_i32(records.len().saturating_sub(1) as i32);
    b.put_i64(base_ts);
    b.put_i64(max_ts);
    b.put_i64(pid);
    b.put_i16(pepoch);
    b.put_i32(seq);
    b.put_i32(records.len() as i32);
    b.put_slice(&body);
    let crc = crc32c::crc32c(&b[OFF_ATTRIBUTES..]);
    b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A COMMIT (`commit`) or ABORT control batch of a transaction, as the
/// partition leader writes it for the transaction coordinator.
pub fn build_control(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> BytesMut {
    let key = [0u8, 0, 0, commit as u8];
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let recs: [SimpleRecord<'_>; 1] = [(Some(&key[..]), Some(&value[..]), timestamp)];
    let mut b = build(0, &recs, Some((producer_id, producer_epoch, -1)));
    let attrs = ATTR_TRANSACTIONAL | ATTR_CONTROL;
    b[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    let crc = crc32c::crc32c(&b[OFF_ATTRIBUTES..]);
    b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The type of a control batch's marker: `Some(true)` COMMIT,
/// `Some(false)` ABORT, `None` for anything else (not a control batch, an
/// unknown control type, a compressed or malformed one).
pub fn control_commit(b: &[u8]) -> Option<bool> {
    let h = BatchHeader::parse(b).ok()?;
    if !h.is_control() || h.compression() != 0 || h.record_count < 1 {
        return None;
    }
    let mut buf = b.get(HEADER_LEN..)?;
    read_varint(&mut buf).ok()?; // record length
    if !buf.has_remaining() {
        return None;
    }
    buf.get_u8(); // attributes
    read_varint(&mut buf).ok()?; // timestamp delta
    read_varint(&mut buf).ok()?; // offset delta
    let klen = read_varint(&mut buf).ok()?;
    if klen < 4 || buf.remaining() < 4 {
        return None;
    }
    let version = buf.get_i16();
    let kind = buf.get_i16();
    match (version, kind) {
        (0, 0) => Some(false),
        (0, 1) => Some(true),
        _ => None,
    }
}

fn put_varint(b: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            b.put_u8(z as u8);
            return;
        }
        b.put_u8((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> BytesMut {
        build(
            0,
            &[
                (Some(b"k1"), Some(b"v1"), 1000),
                (None, Some(b"hello"), 1005),
                (Some(b"k3"), None, 1002),
            ],
            None,
        )
    }

    #[test]
    fn keyless_records_are_found_plain_and_compressed() {
        let b = sample();
        assert_eq!(keyless_records(&b, 1 << 20, 10).unwrap(), (vec![1], 1));
        assert_eq!(keyless_records(&b, 1 << 20, 0).unwrap(), (vec![], 1));
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions,
        };
        let recs: Vec<Record> = (0..5)
            .map(|i| {
                let key = (i % 2 == 0).then(|| bytes::Bytes::from_static(b"k"));
                crate::log::decode::test_record(i, key, Some(bytes::Bytes::from_static(b"v")), 0)
            })
            .collect();
        for c in [
            Compression::Gzip,
            Compression::Zstd,
            Compression::Lz4,
            Compression::Snappy,
        ] {
            let mut out = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut out,
                recs.iter(),
                &RecordEncodeOptions {
                    version: 2,
                    compression: c,
                },
            )
            .unwrap();
            validate(&out, usize::MAX).unwrap();
            assert_eq!(keyless_records(&out, 1 << 20, 10).unwrap(), (vec![1, 3], 2));
            assert!(matches!(
                keyless_records(&out, 4, 10),
                Err(BatchError::TooLarge { .. })
            ));
        }
    }

    #[test]
    fn valid_batch_passes_and_reports_header() {
        let b = sample();
        let h = validate(&b, usize::MAX).unwrap();
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.max_timestamp, 1005);
        assert_eq!(h.total_len(), b.len());
    }

    #[test]
    fn bad_crc_is_refused() {
        let mut b = sample();
        let n = b.len();
        b[n - 1] ^= 0xff;
        assert!(matches!(
            validate(&b, usize::MAX),
            Err(BatchError::BadCrc { .. })
        ));
    }

    #[test]
    fn wrong_magic_length_and_count_are_refused() {
        let mut b = sample();
        b[OFF_MAGIC] = 1;
        assert_eq!(
            validate(&b, usize::MAX),
            Err(BatchError::BadMagic { magic: 1 })
        );
        let b = sample();
        assert!(matches!(
            validate(&b[..b.len() - 1], usize::MAX),
            Err(BatchError::BadLength { .. })
        ));
        let mut b = sample();
        b[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&5i32.to_be_bytes());
        let crc = crc32c::crc32c(&b[OFF_ATTRIBUTES..]);
        b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate(&b, usize::MAX),
            Err(BatchError::BadCount { .. })
        ));
        let b = sample();
        assert!(matches!(validate(&b, 10), Err(BatchError::TooLarge { .. })));
    }

    #[test]
    fn assign_keeps_crc_valid() {
        let mut b = sample();
        assign(&mut b, 42, 7, None);
        let h = validate(&b, usize::MAX).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (42, 7));
        assign(&mut b, 43, 8, Some(99_999));
        let h = validate(&b, usize::MAX).unwrap();
        assert_eq!(h.max_timestamp, 99_999);
        assert_ne!(h.attributes & ATTR_TIMESTAMP_TYPE, 0);
    }

    proptest! {
        #[test]
        fn build_validate_roundtrip(recs in proptest::collection::vec((proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)), proptest::collection::vec(any::<u8>(), 0..200), 0i64..1_000_000), 1..30)) {
            let rs: Vec<SimpleRecord> = recs.iter().map(|(k, v, t)| (k.as_deref(), Some(v.as_slice()), *t)).collect();
            let b = build(0, &rs, Some((5, 1, 10)));
            let h = validate(&b, usize::MAX).unwrap();
            prop_assert_eq!(h.record_count as usize, rs.len());
            prop_assert_eq!(h.last_sequence(), 10 + rs.len() as i32 - 1);
        }

        #[test]
        fn mutated_batches_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..300), flip in 0usize..300) {
            let b = sample();
            if bytes.is_empty() { bytes = b.to_vec(); }
            let i = flip % bytes.len();
            bytes[i] ^= 0x5a;
            let _ = validate(&bytes, usize::MAX);
        }
    }
}
