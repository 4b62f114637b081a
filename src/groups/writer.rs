//! The single writer of group commands to the metadata log.
//!
//! Handlers enqueue jobs synchronously, in request order, and await the
//! answer; the writer takes everything queued, merges consecutive offset
//! commits into one `CommitOffsets` command (one log record, one fsync: a
//! group commit), and runs other group commands one by one in between, so
//! the log sees every group's changes in the order the requests arrived.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

use super::error::GroupError;
use crate::broker::{Broker, BrokerError};
use crate::meta::groups::{GroupCommand, GroupCommit, GroupOutput, OffsetEntry};
use crate::meta::{Command, CommandOutput, MetaError};

/// Work for the writer.
pub(crate) enum Job {
    /// Offsets of one OffsetCommit request (already validated).
    Commit {
        group: String,
        offsets: Vec<OffsetEntry>,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    /// Any other group command.
    Command {
        cmd: GroupCommand,
        reply: oneshot::Sender<Result<GroupOutput, GroupError>>,
    },
}

/// The bounded job queue; the receiver moves to the writer task at start.
pub(crate) struct Queue {
    pub(crate) tx: mpsc::Sender<Job>,
    pub(crate) rx: Mutex<Option<mpsc::Receiver<Job>>>,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Queue {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Queue {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Enqueue without waiting; a full queue is a retriable refusal.
    pub(crate) fn push(&self, job: Job) -> Result<(), GroupError> {
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => GroupError::CoordinatorNotAvailable {
                reason: "too many offset commits queued".into(),
            },
            mpsc::error::TrySendError::Closed(_) => GroupError::CoordinatorNotAvailable {
                reason: "the coordinator is shutting down".into(),
            },
        })
    }
}

fn to_group_error(e: BrokerError) -> GroupError {
    match e {
        BrokerError::Meta(MetaError::UnknownPartition { name, partition }) => {
            GroupError::UnknownTopicOrPartition {
                topic: name,
                partition,
            }
        }
        BrokerError::Meta(MetaError::UnknownTopic { name }) => {
            GroupError::UnknownTopicOrPartition {
                topic: name,
                partition: -1,
            }
        }
        BrokerError::Meta(
            e @ (MetaError::InvalidRequest { .. } | MetaError::OffsetOutOfRange { .. }),
        ) => GroupError::InvalidRequest {
            reason: e.to_string(),
        },
        other => GroupError::Storage {
            reason: other.to_string(),
        },
    }
}

/// Whether a failure refused the command (so a batch may be split and
/// retried) rather than failing the store.
fn is_refusal(e: &GroupError) -> bool {
    matches!(
        e,
        GroupError::UnknownTopicOrPartition { .. } | GroupError::InvalidRequest { .. }
    )
}

async fn submit(broker: &Arc<Broker>, cmd: GroupCommand) -> Result<GroupOutput, GroupError> {
    match broker.submit(Command::Group(cmd)).await {
        Ok(CommandOutput::Group(out)) => Ok(out),
        Ok(other) => Err(GroupError::Storage {
            reason: format!("unexpected output {other:?}"),
        }),
        Err(e) => Err(to_group_error(e)),
    }
}

type CommitReply = oneshot::Sender<Result<(), GroupError>>;

async fn flush(
    broker: &Arc<Broker>,
    commits: &mut Vec<(GroupCommit, CommitReply)>,
    counter: &AtomicU64,
) {
    if commits.is_empty() {
        return;
    }
    let batch = std::mem::take(commits);
    let cmd = GroupCommand::CommitOffsets {
        timestamp_ms: broker.clock.now_ms(),
        commits: batch.iter().map(|(c, _)| c.clone()).collect(),
    };
    match submit(broker, cmd).await {
        Ok(_) => {
            counter.fetch_add(batch.len() as u64, Relaxed);
            for (_, reply) in batch {
                let _ = reply.send(Ok(()));
            }
        }
        Err(e) if batch.len() > 1 && is_refusal(&e) => {
            // One request's offsets (say, of a topic deleted meanwhile)
            // must not fail the others: apply each on its own.
            for (c, reply) in batch {
                let cmd = GroupCommand::CommitOffsets {
                    timestamp_ms: broker.clock.now_ms(),
                    commits: vec![c],
                };
                let r = submit(broker, cmd).await.map(|_| ());
                if r.is_ok() {
                    counter.fetch_add(1, Relaxed);
                }
                let _ = reply.send(r);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, requests = batch.len(), "offset commit failed");
            for (_, reply) in batch {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// Offsets merged into one command at most (well under the metadata
/// command limits, so a big batch is split rather than refused).
const MAX_OFFSETS_PER_BATCH: usize = 50_000;

async fn process(broker: &Arc<Broker>, jobs: Vec<Job>, counter: &AtomicU64) {
    let mut commits: Vec<(GroupCommit, CommitReply)> = Vec::new();
    let mut pending_offsets = 0;
    for job in jobs {
        match job {
            Job::Commit {
                group,
                offsets,
                reply,
            } => {
                if pending_offsets + offsets.len() > MAX_OFFSETS_PER_BATCH {
                    flush(broker, &mut commits, counter).await;
                    pending_offsets = 0;
                }
                pending_offsets += offsets.len();
                commits.push((GroupCommit { group, offsets }, reply));
            }
            Job::Command { cmd, reply } => {
                flush(broker, &mut commits, counter).await;
                pending_offsets = 0;
                let _ = reply.send(submit(broker, cmd).await);
            }
        }
    }
    flush(broker, &mut commits, counter).await;
}

/// Runs until shutdown, then finishes what is queued.
pub(crate) async fn run(
    broker: Arc<Broker>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    counter: Arc<AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_batch = max_batch.max(1);
    loop {
        let first = tokio::select! {
            j = rx.recv() => match j {
                Some(j) => j,
                None => return,
            },
            _ = shutdown.changed() => break,
        };
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        process(&broker, jobs, &counter).await;
    }
    rx.close();
    let mut rest = Vec::new();
    while let Some(j) = rx.recv().await {
        rest.push(j);
    }
    if !rest.is_empty() {
        process(&broker, rest, &counter).await;
    }
}
