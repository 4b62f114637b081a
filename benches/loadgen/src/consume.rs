//! `consume`: read a topic from the beginning as fast as possible, every
//! partition assigned directly (no consumer group), until the high
//! watermarks seen at the start (or --max-records) are reached, with one or
//! more consumers splitting the partitions.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::json;

use crate::stats::{self, Errors};
use crate::Common;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to read.
    #[arg(long, short = 't', default_value = "loadgen")]
    pub topic: String,
    /// Stop after this many records (default: everything up to the high
    /// watermarks read at the start).
    #[arg(long)]
    pub max_records: Option<u64>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    pub timeout_s: f64,
    /// Consumer instances (each its own client, thread and connection);
    /// partitions are split among them round-robin.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Extra librdkafka consumer property, repeatable: --set key=value.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Consumer context: forwards client warnings and counts client errors.
#[derive(Default)]
pub struct LogCtx {
    pub errors: Mutex<Errors>,
}

impl ClientContext for LogCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        crate::produce::client_log(level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        crate::produce::client_log(
            RDKafkaLogLevel::Error,
            "ERROR",
            &format!("{error}: {reason}"),
        );
        self.errors.lock().unwrap().add(error.to_string());
    }
}

impl ConsumerContext for LogCtx {}

/// A consumer for direct assignment: librdkafka needs a group.id for
/// assign(), but nothing joins a group or commits offsets.
pub fn consumer(common: &Common, client_id: &str, sets: &[String]) -> Result<BaseConsumer<LogCtx>> {
    let mut c = common.client_config()?;
    c.set("client.id", client_id)
        .set("group.id", format!("{client_id}-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true");
    crate::apply_sets(&mut c, sets)?;
    c.create_with_context(LogCtx::default())
        .context("creating consumer")
}

/// What one consumer read.
struct Outcome {
    records: u64,
    bytes: u64,
    first: Option<Instant>,
    last: Instant,
    errors: Errors,
    timed_out: bool,
}

/// Read `parts` of `topic` from the beginning until `high` (or `target`
/// records) with consumer `c`.
fn read(
    c: &BaseConsumer<LogCtx>,
    topic: &str,
    parts: &[i32],
    high: &BTreeMap<i32, i64>,
    target: u64,
    start: Instant,
    deadline: Instant,
) -> Result<Outcome> {
    let mut tpl = TopicPartitionList::new();
    for &p in parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl).context("assign")?;
    let mut done: BTreeMap<i32, bool> = parts.iter().map(|&p| (p, high[&p] == 0)).collect();
    let mut o = Outcome {
        records: 0,
        bytes: 0,
        first: None,
        last: start,
        errors: Errors::default(),
        timed_out: false,
    };
    while o.records < target && done.values().any(|d| !d) {
        if Instant::now() > deadline {
            o.timed_out = true;
            break;
        }
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let now = Instant::now();
                o.first.get_or_insert(now);
                o.last = now;
                o.records += 1;
                o.bytes += m.payload_len() as u64;
                if m.offset() + 1 >= high[&m.partition()] {
                    done.insert(m.partition(), true);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                let pos = c
                    .position()
                    .ok()
                    .and_then(|tpl| tpl.find_partition(topic, p).map(|e| e.offset()));
                let at_end = match pos {
                    Some(Offset::Offset(o)) => o >= high[&p],
                    _ => true,
                };
                if at_end {
                    done.insert(p, true);
                }
            }
            Some(Err(e)) => o.errors.add(e.to_string()),
        }
    }
    o.errors.merge(&c.context().errors.lock().unwrap());
    Ok(o)
}

pub fn run(common: &Common, args: &ConsumeArgs) -> Result<serde_json::Value> {
    if args.consumers == 0 {
        bail!("--consumers must be at least 1");
    }
    let c = consumer(common, "strata-loadgen-consume", &args.set)?;
    let parts = crate::topic_partitions(c.client(), &args.topic)?;
    let mut high = BTreeMap::new();
    let mut low = BTreeMap::new();
    let mut available = 0u64;
    for &p in &parts {
        let (lo, hi) = c
            .fetch_watermarks(&args.topic, p, Duration::from_secs(10))
            .with_context(|| format!("ListOffsets for partition {p}"))?;
        available += (hi - lo).max(0) as u64;
        high.insert(p, hi);
        low.insert(p, lo);
    }
    let target = args.max_records.map_or(available, |m| m.min(available));
    if target == 0 {
        bail!("topic {} has no records to read", args.topic);
    }
    let n = args.consumers.min(parts.len()).max(1);
    let mut groups: Vec<Vec<i32>> = vec![Vec::new(); n];
    for (i, &p) in parts.iter().enumerate() {
        groups[i % n].push(p);
    }
    let mut clients = vec![c];
    for i in 1..n {
        clients.push(consumer(
            common,
            &format!("strata-loadgen-consume-{i}"),
            &args.set,
        )?);
    }

    let window = stats::Window::start(common.broker_pid);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.timeout_s);
    let outcomes: Vec<Result<Outcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .into_iter()
            .zip(&groups)
            .map(|(c, g)| {
                let avail: u64 = g.iter().map(|p| (high[p] - low[p]).max(0) as u64).sum();
                // Each consumer's share of --max-records, by its records.
                let share = (target as u128 * avail as u128).div_ceil(available as u128) as u64;
                let (topic, high) = (&args.topic, &high);
                s.spawn(move || read(&c, topic, g, high, share, start, deadline))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("consumer thread panicked")))
            })
            .collect()
    });
    let (mut records, mut bytes, mut last, mut timed_out) = (0u64, 0u64, start, false);
    let mut first: Option<Instant> = None;
    let mut errors = Errors::default();
    for o in outcomes {
        let o = o?;
        records += o.records;
        bytes += o.bytes;
        last = last.max(o.last);
        first = match (first, o.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        timed_out |= o.timed_out;
        errors.merge(&o.errors);
    }
    let elapsed = last.duration_since(start).as_secs_f64().max(1e-9);
    let (broker, loadgen, machine) = window.finish();
    Ok(json!({
        "mode": "consume",
        "librdkafka": rdkafka::util::get_rdkafka_version().1,
        "config": { "topic": args.topic, "partitions": parts.len(), "consumers": n, "set": args.set },
        "available_records": available,
        "records": records,
        "bytes": bytes,
        "elapsed_s": stats::round3(elapsed),
        "first_record_after_ms": first.map(|f| stats::round3(f.duration_since(start).as_secs_f64() * 1000.0)),
        "records_per_s": stats::round3(records as f64 / elapsed),
        "mb_per_s": stats::round3(bytes as f64 / elapsed / 1e6),
        "mib_per_s": stats::round3(bytes as f64 / elapsed / (1024.0 * 1024.0)),
        "complete": records >= target,
        "timed_out": timed_out,
        "errors": errors.json(),
        "broker": broker,
        "loadgen": loadgen,
        "machine": machine,
    }))
}
