//! `produce`: N producer instances, each on its own thread, either as fast as
//! librdkafka's queue takes records or at a fixed rate.
//!
//! At a fixed rate, record i of a producer is *intended* to be sent at
//! `t0 + i / rate`, and its latency runs from that instant, not from when the
//! loop got around to sending it. A broker stall therefore shows up in the
//! percentiles of every record that should have gone out during it
//! (no coordinated omission). At max rate there is no schedule, so latency
//! runs from the successful enqueue and mostly measures queueing in the
//! client; the fixed-rate run is the one to read latency from.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use serde_json::{json, Value};

use crate::payload::Payloads;
use crate::stats::{self, Errors};
use crate::{Common, ProducerOpts};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub opts: ProducerOpts,
    /// Fixed rate in records/s over all producers (default: as fast as
    /// possible). Latency is then measured from each record's intended send
    /// time.
    #[arg(long)]
    pub rate: Option<f64>,
}

/// The run's timeline, shared by every thread.
#[derive(Clone, Copy)]
pub struct Clock {
    pub t0: Instant,
    pub warm_end: Instant,
    pub end: Instant,
}

impl Clock {
    pub fn new(warmup_s: f64, duration_s: f64) -> Self {
        let t0 = Instant::now() + Duration::from_millis(20);
        let warm_end = t0 + Duration::from_secs_f64(warmup_s);
        Clock {
            t0,
            warm_end,
            end: warm_end + Duration::from_secs_f64(duration_s),
        }
    }

    pub fn in_window(&self, t: Instant) -> bool {
        t >= self.warm_end && t < self.end
    }

    pub fn at(&self, ns: u64) -> Instant {
        self.t0 + Duration::from_nanos(ns)
    }

    pub fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.t0).as_nanos() as u64
    }
}

pub fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Client-level log lines worth seeing (warnings and worse), capped.
pub fn client_log(level: RDKafkaLogLevel, fac: &str, msg: &str) {
    static PRINTED: AtomicU64 = AtomicU64::new(0);
    if (level as i32) <= (RDKafkaLogLevel::Warning as i32)
        && PRINTED.fetch_add(1, Ordering::Relaxed) < 50
    {
        eprintln!("librdkafka {level:?} {fac}: {msg}");
    }
}

#[derive(Default)]
struct DeliveryStats {
    /// Set once the producers are connected, before anything is sent.
    clock: Option<Clock>,
    hist: Option<Histogram<u64>>,
    acked_total: u64,
    acked_in_window: u64,
    bytes_in_window: u64,
    errors: Errors,
    client_errors: Errors,
}

/// Per-producer context: delivery callbacks run on the producer's own
/// thread (inside poll/flush), so the mutex is uncontended.
struct Ctx {
    st: Mutex<DeliveryStats>,
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        client_log(level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_log(
            RDKafkaLogLevel::Error,
            "ERROR",
            &format!("{error}: {reason}"),
        );
        self.st.lock().unwrap().client_errors.add(error.to_string());
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, send_ns: usize) {
        let now = Instant::now();
        let mut st = self.st.lock().unwrap();
        let Some(clock) = st.clock else { return };
        let sent = clock.at(send_ns as u64);
        match result {
            Ok(m) => {
                st.acked_total += 1;
                if clock.in_window(now) {
                    st.acked_in_window += 1;
                    st.bytes_in_window += m.payload_len() as u64;
                }
                if clock.in_window(sent) {
                    let h = st.hist.get_or_insert_with(stats::new_histogram);
                    stats::record(h, now.saturating_duration_since(sent));
                }
            }
            Err((e, _)) => st.errors.add(e.to_string()),
        }
    }
}

/// What all producers of a run did, merged.
pub struct ProduceResult {
    pub hist: Histogram<u64>,
    pub sent: u64,
    pub acked_total: u64,
    pub acked_in_window: u64,
    pub bytes_in_window: u64,
    pub delivery_errors: Errors,
    pub send_errors: Errors,
    pub client_errors: Errors,
    pub undelivered: u64,
    pub queue_full_retries: u64,
    pub max_send_lag: Duration,
}

impl ProduceResult {
    pub fn error_total(&self) -> u64 {
        self.delivery_errors.count + self.send_errors.count + self.undelivered
    }

    pub fn errors_json(&self) -> Value {
        json!({
            "total": self.error_total(),
            "delivery": self.delivery_errors.json(),
            "send": self.send_errors.json(),
            "undelivered_after_flush": self.undelivered,
            "client": self.client_errors.json(),
        })
    }
}

struct ThreadOut {
    sent: u64,
    send_errors: Errors,
    undelivered: u64,
    queue_full_retries: u64,
    max_send_lag: Duration,
}

/// Producers built and connected before the clock starts, so the warm-up is
/// not spent on connecting.
pub struct Producers {
    list: Vec<BaseProducer<Ctx>>,
    pub partitions: Vec<i32>,
}

pub fn connect(common: &Common, opts: &ProducerOpts) -> Result<Producers> {
    let mut list = Vec::with_capacity(opts.producers);
    let mut partitions = Vec::new();
    for id in 0..opts.producers {
        let ctx = Ctx {
            st: Mutex::new(DeliveryStats::default()),
        };
        let p: BaseProducer<Ctx> = opts
            .client_config(common, id)?
            .create_with_context(ctx)
            .context("creating producer")?;
        partitions = crate::topic_partitions(p.client(), &opts.topic)?;
        list.push(p);
    }
    Ok(Producers { list, partitions })
}

/// Run every producer on its own thread until `clock.end`, then flush.
/// `on_window` runs on the calling thread at warm_end and returns a closure
/// called at end (used to sample CPU over exactly the measured window).
pub fn run_producers<F, G>(
    producers: Producers,
    opts: &ProducerOpts,
    rate: Option<f64>,
    clock: Clock,
    on_window: F,
) -> (ProduceResult, Value)
where
    F: FnOnce() -> G,
    G: FnOnce() -> Value,
{
    for p in &producers.list {
        p.context().st.lock().unwrap().clock = Some(clock);
    }
    let n = producers.list.len();
    let rate_each = rate.map(|r| r / n as f64);
    let parts = &producers.partitions;
    let (outs, window) = std::thread::scope(|s| {
        let handles: Vec<_> = producers
            .list
            .iter()
            .enumerate()
            .map(|(id, p)| s.spawn(move || producer_loop(id, p, opts, rate_each, clock, parts)))
            .collect();
        sleep_until(clock.warm_end);
        let finish = on_window();
        sleep_until(clock.end);
        let window = finish();
        let outs: Vec<ThreadOut> = handles
            .into_iter()
            .map(|h| h.join().expect("producer thread panicked"))
            .collect();
        (outs, window)
    });

    let mut r = ProduceResult {
        hist: stats::new_histogram(),
        sent: 0,
        acked_total: 0,
        acked_in_window: 0,
        bytes_in_window: 0,
        delivery_errors: Errors::default(),
        send_errors: Errors::default(),
        client_errors: Errors::default(),
        undelivered: 0,
        queue_full_retries: 0,
        max_send_lag: Duration::ZERO,
    };
    for (p, o) in producers.list.iter().zip(outs) {
        let st = p.context().st.lock().unwrap();
        if let Some(h) = &st.hist {
            r.hist.add(h).expect("same histogram bounds");
        }
        r.acked_total += st.acked_total;
        r.acked_in_window += st.acked_in_window;
        r.bytes_in_window += st.bytes_in_window;
        r.delivery_errors.merge(&st.errors);
        r.client_errors.merge(&st.client_errors);
        r.sent += o.sent;
        r.send_errors.merge(&o.send_errors);
        r.undelivered += o.undelivered;
        r.queue_full_retries += o.queue_full_retries;
        r.max_send_lag = r.max_send_lag.max(o.max_send_lag);
    }
    (r, window)
}

fn producer_loop(
    id: usize,
    p: &BaseProducer<Ctx>,
    opts: &ProducerOpts,
    rate: Option<f64>,
    clock: Clock,
    partitions: &[i32],
) -> ThreadOut {
    let mut payloads = Payloads::new(opts.record_size, id as u64 + 1);
    let round_robin = opts.partitioning == "round-robin";
    let interval_ns = rate.map(|r| 1e9 / r);
    let mut out = ThreadOut {
        sent: 0,
        send_errors: Errors::default(),
        undelivered: 0,
        queue_full_retries: 0,
        max_send_lag: Duration::ZERO,
    };
    let mut seq: u64 = 0;
    sleep_until(clock.t0);
    'run: loop {
        let now = Instant::now();
        if now >= clock.end {
            break;
        }
        // How many records are due: all of them at max rate (one at a time),
        // or every record whose intended time has passed at a fixed rate.
        let due = match interval_ns {
            None => seq + 1,
            Some(iv) => (clock.ns(now) as f64 / iv) as u64 + 1,
        };
        if let Some(iv) = interval_ns {
            let lag = now.saturating_duration_since(clock.at((seq as f64 * iv) as u64));
            if due > seq + 1 {
                out.max_send_lag = out.max_send_lag.max(lag);
            }
        }
        while seq < due {
            let intended_ns = interval_ns.map(|iv| (seq as f64 * iv) as u64);
            if let Some(ns) = intended_ns {
                if clock.at(ns) >= clock.end {
                    break 'run;
                }
            }
            let partition = partitions[(seq % partitions.len() as u64) as usize];
            loop {
                let send_ns = intended_ns.unwrap_or_else(|| clock.ns(Instant::now()));
                let value = payloads.next(send_ns, seq);
                let mut rec =
                    BaseRecord::<(), [u8], usize>::with_opaque_to(&opts.topic, send_ns as usize)
                        .payload(value);
                if round_robin {
                    rec = rec.partition(partition);
                }
                match p.send(rec) {
                    Ok(()) => {
                        out.sent += 1;
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        out.queue_full_retries += 1;
                        p.poll(Duration::from_millis(1));
                        if interval_ns.is_none() && Instant::now() >= clock.end {
                            break 'run;
                        }
                    }
                    Err((e, _)) => {
                        out.send_errors.add(e.to_string());
                        break;
                    }
                }
            }
            seq += 1;
            if seq.is_multiple_of(64) {
                p.poll(Duration::ZERO);
            }
        }
        match interval_ns {
            None => {}
            Some(iv) => {
                p.poll(Duration::ZERO);
                let next = clock.at((seq as f64 * iv) as u64);
                let wait = next.saturating_duration_since(Instant::now());
                if wait >= Duration::from_millis(2) {
                    // Serve delivery callbacks while waiting.
                    p.poll(wait - Duration::from_millis(1));
                } else if !wait.is_zero() {
                    std::thread::sleep(wait.min(Duration::from_micros(200)));
                }
            }
        }
    }
    let _ = p.flush(Duration::from_secs_f64(opts.flush_timeout_s));
    out.undelivered = p.in_flight_count().max(0) as u64;
    out
}

pub fn config_json(opts: &ProducerOpts, partitions: usize, rate: Option<f64>) -> Value {
    json!({
        "topic": opts.topic,
        "partitions": partitions,
        "producers": opts.producers,
        "record_size": opts.record_size,
        "acks": opts.acks_value().unwrap_or("?"),
        "compression": opts.compression,
        "linger_ms": opts.linger_ms,
        "batch_size": opts.batch_size,
        "partitioning": opts.partitioning,
        "duration_s": opts.duration_s,
        "warmup_s": opts.warmup_s,
        "rate": rate,
        "set": opts.set,
    })
}

pub fn run(common: &Common, args: &ProduceArgs) -> Result<Value> {
    let opts = &args.opts;
    opts.validate()?;
    if let Some(r) = args.rate {
        anyhow::ensure!(r > 0.0, "--rate must be > 0");
    }
    let nparts = opts.topic_partitions(common)?;
    let producers = connect(common, opts)?;
    let clock = Clock::new(opts.warmup_s, opts.duration_s);
    let broker_pid = common.broker_pid;
    let (r, window) = run_producers(producers, opts, args.rate, clock, || {
        let w = stats::Window::start(broker_pid);
        move || {
            let wall = w.wall_s();
            let (broker, loadgen, machine) = w.finish();
            json!({ "wall_s": wall, "broker": broker, "loadgen": loadgen, "machine": machine })
        }
    });
    let window_s = window["wall_s"].as_f64().unwrap_or(opts.duration_s);
    Ok(json!({
        "mode": "produce",
        "librdkafka": rdkafka::util::get_rdkafka_version().1,
        "config": config_json(opts, nparts as usize, args.rate),
        "window_s": stats::round3(window_s),
        "records": r.acked_in_window,
        "bytes": r.bytes_in_window,
        "records_per_s": stats::round3(r.acked_in_window as f64 / window_s),
        "mb_per_s": stats::round3(r.bytes_in_window as f64 / window_s / 1e6),
        "mib_per_s": stats::round3(r.bytes_in_window as f64 / window_s / (1024.0 * 1024.0)),
        "sent_total": r.sent,
        "acked_total": r.acked_total,
        "latency": stats::latency_json(&r.hist),
        "latency_from": if args.rate.is_some() { "intended send time" } else { "enqueue time" },
        "max_send_lag_ms": args.rate.map(|_| r.max_send_lag.as_secs_f64() * 1000.0),
        "queue_full_retries": r.queue_full_retries,
        "errors": r.errors_json(),
        "broker": window["broker"],
        "loadgen": window["loadgen"],
        "machine": window["machine"],
    }))
}
