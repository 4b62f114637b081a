//! A real controller on a temporary directory: commands commit, refusals are
//! outputs at their own index, and a restart (log replay, then snapshot +
//! purged log) gives the same state.

use std::time::Duration;

use tokio::sync::watch;

use super::*;
use crate::meta::{Command, CommandOutput, MetaError};

fn config(dir: &std::path::Path, snapshot_every: u64) -> ControllerConfig {
    ControllerConfig {
        node_id: 1,
        dir: dir.join("raft"),
        meta_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        voters: [(1, "127.0.0.1:1".to_string())].into(),
        join: false,
        snapshot_every,
        request_timeout: Duration::from_secs(10),
        broker_lease: Duration::from_secs(60),
    }
}

async fn start(
    dir: &std::path::Path,
    snapshot_every: u64,
) -> (Arc<Controller>, watch::Sender<bool>) {
    let (tx, rx) = watch::channel(false);
    let c = Controller::start(config(dir, snapshot_every), rx)
        .await
        .unwrap();
    let mut m = c.raft.metrics();
    tokio::time::timeout(
        Duration::from_secs(20),
        m.wait_for(|m| m.current_leader == Some(1)),
    )
    .await
    .unwrap()
    .unwrap();
    (c, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_refusals_and_restarts_keep_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let (c, stop) = start(dir.path(), 8).await;
    let (i1, r) = c
        .submit(Command::AllocateProducerIds { count: 5 })
        .await
        .unwrap();
    assert_eq!(
        r.unwrap(),
        CommandOutput::ProducerIdsAllocated {
            first: 1000,
            count: 5
        }
    );
    // A refusal is an output of its own log entry.
    let (i2, r) = c
        .submit(Command::DeleteTopic {
            name: "nope".into(),
            topic_id: None,
        })
        .await
        .unwrap();
    assert!(matches!(r, Err(MetaError::UnknownTopic { .. })), "{r:?}");
    assert_eq!(i2, i1 + 1);
    assert_eq!(c.shared.view.borrow().applied_index, i2);
    // Enough commands for several snapshots and purges.
    for _ in 0..40 {
        c.submit(Command::AllocateProducerIds { count: 1 })
            .await
            .unwrap()
            .1
            .unwrap();
    }
    let before = c.shared.view.borrow().clone();
    assert_eq!(before.next_producer_id, 1045);
    let mut m = c.raft.metrics();
    tokio::time::timeout(
        Duration::from_secs(20),
        m.wait_for(|m| m.snapshot.is_some()),
    )
    .await
    .unwrap()
    .unwrap();
    c.shutdown().await;
    let _ = stop.send(true);
    drop(c);
    // Give the API task its shutdown, then reopen the same directory.
    let (c, _stop) = start(dir.path(), 8).await;
    let mut v = c.shared.view.subscribe();
    let after = tokio::time::timeout(
        Duration::from_secs(20),
        v.wait_for(|s| s.applied_index >= before.applied_index),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    assert_eq!(after.next_producer_id, before.next_producer_id);
    assert_eq!(after.topics, before.topics);
    let (_, r) = c
        .submit(Command::AllocateProducerIds { count: 1 })
        .await
        .unwrap();
    assert_eq!(
        r.unwrap(),
        CommandOutput::ProducerIdsAllocated {
            first: 1045,
            count: 1
        }
    );
    c.shutdown().await;
}

#[test]
fn quorum_flag_parses_and_names_errors() {
    let q = parse_quorum("1@h1:9093, 2@h2:9093,3@[::1]:9093").unwrap();
    assert_eq!(q.len(), 3);
    assert_eq!(q[&3], "[::1]:9093");
    for (bad, says) in [
        ("", "no voters"),
        ("1@h", "no :PORT"),
        ("x@h:1", "not a node id"),
        ("1@h:1,1@g:2", "listed twice"),
        ("1@h:0", "not HOST:PORT"),
    ] {
        let e = parse_quorum(bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}
