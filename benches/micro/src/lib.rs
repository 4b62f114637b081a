//! Fixtures for the micro-benchmarks in `benches/`: record batches, segments
//! and request frames, built with the broker's own code and the protocol
//! crate the broker decodes with.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use strata::log::batch::{self, SimpleRecord};
use strata::log::segment::Segment;

/// Create time of the first record of every fixture batch.
pub const BASE_TS: i64 = 1_700_000_000_000;

/// Key length of every fixture record.
pub const KEY_LEN: usize = 16;

/// Topic id of the fixture topic in requests and responses from v13 on.
pub const TOPIC_ID: uuid::Uuid = uuid::Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0001);

/// Deterministic pseudo-random bytes (xorshift64*), so values are not
/// trivially compressible and every run sees the same data.
pub fn fill(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An uncompressed RecordBatch v2 at base offset 0, without a producer id:
/// `count` records, each with a 16-byte key and a `value_len`-byte value,
/// timestamps 1 ms apart.
pub fn batch(count: usize, value_len: usize) -> Vec<u8> {
    let keys: Vec<Vec<u8>> = (0..count).map(|i| fill(i as u64, KEY_LEN)).collect();
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| fill(1_000_003 + i as u64, value_len))
        .collect();
    let records: Vec<SimpleRecord<'_>> = (0..count)
        .map(|i| {
            (
                Some(keys[i].as_slice()),
                Some(values[i].as_slice()),
                BASE_TS + i as i64,
            )
        })
        .collect();
    batch::build(0, &records, None).to_vec()
}

/// A new segment in `dir` at base offset 0 holding `n` copies of `bytes`
/// (one batch), each given the next offset as the produce path does.
pub fn segment_of(dir: &Path, bytes: &[u8], n: usize, index_interval: u64) -> Segment {
    let mut seg = Segment::create(dir, 0, BASE_TS).expect("create segment");
    let mut b = bytes.to_vec();
    for _ in 0..n {
        batch::assign(&mut b, seg.next_offset, 0, None);
        let h = batch::validate(&b, usize::MAX).expect("valid batch");
        seg.append(&h, &b, index_interval).expect("append");
    }
    seg
}

fn frame(key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("strata-micro")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .expect("encode header");
    body.encode(&mut buf, version).expect("encode request");
    buf.freeze()
}

/// A Produce request frame (header and body, without the size prefix):
/// acks=1, one topic, `partitions` partitions each carrying `records`.
pub fn produce_frame(version: i16, partitions: i32, records: &[u8]) -> Bytes {
    let records = Bytes::copy_from_slice(records);
    let topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str("bench")))
        .with_partition_data(
            (0..partitions)
                .map(|p| {
                    PartitionProduceData::default()
                        .with_index(p)
                        .with_records(Some(records.clone()))
                })
                .collect(),
        );
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![topic]);
    frame(ApiKey::Produce, version, &req)
}

/// A consumer's Fetch request frame: one topic (by name before v13, by id
/// from v13), `partitions` partitions, 1 MiB per partition.
pub fn fetch_frame(version: i16, partitions: i32) -> Bytes {
    let mut topic = FetchTopic::default().with_partitions(
        (0..partitions)
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_current_leader_epoch(0)
                    .with_fetch_offset(1_000_000 + 1_000 * p as i64)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(1 << 20)
            })
            .collect(),
    );
    if version >= 13 {
        topic = topic.with_topic_id(TOPIC_ID);
    } else {
        topic = topic.with_topic(TopicName(StrBytes::from_static_str("bench")));
    }
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![topic]);
    frame(ApiKey::Fetch, version, &req)
}

/// A Fetch response: one topic, `partitions` partitions each returning
/// `records`.
pub fn fetch_response(version: i16, partitions: i32, records: &[u8]) -> ResponseKind {
    let records = Bytes::copy_from_slice(records);
    let mut topic = FetchableTopicResponse::default().with_partitions(
        (0..partitions)
            .map(|p| {
                PartitionData::default()
                    .with_partition_index(p)
                    .with_high_watermark(2_000_000)
                    .with_last_stable_offset(2_000_000)
                    .with_log_start_offset(0)
                    .with_records(Some(records.clone()))
            })
            .collect(),
    );
    if version >= 13 {
        topic = topic.with_topic_id(TOPIC_ID);
    } else {
        topic = topic.with_topic(TopicName(StrBytes::from_static_str("bench")));
    }
    ResponseKind::Fetch(FetchResponse::default().with_responses(vec![topic]))
}

/// A Produce response acknowledging `partitions` partitions of one topic.
pub fn produce_response(partitions: i32) -> ResponseKind {
    let topic = TopicProduceResponse::default()
        .with_name(TopicName(StrBytes::from_static_str("bench")))
        .with_partition_responses(
            (0..partitions)
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p)
                        .with_base_offset(1_000_000 + 16 * p as i64)
                        .with_log_append_time_ms(-1)
                })
                .collect(),
        );
    ResponseKind::Produce(ProduceResponse::default().with_responses(vec![topic]))
}
