//! `strata controller bench`: measures the metadata path on this machine.
//!
//! - `commit`: 1 or 3 (or 5) in-process controllers on loopback ports and
//!   `--concurrency` submitters proposing small commands (one committed
//!   group offset each, as OffsetCommit does); reports commits/s and commit
//!   latency percentiles. openraft batches concurrent proposals into one
//!   log append and one fsync.
//! - `apply`: a state of `--partitions` partitions and `--offsets` committed
//!   group offsets, then the latency of applying a WAL commit (one extent
//!   per partition of a topic) or an offset commit, including publishing
//!   the reader view, and the resident memory the state takes.
//!
//! Results go to stdout as one JSON object per run (docs/benchmarks.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use super::{Controller, ControllerConfig};
use crate::meta::groups::{GroupCommand, GroupCommit, OffsetEntry};
use crate::meta::tier::WalExtent;
use crate::meta::{Command, MetaState};

/// `strata controller bench` arguments.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// `commit` (quorum throughput and latency) or `apply` (state machine).
    #[arg(long, default_value = "commit")]
    pub mode: String,
    /// Voters for `commit`.
    #[arg(long, default_value_t = 1)]
    pub voters: usize,
    /// Concurrent submitters for `commit`.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds to run `commit`.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Partitions in the state for `apply`.
    #[arg(long, default_value_t = 10_000)]
    pub partitions: usize,
    /// Committed group offsets in the state for `apply`.
    #[arg(long, default_value_t = 100_000)]
    pub offsets: usize,
    /// Directory for the controllers' logs (default: a new temp dir).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn rss_bytes() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |p| p * page)
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs the benchmark and prints its JSON result.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let out = match args.mode.as_str() {
        "commit" => commit(&args).await?,
        "apply" => apply(&args),
        other => anyhow::bail!("--mode must be commit or apply, got {other:?}"),
    };
    println!("{out}");
    Ok(())
}

async fn commit(args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        matches!(args.voters, 1 | 3 | 5),
        "--voters must be 1, 3 or 5"
    );
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("strata-bench-{}", Uuid::new_v4().simple())),
    };
    let ports: Vec<u16> = (0..args.voters)
        .map(|_| free_port())
        .collect::<Result<_, _>>()?;
    let voters: BTreeMap<u64, String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u64 + 1, format!("127.0.0.1:{p}")))
        .collect();
    let (stop, rx) = watch::channel(false);
    let mut nodes = Vec::new();
    for (id, addr) in &voters {
        let dir = base.join(format!("node-{id}"));
        let cfg = ControllerConfig {
            node_id: *id,
            dir: dir.join("raft"),
            meta_dir: dir,
            listen: addr.parse()?,
            voters: voters.clone(),
            join: false,
            snapshot_every: 1024,
            request_timeout: Duration::from_secs(10),
            broker_lease: Duration::from_secs(60),
        };
        nodes.push(Controller::start(cfg, rx.clone()).await?);
    }
    // Wait for a leader; submit through it (followers would forward).
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        if let Some(n) = nodes.iter().find(|n| n.is_leader()) {
            break n.clone();
        }
        anyhow::ensure!(Instant::now() < deadline, "no leader within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let run_for = Duration::from_secs(args.seconds.max(1));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.concurrency.max(1) {
        let c = leader.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0i64;
            while start.elapsed() < run_for {
                let cmd = Command::Group(GroupCommand::CommitOffsets {
                    timestamp_ms: i,
                    commits: vec![GroupCommit {
                        group: format!("bench-{w}"),
                        offsets: Vec::new(),
                    }],
                });
                let t = Instant::now();
                if c.submit(cmd).await.is_ok() {
                    lat.push(t.elapsed().as_secs_f64());
                }
                i += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let _ = stop.send(true);
    for n in &nodes {
        n.shutdown().await;
    }
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
    Ok(json!({
        "mode": "commit",
        "voters": args.voters,
        "concurrency": args.concurrency,
        "seconds": secs,
        "commits": all.len(),
        "commits_per_s": all.len() as f64 / secs,
        "p50_ms": percentile(&all, 0.50) * 1e3,
        "p99_ms": percentile(&all, 0.99) * 1e3,
        "max_ms": all.last().copied().unwrap_or(0.0) * 1e3,
    }))
}

fn apply(args: &BenchArgs) -> serde_json::Value {
    let rss0 = rss_bytes();
    let mut s = MetaState::new();
    let mut index = 0u64;
    let mut next = |s: &mut MetaState, cmd: Command| {
        index += 1;
        s.apply_entry(index, cmd)
    };
    let _ = next(
        &mut s,
        Command::RegisterBroker {
            broker_id: 1,
            host: "h".into(),
            port: 9092,
            rack: None,
        },
    );
    let per_topic = 100usize.min(args.partitions.max(1));
    let topics = args.partitions.div_ceil(per_topic);
    let mut ids = Vec::new();
    for t in 0..topics {
        let id = Uuid::from_u128(t as u128 + 1);
        ids.push(id);
        let _ = next(
            &mut s,
            Command::CreateTopic {
                name: format!("topic-{t}"),
                topic_id: id,
                partitions: per_topic as i32,
                replication_factor: -1,
                configs: Default::default(),
                leader: 1,
                created_at_ms: 0,
            },
        );
    }
    // Committed offsets: groups of 1,000 offsets each.
    let groups = args.offsets.div_ceil(1000).max(1);
    for g in 0..groups {
        let offsets = (0..1000.min(args.offsets))
            .map(|k| OffsetEntry {
                topic: format!("topic-{}", k % topics),
                partition: (k / topics % per_topic) as i32,
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
            })
            .collect();
        let _ = next(
            &mut s,
            Command::Group(GroupCommand::CommitOffsets {
                timestamp_ms: 0,
                commits: vec![GroupCommit {
                    group: format!("group-{g}"),
                    offsets,
                }],
            }),
        );
    }
    let rss_state = rss_bytes().saturating_sub(rss0);
    // Readers hold views while commands apply: keep one per command.
    let mut views: Vec<Arc<MetaState>> = Vec::new();
    let mut wal_lat = Vec::new();
    let mut group_lat = Vec::new();
    let rounds = 2_000usize;
    let mut ends = vec![0i64; topics];
    for r in 0..rounds {
        let t = r % topics;
        let extents = (0..per_topic as i32)
            .map(|p| WalExtent {
                topic_id: ids[t],
                partition: p,
                leader_epoch: 0,
                base_offset: ends[t],
                end_offset: ends[t] + 10,
                byte_offset: p as u64 * 100,
                byte_len: 100,
                max_timestamp: 1,
                txn: Vec::new(),
                object: None,
            })
            .collect();
        ends[t] += 10;
        let cmd = Command::CommitWal {
            broker_id: 1,
            broker_epoch: 1,
            key: format!("wal/1/1/{r}"),
            size: per_topic as u64 * 100,
            committed_at_ms: r as i64,
            extents,
        };
        let t0 = Instant::now();
        let res = next(&mut s, cmd);
        views.push(Arc::new(s.clone()));
        wal_lat.push(t0.elapsed().as_secs_f64());
        debug_assert!(res.is_ok());
        let cmd = Command::Group(GroupCommand::CommitOffsets {
            timestamp_ms: r as i64,
            commits: vec![GroupCommit {
                group: format!("group-{}", r % groups),
                offsets: vec![OffsetEntry {
                    topic: "topic-0".into(),
                    partition: 0,
                    offset: r as i64,
                    leader_epoch: -1,
                    metadata: String::new(),
                }],
            }],
        });
        let t0 = Instant::now();
        let _ = next(&mut s, cmd);
        views.push(Arc::new(s.clone()));
        group_lat.push(t0.elapsed().as_secs_f64());
        if views.len() > 64 {
            views.drain(..32);
        }
    }
    wal_lat.sort_by(f64::total_cmp);
    group_lat.sort_by(f64::total_cmp);
    let committed: usize = s.groups.groups.values().map(|g| g.len()).sum();
    json!({
        "mode": "apply",
        "partitions": topics * per_topic,
        "committed_offsets": committed,
        "wal_commit_extents": per_topic,
        "wal_commit_p50_us": percentile(&wal_lat, 0.5) * 1e6,
        "wal_commit_p99_us": percentile(&wal_lat, 0.99) * 1e6,
        "offset_commit_p50_us": percentile(&group_lat, 0.5) * 1e6,
        "offset_commit_p99_us": percentile(&group_lat, 0.99) * 1e6,
        "state_rss_mib": rss_state as f64 / (1 << 20) as f64,
        "process_rss_mib": rss_bytes() as f64 / (1 << 20) as f64,
    })
}
