//! Batch validation on produce: header checks, CRC32C over the batch and the
//! walk over uncompressed records (`strata::log::batch::validate`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata::log::{batch, LogConfig};
use strata_micro::batch as make_batch;

/// The CRC of a v2 batch covers everything from the attributes field on.
const CRC_FROM: usize = 21;

/// (name, records, value bytes): batch shapes a producer sends.
const SHAPES: &[(&str, usize, usize)] = &[
    ("16x1KiB", 16, 1024),
    ("1000x1000B", 1000, 1000),
    ("8000x100B", 8000, 100),
];

fn validate(c: &mut Criterion) {
    let max = LogConfig::default().max_message_bytes;
    let mut g = c.benchmark_group("batch");
    for &(name, count, value_len) in SHAPES {
        let b = make_batch(count, value_len);
        batch::validate(&b, max).expect("fixture batch is valid");
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_with_input(BenchmarkId::new("validate", name), &b, |bn, b| {
            bn.iter(|| batch::validate(black_box(b), max).unwrap())
        });
    }
    // The CRC32C alone, to split a change in `validate` between the checksum
    // and the record walk.
    let b = make_batch(1000, 1000);
    g.throughput(Throughput::Bytes(b.len() as u64));
    g.bench_with_input(BenchmarkId::new("crc32c", "1000x1000B"), &b, |bn, b| {
        bn.iter(|| crc32c::crc32c(black_box(&b[CRC_FROM..])))
    });
    // Topics with LogAppendTime rewrite the timestamp and recompute the CRC.
    let mut b = make_batch(16, 1024);
    g.throughput(Throughput::Bytes(b.len() as u64));
    g.bench_function(
        BenchmarkId::new("assign_log_append_time", "16x1KiB"),
        |bn| {
            let mut off = 0i64;
            bn.iter(|| {
                off += 16;
                batch::assign(black_box(&mut b), off, 3, Some(off));
            })
        },
    );
    g.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
