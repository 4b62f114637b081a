//! The write and read paths of a partition log: `Segment::append` (bytes to
//! the active segment plus index upkeep), `PartitionLog::append` (what a
//! produce request does per partition: validate, assign offsets, append) and
//! `PartitionLog::read` (what a fetch does per partition).
//!
//! Logs live under the temporary directory (`TMPDIR`), so its file system is
//! the one measured. Appends land in the page cache; nothing here fsyncs.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata::clock::SystemClock;
use strata::log::batch;
use strata::log::segment::Segment;
use strata::log::{LogConfig, PartitionLog};
use strata_micro::{batch as make_batch, segment_of, BASE_TS};
use tempfile::TempDir;

/// A log is dropped and started afresh in a new directory once it holds
/// this much, outside the measured time, so the disk does not fill up.
const FRESH_AFTER: u64 = 256 << 20;

/// Batches appended per iteration of the segment benchmark (about 1 MiB).
const SEGMENT_BATCHES: usize = 64;

fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("strata-micro")
        .tempdir()
        .expect("tempdir")
}

fn segment_append(c: &mut Criterion) {
    let cfg = LogConfig::default();
    let b = make_batch(16, 1024);
    let h0 = batch::validate(&b, cfg.max_message_bytes).expect("valid batch");
    let mut g = c.benchmark_group("segment");
    g.throughput(Throughput::Bytes((b.len() * SEGMENT_BATCHES) as u64));
    g.bench_function(BenchmarkId::new("append", "64x16KiB"), |bn| {
        bn.iter_custom(|iters| {
            let mut dir = tempdir();
            let mut seg = Segment::create(dir.path(), 0, BASE_TS).expect("create");
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if seg.size >= FRESH_AFTER {
                    drop(seg);
                    dir = tempdir();
                    seg = Segment::create(dir.path(), 0, BASE_TS).expect("create");
                }
                let t = Instant::now();
                for _ in 0..SEGMENT_BATCHES {
                    let mut h = h0;
                    h.base_offset = seg.next_offset;
                    seg.append(&h, &b, cfg.index_interval_bytes).unwrap();
                }
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn open_log(dir: &TempDir, cfg: &LogConfig) -> PartitionLog {
    PartitionLog::open(dir.path(), 0, cfg, Arc::new(SystemClock)).expect("open log")
}

fn partition_append(c: &mut Criterion) {
    let cfg = LogConfig::default();
    let mut g = c.benchmark_group("partition");
    for (name, count, value_len) in [("16x1KiB", 16, 1024), ("1000x1000B", 1000, 1000)] {
        let b = make_batch(count, value_len);
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function(BenchmarkId::new("append", name), |bn| {
            bn.iter_custom(|iters| {
                let mut dir = tempdir();
                let mut log = open_log(&dir, &cfg);
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if log.size_bytes() >= FRESH_AFTER {
                        drop(log);
                        dir = tempdir();
                        log = open_log(&dir, &cfg);
                    }
                    // append takes the request buffer: hand it a copy, made
                    // outside the timed part.
                    let mut req = b.clone();
                    let t = Instant::now();
                    let info = log.append(&mut req, 0, &cfg).unwrap();
                    total += t.elapsed();
                    black_box(info);
                }
                total
            })
        });
    }
    g.finish();
}

fn partition_read(c: &mut Criterion) {
    let cfg = LogConfig::default();
    let dir = tempdir();
    // 4096 batches of 16 records (about 68 MiB) in one segment.
    let b = make_batch(16, 1024);
    drop(segment_of(dir.path(), &b, 4096, cfg.index_interval_bytes));
    let log = open_log(&dir, &cfg);
    let end = log.log_end_offset();
    let max_bytes = 1 << 20;
    let probe = log.read(0, max_bytes, true).expect("read").records.len();
    // Offsets spread over the log; each read starts mid-batch as a consumer
    // resuming at a committed offset does.
    let offsets: Vec<i64> = (0..1024)
        .map(|i| (i * 7_919 + 5) % (end - 16 * 64))
        .collect();
    let mut g = c.benchmark_group("partition");
    g.throughput(Throughput::Bytes(probe as u64));
    g.bench_function(BenchmarkId::new("read", "1MiB"), |bn| {
        let mut i = 0;
        bn.iter(|| {
            i = (i + 1) & 1023;
            log.read(black_box(offsets[i]), max_bytes, true).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, segment_append, partition_append, partition_read);
criterion_main!(benches);
