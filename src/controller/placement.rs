//! Broker liveness and partition placement, run by the controller leader.
//!
//! Brokers heartbeat the leader (`POST /meta/heartbeat`); the leader keeps
//! the time of the last heartbeat per broker incarnation in memory (soft
//! state, like KRaft's broker sessions). A leader counts an incarnation as
//! heard when it first sees it (at its election, or at registration), so it
//! never fences a broker before a whole lease has passed under its own
//! clock. Every tick the leader:
//!
//! 1. fences (`FenceBroker`) each unfenced broker not heard for a lease;
//! 2. moves (`MoveLeaders`) every partition whose leader is not a live
//!    broker to the live broker leading the fewest (ties go to the rack,
//!    from `--rack`, that leads the fewest partitions of the same topic),
//!    then evens out leadership counts a bounded number of moves at a time
//!    (a broker that joins gets its share within seconds). Leadership
//!    moves; data never does. Balance is by partition count, not by
//!    bytes-in rate.
//!
//! [`plan`] is a pure function of the state, so it is tested without a
//! cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::Controller;
use crate::meta::command::LeaderMove;
use crate::meta::{Command, MetaState};

/// Most leadership moves one balancing tick makes (failover moves are not
/// bounded: every orphaned partition moves at once).
pub const MAX_BALANCE_MOVES: usize = 64;
/// How often the leader checks leases and placement.
pub const TICK: Duration = Duration::from_millis(250);

/// A broker's heartbeat.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Heartbeat {
    pub broker_id: i32,
    pub broker_epoch: i64,
}

/// The leader's answer.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct HeartbeatReply {
    /// The lease is granted for `lease_ms` from when the heartbeat was sent;
    /// `false`: this incarnation is fenced or unknown, register again.
    pub granted: bool,
    pub lease_ms: u64,
}

/// Liveness as the current leader sees it.
#[derive(Default)]
pub struct Liveness {
    inner: Mutex<LivenessInner>,
}

#[derive(Default)]
struct LivenessInner {
    /// Term the heartbeats below were received in.
    term: u64,
    beats: HashMap<i32, (i64, Instant)>,
}

impl Liveness {
    /// Records a heartbeat; returns whether the lease is granted.
    pub fn beat(&self, view: &MetaState, hb: &Heartbeat, now: Instant) -> bool {
        let ok = view
            .brokers
            .get(&hb.broker_id)
            .is_some_and(|b| b.epoch == hb.broker_epoch && !b.fenced);
        if ok {
            self.inner
                .lock()
                .beats
                .insert(hb.broker_id, (hb.broker_epoch, now));
        }
        ok
    }

    /// Brokers whose lease has expired (unfenced, not heard for `lease`).
    /// An incarnation this leader has not heard of yet (a new leader, a
    /// broker that just registered) counts as heard when first seen here.
    fn expired(
        &self,
        view: &MetaState,
        term: u64,
        now: Instant,
        lease: Duration,
    ) -> Vec<(i32, i64)> {
        let mut l = self.inner.lock();
        if l.term != term {
            l.term = term;
            l.beats.clear();
        }
        let mut out = Vec::new();
        for b in view.brokers.values().filter(|b| !b.fenced) {
            let last = match l.beats.get(&b.broker_id) {
                Some((e, t)) if *e == b.epoch => *t,
                _ => {
                    l.beats.insert(b.broker_id, (b.epoch, now));
                    now
                }
            };
            if now.saturating_duration_since(last) > lease {
                out.push((b.broker_id, b.epoch));
            }
        }
        out
    }
}

/// The leadership moves the state needs: partitions of non-live leaders
/// first (all of them), then at most `max_balance` moves that even out the
/// number of partitions each live broker leads.
pub fn plan(view: &MetaState, max_balance: usize) -> Vec<LeaderMove> {
    let live: Vec<i32> = view
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| b.broker_id)
        .collect();
    if live.is_empty() {
        return Vec::new();
    }
    let mut count: BTreeMap<i32, usize> = live.iter().map(|b| (*b, 0)).collect();
    let mut orphans = Vec::new();
    let mut led: BTreeMap<i32, Vec<(uuid::Uuid, i32, i32)>> = BTreeMap::new();
    for t in view.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            let key = (t.topic_id, i as i32, p.leader_epoch);
            match count.get_mut(&p.leader) {
                Some(c) => {
                    *c += 1;
                    led.entry(p.leader).or_default().push(key);
                }
                None => orphans.push(key),
            }
        }
    }
    // Rack awareness: among the least loaded brokers, prefer the rack that
    // leads the fewest partitions of the same topic.
    let rack_of: BTreeMap<i32, Option<String>> = view
        .brokers
        .values()
        .map(|b| (b.broker_id, b.rack.clone()))
        .collect();
    let mut topic_racks: BTreeMap<(uuid::Uuid, Option<String>), usize> = BTreeMap::new();
    for t in view.topics.values() {
        for p in t.partitions.iter() {
            // Only live leaders count: an orphan's rack is leaving.
            if !count.contains_key(&p.leader) {
                continue;
            }
            if let Some(r) = rack_of.get(&p.leader) {
                *topic_racks.entry((t.topic_id, r.clone())).or_default() += 1;
            }
        }
    }
    let least = |count: &BTreeMap<i32, usize>,
                 racks: &BTreeMap<(uuid::Uuid, Option<String>), usize>,
                 topic: uuid::Uuid| {
        count
            .iter()
            .min_by_key(|(id, c)| {
                let r = rack_of.get(id).cloned().flatten();
                let on_rack = racks.get(&(topic, r)).copied().unwrap_or(0);
                (**c, on_rack, **id)
            })
            .map(|(id, _)| *id)
    };
    let mut moves = Vec::new();
    for (topic_id, partition, epoch) in orphans {
        let Some(to) = least(&count, &topic_racks, topic_id) else {
            break;
        };
        let m = LeaderMove {
            topic_id,
            partition,
            expected_epoch: epoch,
            leader: to,
        };
        assign(m, &mut count, &mut topic_racks, &rack_of, &mut moves);
    }
    for _ in 0..max_balance {
        let Some((&most, &hi)) = count
            .iter()
            .max_by_key(|(id, c)| (**c, std::cmp::Reverse(**id)))
        else {
            break;
        };
        let Some((topic_id, partition, epoch)) = led.get_mut(&most).and_then(|v| v.pop()) else {
            break;
        };
        let Some(to) = least(&count, &topic_racks, topic_id) else {
            break;
        };
        if hi <= count[&to] + 1 {
            break;
        }
        let from_rack = rack_of.get(&most).cloned().flatten();
        if let Some(n) = topic_racks.get_mut(&(topic_id, from_rack)) {
            *n = n.saturating_sub(1);
        }
        *count.entry(most).or_default() -= 1;
        let m = LeaderMove {
            topic_id,
            partition,
            expected_epoch: epoch,
            leader: to,
        };
        assign(m, &mut count, &mut topic_racks, &rack_of, &mut moves);
    }
    moves
}

/// Books one planned move: the new leader's count and its rack's share of
/// the topic grow.
fn assign(
    m: LeaderMove,
    count: &mut BTreeMap<i32, usize>,
    topic_racks: &mut BTreeMap<(uuid::Uuid, Option<String>), usize>,
    rack_of: &BTreeMap<i32, Option<String>>,
    moves: &mut Vec<LeaderMove>,
) {
    *topic_racks
        .entry((m.topic_id, rack_of.get(&m.leader).cloned().flatten()))
        .or_default() += 1;
    *count.entry(m.leader).or_default() += 1;
    moves.push(m);
}

/// Runs leases and placement while this node leads, until shutdown.
pub async fn run(controller: Arc<Controller>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => return,
        }
        if !controller.is_leader() {
            continue;
        }
        let term = controller.raft.metrics().borrow().current_term;
        let view = controller.shared.view.borrow().clone();
        let mut expired =
            controller
                .liveness
                .expired(&view, term, Instant::now(), controller.lease);
        // Fencing the last live broker would only take every partition
        // offline: keep it (its own lease still stops its writes).
        let live = view.brokers.values().filter(|b| !b.fenced).count();
        if expired.len() >= live {
            expired.clear();
        }
        for (broker_id, broker_epoch) in expired {
            tracing::warn!(broker_id, broker_epoch, "broker lease expired: fencing it");
            if let Err(e) = controller
                .submit(Command::FenceBroker {
                    broker_id,
                    broker_epoch,
                })
                .await
            {
                tracing::warn!(broker_id, error = %e, "fencing not committed");
            }
        }
        let view = controller.shared.view.borrow().clone();
        let moves = plan(&view, MAX_BALANCE_MOVES);
        if moves.is_empty() {
            continue;
        }
        tracing::info!(moves = moves.len(), "moving partition leadership");
        for chunk in moves.chunks(1000) {
            match controller
                .submit(Command::MoveLeaders {
                    moves: chunk.to_vec(),
                })
                .await
            {
                Ok((_, Ok(_))) => {}
                Ok((_, Err(e))) => {
                    tracing::info!(error = %e, "leadership moves refused; replanning")
                }
                Err(e) => tracing::warn!(error = %e, "leadership moves not committed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(brokers: &[(i32, bool)], partitions: i32, leader: i32) -> MetaState {
        let mut s = MetaState::new();
        for (id, _) in brokers {
            s.apply(Command::RegisterBroker {
                broker_id: *id,
                host: "h".into(),
                port: 9092,
                rack: None,
            })
            .unwrap();
        }
        s.apply(Command::CreateTopic {
            name: "t".into(),
            topic_id: uuid::Uuid::from_u128(1),
            partitions,
            replication_factor: -1,
            configs: Default::default(),
            leader,
            created_at_ms: 0,
        })
        .unwrap();
        for (id, fenced) in brokers {
            if *fenced {
                s.apply(Command::FenceBroker {
                    broker_id: *id,
                    broker_epoch: 1,
                })
                .unwrap();
            }
        }
        s
    }

    fn counts(s: &MetaState) -> BTreeMap<i32, usize> {
        let mut c = BTreeMap::new();
        for p in &s.topics["t"].partitions {
            *c.entry(p.leader).or_default() += 1;
        }
        c
    }

    #[test]
    fn orphans_move_to_live_brokers_evenly() {
        let mut s = state(&[(1, true), (2, false), (3, false)], 10, 1);
        let moves = plan(&s, 0);
        assert_eq!(moves.len(), 10);
        s.apply(Command::MoveLeaders { moves }).unwrap();
        assert_eq!(counts(&s), BTreeMap::from([(2, 5), (3, 5)]));
        // Every move bumped the epoch.
        assert!(s.topics["t"].partitions.iter().all(|p| p.leader_epoch == 1));
        assert!(plan(&s, MAX_BALANCE_MOVES).is_empty());
    }

    #[test]
    fn a_joining_broker_gets_its_share_and_balancing_is_bounded() {
        let mut s = state(&[(1, false)], 9, 1);
        s.apply(Command::RegisterBroker {
            broker_id: 2,
            host: "h".into(),
            port: 1,
            rack: None,
        })
        .unwrap();
        s.apply(Command::RegisterBroker {
            broker_id: 3,
            host: "h".into(),
            port: 1,
            rack: None,
        })
        .unwrap();
        assert_eq!(plan(&s, 2).len(), 2);
        let moves = plan(&s, MAX_BALANCE_MOVES);
        s.apply(Command::MoveLeaders { moves }).unwrap();
        assert_eq!(counts(&s), BTreeMap::from([(1, 3), (2, 3), (3, 3)]));
    }

    #[test]
    fn partitions_of_a_topic_spread_over_racks() {
        let mut s = MetaState::new();
        for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b")] {
            s.apply(Command::RegisterBroker {
                broker_id: id,
                host: "h".into(),
                port: 9092,
                rack: Some(rack.into()),
            })
            .unwrap();
        }
        s.apply(Command::CreateTopic {
            name: "t".into(),
            topic_id: uuid::Uuid::from_u128(1),
            partitions: 4,
            replication_factor: -1,
            configs: Default::default(),
            leader: 1,
            created_at_ms: 0,
        })
        .unwrap();
        let moves = plan(&s, MAX_BALANCE_MOVES);
        s.apply(Command::MoveLeaders { moves }).unwrap();
        assert_eq!(counts(&s), BTreeMap::from([(1, 1), (2, 1), (3, 1), (4, 1)]));
        // Broker 4 (rack b) fails: its partition moves.
        s.apply(Command::FenceBroker {
            broker_id: 4,
            broker_epoch: 1,
        })
        .unwrap();
        let moves = plan(&s, 0);
        assert_eq!(moves.len(), 1);
        // Ties on count (1, 2, 3 all lead one): rack b leads fewer of the
        // topic's partitions now, so broker 3 takes it.
        assert_eq!(moves[0].leader, 3);
    }

    #[test]
    fn no_live_broker_means_no_moves_and_stale_moves_are_refused() {
        let s = state(&[(1, true)], 3, 1);
        assert!(plan(&s, MAX_BALANCE_MOVES).is_empty());
        let mut s = state(&[(1, true), (2, false)], 2, 1);
        let moves = plan(&s, 0);
        s.apply(Command::MoveLeaders {
            moves: moves.clone(),
        })
        .unwrap();
        // The same plan again is stale: refused whole, nothing changes.
        let before = s.clone();
        assert!(s.apply(Command::MoveLeaders { moves }).is_err());
        assert_eq!(s.topics, before.topics);
    }

    #[test]
    fn leases_expire_only_after_a_whole_lease_of_this_leader() {
        let s = state(&[(1, false), (2, false)], 1, 1);
        let l = Liveness::default();
        let t0 = Instant::now();
        let lease = Duration::from_secs(4);
        assert!(l.expired(&s, 1, t0, lease).is_empty());
        // Seen first at t0: not expired a little later.
        assert!(l
            .expired(&s, 1, t0 + Duration::from_secs(2), lease)
            .is_empty());
        assert!(l.beat(
            &s,
            &Heartbeat {
                broker_id: 1,
                broker_epoch: 1
            },
            t0 + Duration::from_secs(3)
        ));
        // Broker 2 never beat: expired a lease after the election.
        assert_eq!(
            l.expired(&s, 1, t0 + Duration::from_secs(5), lease),
            vec![(2, 1)]
        );
        // A stale incarnation's heartbeat is not granted.
        assert!(!l.beat(
            &s,
            &Heartbeat {
                broker_id: 1,
                broker_epoch: 0
            },
            t0
        ));
        // A new term starts the clock again.
        assert!(l
            .expired(&s, 2, t0 + Duration::from_secs(9), lease)
            .is_empty());
    }
}
