//! Coordinator tests against a real broker on a temporary directory: the
//! batching writer, commit validation, deletion, listing, expiry, shutdown,
//! and every group API's response encoded at every advertised version.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::kafka::{dispatch, encode_response, supported_range, Ctx, Reply};
use crate::meta::groups::OffsetEntry;

const T0: i64 = 1_000_000;

struct Fixture {
    broker: Arc<Broker>,
    clock: Arc<ManualClock>,
    _stop: watch::Sender<bool>,
    _controller: crate::controller::testing::SingleNode,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let clock = ManualClock::new(T0);
    let node = crate::controller::testing::SingleNode::start(&dir.path().join("meta")).await;
    let broker = Broker::open(
        config,
        clock.clone(),
        Arc::new(crate::objstore::Store::memory()),
        node.metadata.clone(),
    )
    .await
    .unwrap();
    broker
        .create_topic("t", 3, -1, BTreeMap::new())
        .await
        .unwrap();
    let (tx, rx) = watch::channel(false);
    broker.groups.start(broker.clone(), rx);
    Fixture {
        broker,
        clock,
        _stop: tx,
        _controller: node,
        _dir: dir,
    }
}

fn entry(topic: &str, partition: i32, offset: i64) -> OffsetEntry {
    OffsetEntry {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: -1,
        metadata: String::new(),
    }
}

async fn commit_ok(f: &Fixture, group: &str, offsets: Vec<OffsetEntry>) -> Vec<i16> {
    let meta = f.broker.meta();
    let t = f
        .broker
        .groups
        .commit(f.clock.now_ms(), &meta, group, -1, "", None, offsets);
    let written = match t.pending {
        Some(rx) => rx.await.unwrap().err().map_or(0, |e| e.kafka_code()),
        None => 0,
    };
    t.refused
        .iter()
        .map(|r| r.as_ref().map_or(written, GroupError::kafka_code))
        .collect()
}

fn committed_offset(f: &Fixture, group: &str, t: &str, p: i32) -> Option<i64> {
    f.broker
        .meta()
        .groups
        .group(group)?
        .get(t, p)
        .map(|c| c.offset)
}

#[tokio::test]
async fn commits_queued_together_are_one_metadata_command() {
    let f = fixture().await;
    let before = f.broker.meta().applied_index;
    let meta = f.broker.meta();
    let tickets: Vec<_> = (0..200)
        .map(|i| {
            f.broker.groups.commit(
                T0,
                &meta,
                &format!("g{}", i % 7),
                -1,
                "",
                None,
                vec![entry("t", i % 3, i as i64)],
            )
        })
        .collect();
    for t in tickets {
        assert!(t.refused.iter().all(Option::is_none));
        t.pending.unwrap().await.unwrap().unwrap();
    }
    let applied = f.broker.meta().applied_index - before;
    assert!(applied <= 2, "200 queued commits took {applied} commands");
    // The last commit of each (group, partition) wins.
    assert_eq!(committed_offset(&f, "g6", "t", 2), Some(188));
    let (_, _, commits) = f.broker.groups.counters();
    assert_eq!(commits, 200);
}

#[tokio::test]
async fn commit_refusals_per_partition_and_per_group() {
    let f = fixture().await;
    let codes = commit_ok(
        &f,
        "g",
        vec![
            entry("t", 0, 5),
            entry("nope", 0, 1),
            entry("t", 7, 1),
            OffsetEntry {
                metadata: "x".repeat(5000),
                ..entry("t", 1, 1)
            },
            entry("t", 2, -3),
        ],
    )
    .await;
    assert_eq!(codes, vec![0, 3, 3, 12, 42]);
    assert_eq!(committed_offset(&f, "g", "t", 0), Some(5));
    let meta = f.broker.meta();
    let c = &f.broker.groups;
    // A generation for a group nobody joined: ILLEGAL_GENERATION.
    let t = c.commit(T0, &meta, "fresh", 3, "m", None, vec![entry("t", 0, 1)]);
    assert_eq!(t.refused[0].as_ref().unwrap().kafka_code(), 22);
    // A group that only has offsets (say, after a restart) is empty.
    let t = c.commit(T0, &meta, "g", 3, "m", None, vec![entry("t", 0, 1)]);
    assert_eq!(t.refused[0].as_ref().unwrap().kafka_code(), 25);
    let t = c.commit(
        T0,
        &meta,
        &"x".repeat(300),
        -1,
        "",
        None,
        vec![entry("t", 0, 1)],
    );
    assert_eq!(t.refused[0].as_ref().unwrap().kafka_code(), 24);
    // Fetch: committed, uncommitted, all.
    let got = c
        .fetch_offsets(&f.broker.meta(), "g", Some(vec![("t".into(), vec![0, 1])]))
        .unwrap();
    assert_eq!(got[0].1[0].1.as_ref().map(|c| c.offset), Some(5));
    assert!(got[0].1[1].1.is_none());
    let all = c.fetch_offsets(&f.broker.meta(), "g", None).unwrap();
    assert_eq!(all.len(), 1);
}

fn join_args(member_id: &str, session: i32) -> JoinArgs {
    JoinArgs {
        member_id: member_id.into(),
        group_instance_id: None,
        require_known_member_id: false,
        support_skip_assignment: false,
        client_id: "c".into(),
        client_host: String::new(),
        session_timeout_ms: session,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::new())],
    }
}

#[tokio::test]
async fn join_refusals_and_shutdown_answers_parked_joins() {
    let f = fixture().await;
    let c = &f.broker.groups;
    let code = |mut rx: tokio::sync::oneshot::Receiver<JoinResult>| {
        rx.try_recv().unwrap().error.map_or(0, |e| e.kafka_code())
    };
    assert_eq!(code(c.join(T0, "", join_args("", 10_000))), 24);
    assert_eq!(code(c.join(T0, "g", join_args("", 1_000))), 26);
    assert_eq!(code(c.join(T0, "g", join_args("", 4_000_000))), 26);
    assert_eq!(code(c.join(T0, "g", join_args("ghost", 10_000))), 25);
    let mut big = join_args("", 10_000);
    big.protocols = vec![("range".into(), Bytes::from(vec![0u8; 2 << 20]))];
    assert_eq!(code(c.join(T0, "g", big)), 42);
    let mut parked = c.join(T0, "g", join_args("", 10_000));
    assert!(parked.try_recv().is_err(), "waits for the initial delay");
    // The timer completes it after the initial rebalance delay.
    f.clock.advance(3_000);
    c.tick(f.clock.now_ms());
    let r = parked.try_recv().unwrap();
    assert_eq!((r.error, r.generation_id), (None, 1));
    // A second member parks; shutdown answers it NOT_COORDINATOR.
    let mut parked = c.join(f.clock.now_ms(), "g", join_args(&r.member_id, 10_000));
    let _ = parked.try_recv();
    let mut other = c.join(f.clock.now_ms(), "g", join_args("", 10_000));
    assert!(other.try_recv().is_err());
    c.shut_down();
    assert_eq!(other.try_recv().unwrap().error.unwrap().kafka_code(), 16);
    assert_eq!(code(c.join(T0, "g2", join_args("", 10_000))), 16);
}

#[tokio::test]
async fn delete_groups_list_and_describe() {
    let f = fixture().await;
    commit_ok(&f, "durable", vec![entry("t", 0, 1)]).await;
    let c = &f.broker.groups;
    let _live = c.join(T0, "live", join_args("", 10_000));
    let meta = f.broker.meta();
    let listed: Vec<(String, &str)> = c
        .list(&meta)
        .into_iter()
        .map(|g| (g.group_id, g.state))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("durable".into(), "Empty"),
            ("live".into(), "PreparingRebalance")
        ]
    );
    assert_eq!(
        c.describe(&meta, "durable").unwrap().unwrap().state,
        GroupState::Empty
    );
    assert!(c.describe(&meta, "nothing").unwrap().is_none());
    let names = vec!["durable".to_string(), "live".into(), "nothing".into()];
    let (verdicts, pending) = c.delete_groups(&meta, &names);
    assert!(verdicts[0].is_none());
    assert_eq!(verdicts[1].clone().unwrap().unwrap_err().kafka_code(), 68);
    assert_eq!(verdicts[2].clone().unwrap().unwrap_err().kafka_code(), 69);
    let out = pending.unwrap().await.unwrap().unwrap();
    assert_eq!(
        out,
        GroupOutput::GroupsDeleted {
            deleted: vec!["durable".into()],
            not_found: vec![]
        }
    );
    assert!(f.broker.meta().groups.group("durable").is_none());
}

#[tokio::test]
async fn offset_delete_refuses_subscribed_topics_of_live_groups() {
    let f = fixture().await;
    commit_ok(&f, "g", vec![entry("t", 0, 1), entry("t", 1, 1)]).await;
    let c = &f.broker.groups;
    let meta = f.broker.meta();
    assert_eq!(
        c.delete_offsets(&meta, "zz", &[("t".into(), 0)])
            .unwrap_err()
            .kafka_code(),
        69
    );
    let (v, pending) = c
        .delete_offsets(&meta, "g", &[("t".into(), 0), ("nope".into(), 0)])
        .unwrap();
    assert!(v[0].is_none());
    assert_eq!(v[1].as_ref().unwrap().kafka_code(), 3);
    pending.unwrap().await.unwrap().unwrap();
    assert_eq!(committed_offset(&f, "g", "t", 0), None);
    assert_eq!(committed_offset(&f, "g", "t", 1), Some(1));
    // A stable consumer group subscribed to "t".
    let mut a = join_args("", 10_000);
    a.protocols = vec![("range".into(), protocol::tests::subscription(0, &["t"]))];
    let mut rx = c.join(T0, "g", a);
    f.clock.advance(3_000);
    c.tick(f.clock.now_ms());
    let r = rx.try_recv().unwrap();
    let _rx = c.sync(
        f.clock.now_ms(),
        "g",
        1,
        &r.member_id,
        None,
        None,
        None,
        vec![],
    );
    let (v, pending) = c
        .delete_offsets(&f.broker.meta(), "g", &[("t".into(), 1)])
        .unwrap();
    assert_eq!(v[0].as_ref().unwrap().kafka_code(), 86);
    assert!(pending.is_none());
}

#[tokio::test]
async fn retention_expires_offsets_of_empty_groups_only() {
    let f = fixture().await;
    commit_ok(&f, "old", vec![entry("t", 0, 1)]).await;
    let c = &f.broker.groups;
    let retention = c.config().offsets_retention_ms;
    assert!(c
        .retention_pass(f.clock.now_ms(), &f.broker.meta())
        .is_none());
    // A live group's offsets do not expire.
    commit_ok(&f, "live", vec![entry("t", 1, 1)]).await;
    let _rx = c.join(T0, "live", join_args("", 10_000));
    f.clock.advance(retention);
    let cmd = c
        .retention_pass(f.clock.now_ms(), &f.broker.meta())
        .expect("an offset is due");
    let out = c.submit(cmd).await.unwrap();
    assert_eq!(
        out,
        GroupOutput::OffsetsExpired {
            offsets: 1,
            groups_removed: vec!["old".into()]
        }
    );
    assert!(f.broker.meta().groups.group("live").is_some());
}

#[tokio::test]
async fn metrics_show_lag_per_partition() {
    let f = fixture().await;
    commit_ok(&f, "g\"x", vec![entry("t", 0, 0)]).await;
    let mut o = String::new();
    f.broker.groups.render_metrics(&f.broker, &mut o);
    assert!(
        o.contains(
            "kafka_consumergroup_lag{consumergroup=\"g\\\"x\",topic=\"t\",partition=\"0\"} 0"
        ),
        "{o}"
    );
    assert!(o.contains("strata_group_offset_commits_total 1"), "{o}");
    assert_eq!(lag::group_lag(&f.broker, "g\"x")[0].lag, 0);
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Every group API, at every advertised version, answers with a response
/// that encodes (fields outside a version's schema would fail here).
#[tokio::test]
async fn every_group_response_encodes_at_every_version() {
    let f = fixture().await;
    commit_ok(&f, "g", vec![entry("t", 0, 3)]).await;
    let group = GroupId(sb("g"));
    let topic = TopicName(sb("t"));
    let reqs: Vec<(ApiKey, RequestKind)> = vec![
        (
            ApiKey::FindCoordinator,
            RequestKind::FindCoordinator(
                FindCoordinatorRequest::default()
                    .with_key(sb("g"))
                    .with_coordinator_keys(vec![sb("g")]),
            ),
        ),
        (
            ApiKey::JoinGroup,
            RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_group_id(group.clone())
                    .with_session_timeout_ms(1)
                    .with_protocol_type(sb("consumer")),
            ),
        ),
        (
            ApiKey::SyncGroup,
            RequestKind::SyncGroup(SyncGroupRequest::default().with_group_id(group.clone())),
        ),
        (
            ApiKey::Heartbeat,
            RequestKind::Heartbeat(HeartbeatRequest::default().with_group_id(group.clone())),
        ),
        (
            ApiKey::LeaveGroup,
            RequestKind::LeaveGroup(
                LeaveGroupRequest::default()
                    .with_group_id(group.clone())
                    .with_member_id(sb("m"))
                    .with_members(vec![
                        leave_group_request::MemberIdentity::default().with_member_id(sb("m"))
                    ]),
            ),
        ),
        (
            ApiKey::OffsetCommit,
            RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(group.clone())
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(topic.clone())
                            .with_partitions(vec![
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_partition_index(1)
                                    .with_committed_offset(4),
                            ]),
                    ]),
            ),
        ),
        (
            ApiKey::OffsetFetch,
            RequestKind::OffsetFetch(
                OffsetFetchRequest::default()
                    .with_group_id(group.clone())
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(topic.clone())
                            .with_partition_indexes(vec![0, 1, 2]),
                    ]))
                    .with_groups(vec![
                        offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(group.clone())
                            .with_topics(None),
                    ]),
            ),
        ),
        (
            ApiKey::ListGroups,
            RequestKind::ListGroups(ListGroupsRequest::default()),
        ),
        (
            ApiKey::DescribeGroups,
            RequestKind::DescribeGroups(
                DescribeGroupsRequest::default()
                    .with_groups(vec![group.clone(), GroupId(sb("none"))]),
            ),
        ),
        (
            ApiKey::DeleteGroups,
            RequestKind::DeleteGroups(
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb("none"))]),
            ),
        ),
        (
            ApiKey::OffsetDelete,
            RequestKind::OffsetDelete(
                OffsetDeleteRequest::default()
                    .with_group_id(group.clone())
                    .with_topics(vec![
                        offset_delete_request::OffsetDeleteRequestTopic::default()
                            .with_name(topic.clone())
                            .with_partitions(vec![
                                offset_delete_request::OffsetDeleteRequestPartition::default()
                                    .with_partition_index(2),
                            ]),
                    ]),
            ),
        ),
    ];
    for (key, req) in reqs {
        let (lo, hi) = supported_range(key).expect("advertised");
        for v in lo..=hi {
            let ctx = Ctx {
                broker: f.broker.clone(),
                version: v,
                correlation_id: 1,
                client_id: Some("test".into()),
                session: crate::auth::Session::internal("User:ANONYMOUS"),
            };
            let resp = match dispatch(&ctx, req.clone()).await {
                Reply::Now(r) => r,
                Reply::Later(fut) => fut.await,
                Reply::NoResponse => panic!("{key:?} v{v}: no response"),
            };
            if let Err(e) = encode_response(key, v, 1, &resp) {
                panic!("{key:?} v{v} does not encode: {e}");
            }
        }
    }
    // The commits above (v2..v9 of partition 1) landed.
    assert_eq!(committed_offset(&f, "g", "t", 1), Some(4));
}
