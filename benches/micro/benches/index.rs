//! Index lookups on the read path: the sparse offset and time indexes, and
//! `SegmentView::position_of` (index floor plus header scan with `pread`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata::log::index::{OffsetIndex, TimeIndex};
use strata::log::LogConfig;
use strata_micro::{batch as make_batch, fill, segment_of, BASE_TS};

/// Entries in the in-memory index benchmarks.
const ENTRIES: u32 = 10_000;

/// Lookup keys are cycled through this many pseudo-random values.
const KEYS: usize = 1024;

fn keys(seed: u64, below: u64) -> Vec<u64> {
    fill(seed, KEYS * 8)
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) % below)
        .collect()
}

fn index_floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("index");
    g.throughput(Throughput::Elements(1));

    // One entry per 16-record batch of about 17 KiB.
    let mut oi = OffsetIndex::default();
    for i in 0..ENTRIES {
        oi.push(i * 16, i * 17_000);
    }
    let rel: Vec<u32> = keys(1, u64::from(ENTRIES) * 16)
        .into_iter()
        .map(|k| k as u32)
        .collect();
    g.bench_function(BenchmarkId::new("offset_floor", "10k"), |bn| {
        let mut i = 0;
        bn.iter(|| {
            i = (i + 1) & (KEYS - 1);
            oi.floor(black_box(rel[i]))
        })
    });

    let mut ti = TimeIndex::default();
    for i in 0..ENTRIES {
        ti.push(BASE_TS + i64::from(i) * 16, i * 16);
    }
    let ts: Vec<i64> = keys(2, u64::from(ENTRIES) * 16)
        .into_iter()
        .map(|k| BASE_TS + k as i64)
        .collect();
    g.bench_function(BenchmarkId::new("time_floor", "10k"), |bn| {
        let mut i = 0;
        bn.iter(|| {
            i = (i + 1) & (KEYS - 1);
            ti.floor(black_box(ts[i]))
        })
    });
    g.finish();
}

fn position_of(c: &mut Criterion) {
    let interval = LogConfig::default().index_interval_bytes;
    let mut g = c.benchmark_group("index");
    g.throughput(Throughput::Elements(1));
    // About 17 MiB of log either way: 16-record batches are each indexed;
    // single-record batches share an index entry with up to three others, so
    // a lookup reads several headers.
    for (name, records, n) in [("16x1KiB_batches", 16, 1024), ("1x1KiB_batches", 1, 16_384)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let seg = segment_of(dir.path(), &make_batch(records, 1024), n, interval);
        let offsets: Vec<i64> = keys(3, seg.next_offset as u64)
            .into_iter()
            .map(|k| k as i64)
            .collect();
        g.bench_function(BenchmarkId::new("position_of", name), |bn| {
            let mut i = 0;
            bn.iter(|| {
                i = (i + 1) & (KEYS - 1);
                let off = black_box(offsets[i]);
                seg.view(off).position_of(off).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, index_floor, position_of);
criterion_main!(benches);
