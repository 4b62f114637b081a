//! `e2e`: produce at a fixed rate with each record's intended send time in
//! its value, consume the same partitions concurrently, and measure the time
//! from intended send to receipt by the consumer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use crate::consume::LogCtx;
use crate::produce::{self, Clock};
use crate::stats::{self, Errors};
use crate::{payload, Common};

#[derive(Args, Debug)]
pub struct E2eArgs {
    #[command(flatten)]
    pub opts: crate::ProducerOpts,
    /// Fixed produce rate in records/s over all producers.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Extra librdkafka consumer property, repeatable: --consumer-set key=value.
    #[arg(long = "consumer-set", value_name = "KEY=VALUE")]
    pub consumer_set: Vec<String>,
}

struct ConsumerOut {
    hist: hdrhistogram::Histogram<u64>,
    received: u64,
    errors: Errors,
}

fn consume_loop(
    c: &BaseConsumer<LogCtx>,
    clock: Clock,
    producers_done: &AtomicBool,
    expected: &AtomicU64,
    give_up: Duration,
) -> ConsumerOut {
    let mut out = ConsumerOut {
        hist: stats::new_histogram(),
        received: 0,
        errors: Errors::default(),
    };
    loop {
        if producers_done.load(Ordering::Acquire) {
            if out.received >= expected.load(Ordering::Acquire) {
                break;
            }
            if Instant::now() > clock.end + give_up {
                break;
            }
        }
        match c.poll(Duration::from_millis(50)) {
            None => {}
            Some(Ok(m)) => {
                let now = Instant::now();
                out.received += 1;
                match m.payload().and_then(payload::send_ns) {
                    Some(ns) => {
                        let sent = clock.at(ns);
                        if clock.in_window(sent) {
                            stats::record(&mut out.hist, now.saturating_duration_since(sent));
                        }
                    }
                    None => out.errors.add("record without a loadgen header"),
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => out.errors.add(e.to_string()),
        }
    }
    out
}

pub fn run(common: &Common, args: &E2eArgs) -> Result<serde_json::Value> {
    let opts = &args.opts;
    opts.validate()?;
    anyhow::ensure!(args.rate > 0.0, "--rate must be > 0");
    let nparts = opts.topic_partitions(common)?;

    // Start the consumer at the current end of every partition.
    let c = crate::consume::consumer(common, "strata-loadgen-e2e", &args.consumer_set)?;
    let parts = crate::topic_partitions(c.client(), &opts.topic)?;
    let mut tpl = TopicPartitionList::new();
    for &p in &parts {
        let (_, hi) = c
            .fetch_watermarks(&opts.topic, p, Duration::from_secs(10))
            .with_context(|| format!("ListOffsets for partition {p}"))?;
        tpl.add_partition_offset(&opts.topic, p, Offset::Offset(hi))?;
    }
    c.assign(&tpl).context("assign")?;
    let _ = c.poll(Duration::from_millis(200));

    let producers = produce::connect(common, opts)?;
    let clock = Clock::new(opts.warmup_s, opts.duration_s);
    let producers_done = AtomicBool::new(false);
    let expected = AtomicU64::new(0);
    let broker_pid = common.broker_pid;
    let give_up = Duration::from_secs_f64(opts.flush_timeout_s);

    let (r, window, cons) = std::thread::scope(|s| {
        let consumer = s.spawn(|| consume_loop(&c, clock, &producers_done, &expected, give_up));
        let (r, window) = produce::run_producers(producers, opts, Some(args.rate), clock, || {
            let w = stats::Window::start(broker_pid);
            move || {
                let wall = w.wall_s();
                let (broker, loadgen, machine) = w.finish();
                json!({ "wall_s": wall, "broker": broker, "loadgen": loadgen, "machine": machine })
            }
        });
        expected.store(r.acked_total, Ordering::Release);
        producers_done.store(true, Ordering::Release);
        let cons = consumer.join().expect("consumer thread panicked");
        (r, window, cons)
    });

    let window_s = window["wall_s"].as_f64().unwrap_or(opts.duration_s);
    let mut consumer_errors = cons.errors;
    consumer_errors.merge(&c.context().errors.lock().unwrap());
    Ok(json!({
        "mode": "e2e",
        "librdkafka": rdkafka::util::get_rdkafka_version().1,
        "config": produce::config_json(opts, nparts as usize, Some(args.rate)),
        "window_s": stats::round3(window_s),
        "records_per_s": stats::round3(r.acked_in_window as f64 / window_s),
        "mb_per_s": stats::round3(r.bytes_in_window as f64 / window_s / 1e6),
        "sent_total": r.sent,
        "acked_total": r.acked_total,
        "consumed_total": cons.received,
        "e2e_latency": stats::latency_json(&cons.hist),
        "produce_latency": stats::latency_json(&r.hist),
        "latency_from": "intended send time",
        "max_send_lag_ms": r.max_send_lag.as_secs_f64() * 1000.0,
        "errors": {
            "produce": r.errors_json(),
            "consume": consumer_errors.json(),
            "not_consumed": r.acked_total.saturating_sub(cons.received),
        },
        "broker": window["broker"],
        "loadgen": window["loadgen"],
        "machine": window["machine"],
    }))
}
