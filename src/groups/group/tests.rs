//! State-machine tests: every rebalance path with explicit time.

use super::*;
use crate::groups::protocol::tests::{assignment, subscription};
use tokio::sync::oneshot::error::TryRecvError;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn cfg() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        max_group_size: 4,
        ..GroupConfig::default()
    }
}

fn args(member_id: &str, protocols: &[&str]) -> JoinArgs {
    JoinArgs {
        member_id: member_id.to_string(),
        group_instance_id: None,
        require_known_member_id: false,
        support_skip_assignment: false,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), subscription(1, &["t"])))
            .collect(),
    }
}

struct Pending<T>(oneshot::Receiver<T>);

impl<T: std::fmt::Debug> Pending<T> {
    fn done(&mut self) -> T {
        self.0.try_recv().expect("request should be answered")
    }
    fn waiting(&mut self) -> bool {
        matches!(self.0.try_recv(), Err(TryRecvError::Empty))
    }
}

fn join(g: &mut Group, now: i64, a: JoinArgs, new_id: &str) -> Pending<JoinResult> {
    let (tx, rx) = oneshot::channel();
    g.join(now, &cfg(), a, new_id.to_string(), tx);
    Pending(rx)
}

fn sync(
    g: &mut Group,
    now: i64,
    generation: i32,
    member: &str,
    assignments: Vec<(&str, Bytes)>,
) -> Pending<SyncResult> {
    let (tx, rx) = oneshot::channel();
    let a = assignments
        .into_iter()
        .map(|(m, b)| (m.to_string(), b))
        .collect();
    g.sync(now, generation, member, None, None, None, a, tx);
    Pending(rx)
}

fn code(e: &Option<GroupError>) -> i16 {
    e.as_ref().map_or(0, GroupError::kafka_code)
}

/// Runs the initial delay (3 s) and its one extension (3 s more).
fn settle(g: &mut Group) {
    g.tick(3_000, &cfg());
    g.tick(6_000, &cfg());
}

/// A stable group with members m1..mN (m1 leader) at generation 1, time 3000.
fn stable(n: usize) -> Group {
    let mut g = Group::new("g", 0);
    let mut waits: Vec<_> = (1..=n)
        .map(|i| join(&mut g, 0, args("", &["range"]), &format!("m{i}")))
        .collect();
    g.tick(3_000, &cfg());
    // Members added during the delay extend it once.
    if n > 1 {
        assert!(waits[0].waiting());
        g.tick(6_000, &cfg());
    }
    let results: Vec<JoinResult> = waits.iter_mut().map(|w| w.done()).collect();
    assert!(results
        .iter()
        .all(|r| r.error.is_none() && r.generation_id == 1));
    let mut syncs: Vec<_> = (2..=n)
        .map(|i| sync(&mut g, 6_000, 1, &format!("m{i}"), vec![]))
        .collect();
    let a: Vec<(String, Bytes)> = (1..=n)
        .map(|i| (format!("m{i}"), assignment(0, &[("t", &[i as i32 - 1])])))
        .collect();
    let mut leader = sync(
        &mut g,
        6_000,
        1,
        "m1",
        a.iter().map(|(m, b)| (m.as_str(), b.clone())).collect(),
    );
    assert!(leader.done().error.is_none());
    for s in syncs.iter_mut() {
        assert!(s.done().error.is_none());
    }
    assert_eq!(g.state(), GroupState::Stable);
    g
}

#[test]
fn member_id_required_then_initial_delay_then_generation_one() {
    let mut g = Group::new("g", 0);
    let mut a = args("", &["range"]);
    a.require_known_member_id = true;
    let r = join(&mut g, 0, a.clone(), "c-1").done();
    assert_eq!(code(&r.error), 79);
    assert_eq!(r.member_id, "c-1");
    assert_eq!(g.state(), GroupState::Empty);
    a.member_id = "c-1".into();
    let mut w = join(&mut g, 100, a, "unused");
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    g.tick(3_099, &cfg());
    assert!(w.waiting(), "the initial delay holds the first join");
    g.tick(3_100, &cfg());
    let r = w.done();
    assert_eq!(r.error, None);
    assert_eq!(
        (r.generation_id, r.leader.as_str(), r.member_id.as_str()),
        (1, "c-1", "c-1")
    );
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.members.len(), 1, "the leader gets every member");
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn new_members_extend_initial_delay_up_to_rebalance_timeout() {
    let mut g = Group::new("g", 0);
    let mut w1 = join(&mut g, 0, args("", &["range"]), "m1");
    let mut w2 = join(&mut g, 1_000, args("", &["range"]), "m2");
    g.tick(3_000, &cfg());
    assert!(
        w1.waiting() && w2.waiting(),
        "a member arrived during the delay: wait again"
    );
    g.tick(5_999, &cfg());
    assert!(w1.waiting());
    g.tick(6_000, &cfg());
    let (r1, r2) = (w1.done(), w2.done());
    assert_eq!((r1.generation_id, r2.generation_id), (1, 1));
    assert_eq!(r1.members.len(), 2);
    assert!(r2.members.is_empty(), "followers get no member list");
    assert_eq!(r2.leader, "m1");
}

#[test]
fn three_members_sync_and_get_their_assignments() {
    let mut g = stable(3);
    assert_eq!(g.generation(), 1);
    assert_eq!(g.len(), 3);
    let s = g.summary();
    assert_eq!(s.state.name(), "Stable");
    assert_eq!(s.protocol, "range");
    let m2 = s.members.iter().find(|m| m.member_id == "m2").unwrap();
    assert_eq!(
        crate::groups::protocol::assignment_partitions(&m2.assignment),
        Some(vec![("t".into(), vec![1])])
    );
    // A late SyncGroup in Stable returns the member's assignment.
    let r = sync(&mut g, 6_500, 1, "m3", vec![]).done();
    assert_eq!(
        crate::groups::protocol::assignment_partitions(&r.assignment),
        Some(vec![("t".into(), vec![2])])
    );
    assert_eq!(g.subscribed_topics().map(|t| t.len()), Some(1));
}

#[test]
fn protocol_selection_votes_among_common_protocols() {
    let mut g = Group::new("g", 0);
    let mut ws = [
        join(&mut g, 0, args("", &["range", "roundrobin"]), "a"),
        join(&mut g, 0, args("", &["roundrobin", "range"]), "b"),
        join(&mut g, 0, args("", &["roundrobin"]), "c"),
    ];
    settle(&mut g);
    for w in ws.iter_mut() {
        assert_eq!(w.done().protocol_name.as_deref(), Some("roundrobin"));
    }
    let mut g = Group::new("g", 0);
    let mut ws = [
        join(&mut g, 0, args("", &["cooperative-sticky", "range"]), "a"),
        join(&mut g, 0, args("", &["range", "cooperative-sticky"]), "b"),
        join(&mut g, 0, args("", &["cooperative-sticky", "range"]), "c"),
    ];
    settle(&mut g);
    for w in ws.iter_mut() {
        assert_eq!(
            w.done().protocol_name.as_deref(),
            Some("cooperative-sticky")
        );
    }
}

#[test]
fn inconsistent_protocols_are_refused() {
    let mut g = stable(1);
    let r = join(&mut g, 7_000, args("", &["roundrobin"]), "x").done();
    assert_eq!(code(&r.error), 23);
    let mut other = args("", &["range"]);
    other.protocol_type = "connect".into();
    assert_eq!(code(&join(&mut g, 7_000, other, "x").done().error), 23);
    let mut empty = Group::new("e", 0);
    assert_eq!(
        code(&join(&mut empty, 0, args("", &[]), "x").done().error),
        23
    );
    let mut no_type = args("", &["range"]);
    no_type.protocol_type = String::new();
    assert_eq!(code(&join(&mut empty, 0, no_type, "x").done().error), 23);
}

#[test]
fn heartbeat_errors_like_kafka() {
    let mut g = stable(2);
    assert_eq!(g.heartbeat(7_000, "m1", None, 1), Ok(()));
    assert_eq!(
        g.heartbeat(7_000, "nobody", None, 1)
            .unwrap_err()
            .kafka_code(),
        25
    );
    assert_eq!(
        g.heartbeat(7_000, "m1", None, 0).unwrap_err().kafka_code(),
        22
    );
    assert_eq!(
        g.heartbeat(7_000, "m1", Some("i"), 1)
            .unwrap_err()
            .kafka_code(),
        25
    );
    // The leader rejoining starts a rebalance: heartbeats say so.
    let _w = join(&mut g, 7_000, args("m1", &["range"]), "");
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat(7_100, "m2", None, 1).unwrap_err().kafka_code(),
        27
    );
}

#[test]
fn session_expiry_moves_partitions_to_survivors() {
    let mut g = stable(2);
    // m1 keeps heartbeating; m2 goes silent after its sync at 6000.
    g.heartbeat(12_000, "m1", None, 1).unwrap();
    g.tick(15_999, &cfg());
    assert_eq!(g.len(), 2);
    g.tick(16_000, &cfg());
    assert_eq!(g.len(), 1, "m2's session expired");
    assert_eq!(g.events().members_expired, 1);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat(16_100, "m1", None, 1).unwrap_err().kafka_code(),
        27
    );
    let r = join(&mut g, 16_200, args("m1", &["range"]), "").done();
    assert_eq!(
        (r.generation_id, r.members.len()),
        (2, 1),
        "all members in: completes at once"
    );
}

#[test]
fn leave_rebalances_at_once() {
    let mut g = stable(3);
    assert_eq!(g.leave(7_000, &cfg(), "m2", None), Ok(()));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let mut w1 = join(&mut g, 7_100, args("m1", &["range"]), "");
    assert!(w1.waiting(), "m3 has not rejoined yet");
    let r3 = join(&mut g, 7_200, args("m3", &["range"]), "").done();
    let r1 = w1.done();
    assert_eq!((r1.generation_id, r3.generation_id), (2, 2));
    assert_eq!(r1.members.len(), 2);
    assert_eq!(
        g.leave(7_300, &cfg(), "m2", None).unwrap_err().kafka_code(),
        25
    );
}

#[test]
fn leader_leaving_elects_a_joined_member() {
    let mut g = stable(2);
    g.leave(7_000, &cfg(), "m1", None).unwrap();
    let r = join(&mut g, 7_100, args("m2", &["range"]), "").done();
    assert_eq!((r.leader.as_str(), r.members.len()), ("m2", 1));
}

#[test]
fn members_that_miss_the_rebalance_timeout_are_dropped() {
    let mut g = stable(2);
    g.heartbeat(15_000, "m2", None, 1).unwrap();
    g.heartbeat(15_000, "m1", None, 1).unwrap();
    let mut w = join(&mut g, 20_000, args("m1", &["range"]), "");
    // m2 keeps heartbeating (told to rejoin) but never rejoins.
    for t in [24_000, 33_000, 42_000] {
        assert_eq!(g.heartbeat(t, "m2", None, 1).unwrap_err().kafka_code(), 27);
    }
    g.tick(49_999, &cfg());
    assert!(w.waiting());
    g.tick(50_000, &cfg());
    let r = w.done();
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
    assert!(!g.has_member("m2"));
}

#[test]
fn members_that_never_sync_are_dropped() {
    let mut g = Group::new("g", 0);
    let mut w1 = join(&mut g, 0, args("", &["range"]), "m1");
    let mut w2 = join(&mut g, 0, args("", &["range"]), "m2");
    settle(&mut g);
    w1.done();
    w2.done();
    let mut s1 = sync(
        &mut g,
        6_100,
        1,
        "m1",
        vec![("m1", assignment(0, &[("t", &[0])]))],
    );
    assert!(s1.done().error.is_none());
    // m2 heartbeats but never sends SyncGroup.
    for t in [15_000, 24_000, 33_000] {
        g.heartbeat(t, "m1", None, 1).unwrap();
        g.heartbeat(t, "m2", None, 1).unwrap();
    }
    g.tick(35_999, &cfg());
    assert!(g.has_member("m2"));
    g.tick(36_000, &cfg());
    assert!(!g.has_member("m2"));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn rebalance_during_completing_fails_parked_syncs() {
    let mut g = Group::new("g", 0);
    let mut w1 = join(&mut g, 0, args("", &["range"]), "m1");
    let mut w2 = join(&mut g, 0, args("", &["range"]), "m2");
    settle(&mut g);
    w1.done();
    w2.done();
    let mut s2 = sync(&mut g, 6_100, 1, "m2", vec![]);
    assert!(s2.waiting());
    // A third member arrives before the leader syncs.
    let mut w3 = join(&mut g, 6_200, args("", &["range"]), "m3");
    assert_eq!(code(&s2.done().error), 27);
    assert!(w3.waiting());
    // Commits are refused mid-rebalance only in CompletingRebalance.
    assert_eq!(g.validate_commit(6_300, 1, "m2", None), Ok(()));
}

#[test]
fn static_member_restart_keeps_assignment_without_rebalance() {
    let mut g = Group::new("g", 0);
    let mut a = args("", &["range"]);
    a.group_instance_id = Some("inst-1".into());
    a.require_known_member_id = true;
    // Static members skip the member-id-required round.
    let mut w = join(&mut g, 0, a.clone(), "inst-1-aaa");
    g.tick(3_000, &cfg());
    let r = w.done();
    assert_eq!(r.error, None);
    assert_eq!(r.member_id, "inst-1-aaa");
    sync(
        &mut g,
        3_100,
        1,
        "inst-1-aaa",
        vec![("inst-1-aaa", assignment(0, &[("t", &[0, 1])]))],
    )
    .done();
    // The process restarts and joins again with the same instance id.
    let r = join(&mut g, 4_000, a.clone(), "inst-1-bbb").done();
    assert_eq!(r.error, None);
    assert_eq!((r.member_id.as_str(), r.generation_id), ("inst-1-bbb", 1));
    assert_eq!(
        r.leader, "inst-1-aaa",
        "pre-v9 clients see the old leader id and do not assign"
    );
    assert_eq!(g.state(), GroupState::Stable, "no rebalance");
    let s = sync(&mut g, 4_100, 1, "inst-1-bbb", vec![]).done();
    assert_eq!(
        crate::groups::protocol::assignment_partitions(&s.assignment),
        Some(vec![("t".into(), vec![0, 1])])
    );
    // The old incarnation is fenced.
    let e = g
        .heartbeat(4_200, "inst-1-aaa", Some("inst-1"), 1)
        .unwrap_err();
    assert_eq!(e.kafka_code(), 82);
    assert_eq!(
        g.validate_commit(4_200, 1, "inst-1-aaa", Some("inst-1"))
            .unwrap_err()
            .kafka_code(),
        82
    );
    // v9 clients: the returning leader is told to skip the assignment.
    a.support_skip_assignment = true;
    let r = join(&mut g, 5_000, a, "inst-1-ccc").done();
    assert!(r.skip_assignment);
    assert_eq!(r.leader, "inst-1-ccc");
    assert_eq!(r.members.len(), 1);
}

#[test]
fn static_member_does_not_leave_the_rebalance_when_absent() {
    let mut g = Group::new("g", 0);
    let mut a = args("", &["range"]);
    a.group_instance_id = Some("s".into());
    let mut ws = join(&mut g, 0, a, "s-1");
    let mut wd = join(&mut g, 0, args("", &["range"]), "d-1");
    settle(&mut g);
    ws.done();
    wd.done();
    // The dynamic member is replaced; the static one is away (but its
    // session lives): after the rebalance timeout it is kept, and a member
    // that did rejoin leads.
    g.leave(6_100, &cfg(), "d-1", None).unwrap();
    let mut w = join(&mut g, 6_200, args("", &["range"]), "d-2");
    for t in [14_000, 23_000, 32_000] {
        let _ = g.heartbeat(t, "s-1", Some("s"), 1);
    }
    g.tick(6_100 + REBALANCE as i64, &cfg());
    let r = w.done();
    assert!(g.has_member("s-1"));
    assert_eq!(r.leader, "d-2");
    assert_eq!(r.members.len(), 2);
}

#[test]
fn leave_by_instance_id_only() {
    let mut g = Group::new("g", 0);
    let mut a = args("", &["range"]);
    a.group_instance_id = Some("s".into());
    let mut w = join(&mut g, 0, a, "s-1");
    g.tick(3_000, &cfg());
    w.done();
    assert_eq!(
        g.leave(3_100, &cfg(), "", Some("nope"))
            .unwrap_err()
            .kafka_code(),
        25
    );
    assert_eq!(g.leave(3_100, &cfg(), "", Some("s")), Ok(()));
    assert!(g.is_empty());
}

#[test]
fn commit_validation() {
    let mut g = Group::new("g", 0);
    assert_eq!(
        g.validate_commit(0, -1, "", None),
        Ok(()),
        "simple consumers commit to empty groups"
    );
    assert_eq!(
        g.validate_commit(0, 3, "m", None).unwrap_err().kafka_code(),
        25
    );
    let mut g = stable(2);
    assert_eq!(g.validate_commit(7_000, 1, "m1", None), Ok(()));
    assert_eq!(
        g.validate_commit(7_000, 0, "m1", None)
            .unwrap_err()
            .kafka_code(),
        22
    );
    assert_eq!(
        g.validate_commit(7_000, 1, "x", None)
            .unwrap_err()
            .kafka_code(),
        25
    );
    assert_eq!(
        g.validate_commit(7_000, -1, "", None)
            .unwrap_err()
            .kafka_code(),
        25,
        "only members commit to a live group"
    );
    // A commit counts as a heartbeat.
    g.heartbeat(15_000, "m1", None, 1).unwrap();
    g.validate_commit(15_000, 1, "m2", None).unwrap();
    g.tick(20_000, &cfg());
    assert_eq!(g.len(), 2);
    // CompletingRebalance: REBALANCE_IN_PROGRESS.
    let mut g = Group::new("g", 0);
    let mut w = join(&mut g, 0, args("", &["range"]), "m1");
    g.tick(3_000, &cfg());
    w.done();
    assert_eq!(
        g.validate_commit(3_100, 1, "m1", None)
            .unwrap_err()
            .kafka_code(),
        27
    );
}

#[test]
fn group_max_size() {
    let mut g = stable(4);
    let r = join(&mut g, 7_000, args("", &["range"]), "m5").done();
    assert_eq!(code(&r.error), 81);
    assert_eq!(g.len(), 4);
}

#[test]
fn pending_member_expiry_unblocks_join() {
    let mut g = stable(1);
    let mut a = args("", &["range"]);
    a.require_known_member_id = true;
    let r = join(&mut g, 7_000, a, "p-1").done();
    assert_eq!(code(&r.error), 79);
    let mut w = join(&mut g, 7_100, args("m1", &["range"]), "");
    assert!(w.waiting(), "a pending member may still join");
    g.tick(7_000 + SESSION as i64, &cfg());
    assert_eq!(w.done().generation_id, 2);
}

#[test]
fn new_member_completes_join_when_silent_member_expires() {
    let mut g = stable(1);
    // A new member parks in JoinGroup; m1 went silent and never rejoins.
    let mut w = join(&mut g, 7_000, args("", &["range"]), "n1");
    assert!(w.waiting());
    g.tick(15_999, &cfg());
    assert!(w.waiting());
    g.tick(16_000, &cfg());
    let r = w.done();
    assert_eq!((r.generation_id, r.leader.as_str()), (2, "n1"));
}

#[test]
fn follower_rejoin_in_stable_is_answered_at_once() {
    let mut g = stable(2);
    let r = join(&mut g, 7_000, args("m2", &["range"]), "").done();
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1);
    assert_eq!(g.state(), GroupState::Stable);
    // A follower with new metadata triggers a rebalance.
    let mut w = join(&mut g, 7_000, args("m2", &["range", "roundrobin"]), "");
    assert!(w.waiting());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn everyone_leaving_empties_the_group() {
    let mut g = stable(2);
    g.leave(7_000, &cfg(), "m1", None).unwrap();
    g.leave(7_000, &cfg(), "m2", None).unwrap();
    // Nobody left to wait for: the join phase ends at once.
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation(), 2);
    assert!(g.is_idle());
    assert_eq!(g.empty_since_ms(), Some(7_000));
    assert_eq!(
        g.heartbeat(40_000, "m1", None, 2).unwrap_err().kafka_code(),
        25
    );
}

#[test]
fn sync_errors() {
    let mut g = stable(2);
    assert_eq!(code(&sync(&mut g, 7_000, 0, "m1", vec![]).done().error), 22);
    assert_eq!(code(&sync(&mut g, 7_000, 1, "zz", vec![]).done().error), 25);
    let (tx, mut rx) = oneshot::channel();
    g.sync(
        7_000,
        1,
        "m1",
        None,
        Some("consumer"),
        Some("roundrobin"),
        vec![],
        tx,
    );
    assert_eq!(code(&rx.try_recv().unwrap().error), 23);
    let _w = join(&mut g, 7_000, args("m1", &["range"]), "");
    assert_eq!(code(&sync(&mut g, 7_000, 1, "m2", vec![]).done().error), 27);
}

#[test]
fn fail_waiters_answers_parked_requests() {
    let mut g = Group::new("g", 0);
    let mut w = join(&mut g, 0, args("", &["range"]), "m1");
    g.fail_waiters(&GroupError::NotCoordinator {
        group: "g".into(),
        coordinator: 2,
    });
    assert_eq!(code(&w.done().error), 16);
}

#[test]
fn retried_join_answers_the_replaced_request() {
    let mut g = stable(2);
    let mut first = join(&mut g, 7_000, args("m1", &["range"]), "");
    assert!(first.waiting());
    let mut second = join(&mut g, 7_100, args("m1", &["range"]), "");
    assert_eq!(code(&first.done().error), 27);
    assert!(second.waiting());
}

#[test]
fn last_member_leaving_a_stable_group_empties_it_at_once() {
    let mut g = stable(1);
    g.leave(7_000, &cfg(), "m1", None).unwrap();
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation(), 2);
}
