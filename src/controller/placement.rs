//! Broker liveness and partition placement, run by the controller leader.
//!
//! Brokers heartbeat the leader (`POST /meta/heartbeat`); the leader keeps
//! the time of the last heartbeat per broker incarnation in memory (soft
//! state, like KRaft's broker sessions). A leader counts an incarnation as
//! heard when it first sees it (at its election, or at registration), so it
//! never fences a broker before a whole lease has passed under its own
//! clock. Heartbeats also carry the bytes-in rate of each partition the
//! broker leads (over the last [`RATE_WINDOW`]). Every tick the leader:
//!
//! 1. fences (`FenceBroker`) each unfenced broker not heard for a lease;
//! 2. moves (`MoveLeaders`) every partition whose leader is not a live
//!    broker to the live broker with the least load (ties go to the rack,
//!    from `--rack`, that leads the fewest partitions of the same topic),
//!    then evens out the load a bounded number of moves at a time (a broker
//!    that joins gets its share within seconds). A partition's load is
//!    1 plus its bytes-in rate in units of the average partition's rate
//!    (at least [`MIN_RATE_UNIT`]), so idle partitions balance by count
//!    and busy ones by bytes. Leadership moves; data never does;
//! 3. unregisters brokers fenced for [`PRUNE_AFTER`] that lead nothing
//!    (pods scaled away), so the metadata does not grow with every start.
//!
//! [`plan`] is a pure function of the state and the rates, so it is tested
//! without a cluster.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Controller;
use crate::meta::command::LeaderMove;
use crate::meta::{Command, MetaState};

/// Most leadership moves one balancing tick makes (failover moves are not
/// bounded: every orphaned partition moves at once).
pub const MAX_BALANCE_MOVES: usize = 64;
/// How often the leader checks leases and placement.
pub const TICK: Duration = Duration::from_millis(250);
/// Window over which a broker measures a partition's bytes-in rate.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// A rate is reported once it has been measured for this long.
pub const MIN_RATE_SPAN: Duration = Duration::from_secs(1);
/// Most partition rates one heartbeat carries (the busiest).
pub const MAX_REPORTED_RATES: usize = 10_000;
/// A rate not refreshed for this long is forgotten.
pub const RATE_TTL: Duration = Duration::from_secs(30);
/// Smallest rate unit (bytes/s): below it, traffic does not outweigh count.
pub const MIN_RATE_UNIT: f64 = 128.0 * 1024.0;
/// A move must narrow the gap between two brokers' loads by this much
/// (half an idle partition): counts even out to within 1, and rates that
/// wobble do not move leadership back and forth.
pub const BALANCE_MARGIN: f64 = 0.5;
/// A broker fenced this long that leads nothing is unregistered.
pub const PRUNE_AFTER: Duration = Duration::from_secs(600);

/// A partition's bytes-in rate as its leader measured it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PartitionRate {
    pub topic_id: Uuid,
    pub partition: i32,
    pub bytes_per_sec: u64,
}

/// A broker's heartbeat.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Heartbeat {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// Bytes-in rates of partitions it leads: every busy one, and a 0 for
    /// one that went idle since the last heartbeat.
    #[serde(default)]
    pub rates: Vec<PartitionRate>,
}

/// The leader's answer.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct HeartbeatReply {
    /// The lease is granted for `lease_ms` from when the heartbeat was sent;
    /// `false`: this incarnation is fenced or unknown, register again.
    pub granted: bool,
    pub lease_ms: u64,
}

/// Per-partition bytes-in rates on the broker side, from the cumulative
/// byte counters of the partitions it leads.
#[derive(Default)]
pub struct RateMeter {
    samples: HashMap<(Uuid, i32), VecDeque<(Instant, u64)>>,
    /// Partitions last reported with a non-zero rate.
    busy: HashSet<(Uuid, i32)>,
}

impl RateMeter {
    /// Takes one sample of the counters of the partitions led now and
    /// returns the rates to report.
    pub fn sample(
        &mut self,
        now: Instant,
        counters: impl IntoIterator<Item = ((Uuid, i32), u64)>,
    ) -> Vec<PartitionRate> {
        let mut led = HashSet::new();
        let mut out = Vec::new();
        for (key, bytes) in counters {
            led.insert(key);
            let q = self.samples.entry(key).or_default();
            q.push_back((now, bytes));
            while q.len() > 2 && now.duration_since(q[1].0) >= RATE_WINDOW {
                q.pop_front();
            }
            let (t0, b0) = q[0];
            let span = now.duration_since(t0);
            if span < MIN_RATE_SPAN {
                continue;
            }
            let rate = (bytes.saturating_sub(b0) as f64 / span.as_secs_f64()) as u64;
            if rate > 0 || self.busy.contains(&key) {
                out.push(PartitionRate {
                    topic_id: key.0,
                    partition: key.1,
                    bytes_per_sec: rate,
                });
            }
        }
        self.samples.retain(|k, _| led.contains(k));
        out.sort_by_key(|r| std::cmp::Reverse(r.bytes_per_sec));
        out.truncate(MAX_REPORTED_RATES);
        self.busy = out
            .iter()
            .filter(|r| r.bytes_per_sec > 0)
            .map(|r| (r.topic_id, r.partition))
            .collect();
        out
    }
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
    /// Last reported bytes-in rate per partition.
    rates: HashMap<(Uuid, i32), (u64, Instant)>,
    /// When this leader first saw each fenced incarnation fenced.
    fenced_since: HashMap<i32, (i64, Instant)>,
}

impl Liveness {
    /// Records a heartbeat; returns whether the lease is granted.
    pub fn beat(&self, view: &MetaState, hb: &Heartbeat, now: Instant) -> bool {
        let ok = view
            .brokers
            .get(&hb.broker_id)
            .is_some_and(|b| b.epoch == hb.broker_epoch && !b.fenced);
        if ok {
            let mut l = self.inner.lock();
            l.beats.insert(hb.broker_id, (hb.broker_epoch, now));
            for r in hb.rates.iter().take(MAX_REPORTED_RATES) {
                let key = (r.topic_id, r.partition);
                if r.bytes_per_sec == 0 {
                    l.rates.remove(&key);
                } else {
                    l.rates.insert(key, (r.bytes_per_sec, now));
                }
            }
        }
        ok
    }

    /// Partition rates reported within [`RATE_TTL`].
    pub fn rates(&self, now: Instant) -> HashMap<(Uuid, i32), u64> {
        let mut l = self.inner.lock();
        l.rates
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < RATE_TTL);
        l.rates.iter().map(|(k, (r, _))| (*k, *r)).collect()
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

    /// Fenced brokers seen fenced by this leader for `after` that lead no
    /// partition: (id, epoch) to unregister.
    fn prunable(&self, view: &MetaState, now: Instant, after: Duration) -> Vec<(i32, i64)> {
        let leaders: HashSet<i32> = view
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().map(|p| p.leader))
            .collect();
        let mut l = self.inner.lock();
        l.fenced_since.retain(|id, (e, _)| {
            view.brokers
                .get(id)
                .is_some_and(|b| b.fenced && b.epoch == *e)
        });
        let mut out = Vec::new();
        for b in view.brokers.values().filter(|b| b.fenced) {
            let (_, since) = *l.fenced_since.entry(b.broker_id).or_insert((b.epoch, now));
            if now.saturating_duration_since(since) >= after && !leaders.contains(&b.broker_id) {
                out.push((b.broker_id, b.epoch));
            }
        }
        out
    }
}

/// Load units: a partition weighs 1 plus its rate over the unit.
fn weight(rate: u64, unit: f64) -> f64 {
    1.0 + rate as f64 / unit
}

/// The leadership moves the state needs: partitions of non-live leaders
/// first (all of them), then at most `max_balance` moves that even out the
/// load (count and bytes-in rate, see the module doc) of the live brokers.
pub fn plan(
    view: &MetaState,
    rates: &HashMap<(Uuid, i32), u64>,
    max_balance: usize,
) -> Vec<LeaderMove> {
    let live: Vec<i32> = view
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| b.broker_id)
        .collect();
    if live.is_empty() {
        return Vec::new();
    }
    let mut n = 0usize;
    let mut total = 0u64;
    for t in view.topics.values() {
        for i in 0..t.partitions.len() {
            n += 1;
            total = total.saturating_add(rates.get(&(t.topic_id, i as i32)).copied().unwrap_or(0));
        }
    }
    let unit = (total as f64 / n.max(1) as f64).max(MIN_RATE_UNIT);
    let mut load = Load {
        cost: live.iter().map(|b| (*b, 0.0)).collect(),
        topic_racks: BTreeMap::new(),
        rack_of: view
            .brokers
            .values()
            .map(|b| (b.broker_id, b.rack.clone()))
            .collect(),
    };
    let mut orphans = Vec::new();
    // Partitions of each live broker: (weight, topic, partition, epoch).
    let mut led: BTreeMap<i32, Vec<(f64, Uuid, i32, i32)>> = BTreeMap::new();
    for t in view.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            let w = weight(
                rates.get(&(t.topic_id, i as i32)).copied().unwrap_or(0),
                unit,
            );
            let key = (w, t.topic_id, i as i32, p.leader_epoch);
            if load.cost.contains_key(&p.leader) {
                // Only live leaders count toward a topic's rack load.
                load.add(p.leader, t.topic_id, w);
                led.entry(p.leader).or_default().push(key);
            } else {
                orphans.push(key);
            }
        }
    }
    let mut moves = Vec::new();
    // Heaviest first: they are the hardest to fit.
    orphans.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (w, topic_id, partition, epoch) in orphans {
        let to = load.least(topic_id);
        load.add(to, topic_id, w);
        moves.push(LeaderMove {
            topic_id,
            partition,
            expected_epoch: epoch,
            leader: to,
        });
    }
    for v in led.values_mut() {
        v.sort_by(|a, b| b.0.total_cmp(&a.0));
    }
    for _ in 0..max_balance {
        let Some((&most, &hi)) = load
            .cost
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
        else {
            break;
        };
        let Some(parts) = led.get_mut(&most) else {
            break;
        };
        // The heaviest partition whose move narrows the gap between the
        // two brokers by a margin (no ping-pong when rates wobble).
        let pick = parts.iter().position(|(w, topic_id, _, _)| {
            let to = load.least(*topic_id);
            to != most && *w < hi - load.cost[&to] - BALANCE_MARGIN
        });
        let Some(i) = pick else {
            break;
        };
        let (w, topic_id, partition, epoch) = parts.remove(i);
        let to = load.least(topic_id);
        load.remove(most, topic_id, w);
        load.add(to, topic_id, w);
        moves.push(LeaderMove {
            topic_id,
            partition,
            expected_epoch: epoch,
            leader: to,
        });
    }
    moves
}

/// The load of the live brokers while a plan is made.
struct Load {
    cost: BTreeMap<i32, f64>,
    /// Partitions of each topic led per rack (rack awareness).
    topic_racks: BTreeMap<(Uuid, Option<String>), usize>,
    rack_of: BTreeMap<i32, Option<String>>,
}

impl Load {
    fn rack(&self, broker: i32) -> Option<String> {
        self.rack_of.get(&broker).cloned().flatten()
    }

    fn add(&mut self, broker: i32, topic: Uuid, w: f64) {
        *self.cost.entry(broker).or_default() += w;
        *self
            .topic_racks
            .entry((topic, self.rack(broker)))
            .or_default() += 1;
    }

    fn remove(&mut self, broker: i32, topic: Uuid, w: f64) {
        *self.cost.entry(broker).or_default() -= w;
        if let Some(n) = self.topic_racks.get_mut(&(topic, self.rack(broker))) {
            *n = n.saturating_sub(1);
        }
    }

    /// The least loaded live broker; among equals, the one whose rack leads
    /// the fewest partitions of `topic`, then the lowest id.
    fn least(&self, topic: Uuid) -> i32 {
        let on_rack = |id: i32| {
            self.topic_racks
                .get(&(topic, self.rack(id)))
                .copied()
                .unwrap_or(0)
        };
        self.cost
            .iter()
            .min_by(|a, b| {
                a.1.total_cmp(b.1)
                    .then(on_rack(*a.0).cmp(&on_rack(*b.0)))
                    .then(a.0.cmp(b.0))
            })
            .map(|(id, _)| *id)
            .expect("at least one live broker")
    }
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
        let now = Instant::now();
        for (broker_id, broker_epoch) in controller.liveness.prunable(&view, now, PRUNE_AFTER) {
            tracing::info!(
                broker_id,
                "unregistering a broker fenced for {PRUNE_AFTER:?}"
            );
            if let Err(e) = controller
                .submit(Command::UnregisterBroker {
                    broker_id,
                    broker_epoch,
                })
                .await
            {
                tracing::warn!(broker_id, error = %e, "unregistering not committed");
            }
        }
        let rates = controller.liveness.rates(now);
        let moves = plan(&view, &rates, MAX_BALANCE_MOVES);
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
        let moves = plan(&s, &HashMap::new(), 0);
        assert_eq!(moves.len(), 10);
        s.apply(Command::MoveLeaders { moves }).unwrap();
        assert_eq!(counts(&s), BTreeMap::from([(2, 5), (3, 5)]));
        // Every move bumped the epoch.
        assert!(s.topics["t"].partitions.iter().all(|p| p.leader_epoch == 1));
        assert!(plan(&s, &HashMap::new(), MAX_BALANCE_MOVES).is_empty());
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
        assert_eq!(plan(&s, &HashMap::new(), 2).len(), 2);
        let moves = plan(&s, &HashMap::new(), MAX_BALANCE_MOVES);
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
        let moves = plan(&s, &HashMap::new(), MAX_BALANCE_MOVES);
        s.apply(Command::MoveLeaders { moves }).unwrap();
        assert_eq!(counts(&s), BTreeMap::from([(1, 1), (2, 1), (3, 1), (4, 1)]));
        // Broker 4 (rack b) fails: its partition moves.
        s.apply(Command::FenceBroker {
            broker_id: 4,
            broker_epoch: 1,
        })
        .unwrap();
        let moves = plan(&s, &HashMap::new(), 0);
        assert_eq!(moves.len(), 1);
        // Ties on count (1, 2, 3 all lead one): rack b leads fewer of the
        // topic's partitions now, so broker 3 takes it.
        assert_eq!(moves[0].leader, 3);
    }

    #[test]
    fn no_live_broker_means_no_moves_and_stale_moves_are_refused() {
        let s = state(&[(1, true)], 3, 1);
        assert!(plan(&s, &HashMap::new(), MAX_BALANCE_MOVES).is_empty());
        let mut s = state(&[(1, true), (2, false)], 2, 1);
        let moves = plan(&s, &HashMap::new(), 0);
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
                broker_epoch: 1,
                rates: vec![],
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
                broker_epoch: 0,
                rates: vec![],
            },
            t0
        ));
        // A new term starts the clock again.
        assert!(l
            .expired(&s, 2, t0 + Duration::from_secs(9), lease)
            .is_empty());
    }

    /// Two brokers, two hot and two idle partitions: balancing by count
    /// alone leaves both hot ones on one broker; by bytes they split.
    #[test]
    fn busy_partitions_spread_by_bytes_in() {
        let mut s = MetaState::new();
        for id in [1, 2] {
            s.apply(Command::RegisterBroker {
                broker_id: id,
                host: "h".into(),
                port: 9092,
                rack: None,
            })
            .unwrap();
        }
        for (name, id, leader) in [("hot", 1u128, 1), ("cold", 2, 2)] {
            s.apply(Command::CreateTopic {
                name: name.into(),
                topic_id: uuid::Uuid::from_u128(id),
                partitions: 2,
                replication_factor: -1,
                configs: Default::default(),
                leader,
                created_at_ms: 0,
            })
            .unwrap();
        }
        // Balanced by count: no move without rates.
        assert!(plan(&s, &HashMap::new(), MAX_BALANCE_MOVES).is_empty());
        let hot = uuid::Uuid::from_u128(1);
        let rates = HashMap::from([((hot, 0), 20 << 20), ((hot, 1), 18 << 20)]);
        let moves = plan(&s, &rates, MAX_BALANCE_MOVES);
        s.apply(Command::MoveLeaders { moves }).unwrap();
        let leaders = |s: &MetaState, t: &str| -> Vec<i32> {
            s.topics[t].partitions.iter().map(|p| p.leader).collect()
        };
        let h = leaders(&s, "hot");
        assert_ne!(h[0], h[1], "hot partitions on one broker: {h:?}");
        // Counts stay even too, and the plan is stable (no ping-pong),
        // even when the rates wobble by 10%.
        let mut per = BTreeMap::new();
        for t in ["hot", "cold"] {
            for l in leaders(&s, t) {
                *per.entry(l).or_insert(0) += 1;
            }
        }
        assert_eq!(per, BTreeMap::from([(1, 2), (2, 2)]));
        assert!(plan(&s, &rates, MAX_BALANCE_MOVES).is_empty());
        let wobble = HashMap::from([((hot, 0), 18 << 20), ((hot, 1), 20 << 20)]);
        assert!(plan(&s, &wobble, MAX_BALANCE_MOVES).is_empty());
        // Tiny rates do not outweigh counts.
        let tiny = HashMap::from([((hot, 0), 100), ((hot, 1), 100)]);
        assert!(plan(&s, &tiny, MAX_BALANCE_MOVES).is_empty());
    }

    #[test]
    fn orphans_go_heaviest_first_to_the_least_loaded() {
        let mut s = state(&[(1, true), (2, false), (3, false)], 4, 1);
        let t = uuid::Uuid::from_u128(1);
        let rates = HashMap::from([((t, 0), 50 << 20)]);
        let moves = plan(&s, &rates, 0);
        assert_eq!(moves.len(), 4);
        s.apply(Command::MoveLeaders { moves }).unwrap();
        let p = &s.topics["t"].partitions;
        // The hot one alone on one broker, the three idle ones on the other.
        let hot_leader = p[0].leader;
        assert!(p[1..].iter().all(|q| q.leader != hot_leader));
    }

    #[test]
    fn rate_meter_reports_busy_partitions_and_their_going_idle() {
        let mut m = RateMeter::default();
        let t = uuid::Uuid::from_u128(5);
        let t0 = Instant::now();
        assert!(m.sample(t0, [((t, 0), 0), ((t, 1), 0)]).is_empty());
        // Under a second of history: nothing yet.
        assert!(m
            .sample(
                t0 + Duration::from_millis(500),
                [((t, 0), 500), ((t, 1), 0)]
            )
            .is_empty());
        let r = m.sample(t0 + Duration::from_secs(2), [((t, 0), 2000), ((t, 1), 0)]);
        assert_eq!(
            r,
            vec![PartitionRate {
                topic_id: t,
                partition: 0,
                bytes_per_sec: 1000
            }]
        );
        // Partition 0 goes idle: the window slides past its traffic and a
        // single 0 is reported, then nothing.
        let reports: Vec<Vec<PartitionRate>> = (3..=14)
            .map(|s| m.sample(t0 + Duration::from_secs(s), [((t, 0), 2000), ((t, 1), 0)]))
            .collect();
        let zero = reports
            .iter()
            .position(|r| r.is_empty() || r[0].bytes_per_sec == 0);
        let zero = zero.expect("rate never dropped");
        assert_eq!(reports[zero].len(), 1, "{reports:?}");
        assert_eq!(reports[zero][0].bytes_per_sec, 0);
        assert!(reports[..zero].iter().all(|r| r[0].bytes_per_sec > 0));
        assert!(reports[zero + 1..].iter().all(|r| r.is_empty()));
        // A partition no longer led is forgotten.
        m.sample(t0 + Duration::from_secs(16), [((t, 1), 0)]);
        assert_eq!(m.samples.len(), 1);
    }

    #[test]
    fn liveness_keeps_fresh_rates_and_forgets_zeroes_and_stale_ones() {
        let s = state(&[(1, false)], 2, 1);
        let l = Liveness::default();
        let t = uuid::Uuid::from_u128(1);
        let t0 = Instant::now();
        let rate = |p, r| PartitionRate {
            topic_id: t,
            partition: p,
            bytes_per_sec: r,
        };
        let hb = |rates| Heartbeat {
            broker_id: 1,
            broker_epoch: 1,
            rates,
        };
        assert!(l.beat(&s, &hb(vec![rate(0, 10), rate(1, 20)]), t0));
        assert_eq!(l.rates(t0), HashMap::from([((t, 0), 10), ((t, 1), 20)]));
        assert!(l.beat(&s, &hb(vec![rate(0, 0)]), t0 + Duration::from_secs(1)));
        assert_eq!(l.rates(t0), HashMap::from([((t, 1), 20)]));
        assert!(l.rates(t0 + RATE_TTL).is_empty());
        // A refused heartbeat's rates are ignored.
        let stale = Heartbeat {
            broker_id: 1,
            broker_epoch: 7,
            rates: vec![rate(0, 99)],
        };
        assert!(!l.beat(&s, &stale, t0));
        assert!(l.rates(t0).is_empty());
    }

    #[test]
    fn brokers_fenced_long_enough_and_leading_nothing_are_pruned() {
        let mut s = state(&[(1, false), (2, true), (3, true)], 2, 3);
        // Broker 3 still leads partition 0.
        s.apply(Command::MoveLeaders {
            moves: vec![LeaderMove {
                topic_id: uuid::Uuid::from_u128(1),
                partition: 1,
                expected_epoch: 0,
                leader: 1,
            }],
        })
        .unwrap();
        let l = Liveness::default();
        let t0 = Instant::now();
        let after = Duration::from_secs(60);
        assert!(l.prunable(&s, t0, after).is_empty());
        assert!(l
            .prunable(&s, t0 + Duration::from_secs(59), after)
            .is_empty());
        assert_eq!(l.prunable(&s, t0 + after, after), vec![(2, 1)]);
        // Registering again resets the clock for that broker.
        s.apply(Command::RegisterBroker {
            broker_id: 2,
            host: "h".into(),
            port: 1,
            rack: None,
        })
        .unwrap();
        assert!(l.prunable(&s, t0 + after * 2, after).is_empty());
    }
}
