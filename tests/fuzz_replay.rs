//! Replays the fuzzing corpus (`fuzz/corpus/<target>/`) through the same
//! target functions the cargo-fuzz targets call (`strata::fuzzing`), on
//! stable Rust, as ordinary tests. Also checks that the generated seeds are
//! committed (a newly advertised API version needs its seed) and that they
//! are what they claim to be: valid inputs the broker accepts.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use strata::fuzzing;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.expect("corpus entry").path();
            let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, b)
        })
        .collect();
    out.sort();
    out
}

fn replay(target: &str) {
    let f = fuzzing::target(target).expect("known target");
    let files = corpus(target);
    assert!(!files.is_empty(), "empty corpus for {target}");
    for (path, bytes) in &files {
        let r = std::panic::catch_unwind(|| f(bytes));
        assert!(r.is_ok(), "{target} panics on {}", path.display());
    }
    let seeds = fuzzing::seeds(target);
    assert!(!seeds.is_empty(), "no seeds for {target}");
    let mut missing = Vec::new();
    for (name, bytes) in &seeds {
        f(bytes);
        match std::fs::read(corpus_dir(target).join(name)) {
            Ok(b) if &b == bytes => {}
            Ok(_) => missing.push(format!("{name} (differs)")),
            Err(_) => missing.push(name.clone()),
        }
    }
    assert!(
        missing.is_empty(),
        "seeds of {target} not committed: {missing:?}; run `scripts/fuzz --seed-corpus`"
    );
}

/// `scripts/fuzz --seed-corpus` runs this with STRATA_FUZZ_WRITE_SEEDS set
/// to write the generated seeds into `fuzz/corpus/`; otherwise it only
/// checks that every target has a corpus directory.
#[test]
fn write_seed_corpus() {
    let write = std::env::var_os("STRATA_FUZZ_WRITE_SEEDS").is_some();
    for (target, _) in fuzzing::TARGETS {
        let dir = corpus_dir(target);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            for (name, bytes) in fuzzing::seeds(target) {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
        assert!(dir.is_dir(), "{} missing", dir.display());
    }
}

#[test]
fn replay_kafka_frame() {
    replay("kafka_frame");
}

#[test]
fn replay_record_batch() {
    replay("record_batch");
}

#[test]
fn replay_decompress() {
    replay("decompress");
}

#[test]
fn replay_http_json() {
    replay("http_json");
}

#[test]
fn replay_raft_log() {
    replay("raft_log");
}

#[test]
fn replay_meta_log() {
    replay("meta_log");
}

#[test]
fn replay_sasl() {
    replay("sasl");
}

#[test]
fn frame_seeds_cover_every_advertised_version_and_decode() {
    let seeds = fuzzing::seeds("kafka_frame");
    for &(api, lo, hi) in strata::kafka::SUPPORTED {
        for v in lo..=hi {
            let name = format!("{api:?}-v{v}");
            let (_, frame) = seeds
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no seed {name}"));
            let mut b = Bytes::copy_from_slice(frame);
            let (h, _) = strata::kafka::decode_request(api, v, &mut b)
                .unwrap_or_else(|e| panic!("seed {name} does not decode: {e}"));
            assert_eq!((h.request_api_key, h.request_api_version), (api as i16, v));
            assert!(b.is_empty(), "seed {name}: {} bytes left over", b.len());
        }
    }
    let populated = seeds
        .iter()
        .filter(|(n, _)| n.ends_with("-populated"))
        .count();
    assert!(populated >= 50, "only {populated} populated frame seeds");
}

#[test]
fn batch_seeds_are_valid_batches_of_every_codec() {
    let seeds = fuzzing::seeds("record_batch");
    let mut codecs = std::collections::BTreeSet::new();
    for (name, b) in &seeds {
        let h = strata::log::batch::validate(b, usize::MAX)
            .unwrap_or_else(|e| panic!("seed {name} refused: {e}"));
        codecs.insert(h.compression());
        let set =
            kafka_protocol::records::RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(b))
                .unwrap_or_else(|e| panic!("seed {name} does not decode: {e}"));
        assert_eq!(set.records.len(), h.record_count as usize, "{name}");
    }
    assert_eq!(codecs.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
}

#[test]
fn log_seeds_open_with_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = fuzzing::seeds("raft_log");
    let (_, raw) = seeds.iter().find(|(n, _)| n == "log-file").unwrap();
    std::fs::write(dir.path().join("log"), raw).unwrap();
    let store = strata::controller::log_store::LogStore::open(dir.path()).unwrap();
    assert_eq!(store.last_index(), 12);
    drop(store);

    let dir = tempfile::tempdir().unwrap();
    let seeds = fuzzing::seeds("meta_log");
    let (_, raw) = seeds.iter().find(|(n, _)| n == "meta-log").unwrap();
    std::fs::write(dir.path().join("meta.log"), raw).unwrap();
    let store = strata::meta::store::MetaStore::open_with(dir.path(), 0).unwrap();
    assert_eq!(store.state().applied_index, 10);
}

/// The vendored kafka-protocol rejects an element count larger than the
/// bytes left (a marked patch, see docs/dependencies.md) instead of trying
/// to decode 54 million topics out of 5 bytes.
#[test]
fn element_counts_beyond_the_frame_are_rejected() {
    let dir = corpus_dir("kafka_frame");
    for (name, api, version) in [
        (
            "edge-metadata-v0-huge-array",
            kafka_protocol::messages::ApiKey::Metadata,
            0,
        ),
        (
            "edge-metadata-v12-huge-compact-array",
            kafka_protocol::messages::ApiKey::Metadata,
            12,
        ),
    ] {
        use kafka_protocol::protocol::Decodable;
        let frame = std::fs::read(dir.join(name)).unwrap();
        assert!(
            strata::kafka::decode_request(api, version, &mut Bytes::from(frame.clone())).is_err(),
            "{name} decodes"
        );
        let mut b = Bytes::from(frame);
        kafka_protocol::messages::RequestHeader::decode(
            &mut b,
            api.request_header_version(version),
        )
        .unwrap();
        let e =
            kafka_protocol::messages::RequestKind::decode(api, &mut b, version).expect_err(name);
        assert!(format!("{e:#}").contains("exceeds the"), "{name}: {e:#}");
    }
    let records = {
        let mut b = strata::log::batch::build(0, &[(Some(b"k"), Some(b"v"), 0)], None);
        // Claim 2^31-1 records.
        b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b.freeze()
    };
    let e = kafka_protocol::records::RecordBatchDecoder::decode(&mut records.clone()).unwrap_err();
    assert!(format!("{e:#}").contains("exceeds the"), "{e:#}");
}
