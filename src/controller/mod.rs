//! The controller role: the metadata state machine ([`crate::meta`])
//! replicated over an openraft quorum of 1, 3 or 5 voters.
//!
//! - `log_store`: the Raft log and vote on disk (fsync before done)
//! - `state_machine`: applies committed commands, publishes the view,
//!   snapshots
//! - `network`: controller-to-controller RPCs and the JSON client
//! - `api`: the controller's HTTP endpoints (raft RPCs, submit, log
//!   streaming for brokers, status, membership)
//! - `client`: [`Metadata`], the one seam between brokers and metadata
//! - `upgrade`: importing a metadata directory of an earlier release
//!
//! Writes go to the leader: [`Controller::submit`] proposes locally when this
//! node leads and otherwise forwards to the leader it knows, retrying until
//! the request deadline, so callers never need to know who leads.

pub mod api;
pub mod bench;
pub mod cli;
pub mod client;
pub mod log_store;
pub mod network;
pub mod placement;
pub mod state_machine;
#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;
pub mod tls;
pub mod upgrade;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft, ServerState};
use serde::{Deserialize, Serialize};

pub use client::Metadata;

use crate::meta::command::ApplyResult;
use crate::meta::{Command, MetaError};

/// Raft node id (= broker id of the same process).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// openraft's types for the metadata log.
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Errors of starting or running a controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("controller I/O error during {op} on {path}: {source}", path = path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("controller data corrupt at {path}: {reason}", path = path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("raft: {0}")]
    Raft(String),
    #[error("{0}")]
    Config(String),
}

impl ControllerError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> ControllerError {
        ControllerError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Parses `--controller-quorum`: `1@host:9093,2@host:9093,...`.
pub fn parse_quorum(s: &str) -> Result<BTreeMap<NodeId, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('@')
            .ok_or_else(|| format!("`{part}` is not ID@HOST:PORT"))?;
        let id: NodeId = id
            .parse()
            .map_err(|_| format!("`{id}` in `{part}` is not a node id (an integer >= 0)"))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("`{addr}` in `{part}` has no :PORT"))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("`{addr}` in `{part}` is not HOST:PORT"));
        }
        if out.insert(id, addr.to_string()).is_some() {
            return Err(format!("node id {id} is listed twice"));
        }
    }
    if out.is_empty() {
        return Err("no voters listed".to_string());
    }
    Ok(out)
}

/// How a controller runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    pub node_id: NodeId,
    /// Raft files (`<meta-dir>/raft`).
    pub dir: PathBuf,
    /// The metadata directory (legacy files are looked for here).
    pub meta_dir: PathBuf,
    pub listen: SocketAddr,
    /// The initial voters (`--controller-quorum`).
    pub voters: BTreeMap<NodeId, String>,
    /// Wait to be added by `strata controller add-learner` instead of
    /// initializing a cluster.
    pub join: bool,
    /// Log entries between snapshots (and kept behind one).
    pub snapshot_every: u64,
    /// How long a write may wait for a leader and a commit.
    pub request_timeout: Duration,
    /// Broker lease: a broker not heard for this long is fenced and its
    /// partitions move.
    pub broker_lease: Duration,
}

/// A running controller node.
pub struct Controller {
    pub node_id: NodeId,
    pub raft: Raft<TypeConfig>,
    pub shared: Arc<state_machine::Shared>,
    pub client: network::JsonClient,
    pub request_timeout: Duration,
    /// Broker lease length.
    pub lease: Duration,
    /// Broker heartbeats as the leader sees them.
    pub liveness: placement::Liveness,
    log: log_store::LogStore,
    proposals: tokio::sync::mpsc::Sender<Proposal>,
}

/// A command waiting for the leader's next batch; `None` back when this
/// node stopped leading before it was proposed.
struct Proposal {
    cmd: Command,
    reply: tokio::sync::oneshot::Sender<Option<(u64, ApplyResult)>>,
}

/// Most commands one batched log entry carries.
const MAX_BATCH: usize = 512;

/// Proposes queued commands, as many as are waiting at once in one entry:
/// one log append and one fsync (and one replication round) for all.
async fn run_proposer(raft: Raft<TypeConfig>, mut rx: tokio::sync::mpsc::Receiver<Proposal>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        // Callers that gave up are not proposed.
        batch.retain(|p| !p.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        if batch.len() == 1 {
            let p = batch.pop().expect("one proposal");
            let r = raft.client_write(p.cmd).await;
            let _ = p
                .reply
                .send(r.ok().map(|resp| (resp.log_id.index, resp.data)));
            continue;
        }
        let (cmds, replies): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
        match raft.client_write(Command::Batch(cmds)).await {
            Ok(resp) => {
                let index = resp.log_id.index;
                match resp.data {
                    Ok(crate::meta::CommandOutput::Batch(results)) => {
                        for (reply, r) in replies.into_iter().zip(results) {
                            let _ = reply.send(Some((index, r)));
                        }
                    }
                    other => {
                        // The batch itself was refused (cannot happen for
                        // commands that are not batches): the same refusal
                        // for each.
                        for reply in replies {
                            let _ = reply.send(Some((index, other.clone())));
                        }
                    }
                }
            }
            Err(_) => {
                for reply in replies {
                    let _ = reply.send(None);
                }
            }
        }
    }
}

/// `GET /controller/status`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Status {
    pub node_id: NodeId,
    pub state: String,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub snapshot_index: Option<u64>,
    pub nodes: Vec<NodeStatus>,
}

/// One member in [`Status`].
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct NodeStatus {
    pub id: NodeId,
    pub address: String,
    /// Last log index known replicated to it (leader only).
    pub matched_index: Option<u64>,
    /// Entries it is behind the leader's log (leader only).
    pub lag: Option<u64>,
}

/// Membership changes through `POST /controller/membership`.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum MembershipChange {
    AddLearner { node_id: NodeId, address: String },
    Promote { node_id: NodeId },
    Remove { node_id: NodeId },
}

fn unavailable(reason: impl std::fmt::Display) -> MetaError {
    MetaError::Unavailable {
        reason: reason.to_string(),
    }
}

impl Controller {
    /// Opens the log and state machine, starts raft, serves the controller
    /// API on `listen`, and initializes the cluster when this node is one of
    /// the initial voters and nothing is on disk yet.
    pub async fn start(
        cfg: ControllerConfig,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Arc<Controller>, ControllerError> {
        let raft_cfg = openraft::Config {
            cluster_name: "strata".into(),
            heartbeat_interval: 100,
            election_timeout_min: 800,
            election_timeout_max: 1600,
            max_payload_entries: 64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: cfg.snapshot_every,
            install_snapshot_timeout: 10_000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ControllerError::Config(e.to_string()))?;
        let log = log_store::LogStore::open(&cfg.dir)?;
        let fresh = log.is_empty();
        let (sm, shared) = state_machine::StateMachine::open(&cfg.dir)?;
        let network = network::Network {
            client: network::JsonClient::controller(),
        };
        let raft = Raft::new(cfg.node_id, Arc::new(raft_cfg), network, log.clone(), sm)
            .await
            .map_err(|e| ControllerError::Raft(e.to_string()))?;
        let (proposals, rx) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(run_proposer(raft.clone(), rx));
        let controller = Arc::new(Controller {
            node_id: cfg.node_id,
            raft,
            shared,
            client: network::JsonClient::controller(),
            request_timeout: cfg.request_timeout,
            lease: cfg.broker_lease,
            liveness: placement::Liveness::default(),
            log,
            proposals,
        });
        tokio::spawn(placement::run(controller.clone(), shutdown.clone()));
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| {
                ControllerError::Config(format!(
                    "cannot listen on --controller-listen {}: {e}",
                    cfg.listen
                ))
            })?;
        api::serve(controller.clone(), listener, shutdown).map_err(|e| {
            ControllerError::Config(format!(
                "cannot serve --controller-listen {}: {e}",
                cfg.listen
            ))
        })?;
        if fresh && !cfg.join {
            if !cfg.voters.contains_key(&cfg.node_id) {
                return Err(ControllerError::Config(format!(
                    "node {} is not in --controller-quorum ({}); start it with --controller-join to add it later",
                    cfg.node_id,
                    cfg.voters.keys().map(|k| k.to_string()).collect::<Vec<_>>().join(",")
                )));
            }
            let members: BTreeMap<NodeId, BasicNode> = cfg
                .voters
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr)))
                .collect();
            tracing::info!(voters = ?cfg.voters, "initializing controller quorum");
            if let Err(e) = controller.raft.initialize(members).await {
                // Another voter may have reached us first: that is fine.
                tracing::info!(error = %e, "controller quorum already initialized");
            }
        }
        Ok(controller)
    }

    /// Submits `cmd` to the quorum: returns the log index it was committed
    /// at and what applying it gave (output or deterministic refusal), or
    /// [`MetaError::Unavailable`] when no leader committed it in time.
    pub async fn submit(&self, cmd: Command) -> Result<(u64, ApplyResult), MetaError> {
        self.submit_inner(cmd, true).await
    }

    pub(crate) async fn submit_inner(
        &self,
        cmd: Command,
        may_forward: bool,
    ) -> Result<(u64, ApplyResult), MetaError> {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(unavailable(format!(
                    "no controller leader committed the command within {:?}",
                    self.request_timeout
                )));
            }
            if self.is_leader() {
                // The leader batches concurrent proposals into one entry.
                let (tx, rx) = tokio::sync::oneshot::channel();
                let sent = tokio::time::timeout(
                    left,
                    self.proposals.send(Proposal {
                        cmd: cmd.clone(),
                        reply: tx,
                    }),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    return Err(unavailable("the proposal queue is full"));
                }
                match tokio::time::timeout(left, rx).await {
                    Err(_) => {
                        return Err(unavailable(format!(
                            "commit not confirmed within {:?} (is a majority of controllers up?)",
                            self.request_timeout
                        )))
                    }
                    Ok(Ok(Some(done))) => return Ok(done),
                    // Lost leadership meanwhile: go through the follower path.
                    Ok(Ok(None)) | Ok(Err(_)) => {}
                }
            }
            match tokio::time::timeout(left, self.raft.client_write(cmd.clone())).await {
                Err(_) => {
                    return Err(unavailable(format!(
                        "commit not confirmed within {:?} (is a majority of controllers up?)",
                        self.request_timeout
                    )))
                }
                Ok(Ok(resp)) => return Ok((resp.log_id.index, resp.data)),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                    match (f.leader_id, f.leader_node, may_forward) {
                        (Some(leader), Some(node), true) if leader != self.node_id => {
                            let r: Result<Result<(u64, ApplyResult), MetaError>, _> = self
                                .client
                                .call(&node.addr, "/meta/submit?forwarded=1", Some(&cmd), left)
                                .await;
                            match r {
                                Ok(r) => return r,
                                Err(e) => {
                                    tracing::debug!(error = %e, leader, "forwarding to controller leader failed");
                                }
                            }
                        }
                        (_, _, false) => {
                            return Err(unavailable("not the controller leader".to_string()))
                        }
                        _ => {}
                    }
                    // No leader known yet (election running): wait a bit.
                    tokio::time::sleep(Duration::from_millis(50).min(left)).await;
                }
                Ok(Err(e)) => return Err(unavailable(e)),
            }
        }
    }

    /// A broker's heartbeat: recorded on the leader (forwarded there from a
    /// follower); the reply says whether the lease is granted.
    pub async fn heartbeat(
        &self,
        hb: placement::Heartbeat,
        may_forward: bool,
    ) -> Result<placement::HeartbeatReply, MetaError> {
        if self.is_leader() {
            let view = self.shared.view.borrow().clone();
            let granted = self.liveness.beat(&view, &hb, std::time::Instant::now());
            return Ok(placement::HeartbeatReply {
                granted,
                lease_ms: self.lease.as_millis() as u64,
            });
        }
        if !may_forward {
            return Err(unavailable("not the controller leader"));
        }
        let addr = self
            .leader_address()
            .ok_or_else(|| unavailable("no controller leader"))?;
        let r: Result<Result<placement::HeartbeatReply, MetaError>, _> = self
            .client
            .call(
                &addr,
                "/meta/heartbeat?forwarded=1",
                Some(&hb),
                self.request_timeout,
            )
            .await;
        r.map_err(unavailable)?
    }

    /// The current leader's controller address, if known.
    pub fn leader_address(&self) -> Option<String> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .nodes()
            .find(|(id, _)| **id == leader)
            .map(|(_, n)| n.addr.clone());
        addr
    }

    /// Is a leader known (this node's readiness)?
    pub fn has_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader.is_some()
    }

    /// Is this node the leader now?
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.current_leader == Some(self.node_id) && m.state == ServerState::Leader
    }

    /// Current status as this node sees it.
    pub fn status(&self) -> Status {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let learners: Vec<NodeId> = membership.learner_ids().collect();
        let last = m.last_log_index.unwrap_or(0);
        let nodes = membership
            .nodes()
            .map(|(id, n)| {
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id))
                    .map(|l| l.map_or(0, |l| l.index));
                NodeStatus {
                    id: *id,
                    address: n.addr.clone(),
                    matched_index: matched,
                    lag: matched.map(|x| last.saturating_sub(x)),
                }
            })
            .collect();
        Status {
            node_id: self.node_id,
            state: format!("{:?}", m.state),
            leader: m.current_leader,
            term: m.current_term,
            voters,
            learners,
            applied_index: m.last_applied.map_or(0, |l| l.index),
            last_log_index: last.max(self.log.last_index()),
            snapshot_index: m.snapshot.map(|l| l.index),
            nodes,
        }
    }

    /// Applies a membership change on the leader (forwarding when another
    /// node leads).
    pub async fn change_membership(&self, change: MembershipChange) -> Result<Status, MetaError> {
        if !self.is_leader() {
            let leader = self
                .raft
                .metrics()
                .borrow()
                .current_leader
                .ok_or_else(|| unavailable("no controller leader"))?;
            let addr = self
                .status()
                .nodes
                .into_iter()
                .find(|n| n.id == leader)
                .map(|n| n.address)
                .ok_or_else(|| unavailable("leader address unknown"))?;
            let r: Result<Result<Status, MetaError>, _> = self
                .client
                .call(
                    &addr,
                    "/controller/membership",
                    Some(&change),
                    self.request_timeout * 6,
                )
                .await;
            return r.map_err(unavailable)?;
        }
        let view = self.shared.view.borrow().clone();
        let members: BTreeSet<NodeId> = {
            let m = self.raft.metrics().borrow().clone();
            m.membership_config
                .membership()
                .nodes()
                .map(|(id, _)| *id)
                .collect()
        };
        let refuse = |reason: String| MetaError::Controller { reason };
        match change {
            MembershipChange::AddLearner { node_id, address } => {
                if view.retired_controllers.contains(&node_id) {
                    return Err(refuse(format!(
                        "node id {node_id} was removed from the quorum and is never reused; pick a new id"
                    )));
                }
                if members.contains(&node_id) {
                    return Err(refuse(format!("node {node_id} is already a member")));
                }
                tokio::time::timeout(
                    self.request_timeout * 6,
                    self.raft
                        .add_learner(node_id, BasicNode::new(address), true),
                )
                .await
                .map_err(|_| unavailable("the learner did not catch up in time"))?
                .map_err(|e| refuse(e.to_string()))?;
            }
            MembershipChange::Promote { node_id } => {
                let m = self.raft.metrics().borrow().clone();
                if !m
                    .membership_config
                    .membership()
                    .learner_ids()
                    .any(|l| l == node_id)
                {
                    return Err(refuse(format!("node {node_id} is not a learner")));
                }
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
                    .await
                    .map_err(|e| refuse(e.to_string()))?;
            }
            MembershipChange::Remove { node_id } => {
                if !members.contains(&node_id) {
                    return Err(refuse(format!("node {node_id} is not a member")));
                }
                let m = self.raft.metrics().borrow().clone();
                let voters: BTreeSet<NodeId> =
                    m.membership_config.membership().voter_ids().collect();
                if voters.contains(&node_id) && voters.len() == 1 {
                    return Err(refuse("cannot remove the last voter".to_string()));
                }
                let (_, r) = self.submit(Command::RetireController { node_id }).await?;
                r?;
                let change = if voters.contains(&node_id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
                };
                self.raft
                    .change_membership(change, false)
                    .await
                    .map_err(|e| refuse(e.to_string()))?;
                if voters.contains(&node_id) {
                    // A removed voter stays a learner after the joint step;
                    // drop it completely.
                    let still: bool = self
                        .raft
                        .metrics()
                        .borrow()
                        .membership_config
                        .membership()
                        .nodes()
                        .any(|(id, _)| *id == node_id);
                    if still {
                        self.raft
                            .change_membership(
                                ChangeMembers::RemoveNodes(BTreeSet::from([node_id])),
                                false,
                            )
                            .await
                            .map_err(|e| refuse(e.to_string()))?;
                    }
                }
            }
        }
        Ok(self.status())
    }

    /// Controller gauges in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        use crate::metrics::write_metric;
        let st = self.status();
        let gauges: [(&str, &str, u64); 6] = [
            (
                "strata_controller_is_leader",
                "1 when this controller leads the quorum.",
                u64::from(st.leader == Some(self.node_id)),
            ),
            (
                "strata_controller_has_leader",
                "1 when this controller knows a leader.",
                u64::from(st.leader.is_some()),
            ),
            ("strata_controller_term", "Current Raft term.", st.term),
            (
                "strata_controller_applied_index",
                "Last metadata log index applied here.",
                st.applied_index,
            ),
            (
                "strata_controller_last_log_index",
                "Last metadata log index stored here.",
                st.last_log_index,
            ),
            (
                "strata_controller_voters",
                "Voters in the current membership.",
                st.voters.len() as u64,
            ),
        ];
        for (name, help, v) in gauges {
            write_metric(out, name, "gauge", help, v);
        }
        write_metric(
            out,
            "strata_controller_tls_handshake_failures_total",
            "counter",
            "TLS handshakes refused on the controller port (no or a foreign node certificate).",
            tls::HANDSHAKE_FAILURES.load(std::sync::atomic::Ordering::Relaxed),
        );
    }

    /// Stops raft (final snapshot is not needed: the log is durable).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "controller shutdown");
        }
    }
}
