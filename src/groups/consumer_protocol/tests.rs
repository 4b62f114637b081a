//! The heartbeat state machine, driven without sockets or clocks.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::group::{ConsumerGroup, Heartbeat, Settings, Topics};
use crate::groups::GroupError;
use crate::meta::consumer_groups::{Assignment, MemberState};

#[derive(Default)]
struct Meta(BTreeMap<String, (Uuid, i32)>);

impl Meta {
    fn with(topics: &[(&str, i32)]) -> Meta {
        let mut m = Meta::default();
        for (i, (n, p)) in topics.iter().enumerate() {
            m.0.insert(n.to_string(), (Uuid::from_u128(i as u128 + 1), *p));
        }
        m
    }
    fn id(&self, name: &str) -> Uuid {
        self.0[name].0
    }
}

impl Topics for Meta {
    fn by_name(&self, name: &str) -> Option<(Uuid, i32)> {
        self.0.get(name).copied()
    }
    fn by_id(&self, id: &Uuid) -> Option<(String, i32)> {
        self.0
            .iter()
            .find(|(_, (i, _))| i == id)
            .map(|(n, (_, p))| (n.clone(), *p))
    }
    fn each_name(&self, f: &mut dyn FnMut(&str)) {
        for n in self.0.keys() {
            f(n);
        }
    }
}

fn settings() -> Settings {
    Settings {
        session_timeout_ms: 10_000,
        heartbeat_interval_ms: 1_000,
        max_size: 10,
    }
}

fn join(g: &mut ConsumerGroup, meta: &Meta, id: &str, topics: &[&str]) -> (i32, Assignment) {
    join_static(g, meta, id, topics, None)
}

fn join_static(
    g: &mut ConsumerGroup,
    meta: &Meta,
    id: &str,
    topics: &[&str],
    instance: Option<&str>,
) -> (i32, Assignment) {
    let r = g
        .heartbeat(
            0,
            &settings(),
            meta,
            Heartbeat {
                member_id: id.into(),
                member_epoch: 0,
                instance_id: instance.map(str::to_string),
                rebalance_timeout_ms: 5_000,
                subscribed_topics: Some(topics.iter().map(|t| t.to_string()).collect()),
                owned: Some(Assignment::new()),
                ..Default::default()
            },
            format!("gen-{id}"),
        )
        .unwrap();
    (r.member_epoch, r.assignment.unwrap())
}

/// A plain heartbeat reporting `owned` (the client's view).
fn beat(
    g: &mut ConsumerGroup,
    meta: &Meta,
    now: i64,
    id: &str,
    epoch: i32,
    owned: &Assignment,
) -> Result<(i32, Option<Assignment>), GroupError> {
    g.heartbeat(
        now,
        &settings(),
        meta,
        Heartbeat {
            member_id: id.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: Some(owned.clone()),
            ..Default::default()
        },
        String::new(),
    )
    .map(|r| (r.member_epoch, r.assignment))
}

/// Simulated clients: heartbeat each member with what it owns until the
/// group is stable; returns each member's (epoch, owned).
fn settle(
    g: &mut ConsumerGroup,
    meta: &Meta,
    mut clients: BTreeMap<String, (i32, Assignment)>,
) -> BTreeMap<String, (i32, Assignment)> {
    for _round in 0..10 {
        for (id, (epoch, owned)) in clients.iter_mut() {
            let (e, a) = beat(g, meta, 1, id, *epoch, owned).unwrap();
            *epoch = e;
            if let Some(a) = a {
                *owned = a;
            }
        }
        // Never two owners of a partition, at any point.
        let mut seen = BTreeSet::new();
        for (_, owned) in clients.values() {
            for (t, parts) in owned {
                for p in parts {
                    assert!(seen.insert((*t, *p)), "{t}-{p} owned twice");
                }
            }
        }
        if super::group::state_name(&g.rec) == "Stable" {
            break;
        }
    }
    assert_eq!(super::group::state_name(&g.rec), "Stable");
    clients
}

fn total(clients: &BTreeMap<String, (i32, Assignment)>) -> usize {
    clients
        .values()
        .map(|(_, a)| a.values().map(BTreeSet::len).sum::<usize>())
        .sum()
}

#[test]
fn members_join_and_partitions_move_only_after_revocation() {
    let meta = Meta::with(&[("t", 6)]);
    let mut g = ConsumerGroup::new("g");
    let (e1, a1) = join(&mut g, &meta, "a", &["t"]);
    assert_eq!(e1, 1);
    assert_eq!(a1[&meta.id("t")].len(), 6);
    assert!(g.take_update().is_some());
    // b joins: epoch 2; b gets nothing until a revokes.
    let (e2, a2) = join(&mut g, &meta, "b", &["t"]);
    assert_eq!(e2, 2);
    assert!(a2.is_empty(), "b got {a2:?} while a still owns everything");
    // a's heartbeat asks it to revoke 3, at its old epoch.
    let (ea, aa) = beat(&mut g, &meta, 1, "a", 1, &a1).unwrap();
    assert_eq!(ea, 1);
    let kept = aa.unwrap();
    assert_eq!(kept[&meta.id("t")].len(), 3);
    assert_eq!(g.rec.members["a"].state, MemberState::UnrevokedPartitions);
    // b still waits.
    let (_, a) = beat(&mut g, &meta, 1, "b", 2, &Assignment::new()).unwrap();
    assert!(a.is_none_or(|a| a.is_empty()));
    // a acknowledges: epoch 2.
    let (ea, _) = beat(&mut g, &meta, 1, "a", 1, &kept).unwrap();
    assert_eq!(ea, 2);
    // Now b gets the released three.
    let (_, a) = beat(&mut g, &meta, 1, "b", 2, &Assignment::new()).unwrap();
    assert_eq!(a.unwrap()[&meta.id("t")].len(), 3);
    assert_eq!(super::group::state_name(&g.rec), "Stable");
}

#[test]
fn leave_session_expiry_and_epoch_fencing() {
    let meta = Meta::with(&[("t", 4)]);
    let mut g = ConsumerGroup::new("g");
    let a = join(&mut g, &meta, "a", &["t"]);
    let b = join(&mut g, &meta, "b", &["t"]);
    let c = settle(&mut g, &meta, [("a".into(), a), ("b".into(), b)].into());
    assert_eq!(total(&c), 4);
    // A wrong epoch is fenced; an unknown member is unknown.
    let e = beat(&mut g, &meta, 2, "a", 99, &Assignment::new()).unwrap_err();
    assert_eq!(e.kafka_code(), 110);
    let e = beat(&mut g, &meta, 2, "zz", 3, &Assignment::new()).unwrap_err();
    assert_eq!(e.kafka_code(), 25);
    // b stops heartbeating: after its session, a gets everything.
    let epoch = g.rec.group_epoch;
    g.tick(5_000, &meta);
    assert!(g.rec.members.contains_key("b"));
    beat(&mut g, &meta, 9_000, "a", c["a"].0, &c["a"].1).unwrap();
    g.tick(10_001, &meta);
    assert!(!g.rec.members.contains_key("b"));
    assert!(g.rec.group_epoch > epoch);
    let (_, a) = beat(&mut g, &meta, 10_002, "a", c["a"].0, &c["a"].1).unwrap();
    assert_eq!(a.unwrap()[&meta.id("t")].len(), 4);
    // a leaves.
    let r = g
        .heartbeat(
            10_003,
            &settings(),
            &meta,
            Heartbeat {
                member_id: "a".into(),
                member_epoch: -1,
                ..Default::default()
            },
            String::new(),
        )
        .unwrap();
    assert_eq!(r.member_epoch, -1);
    assert!(g.is_empty());
    let u = g.take_update().unwrap();
    assert!(u.remove.contains(&"a".to_string()));
}

#[test]
fn static_member_returns_to_its_assignment_without_rebalance() {
    let meta = Meta::with(&[("t", 4)]);
    let mut g = ConsumerGroup::new("g");
    let a = join_static(&mut g, &meta, "a1", &["t"], Some("inst-a"));
    let b = join(&mut g, &meta, "b", &["t"]);
    let c = settle(&mut g, &meta, [("a1".into(), a), ("b".into(), b)].into());
    let before = c["a1"].1.clone();
    let epoch = g.rec.group_epoch;
    // Static leave (-2): kept with its assignment.
    g.heartbeat(
        1,
        &settings(),
        &meta,
        Heartbeat {
            member_id: "a1".into(),
            member_epoch: -2,
            instance_id: Some("inst-a".into()),
            ..Default::default()
        },
        String::new(),
    )
    .unwrap();
    assert_eq!(g.rec.members["a1"].member_epoch, -2);
    // Another member may not take the instance id while a1 is active;
    // here it is away, so the restarted client (new id) takes over.
    let (e, a) = join_static(&mut g, &meta, "a2", &["t"], Some("inst-a"));
    assert_eq!(a, before);
    assert_eq!(e, epoch);
    assert_eq!(g.rec.group_epoch, epoch, "no rebalance");
    assert!(!g.rec.members.contains_key("a1"));
    // A second incarnation while a2 is active is refused.
    let err = g
        .heartbeat(
            2,
            &settings(),
            &meta,
            Heartbeat {
                member_id: "a3".into(),
                member_epoch: 0,
                instance_id: Some("inst-a".into()),
                subscribed_topics: Some(vec!["t".into()]),
                ..Default::default()
            },
            String::new(),
        )
        .unwrap_err();
    assert_eq!(err.kafka_code(), 111);
}

#[test]
fn regex_subscription_and_partition_growth_rebalance() {
    let mut meta = Meta::with(&[("orders-1", 2), ("other", 3)]);
    let mut g = ConsumerGroup::new("g");
    let r = g
        .heartbeat(
            0,
            &settings(),
            &meta,
            Heartbeat {
                member_id: "a".into(),
                member_epoch: 0,
                subscribed_regex: Some("orders-.*".into()),
                owned: Some(Assignment::new()),
                ..Default::default()
            },
            String::new(),
        )
        .unwrap();
    // As in Kafka, the regex is resolved after the heartbeat that
    // subscribed it: nothing yet, its matches on the next heartbeat.
    assert!(r.assignment.unwrap_or_default().is_empty());
    let (e0, a0) = beat(&mut g, &meta, 1, "a", r.member_epoch, &Assignment::new()).unwrap();
    assert!(e0 > r.member_epoch);
    let owned = a0.unwrap();
    assert_eq!(
        owned.keys().copied().collect::<Vec<_>>(),
        vec![meta.id("orders-1")]
    );
    // A new matching topic: the next heartbeat bumps the epoch.
    meta.0.insert("orders-2".into(), (Uuid::from_u128(50), 1));
    let (e, a) = beat(&mut g, &meta, 1, "a", e0, &owned).unwrap();
    assert!(e > e0);
    let a = a.unwrap();
    assert_eq!(a[&Uuid::from_u128(50)], [0].into());
    // Partition growth: 2 -> 4.
    meta.0.get_mut("orders-1").unwrap().1 = 4;
    let (e2, a2) = beat(&mut g, &meta, 2, "a", e, &a).unwrap();
    assert!(e2 > e);
    assert_eq!(a2.unwrap()[&meta.id("orders-1")].len(), 4);
    // A bad regex is refused with INVALID_REGULAR_EXPRESSION.
    let err = g
        .heartbeat(
            3,
            &settings(),
            &meta,
            Heartbeat {
                member_id: "b".into(),
                member_epoch: 0,
                subscribed_regex: Some("(".into()),
                ..Default::default()
            },
            String::new(),
        )
        .unwrap_err();
    assert_eq!(err.kafka_code(), 128);
}

#[test]
fn many_members_cover_every_partition_once_and_survive_reload() {
    let meta = Meta::with(&[("t", 10), ("u", 7)]);
    let mut g = ConsumerGroup::new("g");
    let mut clients = BTreeMap::new();
    for i in 0..5 {
        let id = format!("m{i}");
        let j = join(&mut g, &meta, &id, &["t", "u"]);
        clients.insert(id, j);
    }
    let clients = settle(&mut g, &meta, clients);
    assert_eq!(total(&clients), 17);
    // Reload from the durable record: same epochs and assignments.
    let rec = g.rec.clone();
    let mut g2 = ConsumerGroup::load("g", rec, 100, &settings());
    for (id, (epoch, owned)) in &clients {
        let (e, _) = beat(&mut g2, &meta, 101, id, *epoch, owned).unwrap();
        assert_eq!(e, *epoch);
        assert_eq!(&g2.rec.members[id].assigned, owned);
    }
    // Commit validation by member epoch.
    let (id, (epoch, _)) = clients.iter().next().unwrap();
    g2.validate_commit(id, *epoch).unwrap();
    assert_eq!(
        g2.validate_commit(id, epoch - 1).unwrap_err().kafka_code(),
        113
    );
    assert_eq!(
        g2.validate_commit("nobody", 1).unwrap_err().kafka_code(),
        25
    );
    g2.validate_fetch(None, -1).unwrap();
    assert_eq!(
        g2.validate_fetch(Some(id), epoch - 1)
            .unwrap_err()
            .kafka_code(),
        113
    );
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_removed() {
    let meta = Meta::with(&[("t", 2)]);
    let mut g = ConsumerGroup::new("g");
    let (_, a) = join(&mut g, &meta, "a", &["t"]);
    join(&mut g, &meta, "b", &["t"]);
    beat(&mut g, &meta, 100, "a", 1, &a).unwrap();
    assert_eq!(g.rec.members["a"].state, MemberState::UnrevokedPartitions);
    // b keeps heartbeating; a never acknowledges (rebalance timeout 5 s).
    beat(&mut g, &meta, 5_000, "b", 2, &Assignment::new()).unwrap();
    g.tick(5_101, &meta);
    assert!(!g.rec.members.contains_key("a"));
    let (_, got) = beat(&mut g, &meta, 5_200, "b", 2, &Assignment::new()).unwrap();
    assert_eq!(got.unwrap()[&meta.id("t")].len(), 2);
}

/// Through the real coordinator and metadata log: a heartbeat is answered
/// once durable, a reloaded coordinator carries on with the same epochs,
/// and classic and consumer members do not share a live group.
mod coordinator {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use tokio::sync::watch;

    use crate::broker::Broker;
    use crate::clock::ManualClock;
    use crate::config::Config;
    use crate::kafka::{dispatch, Ctx, Reply};

    async fn heartbeat(
        b: &Arc<Broker>,
        req: ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        let ctx = Ctx {
            broker: b.clone(),
            version: 1,
            correlation_id: 1,
            client_id: Some("c".into()),
            session: crate::auth::Session::internal("User:ANONYMOUS"),
        };
        let r = match dispatch(&ctx, RequestKind::ConsumerGroupHeartbeat(req)).await {
            Reply::Now(r) => r,
            Reply::Later(f) => f.await,
            Reply::NoResponse => panic!("no response"),
        };
        match r {
            ResponseKind::ConsumerGroupHeartbeat(r) => r,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn sb(s: &str) -> StrBytes {
        StrBytes::from_string(s.to_string())
    }

    #[tokio::test]
    async fn durable_epochs_survive_a_reload_and_protocols_do_not_mix() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let node = crate::controller::testing::SingleNode::start(&dir.path().join("meta")).await;
        let b = Broker::open(
            config,
            ManualClock::new(1_000_000),
            Arc::new(crate::objstore::Store::memory()),
            node.metadata.clone(),
        )
        .await
        .unwrap();
        b.create_topic("t", 2, -1, BTreeMap::new()).await.unwrap();
        let (_stop, rx) = watch::channel(false);
        b.groups.start(b.clone(), rx);
        let join = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb("g")))
            .with_member_id(sb("m1"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(sb("t"))]))
            .with_topic_partitions(Some(vec![]));
        let r = heartbeat(&b, join).await;
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert_eq!(r.member_epoch, 1);
        let parts: Vec<i32> = r.assignment.unwrap().topic_partitions[0].partitions.clone();
        assert_eq!(parts, vec![0, 1]);
        // Durable before the answer.
        let rec = b.meta().groups.consumer["g"].clone();
        assert_eq!((rec.group_epoch, rec.members["m1"].member_epoch), (1, 1));
        // The coordinator forgets the group (as after a restart): the next
        // heartbeat at the same epoch is accepted, nothing is reassigned.
        b.groups.consumer_unload("g");
        let topic_id = b.meta().topic("t").unwrap().topic_id;
        let hb = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb("g")))
            .with_member_id(sb("m1"))
            .with_member_epoch(1)
            .with_rebalance_timeout_ms(-1)
            .with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![0, 1])]));
        let r = heartbeat(&b, hb).await;
        assert_eq!((r.error_code, r.member_epoch), (0, 1));
        // A classic member may not join the live consumer group ...
        let meta = b.meta();
        let e = b.groups.consumer_yield_to_classic(&meta, "g").unwrap_err();
        assert_eq!(e.kafka_code(), 23);
        assert_eq!(b.groups.describe(&meta, "g").unwrap_err().kafka_code(), 69);
        let listed = b.groups.list(&meta);
        assert_eq!(listed[0].group_type, "consumer");
        // ... nor commit with a stale epoch.
        let t = b
            .groups
            .commit(1_000_000, &meta, "g", 0, "m1", None, vec![]);
        assert_eq!(t.refused.len(), 0);
        let v = b
            .groups
            .consumer_validate_commit(&meta, "g", "m1", 0)
            .unwrap();
        assert_eq!(v.unwrap_err().kafka_code(), 113);
        // The member leaves: the empty group may become classic.
        let leave = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb("g")))
            .with_member_id(sb("m1"))
            .with_member_epoch(-1);
        assert_eq!(heartbeat(&b, leave).await.member_epoch, -1);
        b.groups.consumer_yield_to_classic(&b.meta(), "g").unwrap();
        for _ in 0..200 {
            if !b.meta().groups.consumer.contains_key("g") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(!b.groups.is_consumer_group(&b.meta(), "g"));
        // An unknown member at a positive epoch.
        let ghost = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb("h")))
            .with_member_id(sb("ghost"))
            .with_member_epoch(3);
        assert_eq!(heartbeat(&b, ghost).await.error_code, 25);
    }
}
