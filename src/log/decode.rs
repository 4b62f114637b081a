//! Decoding stored record batches with a bound on decompressed bytes.
//!
//! Batches are stored as producers sent them; decoding one (compaction,
//! by-timestamp lookups, HTTP consume) decompresses it. A small batch can
//! claim or inflate to gigabytes (snappy's length header is trusted by the
//! codec and allocated up front), so every codec here stops at
//! [`MAX_DECOMPRESSED_BATCH_BYTES`] and the batch is refused instead.

use std::io::Read;

use bytes::{Buf, Bytes};
use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordSet};

/// Most bytes one batch may decompress to (64 MiB: 64× the default
/// `max.message.bytes`).
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 64 << 20;

/// Why a batch could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("batch decompresses to more than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("cannot decode batch: {0}")]
    Invalid(String),
}

/// Decodes one batch (and its records), decompressing at most `limit`
/// bytes.
pub fn decode_batch(buf: &mut Bytes, limit: usize) -> Result<RecordSet, DecodeError> {
    let too_large = std::cell::Cell::new(false);
    let f = |b: &mut Bytes, c: Compression| -> anyhow::Result<Bytes> {
        let r = decompress(b, c, limit);
        if matches!(r, Err(DecodeError::TooLarge { .. })) {
            too_large.set(true);
        }
        r.map_err(|e| anyhow::anyhow!(e.to_string()))
    };
    RecordBatchDecoder::decode_with_custom_compression(buf, Some(f)).map_err(|e| {
        if too_large.get() {
            DecodeError::TooLarge { limit }
        } else {
            DecodeError::Invalid(e.to_string())
        }
    })
}

/// Decompresses a batch's records section, refusing more than `limit` bytes.
pub fn decompress(b: &mut Bytes, c: Compression, limit: usize) -> Result<Bytes, DecodeError> {
    let input = b.copy_to_bytes(b.remaining());
    match c {
        Compression::None => Ok(input),
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(&input[..]), limit),
        Compression::Lz4 => read_bounded(
            lz4::Decoder::new(&input[..]).map_err(|e| DecodeError::Invalid(e.to_string()))?,
            limit,
        ),
        Compression::Zstd => read_bounded(
            zstd::stream::read::Decoder::new(&input[..])
                .map_err(|e| DecodeError::Invalid(e.to_string()))?,
            limit,
        ),
        Compression::Snappy => snappy(&input, limit),
    }
}

fn read_bounded(r: impl Read, limit: usize) -> Result<Bytes, DecodeError> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Invalid(e.to_string()))?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// Kafka's snappy: the xerial framing (a magic header, then length-prefixed
/// raw blocks), or one raw block. Each block's declared length is checked
/// before anything is allocated.
fn snappy(input: &[u8], limit: usize) -> Result<Bytes, DecodeError> {
    const MAGIC: &[u8] = b"\x82SNAPPY\x00";
    let invalid = |e: &dyn std::fmt::Display| DecodeError::Invalid(format!("snappy: {e}"));
    let mut out: Vec<u8> = Vec::new();
    let block = |raw: &[u8], out: &mut Vec<u8>| -> Result<(), DecodeError> {
        let n = snap::raw::decompress_len(raw).map_err(|e| invalid(&e))?;
        if out.len().saturating_add(n) > limit {
            return Err(DecodeError::TooLarge { limit });
        }
        let at = out.len();
        out.resize(at + n, 0);
        snap::raw::Decoder::new()
            .decompress(raw, &mut out[at..])
            .map_err(|e| invalid(&e))?;
        Ok(())
    };
    if !input.starts_with(MAGIC) {
        block(input, &mut out)?;
        return Ok(Bytes::from(out));
    }
    // Magic (8), version (4), compatible version (4), then blocks.
    let mut rest = input
        .get(16..)
        .ok_or_else(|| invalid(&"truncated header"))?;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(invalid(&"truncated block length"));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let raw = rest
            .get(4..4 + len)
            .ok_or_else(|| invalid(&"block beyond the data"))?;
        block(raw, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(Bytes::from(out))
}

/// A plain record (no producer, CreateTime) for tests: `sequence` equal to
/// the offset keeps records of one call in one encoded batch.
#[cfg(test)]
pub(crate) fn test_record(
    offset: i64,
    key: Option<bytes::Bytes>,
    value: Option<bytes::Bytes>,
    timestamp: i64,
) -> kafka_protocol::records::Record {
    kafka_protocol::records::Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset,
        sequence: offset as i32,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Batches of a few dozen bytes whose snappy headers claim 4 GiB: the
    /// codec would allocate it; here they are refused at once.
    #[test]
    fn snappy_length_bombs_are_refused_without_allocating() {
        for h in [
            "0000000000000000000000360000000002240d5d690002000000000000018bcfe568000000018bcfe56800ffffffffffffffffffffffffffff00000001ffffffff0f",
            "00000000000000000000004a00000000026a6dedfb0002000000000000018bcfe568000000018bcfe56800ffffffffffffffffffffffffffff0000000182534e4150505900000000010000000100000005ffffffff0f",
        ] {
            let mut b = Bytes::from(hex(h));
            let e = decode_batch(&mut b, MAX_DECOMPRESSED_BATCH_BYTES).unwrap_err();
            assert!(matches!(e, DecodeError::TooLarge { .. }), "{e}");
        }
    }

    #[test]
    fn every_codec_round_trips_and_inflation_is_capped() {
        use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions};
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            // Compresses very well: 256 KiB of one byte per record.
            let recs: Vec<Record> = (0..4)
                .map(|i| super::test_record(i, None, Some(Bytes::from(vec![b'a'; 256 << 10])), 0))
                .collect();
            let mut out = bytes::BytesMut::new();
            RecordBatchEncoder::encode(
                &mut out,
                recs.iter(),
                &RecordEncodeOptions {
                    version: 2,
                    compression: c,
                },
            )
            .unwrap();
            let set = decode_batch(&mut out.clone().freeze(), MAX_DECOMPRESSED_BATCH_BYTES)
                .unwrap_or_else(|e| panic!("{c:?}: {e}"));
            assert_eq!(set.records.len(), 4);
            assert_eq!(set.records[3].value.as_ref().unwrap().len(), 256 << 10);
            if c != Compression::None {
                // The same batch with a 512 KiB limit: refused.
                let e = decode_batch(&mut out.freeze(), 512 << 10).unwrap_err();
                assert!(matches!(e, DecodeError::TooLarge { .. }), "{c:?}: {e}");
            }
        }
    }
}
