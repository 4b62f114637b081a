//! The codec on the connection task: `strata::kafka::decode_request` on whole
//! request frames (header and body, size prefix stripped) and
//! `strata::kafka::encode_response` of the replies to produce and fetch.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::messages::ApiKey;
use strata::kafka::{decode_request, encode_response};
use strata_micro::{
    batch as make_batch, fetch_frame, fetch_response, produce_frame, produce_response,
};

fn decode(c: &mut Criterion) {
    let b = make_batch(16, 1024);
    let cases = [
        (
            "produce_v9_16x16KiB",
            ApiKey::Produce,
            9,
            produce_frame(9, 16, &b),
        ),
        ("fetch_v12_16p", ApiKey::Fetch, 12, fetch_frame(12, 16)),
        ("fetch_v13_16p", ApiKey::Fetch, 13, fetch_frame(13, 16)),
    ];
    let mut g = c.benchmark_group("request");
    for (name, key, version, frame) in cases {
        decode_request(key, version, &mut frame.clone()).expect("fixture frame decodes");
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_with_input(BenchmarkId::new("decode", name), &frame, |bn, frame| {
            bn.iter(|| decode_request(key, version, &mut black_box(frame.clone())).unwrap())
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    // 16 partitions each returning one batch of about 1 MiB.
    let records = make_batch(1000, 1000);
    let cases = [
        ("produce_v9_16p", ApiKey::Produce, 9, produce_response(16)),
        (
            "fetch_v13_16x1MiB",
            ApiKey::Fetch,
            13,
            fetch_response(13, 16, &records),
        ),
    ];
    let mut g = c.benchmark_group("response");
    for (name, key, version, resp) in cases {
        let len = encode_response(key, version, 7, &resp)
            .expect("fixture encodes")
            .len();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("encode", name), &resp, |bn, resp| {
            bn.iter(|| encode_response(key, version, 7, black_box(resp)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
