//! Entry points for coverage-guided fuzzing and the corpus replay test.
//!
//! Each `fn(&[u8])` below takes arbitrary bytes, runs them through the
//! broker's own parsing code the way the broker does, and returns normally
//! for every input: a panic, an abort or unbounded memory is a bug. The
//! cargo-fuzz targets in `fuzz/` call them, and so does
//! `tests/fuzz_replay.rs`, which replays the committed corpus
//! (`fuzz/corpus/<target>/`) on stable Rust as an ordinary test.
//! [`seeds`] generates the valid part of that corpus.
//!
//! | target | input | code under test |
//! |---|---|---|
//! | `kafka_frame` | a request frame without its length prefix | [`crate::kafka::decode_request`] for every advertised API and version, then RecordBatch validation of produced records |
//! | `record_batch` | the `records` bytes of one produced partition | the split and [`crate::log::batch::validate`] of `PartitionLog::append`, then `assign` / `clear_sequence_if_anonymous` |
//! | `decompress` | codec byte, record count (u16), compressed records | a stored batch decoded (and decompressed) by `RecordBatchDecoder` as compaction, timestamp lookups and HTTP consume do |
//! | `http_json` | a request body | every JSON body type of the HTTP API, and the produce stream split into records |
//! | `raft_log` | `raft/log` bytes, or JSON entries one per line | [`crate::controller::log_store::LogStore::open`] (record reader and recovery), then the entries applied to a `MetaState` |
//! | `meta_log` | `meta.log` bytes, or JSON commands one per line | [`crate::meta::store::MetaStore::open`] (the earlier release's reader: replay, torn-tail cut) |

#![allow(clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{self as km, ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::log::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use crate::meta::command::Command;
use crate::meta::MetaState;

/// A fuzz target: arbitrary bytes in, a normal return for every input.
pub type Target = fn(&[u8]);

/// The targets, by name (the names of `fuzz/fuzz_targets/*.rs` and of the
/// corpus directories).
pub const TARGETS: &[(&str, Target)] = &[
    ("kafka_frame", kafka_frame),
    ("record_batch", record_batch),
    ("decompress", decompress),
    ("http_json", http_json),
    ("raft_log", raft_log),
    ("meta_log", meta_log),
    ("sasl", sasl),
];

/// The target function of `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

// ------------------------------------------------------------------ targets

/// A request frame as `kafka::server` reads it after the length prefix:
/// the key and version are checked against the advertised table, the frame
/// is decoded, and the records of a produce request are split and validated
/// as the append path does.
pub fn kafka_frame(data: &[u8]) {
    if data.len() < 8 {
        return; // refused before decoding (frame too short for a header)
    }
    let key = i16::from_be_bytes([data[0], data[1]]);
    let version = i16::from_be_bytes([data[2], data[3]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return;
    };
    let Some((lo, hi)) = crate::kafka::supported_range(api) else {
        return;
    };
    if version < lo || version > hi {
        return;
    }
    let mut frame = Bytes::copy_from_slice(data);
    let Ok((_header, req)) = crate::kafka::decode_request(api, version, &mut frame) else {
        return;
    };
    if let RequestKind::Produce(p) = req {
        for t in &p.topic_data {
            for pd in &t.partition_data {
                if let Some(r) = &pd.records {
                    record_batch(r);
                }
            }
        }
    }
}

/// SASL messages from an unauthenticated peer: the first byte picks the
/// parser (PLAIN message, SCRAM client-first, SCRAM client-final against
/// an exchange in progress); none may panic, and a client-final accepted
/// without the right proof would be a bypass.
pub fn sasl(data: &[u8]) {
    use crate::auth::scram::{parse_client_first, Credential, Mechanism, ServerExchange};
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let _ = crate::auth::parse_plain(rest);
        }
        1 => {
            let _ = parse_client_first(rest);
        }
        _ => {
            let first = parse_client_first(b"n,,n=user,r=fuzz").expect("static message");
            let cred = Credential::from_salted(Mechanism::Sha256, &[7; 32], vec![1; 16], 4096);
            let (ex, _) =
                ServerExchange::start(Mechanism::Sha256, first, Some(cred), "srv", vec![]);
            assert!(
                ex.finish(rest).is_err(),
                "a made-up client-final was accepted"
            );
        }
    }
}

/// The records of one produced partition, split into batches and validated
/// exactly as `PartitionLog::append` does before it takes the partition
/// lock; each accepted batch then gets the broker-owned fields rewritten,
/// which must keep it valid.
pub fn record_batch(data: &[u8]) {
    let max = 1 << 20;
    let mut pos = 0usize;
    let mut spans = Vec::new();
    while pos < data.len() {
        let Some(len) = batch::peek_batch_len(&data[pos..]) else {
            return;
        };
        if len < 0 {
            return;
        }
        let Some(end) = pos
            .checked_add(LOG_OVERHEAD + len as usize)
            .filter(|e| *e <= data.len())
        else {
            return;
        };
        let Ok(h) = batch::validate(&data[pos..end], max) else {
            return;
        };
        spans.push((pos, end, h));
        pos = end;
    }
    for (start, end, h) in spans {
        check_accepted_batch(&data[start..end], &h, max);
    }
}

fn check_accepted_batch(b: &[u8], h: &BatchHeader, max: usize) {
    assert_eq!(BatchHeader::parse(b).as_ref(), Ok(h));
    assert_eq!(h.total_len(), b.len());
    let _ = (h.last_offset(), h.last_sequence(), h.is_control());
    let mut copy = b.to_vec();
    batch::assign(&mut copy, 1_000, 7, None);
    let h2 = batch::validate(&copy, max).expect("assign without LogAppendTime keeps the CRC valid");
    assert_eq!((h2.base_offset, h2.partition_leader_epoch), (1_000, 7));
    assert_eq!(h2.record_count, h.record_count);
    batch::assign(&mut copy, i64::MAX / 2, i32::MAX, Some(1_700_000_000_000));
    let h3 = batch::validate(&copy, max).expect("assign with LogAppendTime rewrites the CRC");
    assert_eq!(h3.max_timestamp, 1_700_000_000_000);
    batch::clear_sequence_if_anonymous(&mut copy);
    batch::validate(&copy, max).expect("clearing the sequence rewrites the CRC");
}

/// A batch as the broker stores it (validated on produce, compressed
/// payloads stored as sent), decoded and decompressed by
/// `log::decode::decode_batch` (bounded) as compaction, by-timestamp
/// lookups and HTTP consume do. Input: codec (byte 0, modulo 5), record count (bytes
/// 1-2, big endian), then the (compressed) records.
pub fn decompress(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let codec = (data[0] % 5) as i16;
    let count = u16::from_be_bytes([data[1], data[2]]) as i32;
    let b = frame_batch(codec, count, &data[3..]);
    if batch::validate(&b, usize::MAX).is_err() {
        return;
    }
    let mut bytes = Bytes::from(b);
    if let Ok(set) = crate::log::decode::decode_batch(
        &mut bytes,
        crate::log::decode::MAX_DECOMPRESSED_BATCH_BYTES,
    ) {
        assert!(set.records.len() <= count as usize);
    }
}

/// A RecordBatch v2 around `records` with a correct length and CRC.
fn frame_batch(codec: i16, count: i32, records: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + records.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc, below
    b.extend_from_slice(&codec.to_be_bytes());
    b.extend_from_slice(&(count - 1).max(0).to_be_bytes()); // last offset delta
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A body of the HTTP API: parsed as every JSON body type the handlers
/// take (`JsonBody<T>` is `serde_json::from_slice`), and split into
/// concatenated records and prepared as the produce stream does.
pub fn http_json(data: &[u8]) {
    use crate::http::{admin, consumer, produce};
    let _ = serde_json::from_slice::<admin::CreateTopic>(data);
    let _ = serde_json::from_slice::<admin::AlterConfigs>(data);
    let _ = serde_json::from_slice::<admin::UpdateConfig>(data);
    let _ = serde_json::from_slice::<consumer::CreateConsumer>(data);
    let _ = serde_json::from_slice::<consumer::Subscription>(data);
    let _ = serde_json::from_slice::<consumer::Partitions>(data);
    let _ = serde_json::from_slice::<consumer::Offsets>(data);
    let mut it = serde_json::Deserializer::from_slice(data).into_iter::<serde::de::IgnoredAny>();
    let mut start = 0;
    while let Some(Ok(_)) = it.next() {
        let end = it.byte_offset();
        if let Ok(r) = serde_json::from_slice::<produce::ProduceRecord>(&data[start..end]) {
            prepare_record(&r);
        }
        start = end;
    }
}

fn prepare_record(r: &crate::http::produce::ProduceRecord) {
    use crate::http::codec;
    let key = r.key.as_ref().map(|d| d.to_bytes("key"));
    let _ = r.value.as_ref().map(|d| d.to_bytes("value"));
    if let Some(Ok(Some(k))) = key {
        let p = codec::partition_for_key(&k, 7);
        assert!((0..7).contains(&p));
    }
    for h in &r.headers {
        if let Some(v) = &h.value {
            let _ = codec::b64_decode(v);
        }
    }
    if let Some(serde_json::Value::String(s)) = &r.timestamp {
        if let Some(ms) = codec::parse_rfc3339_ms(s) {
            let _ = codec::format_rfc3339_ms(ms);
        }
    }
}

/// The controller's Raft log file: opened by `LogStore::open` (record
/// reader, torn-tail cut, refusal of damage in the middle, contiguity).
/// Input starting with `{`: JSON entries, one per line, written as
/// well-formed records (so the fuzzer reaches the entry decoding and the
/// state machine behind the checksums); otherwise the raw file.
pub fn raft_log(data: &[u8]) {
    use crate::controller::log_store::LogStore;
    type Entry = openraft::Entry<crate::controller::TypeConfig>;
    let framed = data.first() == Some(&b'{');
    let file = if framed {
        data.split(|b| *b == b'\n')
            .flat_map(raft_record)
            .collect::<Vec<u8>>()
    } else {
        data.to_vec()
    };
    with_scratch_dir(|dir| {
        std::fs::write(dir.join("log"), &file).expect("write scratch log");
        let opened = LogStore::open(dir);
        if let Ok(store) = &opened {
            let _ = (store.is_empty(), store.last_index());
        }
        drop(opened);
    });
    if framed {
        // What the state machine does with the entries it is given.
        let mut state = MetaState::new();
        for line in data.split(|b| *b == b'\n') {
            if let Ok(entry) = serde_json::from_slice::<Entry>(line) {
                if let openraft::EntryPayload::Normal(cmd) = entry.payload {
                    let _ = state.apply_entry(entry.log_id.index, cmd);
                }
            }
        }
    }
}

/// One `raft/log` record around `payload` (see `controller::log_store`).
fn raft_record(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload);
    let mut r = Vec::with_capacity(12 + payload.len());
    r.extend_from_slice(&0x5354_524cu32.to_le_bytes());
    r.extend_from_slice(&len);
    r.extend_from_slice(&crc.to_le_bytes());
    r.extend_from_slice(payload);
    r
}

/// The earlier release's metadata log (`meta.log`), replayed by
/// `MetaStore::open` (the import reader): header, records, checks and
/// `apply` of every command, torn-tail cut. Input starting with `{` or `"`:
/// JSON commands, one per line, written as well-formed records; otherwise
/// the raw file.
pub fn meta_log(data: &[u8]) {
    use crate::meta::store::MetaStore;
    let framed = matches!(data.first(), Some(b'{') | Some(b'"'));
    let file = if framed {
        let mut f = meta_log_header(0).to_vec();
        for line in data.split(|b| *b == b'\n') {
            f.extend_from_slice(&meta_record(line));
        }
        f
    } else {
        data.to_vec()
    };
    with_scratch_dir(|dir| {
        std::fs::write(dir.join("meta.log"), &file).expect("write scratch meta.log");
        let opened = MetaStore::open_with(dir, 0);
        if let Ok(store) = &opened {
            let _ = store.state().applied_index;
        }
        drop(opened);
    });
}

fn meta_log_header(base_index: u64) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(b"STRMLOG1");
    h[8..16].copy_from_slice(&base_index.to_le_bytes());
    let crc = crc32c::crc32c(&h[..16]);
    h[16..].copy_from_slice(&crc.to_le_bytes());
    h
}

fn meta_record(payload: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(8 + payload.len());
    r.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    r.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    r.extend_from_slice(payload);
    r
}

/// Runs `f` in an empty directory of this thread, reused across calls (on
/// tmpfs when there is one: the stores fsync).
fn with_scratch_dir(f: impl FnOnce(&Path)) {
    thread_local! {
        static DIR: PathBuf = {
            let shm = Path::new("/dev/shm");
            let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
            let d = base.join(format!(
                "strata-fuzz-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ))
            .to_string_lossy()
            .replace(['(', ')'], "");
            PathBuf::from(d)
        };
    }
    DIR.with(|dir| {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("create scratch dir");
        f(dir);
        let _ = std::fs::remove_dir_all(dir);
    });
}

// ------------------------------------------------------------------ seeds

/// The valid seed inputs of `target`: `(file name, bytes)`, deterministic,
/// so the committed corpus can be checked against them.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "kafka_frame" => frame_seeds(),
        "record_batch" => batch_seeds()
            .into_iter()
            .map(|(n, b)| (n, b.to_vec()))
            .collect(),
        "decompress" => batch_seeds()
            .into_iter()
            .map(|(n, b)| {
                let h = BatchHeader::parse(&b).expect("seed batch");
                let mut v = vec![h.compression() as u8];
                v.extend_from_slice(&(h.record_count as u16).to_be_bytes());
                v.extend_from_slice(&b[HEADER_LEN..]);
                (n, v)
            })
            .collect(),
        "http_json" => http_seeds(),
        "raft_log" => raft_seeds(),
        "meta_log" => meta_seeds(),
        "sasl" => sasl_seeds(),
        _ => Vec::new(),
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn seed_records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder puts records in one batch while offset minus
            // sequence stays the same.
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: (i % 3 != 2).then(|| Bytes::from(format!("key-{}", i % 5))),
            value: (i % 4 != 3).then(|| Bytes::from("value ".repeat(i % 7 + 1))),
            headers: if i % 2 == 0 {
                [(sb("h"), Some(Bytes::from_static(b"x")))]
                    .into_iter()
                    .collect()
            } else {
                Default::default()
            },
            delete_horizon: false,
        })
        .collect()
}

/// Batches of each codec, as clients produce them.
fn batch_seeds() -> Vec<(String, Bytes)> {
    let mut out = Vec::new();
    for (name, c) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        for n in [1usize, 5] {
            let recs = seed_records(n);
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                recs.iter(),
                &RecordEncodeOptions {
                    version: 2,
                    compression: c,
                },
            )
            .expect("encode seed batch");
            out.push((format!("batch-{name}-{n}"), buf.freeze()));
        }
    }
    let idem = batch::build(
        0,
        &[(Some(b"k"), Some(b"v"), 1_700_000_000_000)],
        Some((4000, 0, 0)),
    );
    out.push(("batch-idempotent".into(), idem.freeze()));
    let empty_value = batch::build(
        0,
        &[
            (None, None, 1_700_000_000_000),
            (Some(b""), Some(b""), 1_700_000_000_001),
        ],
        None,
    );
    out.push(("batch-null-and-empty".into(), empty_value.freeze()));
    out
}

/// A request of `api` with every field at its default.
fn sasl_seeds() -> Vec<(String, Vec<u8>)> {
    let seed = |n: &str, which: u8, body: &[u8]| {
        let mut v = vec![which];
        v.extend_from_slice(body);
        (n.to_string(), v)
    };
    vec![
        seed("plain", 0, b"\0alice\0secret"),
        seed("plain-authzid", 0, b"alice\0alice\0secret"),
        seed("scram-first", 1, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"),
        seed("scram-first-escaped", 1, b"n,a=a=3Db,n=a=3Db,r=N0nce,ext=1"),
        seed(
            "scram-final",
            2,
            b"c=biws,r=fuzzsrv,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        ),
    ]
}

fn default_request(api: ApiKey) -> RequestKind {
    use RequestKind as R;
    // Every request type of the protocol crate, so an API added to
    // `kafka::SUPPORTED` has its seeds without a change here.
    match api {
        ApiKey::Produce => R::Produce(Default::default()),
        ApiKey::Fetch => R::Fetch(Default::default()),
        ApiKey::ListOffsets => R::ListOffsets(Default::default()),
        ApiKey::Metadata => R::Metadata(Default::default()),
        ApiKey::OffsetCommit => R::OffsetCommit(Default::default()),
        ApiKey::OffsetFetch => R::OffsetFetch(Default::default()),
        ApiKey::FindCoordinator => R::FindCoordinator(Default::default()),
        ApiKey::JoinGroup => R::JoinGroup(Default::default()),
        ApiKey::Heartbeat => R::Heartbeat(Default::default()),
        ApiKey::LeaveGroup => R::LeaveGroup(Default::default()),
        ApiKey::SyncGroup => R::SyncGroup(Default::default()),
        ApiKey::DescribeGroups => R::DescribeGroups(Default::default()),
        ApiKey::ListGroups => R::ListGroups(Default::default()),
        ApiKey::SaslHandshake => R::SaslHandshake(Default::default()),
        ApiKey::ApiVersions => R::ApiVersions(Default::default()),
        ApiKey::CreateTopics => R::CreateTopics(Default::default()),
        ApiKey::DeleteTopics => R::DeleteTopics(Default::default()),
        ApiKey::DeleteRecords => R::DeleteRecords(Default::default()),
        ApiKey::InitProducerId => R::InitProducerId(Default::default()),
        ApiKey::OffsetForLeaderEpoch => R::OffsetForLeaderEpoch(Default::default()),
        ApiKey::AddPartitionsToTxn => R::AddPartitionsToTxn(Default::default()),
        ApiKey::AddOffsetsToTxn => R::AddOffsetsToTxn(Default::default()),
        ApiKey::EndTxn => R::EndTxn(Default::default()),
        ApiKey::WriteTxnMarkers => R::WriteTxnMarkers(Default::default()),
        ApiKey::TxnOffsetCommit => R::TxnOffsetCommit(Default::default()),
        ApiKey::DescribeAcls => R::DescribeAcls(Default::default()),
        ApiKey::CreateAcls => R::CreateAcls(Default::default()),
        ApiKey::DeleteAcls => R::DeleteAcls(Default::default()),
        ApiKey::DescribeConfigs => R::DescribeConfigs(Default::default()),
        ApiKey::AlterConfigs => R::AlterConfigs(Default::default()),
        ApiKey::AlterReplicaLogDirs => R::AlterReplicaLogDirs(Default::default()),
        ApiKey::DescribeLogDirs => R::DescribeLogDirs(Default::default()),
        ApiKey::SaslAuthenticate => R::SaslAuthenticate(Default::default()),
        ApiKey::CreatePartitions => R::CreatePartitions(Default::default()),
        ApiKey::CreateDelegationToken => R::CreateDelegationToken(Default::default()),
        ApiKey::RenewDelegationToken => R::RenewDelegationToken(Default::default()),
        ApiKey::ExpireDelegationToken => R::ExpireDelegationToken(Default::default()),
        ApiKey::DescribeDelegationToken => R::DescribeDelegationToken(Default::default()),
        ApiKey::DeleteGroups => R::DeleteGroups(Default::default()),
        ApiKey::ElectLeaders => R::ElectLeaders(Default::default()),
        ApiKey::IncrementalAlterConfigs => R::IncrementalAlterConfigs(Default::default()),
        ApiKey::AlterPartitionReassignments => R::AlterPartitionReassignments(Default::default()),
        ApiKey::ListPartitionReassignments => R::ListPartitionReassignments(Default::default()),
        ApiKey::OffsetDelete => R::OffsetDelete(Default::default()),
        ApiKey::DescribeClientQuotas => R::DescribeClientQuotas(Default::default()),
        ApiKey::AlterClientQuotas => R::AlterClientQuotas(Default::default()),
        ApiKey::DescribeUserScramCredentials => R::DescribeUserScramCredentials(Default::default()),
        ApiKey::AlterUserScramCredentials => R::AlterUserScramCredentials(Default::default()),
        ApiKey::Vote => R::Vote(Default::default()),
        ApiKey::BeginQuorumEpoch => R::BeginQuorumEpoch(Default::default()),
        ApiKey::EndQuorumEpoch => R::EndQuorumEpoch(Default::default()),
        ApiKey::DescribeQuorum => R::DescribeQuorum(Default::default()),
        ApiKey::AlterPartition => R::AlterPartition(Default::default()),
        ApiKey::UpdateFeatures => R::UpdateFeatures(Default::default()),
        ApiKey::Envelope => R::Envelope(Default::default()),
        ApiKey::FetchSnapshot => R::FetchSnapshot(Default::default()),
        ApiKey::DescribeCluster => R::DescribeCluster(Default::default()),
        ApiKey::DescribeProducers => R::DescribeProducers(Default::default()),
        ApiKey::BrokerRegistration => R::BrokerRegistration(Default::default()),
        ApiKey::BrokerHeartbeat => R::BrokerHeartbeat(Default::default()),
        ApiKey::UnregisterBroker => R::UnregisterBroker(Default::default()),
        ApiKey::DescribeTransactions => R::DescribeTransactions(Default::default()),
        ApiKey::ListTransactions => R::ListTransactions(Default::default()),
        ApiKey::AllocateProducerIds => R::AllocateProducerIds(Default::default()),
        ApiKey::ConsumerGroupHeartbeat => R::ConsumerGroupHeartbeat(Default::default()),
        ApiKey::ConsumerGroupDescribe => R::ConsumerGroupDescribe(Default::default()),
        ApiKey::ControllerRegistration => R::ControllerRegistration(Default::default()),
        ApiKey::GetTelemetrySubscriptions => R::GetTelemetrySubscriptions(Default::default()),
        ApiKey::PushTelemetry => R::PushTelemetry(Default::default()),
        ApiKey::AssignReplicasToDirs => R::AssignReplicasToDirs(Default::default()),
        ApiKey::ListConfigResources => R::ListConfigResources(Default::default()),
        ApiKey::DescribeTopicPartitions => R::DescribeTopicPartitions(Default::default()),
        ApiKey::ShareGroupHeartbeat => R::ShareGroupHeartbeat(Default::default()),
        ApiKey::ShareGroupDescribe => R::ShareGroupDescribe(Default::default()),
        ApiKey::ShareFetch => R::ShareFetch(Default::default()),
        ApiKey::ShareAcknowledge => R::ShareAcknowledge(Default::default()),
        ApiKey::AddRaftVoter => R::AddRaftVoter(Default::default()),
        ApiKey::RemoveRaftVoter => R::RemoveRaftVoter(Default::default()),
        ApiKey::UpdateRaftVoter => R::UpdateRaftVoter(Default::default()),
        ApiKey::InitializeShareGroupState => R::InitializeShareGroupState(Default::default()),
        ApiKey::ReadShareGroupState => R::ReadShareGroupState(Default::default()),
        ApiKey::WriteShareGroupState => R::WriteShareGroupState(Default::default()),
        ApiKey::DeleteShareGroupState => R::DeleteShareGroupState(Default::default()),
        ApiKey::ReadShareGroupStateSummary => R::ReadShareGroupStateSummary(Default::default()),
        ApiKey::DescribeShareGroupOffsets => R::DescribeShareGroupOffsets(Default::default()),
        ApiKey::AlterShareGroupOffsets => R::AlterShareGroupOffsets(Default::default()),
        ApiKey::DeleteShareGroupOffsets => R::DeleteShareGroupOffsets(Default::default()),
    }
}

/// A request of `api` with typical fields set for `version` (topics,
/// partitions, groups, records), where that is worth a seed of its own.
fn populated_request(api: ApiKey, version: i16) -> Option<RequestKind> {
    use km::*;
    let topic = || TopicName(sb("orders"));
    let group = || GroupId(sb("group-1"));
    let records = batch_seeds()
        .into_iter()
        .find(|(n, _)| n == "batch-lz4-5")
        .map(|(_, b)| b);
    Some(match api {
        ApiKey::Produce => RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(if version < 13 {
                        topic()
                    } else {
                        Default::default()
                    })
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(records),
                    ])]),
        ),
        ApiKey::Fetch => RequestKind::Fetch(
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_rack_id(if version >= 11 { sb("zone-a") } else { sb("") })
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(if version < 13 {
                        topic()
                    } else {
                        Default::default()
                    })
                    .with_topic_id(if version >= 13 {
                        uuid::Uuid::from_u128(7)
                    } else {
                        uuid::Uuid::nil()
                    })
                    .with_partitions(vec![fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(42)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(1 << 20)])]),
        ),
        ApiKey::Metadata => {
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic())),
            ])))
        }
        ApiKey::CreateTopics => RequestKind::CreateTopics(
            CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(topic())
                    .with_num_partitions(3)
                    .with_replication_factor(-1)
                    .with_configs(vec![
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(sb("cleanup.policy"))
                            .with_value(Some(sb("compact"))),
                    ])]),
        ),
        ApiKey::JoinGroup => RequestKind::JoinGroup(
            JoinGroupRequest::default()
                .with_group_id(group())
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(if version >= 1 { 30_000 } else { -1 })
                .with_member_id(sb(""))
                .with_protocol_type(sb("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(sb("range"))
                .with_metadata(Bytes::from_static(b"\0\x01\0\0\0\x01\0\x06orders"))]),
        ),
        ApiKey::SyncGroup => RequestKind::SyncGroup(
            SyncGroupRequest::default()
                .with_group_id(group())
                .with_generation_id(1)
                .with_member_id(sb("m-1"))
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(sb("m-1"))
                        .with_assignment(Bytes::from_static(
                            b"\0\x01\0\0\0\x01\0\x06orders\0\0\0\x01\0\0\0\0",
                        )),
                ]),
        ),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(group())
                .with_generation_id_or_member_epoch(1)
                .with_member_id(sb("m-1"))
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic())
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(42)
                                .with_committed_metadata(Some(sb("meta"))),
                        ]),
                ]),
        ),
        ApiKey::FindCoordinator => {
            let r = FindCoordinatorRequest::default();
            RequestKind::FindCoordinator(if version >= 4 {
                r.with_coordinator_keys(vec![sb("group-1"), sb("group-2")])
            } else {
                r.with_key(sb("group-1"))
            })
        }
        _ => return None,
    })
}

fn encode_frame(api: ApiKey, version: i16, req: &RequestKind) -> Option<Vec<u8>> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(sb("fuzz-seed")))
        .encode(&mut buf, api.request_header_version(version))
        .ok()?;
    req.encode(&mut buf, version).ok()?;
    Some(buf.to_vec())
}

/// A frame of every advertised API and version, plus populated frames of
/// the APIs that carry topics, groups and records.
fn frame_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for &(api, lo, hi) in crate::kafka::SUPPORTED {
        for v in lo..=hi {
            let req = default_request(api);
            let f = encode_frame(api, v, &req).expect("a default request encodes");
            out.push((format!("{api:?}-v{v}"), f));
            if let Some(f) = populated_request(api, v).and_then(|r| encode_frame(api, v, &r)) {
                out.push((format!("{api:?}-v{v}-populated"), f));
            }
        }
    }
    out
}

fn http_seeds() -> Vec<(String, Vec<u8>)> {
    let s = |n: &str, b: &str| (n.to_string(), b.as_bytes().to_vec());
    vec![
        s("create-topic", r#"{"topic_name":"orders","partitions_count":3,"replication_factor":1,"configs":[{"name":"cleanup.policy","value":"compact"}]}"#),
        s("alter-configs", r#"{"data":[{"name":"retention.ms","value":"1000"},{"name":"segment.bytes","operation":"DELETE"}]}"#),
        s("update-config", r#"{"value":"86400000"}"#),
        s("create-consumer", r#"{"name":"c1","format":"binary","auto.offset.reset":"earliest","auto.commit.enable":"false","fetch.min.bytes":"1","consumer.request.timeout.ms":"1000"}"#),
        s("subscription", r#"{"topics":["orders","payments"]}"#),
        s("subscription-pattern", r#"{"topic_pattern":"ord.*"}"#),
        s("partitions", r#"{"partitions":[{"topic":"orders","partition":0},{"topic":"orders","partition":1}]}"#),
        s("offsets", r#"{"offsets":[{"topic":"orders","partition":0,"offset":42,"metadata":"m"}]}"#),
        s("produce-json", r#"{"key":{"type":"JSON","data":{"id":1}},"value":{"type":"JSON","data":[1,2.5,"x",null,true]},"headers":[{"name":"h","value":"eA=="}],"timestamp":"2024-01-02T03:04:05.678Z"}"#),
        s("produce-binary", r#"{"partition_id":1,"key":{"type":"BINARY","data":"AAE="},"value":{"type":"STRING","data":"hé"},"timestamp":1700000000000}"#),
        s("produce-stream", "{\"value\":{\"data\":1}} {\"value\":{\"data\":2}}\n{\"key\":{\"type\":\"STRING\",\"data\":\"k\"},\"value\":null}"),
    ]
}

fn seed_commands() -> Vec<Command> {
    let topic_id = uuid::Uuid::from_u128(0x5eed);
    vec![
        Command::RegisterBroker {
            broker_id: 1,
            host: "localhost".into(),
            port: 9092,
            rack: Some("zone-a".into()),
        },
        Command::CreateTopic {
            name: "orders".into(),
            topic_id,
            partitions: 2,
            replication_factor: -1,
            configs: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
            leader: 1,
            created_at_ms: 1_700_000_000_000,
        },
        Command::AllocateProducerIds { count: 7 },
        Command::BecomeLeader {
            broker_id: 1,
            partitions: vec![("orders".into(), 1, 10)],
        },
        Command::AlterTopicConfigs {
            name: "orders".into(),
            set: BTreeMap::from([("retention.ms".into(), "60000".into())]),
            delete: vec!["cleanup.policy".into()],
            replace_all: false,
            topic_id: Some(topic_id),
        },
        Command::AdvanceLogStart {
            name: "orders".into(),
            partition: 0,
            offset: 0,
            topic_id: Some(topic_id),
            leader_epoch: None,
        },
        Command::CondemnObjects {
            keys: vec!["wal/1/1/0.wal".into()],
            at_ms: 1_700_000_000_000,
        },
        Command::ForgetObjects {
            keys: vec!["wal/1/1/0.wal".into()],
        },
        Command::AllocateBrokerId,
        Command::DeleteTopic {
            name: "orders".into(),
            topic_id: Some(topic_id),
        },
    ]
}

fn raft_seeds() -> Vec<(String, Vec<u8>)> {
    type Entry = openraft::Entry<crate::controller::TypeConfig>;
    let log_id = |i: u64| openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), i);
    let mut entries: Vec<Entry> = vec![Entry {
        log_id: log_id(1),
        payload: openraft::EntryPayload::Blank,
    }];
    entries.push(Entry {
        log_id: log_id(2),
        payload: openraft::EntryPayload::Membership(openraft::Membership::new(
            vec![std::collections::BTreeSet::from([1, 2, 3])],
            BTreeMap::from([
                (1, openraft::BasicNode::new("127.0.0.1:9093")),
                (2, openraft::BasicNode::new("127.0.0.1:9094")),
                (3, openraft::BasicNode::new("127.0.0.1:9095")),
            ]),
        )),
    });
    for (i, c) in seed_commands().into_iter().enumerate() {
        entries.push(Entry {
            log_id: log_id(i as u64 + 3),
            payload: openraft::EntryPayload::Normal(c),
        });
    }
    let lines: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| serde_json::to_vec(e).expect("entry json"))
        .collect();
    let raw: Vec<u8> = lines.iter().flat_map(|l| raft_record(l)).collect();
    let mut torn = raw.clone();
    torn.truncate(raw.len() - 5);
    vec![
        ("entries-json".into(), lines.join(&b'\n')),
        ("log-file".into(), raw),
        ("log-file-torn-tail".into(), torn),
    ]
}

fn meta_seeds() -> Vec<(String, Vec<u8>)> {
    let lines: Vec<Vec<u8>> = seed_commands()
        .iter()
        .map(|c| serde_json::to_vec(c).expect("command json"))
        .collect();
    // The file as the earlier release wrote it.
    let mut file = Vec::new();
    with_scratch_dir(|dir| {
        let mut store = crate::meta::store::MetaStore::open_with(dir, 0).expect("open meta store");
        for c in seed_commands() {
            store.submit(c).expect("seed command accepted");
        }
        drop(store);
        file = std::fs::read(dir.join("meta.log")).expect("read meta.log");
    });
    let mut torn = file.clone();
    torn.truncate(file.len() - 3);
    vec![
        ("commands-json".into(), lines.join(&b'\n')),
        ("meta-log".into(), file),
        ("meta-log-torn-tail".into(), torn),
    ]
}
