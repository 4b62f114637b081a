//! `strata controller ...`: quorum status and membership changes, spoken to
//! any controller's API (`--controller HOST:PORT`).

use std::time::Duration;

use super::network::JsonClient;
use super::{MembershipChange, NodeId, Status};
use crate::meta::MetaError;

/// `strata controller` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ControllerCmd {
    /// Leader, term, voters, learners, each node's applied index and lag.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a started controller (run with --controller-join) as a learner.
    AddLearner {
        #[command(flatten)]
        target: Target,
        /// Its node id (never one that was removed before).
        #[arg(long)]
        node_id: NodeId,
        /// Its controller address, HOST:PORT.
        #[arg(long)]
        address: String,
    },
    /// Make a learner a voter.
    Promote {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        node_id: NodeId,
    },
    /// Measure controller commit throughput/latency or apply latency and
    /// memory on this machine (see docs/benchmarks.md).
    Bench(super::bench::BenchArgs),
    /// Remove a voter or learner for good (its id is never reused).
    Remove {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        node_id: NodeId,
    },
}

/// Which controller to talk to.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Any controller's API address.
    #[arg(long, env = "STRATA_CONTROLLER", default_value = "127.0.0.1:9093")]
    pub controller: String,
    #[command(flatten)]
    pub tls: super::tls::NodeTlsArgs,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 30)]
    pub timeout_s: u64,
}

/// Runs one subcommand; the error says what the controller answered.
pub async fn run_controller(cmd: ControllerCmd) -> anyhow::Result<()> {
    match &cmd {
        ControllerCmd::Bench(_) => {}
        ControllerCmd::Status { target, .. }
        | ControllerCmd::AddLearner { target, .. }
        | ControllerCmd::Promote { target, .. }
        | ControllerCmd::Remove { target, .. } => super::tls::install(target.tls.files()?)?,
    }
    let client = JsonClient::controller();
    let (target, change) = match cmd {
        ControllerCmd::Bench(args) => return super::bench::run(args).await,
        ControllerCmd::Status { target, json } => {
            let s: Status = client
                .call::<(), Status>(
                    &target.controller,
                    "/controller/status",
                    None,
                    Duration::from_secs(target.timeout_s),
                )
                .await?;
            print_status(&s, json);
            return Ok(());
        }
        ControllerCmd::AddLearner {
            target,
            node_id,
            address,
        } => (target, MembershipChange::AddLearner { node_id, address }),
        ControllerCmd::Promote { target, node_id } => {
            (target, MembershipChange::Promote { node_id })
        }
        ControllerCmd::Remove { target, node_id } => (target, MembershipChange::Remove { node_id }),
    };
    let r: Result<Status, MetaError> = client
        .call(
            &target.controller,
            "/controller/membership",
            Some(&change),
            Duration::from_secs(target.timeout_s),
        )
        .await?;
    let s = r?;
    print_status(&s, false);
    Ok(())
}

fn print_status(s: &Status, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
        return;
    }
    let leader = s.leader.map_or("none".to_string(), |l| l.to_string());
    println!(
        "node {} ({}) leader={} term={} applied={} last_log={} snapshot={}",
        s.node_id,
        s.state,
        leader,
        s.term,
        s.applied_index,
        s.last_log_index,
        s.snapshot_index.map_or("-".to_string(), |i| i.to_string())
    );
    println!(
        "{:<8} {:<8} {:<24} {:>10} {:>8}",
        "ID", "ROLE", "ADDRESS", "MATCHED", "LAG"
    );
    for n in &s.nodes {
        let role = if s.voters.contains(&n.id) {
            "voter"
        } else {
            "learner"
        };
        println!(
            "{:<8} {:<8} {:<24} {:>10} {:>8}",
            n.id,
            role,
            n.address,
            n.matched_index.map_or("-".into(), |m| m.to_string()),
            n.lag.map_or("-".into(), |m| m.to_string())
        );
    }
}
