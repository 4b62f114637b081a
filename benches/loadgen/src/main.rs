//! `strata-loadgen`: an end-to-end load generator for Strata (or any
//! Kafka-compatible broker), built on librdkafka through the `rdkafka` crate.
//!
//! Each run prints one JSON object on stdout; progress and warnings go to
//! stderr. See docs/benchmarks.md for how scripts/bench drives it.

mod consume;
mod e2e;
mod payload;
mod produce;
mod stats;

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

#[derive(Parser, Debug)]
#[command(name = "strata-loadgen", version, about)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Options every mode takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Bootstrap servers (host:port[,host:port]).
    #[arg(long, short = 'b', global = true, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Broker process id: sample its CPU time and peak RSS over the
    /// measurement window (same machine only).
    #[arg(long, global = true)]
    pub broker_pid: Option<u32>,
    /// Reset the broker's peak-RSS mark (VmHWM) when the run starts, so the
    /// reported peak covers this run only (needs permission to write
    /// /proc/PID/clear_refs).
    #[arg(long, global = true)]
    pub reset_broker_hwm: bool,
    /// librdkafka property for every client (admin, producers, consumers),
    /// repeatable: --client-set key=value, e.g. security.protocol=SSL.
    #[arg(long = "client-set", global = true, value_name = "KEY=VALUE")]
    pub client_set: Vec<String>,
}

impl Common {
    /// A client configuration with the bootstrap servers and every
    /// `--client-set`.
    pub fn client_config(&self) -> Result<ClientConfig> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        apply_sets(&mut c, &self.client_set)?;
        Ok(c)
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Produce for a fixed time, at max rate or at a fixed --rate.
    Produce(produce::ProduceArgs),
    /// Read a topic from the beginning (all partitions assigned, no group).
    Consume(consume::ConsumeArgs),
    /// Produce at a fixed rate and consume concurrently: end-to-end latency.
    E2e(e2e::E2eArgs),
}

/// Producer settings shared by `produce` and `e2e`.
#[derive(Args, Debug, Clone)]
pub struct ProducerOpts {
    /// Topic to write (created if missing).
    #[arg(long, short = 't', default_value = "loadgen")]
    pub topic: String,
    /// Partitions when the topic is created.
    #[arg(long, short = 'p', default_value_t = 1)]
    pub partitions: i32,
    /// Do not send CreateTopics: the topic must exist (for brokers whose
    /// admin API the client cannot use; create it with the broker's tool).
    #[arg(long)]
    pub no_create: bool,
    /// Number of producer instances (each its own client, thread and
    /// connection).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// acks: 0, 1 or all (-1).
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// compression.type: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// linger.ms.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// batch.size in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_size: u64,
    /// sticky: null keys, librdkafka's default partitioner (what a keyless
    /// application gets); round-robin: record i goes to partition i mod P.
    #[arg(long, default_value = "sticky", value_parser = ["sticky", "round-robin"])]
    pub partitioning: String,
    /// Measured time in seconds (after the warm-up).
    #[arg(long, default_value_t = 30.0)]
    pub duration_s: f64,
    /// Warm-up in seconds: sent but not measured.
    #[arg(long, default_value_t = 5.0)]
    pub warmup_s: f64,
    /// How long to wait at the end for outstanding deliveries.
    #[arg(long, default_value_t = 30.0)]
    pub flush_timeout_s: f64,
    /// Extra librdkafka producer property, repeatable: --set key=value.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl ProducerOpts {
    pub fn acks_value(&self) -> Result<&'static str> {
        Ok(match self.acks.as_str() {
            "0" => "0",
            "1" => "1",
            "all" | "-1" => "all",
            other => bail!("--acks must be 0, 1 or all, not {other:?}"),
        })
    }

    pub fn client_config(&self, common: &Common, id: usize) -> Result<ClientConfig> {
        let mut c = common.client_config()?;
        c.set("client.id", format!("strata-loadgen-{id}"))
            .set("acks", self.acks_value()?)
            .set("compression.type", &self.compression)
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_size.to_string())
            .set("enable.idempotence", "false");
        apply_sets(&mut c, &self.set)?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<()> {
        self.acks_value()?;
        if self.producers == 0 {
            bail!("--producers must be at least 1");
        }
        if self.partitions < 1 {
            bail!("--partitions must be at least 1");
        }
        if self.duration_s <= 0.0 || self.warmup_s < 0.0 {
            bail!("--duration-s must be > 0 and --warmup-s >= 0");
        }
        if self.record_size < payload::HEADER_LEN {
            bail!(
                "--record-size must be at least {} bytes",
                payload::HEADER_LEN
            );
        }
        Ok(())
    }
}

pub fn apply_sets(c: &mut ClientConfig, sets: &[String]) -> Result<()> {
    for s in sets {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--set expects KEY=VALUE, got {s:?}"))?;
        c.set(k, v);
    }
    Ok(())
}

impl ProducerOpts {
    /// The partition count of the topic to write, created first unless
    /// `--no-create`.
    pub fn topic_partitions(&self, common: &Common) -> Result<i32> {
        ensure_topic(
            common,
            &self.topic,
            self.partitions,
            !self.no_create,
        )
    }
}

/// Create `topic` with `partitions` partitions unless it exists; return the
/// partition count it has.
pub fn ensure_topic(common: &Common, topic: &str, partitions: i32, create: bool) -> Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let admin: AdminClient<DefaultClientContext> = common
        .client_config()?
        .create()
        .context("creating admin client")?;
    if !create {
        return Ok(topic_partitions(admin.inner(), topic)?.len() as i32);
    }
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let res = rt
        .block_on(admin.create_topics([&new], &opts))
        .context("CreateTopics")?;
    for r in res {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name}: {code}"),
        }
    }
    let have = topic_partitions(admin.inner(), topic)?;
    if have.len() as i32 != partitions {
        eprintln!(
            "warning: topic {topic} exists with {} partitions, not {partitions}",
            have.len()
        );
    }
    Ok(have.len() as i32)
}

/// Partition ids of `topic`, waiting (briefly) for metadata to show it.
pub fn topic_partitions<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
) -> Result<Vec<i32>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let md = client
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .context("Metadata")?;
        if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
            if t.error().is_none() && !t.partitions().is_empty() {
                let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                ids.sort_unstable();
                return Ok(ids);
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("topic {topic} not in metadata after 30 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn main() {
    let cli = Cli::parse();
    if let (Some(pid), true) = (cli.common.broker_pid, cli.common.reset_broker_hwm) {
        if !stats::reset_hwm(pid) {
            eprintln!("warning: could not reset VmHWM of pid {pid}");
        }
    }
    let res = match &cli.cmd {
        Cmd::Produce(a) => produce::run(&cli.common, a),
        Cmd::Consume(a) => consume::run(&cli.common, a),
        Cmd::E2e(a) => e2e::run(&cli.common, a),
    };
    match res {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("strata-loadgen: {e:#}");
            std::process::exit(1);
        }
    }
}
