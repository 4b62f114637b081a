//! One KIP-848 consumer group: the ConsumerGroupHeartbeat state machine.
//!
//! Pure: time, new member ids and the topic metadata come in as arguments.
//! Every change to what must survive (epochs, members, assignments) marks
//! the member or the group dirty; [`ConsumerGroup::take_update`] turns the
//! marks into one [`ConsumerGroupUpdate`] for the metadata log.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::assignor::{self, TopicInfo};
use super::reconcile::{is_subset, reconcile};
use crate::groups::GroupError;
use crate::meta::consumer_groups::{
    Assignment, ConsumerGroupRecord, ConsumerGroupUpdate, ConsumerMember, MemberState,
};

/// Epoch of a joining member.
pub const JOIN_EPOCH: i32 = 0;
/// Epoch of a leaving member.
pub const LEAVE_EPOCH: i32 = -1;
/// Epoch of a static member leaving temporarily (assignment kept).
pub const STATIC_LEAVE_EPOCH: i32 = -2;
/// Longest subscription regex accepted.
pub const MAX_REGEX_LEN: usize = 1_024;
/// Compiled regexes kept per group.
const MAX_REGEX_CACHE: usize = 64;
/// Bytes a compiled regex may take (`regex::RegexBuilder::size_limit`).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Topic metadata as the group needs it.
pub trait Topics {
    /// Topic id and partition count of a topic name.
    fn by_name(&self, name: &str) -> Option<(Uuid, i32)>;
    /// Name and partition count of a topic id.
    fn by_id(&self, id: &Uuid) -> Option<(String, i32)>;
    /// Calls `f` with every topic name.
    fn each_name(&self, f: &mut dyn FnMut(&str));
}

impl Topics for crate::meta::MetaState {
    fn by_name(&self, name: &str) -> Option<(Uuid, i32)> {
        self.topic(name)
            .map(|t| (t.topic_id, t.partitions.len() as i32))
    }
    fn by_id(&self, id: &Uuid) -> Option<(String, i32)> {
        let name = self.topic_ids.get(id)?;
        self.by_name(name).map(|(_, n)| (name.clone(), n))
    }
    fn each_name(&self, f: &mut dyn FnMut(&str)) {
        for name in self.topics.keys() {
            f(name);
        }
    }
}

/// Settings of consumer groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: i64,
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`.
    pub max_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 1_000,
        }
    }
}

/// A ConsumerGroupHeartbeat request, decoded.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topics: Option<Vec<String>>,
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

impl Heartbeat {
    fn is_full(&self) -> bool {
        self.member_epoch == JOIN_EPOCH
            || (self.rebalance_timeout_ms != -1
                && (self.subscribed_topics.is_some() || self.subscribed_regex.is_some())
                && self.owned.is_some())
    }
}

/// A ConsumerGroupHeartbeat answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed or the request was full.
    pub assignment: Option<Assignment>,
}

/// Soft (not persisted) per-member timers.
#[derive(Debug, Clone, Default)]
struct Timers {
    session_deadline: i64,
    /// Set while the member is revoking: it must finish by then.
    revoke_deadline: Option<i64>,
}

/// Counters the coordinator turns into metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct Events {
    pub rebalances: u64,
    pub members_expired: u64,
}

/// The group's state as ConsumerGroupDescribe names it.
pub fn state_name(rec: &ConsumerGroupRecord) -> &'static str {
    let active = rec
        .members
        .values()
        .filter(|m| m.member_epoch != STATIC_LEAVE_EPOCH);
    if rec.members.is_empty() {
        "Empty"
    } else if rec.group_epoch > rec.assignment_epoch {
        "Assigning"
    } else if active
        .clone()
        .any(|m| m.member_epoch != rec.assignment_epoch || m.state != MemberState::Stable)
    {
        "Reconciling"
    } else {
        "Stable"
    }
}

/// One consumer group held by its coordinator.
#[derive(Debug)]
pub struct ConsumerGroup {
    pub id: String,
    pub rec: ConsumerGroupRecord,
    timers: HashMap<String, Timers>,
    regexes: HashMap<String, regex::Regex>,
    /// Regexes whose matches count. As in Kafka, a regex is resolved
    /// after the heartbeat that subscribed it: that heartbeat's target
    /// assignment has the member's literal topics only, the next one adds
    /// the matches (Kafka resolves regexes in the background).
    resolved: BTreeSet<String>,
    /// Regexes met unresolved by the current heartbeat.
    unresolved: BTreeSet<String>,
    dirty: BTreeSet<String>,
    removed: BTreeSet<String>,
    group_dirty: bool,
    /// Set by `join` for a member new to the group.
    new_member: bool,
    events: Events,
}

/// Compiles a subscription regex (full match, bounded size).
pub fn compile_regex(r: &str) -> Result<regex::Regex, GroupError> {
    let bad = |reason: String| GroupError::InvalidRegex {
        regex: r.chars().take(128).collect(),
        reason,
    };
    if r.len() > MAX_REGEX_LEN {
        return Err(bad(format!("longer than {MAX_REGEX_LEN} bytes")));
    }
    regex::RegexBuilder::new(&format!("^(?:{r})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            bad(e
                .to_string()
                .lines()
                .next_back()
                .unwrap_or("invalid")
                .to_string())
        })
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x100000001b3);
    }
}

impl ConsumerGroup {
    /// A new, empty group.
    pub fn new(id: &str) -> ConsumerGroup {
        ConsumerGroup::load(id, ConsumerGroupRecord::default(), 0, &Settings::default())
    }

    /// A group loaded from its durable record: every member gets a fresh
    /// session (and revoking members a fresh rebalance timeout).
    pub fn load(id: &str, rec: ConsumerGroupRecord, now: i64, s: &Settings) -> ConsumerGroup {
        let timers = rec
            .members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    Timers {
                        session_deadline: now.saturating_add(s.session_timeout_ms),
                        revoke_deadline: (m.state == MemberState::UnrevokedPartitions)
                            .then(|| now.saturating_add(i64::from(m.rebalance_timeout_ms))),
                    },
                )
            })
            .collect();
        // Regexes of a loaded group were resolved by its previous
        // coordinator: their matches stay assigned.
        let resolved = rec
            .members
            .values()
            .filter_map(|m| m.subscribed_regex.clone())
            .collect();
        ConsumerGroup {
            id: id.to_string(),
            rec,
            timers,
            regexes: HashMap::new(),
            resolved,
            unresolved: BTreeSet::new(),
            dirty: BTreeSet::new(),
            removed: BTreeSet::new(),
            group_dirty: false,
            new_member: false,
            events: Events::default(),
        }
    }

    /// Whether no member is in the group.
    pub fn is_empty(&self) -> bool {
        self.rec.members.is_empty()
    }

    /// Takes the counters accumulated since the last call.
    pub fn take_events(&mut self) -> Events {
        std::mem::take(&mut self.events)
    }

    /// Approximate bytes held (for the coordinator's memory budget).
    pub fn bytes(&self) -> usize {
        self.rec
            .members
            .values()
            .map(|m| {
                256 + m.member_id.len()
                    + m.subscribed_topics
                        .iter()
                        .map(|t| t.len() + 24)
                        .sum::<usize>()
                    + [&m.assigned, &m.target, &m.pending_revocation]
                        .iter()
                        .map(|a| a.values().map(|p| 16 + 4 * p.len()).sum::<usize>())
                        .sum::<usize>()
            })
            .sum()
    }

    /// The change since the last call, if anything durable changed.
    pub fn take_update(&mut self) -> Option<ConsumerGroupUpdate> {
        if !self.group_dirty && self.dirty.is_empty() && self.removed.is_empty() {
            return None;
        }
        self.group_dirty = false;
        let upsert = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|id| self.rec.members.get(&id).cloned())
            .collect();
        Some(ConsumerGroupUpdate {
            group: self.id.clone(),
            group_epoch: self.rec.group_epoch,
            assignment_epoch: self.rec.assignment_epoch,
            assignor: self.rec.assignor.clone(),
            metadata_hash: self.rec.metadata_hash,
            upsert,
            remove: std::mem::take(&mut self.removed).into_iter().collect(),
            delete: false,
        })
    }

    fn regex(&mut self, r: &str) -> Result<&regex::Regex, GroupError> {
        if !self.regexes.contains_key(r) {
            let re = compile_regex(r)?;
            if self.regexes.len() >= MAX_REGEX_CACHE {
                self.regexes.clear();
            }
            self.regexes.insert(r.to_string(), re);
        }
        Ok(&self.regexes[r])
    }

    /// Each member's subscribed topic ids (names and regex matches that
    /// exist), and the topics themselves.
    #[allow(clippy::type_complexity)]
    fn resolve(
        &mut self,
        topics: &dyn Topics,
    ) -> (BTreeMap<String, BTreeSet<Uuid>>, BTreeMap<Uuid, TopicInfo>) {
        let mut subs = BTreeMap::new();
        let mut infos = BTreeMap::new();
        let regexes: BTreeSet<String> = self
            .rec
            .members
            .values()
            .filter_map(|m| m.subscribed_regex.clone())
            .collect();
        // A regex nobody subscribes any more is forgotten: subscribed
        // again, it is resolved again.
        self.resolved.retain(|r| regexes.contains(r));
        let mut matched: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in regexes {
            if !self.resolved.contains(&r) {
                self.unresolved.insert(r);
                continue;
            }
            // Regexes were checked when subscribed; one that no longer
            // compiles (never expected) matches nothing.
            let Ok(re) = self.regex(&r) else { continue };
            let re = re.clone();
            let mut names = Vec::new();
            topics.each_name(&mut |n| {
                if re.is_match(n) {
                    names.push(n.to_string());
                }
            });
            matched.insert(r, names);
        }
        for m in self.rec.members.values() {
            let mut set = BTreeSet::new();
            let regex_names = m
                .subscribed_regex
                .as_ref()
                .and_then(|r| matched.get(r))
                .into_iter()
                .flatten();
            for name in m.subscribed_topics.iter().chain(regex_names) {
                if let Some((id, n)) = topics.by_name(name) {
                    set.insert(id);
                    infos.insert(
                        id,
                        TopicInfo {
                            name: name.clone(),
                            partitions: n,
                        },
                    );
                }
            }
            subs.insert(m.member_id.clone(), set);
        }
        (subs, infos)
    }

    fn metadata_hash(infos: &BTreeMap<Uuid, TopicInfo>) -> u64 {
        let mut h = 0xcbf29ce484222325u64;
        for (id, t) in infos {
            fnv(&mut h, id.as_bytes());
            fnv(&mut h, t.name.as_bytes());
            fnv(&mut h, &t.partitions.to_be_bytes());
        }
        h
    }

    /// The assignor of the group: the one most members prefer (ties by
    /// name), else the default.
    fn pick_assignor(&self) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.rec.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
            .map_or(assignor::DEFAULT.to_string(), |(n, _)| n.to_string())
    }

    fn bump(&mut self) {
        self.rec.group_epoch = self.rec.group_epoch.saturating_add(1);
        self.group_dirty = true;
        self.events.rebalances += 1;
    }

    /// The regexes met unresolved count from the next refresh on; only
    /// regexes some member subscribes stay.
    fn resolve_regexes(&mut self) {
        let unresolved = std::mem::take(&mut self.unresolved);
        self.resolved.extend(unresolved);
        let live: BTreeSet<&String> = self
            .rec
            .members
            .values()
            .filter_map(|m| m.subscribed_regex.as_ref())
            .collect();
        self.resolved.retain(|r| live.contains(r));
    }

    /// Bumps the epoch if the subscribed metadata changed, then recomputes
    /// the target assignment if the epoch moved past it.
    fn refresh(&mut self, topics: &dyn Topics) {
        let (subs, infos) = self.resolve(topics);
        let hash = Self::metadata_hash(&infos);
        if hash != self.rec.metadata_hash {
            if !self.rec.members.is_empty() && self.rec.group_epoch == self.rec.assignment_epoch {
                self.bump();
            }
            self.rec.metadata_hash = hash;
            self.group_dirty = true;
        }
        if self.rec.group_epoch <= self.rec.assignment_epoch {
            return;
        }
        let name = self.pick_assignor();
        let input = assignor::Input {
            members: subs.iter().map(|(m, s)| (m.as_str(), s.clone())).collect(),
            topics: infos,
            previous: self
                .rec
                .members
                .iter()
                .map(|(id, m)| (id.as_str(), &m.target))
                .collect(),
        };
        let out = assignor::assign(&name, &input)
            .or_else(|| assignor::assign(assignor::DEFAULT, &input))
            .unwrap_or_default();
        for (id, target) in out {
            if let Some(m) = self.rec.members.get_mut(&id) {
                if m.target != target {
                    m.target = target;
                    self.dirty.insert(id);
                }
            }
        }
        self.rec.assignor = name;
        self.rec.assignment_epoch = self.rec.group_epoch;
        self.group_dirty = true;
    }

    /// Which member holds (or is revoking) each partition.
    fn owners(&self) -> HashMap<(Uuid, i32), &str> {
        let mut o = HashMap::new();
        for m in self.rec.members.values() {
            for a in [&m.assigned, &m.pending_revocation] {
                for (t, parts) in a {
                    for p in parts {
                        o.insert((*t, *p), m.member_id.as_str());
                    }
                }
            }
        }
        o
    }

    fn reconcile_member(&mut self, now: i64, id: &str, owned: Option<&Assignment>) {
        let owners: HashMap<(Uuid, i32), String> = self
            .owners()
            .into_iter()
            .filter(|(_, m)| *m != id)
            .map(|(k, m)| (k, m.to_string()))
            .collect();
        let epoch = self.rec.assignment_epoch;
        let Some(m) = self.rec.members.get_mut(id) else {
            return;
        };
        if m.member_epoch == STATIC_LEAVE_EPOCH {
            return;
        }
        let before = m.clone();
        let target = m.target.clone();
        reconcile(m, epoch, &target, owned, |t, p| {
            owners.contains_key(&(t, p))
        });
        let revoking = m.state == MemberState::UnrevokedPartitions;
        let timeout = i64::from(m.rebalance_timeout_ms);
        if *m != before {
            self.dirty.insert(id.to_string());
        }
        let t = self.timers.entry(id.to_string()).or_default();
        if revoking {
            t.revoke_deadline.get_or_insert(now.saturating_add(timeout));
        } else {
            t.revoke_deadline = None;
        }
    }

    fn remove_member(&mut self, id: &str) {
        if self.rec.members.remove(id).is_some() {
            self.timers.remove(id);
            self.dirty.remove(id);
            self.removed.insert(id.to_string());
            self.bump();
        }
    }

    /// Handles one ConsumerGroupHeartbeat. `new_id` is the member id to
    /// give a joining member that brought none.
    pub fn heartbeat(
        &mut self,
        now: i64,
        s: &Settings,
        topics: &dyn Topics,
        hb: Heartbeat,
        new_id: String,
    ) -> Result<HeartbeatReply, GroupError> {
        if hb.member_epoch == LEAVE_EPOCH || hb.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(now, s, topics, hb);
        }
        if hb.member_epoch < LEAVE_EPOCH - 1 {
            return Err(GroupError::InvalidRequest {
                reason: format!("member epoch {} is not valid", hb.member_epoch),
            });
        }
        if let Some(r) = hb.subscribed_regex.as_deref().filter(|r| !r.is_empty()) {
            self.regex(r)?;
        }
        if let Some(a) = hb.server_assignor.as_deref() {
            if !assignor::ALL.contains(&a) {
                return Err(GroupError::UnsupportedAssignor {
                    assignor: a.chars().take(64).collect(),
                });
            }
        }
        let full = hb.is_full();
        let id = if hb.member_epoch == JOIN_EPOCH {
            self.join(s, &hb, new_id)?
        } else {
            let Some(m) = self.rec.members.get(&hb.member_id) else {
                return Err(GroupError::UnknownMember {
                    group: self.id.clone(),
                    member_id: hb.member_id.clone(),
                });
            };
            if let (Some(want), Some(have)) = (&hb.instance_id, &m.instance_id) {
                if want != have {
                    return Err(GroupError::FencedInstanceId {
                        group: self.id.clone(),
                        member_id: hb.member_id.clone(),
                        instance_id: want.clone(),
                        current: have.clone(),
                    });
                }
            }
            let fenced = hb.member_epoch > m.member_epoch
                || (hb.member_epoch < m.member_epoch
                    && (hb.member_epoch != m.previous_member_epoch
                        || hb.owned.as_ref().is_none_or(|o| !is_subset(o, &m.assigned))));
            if fenced {
                return Err(GroupError::FencedMemberEpoch {
                    group: self.id.clone(),
                    member_id: hb.member_id.clone(),
                    epoch: hb.member_epoch,
                    current: m.member_epoch,
                });
            }
            hb.member_id.clone()
        };
        // Update what the member may change on any heartbeat.
        let m = self.rec.members.get_mut(&id).expect("member present");
        let before = m.clone();
        let mut resubscribed = false;
        if let Some(t) = &hb.subscribed_topics {
            let mut t = t.clone();
            t.sort();
            t.dedup();
            if t != m.subscribed_topics {
                m.subscribed_topics = t;
                resubscribed = true;
            }
        }
        if let Some(r) = &hb.subscribed_regex {
            let r = (!r.is_empty()).then(|| r.clone());
            if r != m.subscribed_regex {
                m.subscribed_regex = r;
                resubscribed = true;
            }
        }
        if hb.server_assignor.is_some() && hb.server_assignor != m.server_assignor {
            m.server_assignor = hb.server_assignor.clone();
            resubscribed = true;
        }
        if hb.rebalance_timeout_ms > 0 {
            m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
        }
        if hb.rack_id.is_some() {
            m.rack_id = hb.rack_id.clone();
        }
        if hb.member_epoch == JOIN_EPOCH {
            m.client_id = hb.client_id.clone();
            m.client_host = hb.client_host.clone();
        }
        let changed = *m != before;
        if changed {
            self.dirty.insert(id.clone());
        }
        let joined = std::mem::take(&mut self.new_member);
        if resubscribed || joined {
            self.bump();
        }
        self.timers.entry(id.clone()).or_default().session_deadline =
            now.saturating_add(s.session_timeout_ms);
        self.refresh(topics);
        let assigned_before = self.rec.members[&id].assigned.clone();
        let epoch_before = self.rec.members[&id].member_epoch;
        self.reconcile_member(now, &id, hb.owned.as_ref());
        self.resolve_regexes();
        let m = &self.rec.members[&id];
        let send = full || m.assigned != assigned_before || m.member_epoch != epoch_before;
        Ok(HeartbeatReply {
            member_id: id.clone(),
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: s.heartbeat_interval_ms,
            assignment: send.then(|| m.assigned.clone()),
        })
    }

    /// A joining member (epoch 0): new, rejoining, or a static member
    /// taking its instance's place back. Returns its member id.
    fn join(&mut self, s: &Settings, hb: &Heartbeat, new_id: String) -> Result<String, GroupError> {
        if hb.subscribed_topics.is_none() && hb.subscribed_regex.is_none() {
            return Err(GroupError::InvalidRequest {
                reason: "a joining member must send its subscription".into(),
            });
        }
        let id = if hb.member_id.is_empty() {
            new_id
        } else {
            hb.member_id.clone()
        };
        if let Some(inst) = &hb.instance_id {
            let holder = self
                .rec
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(inst) && m.member_id != id)
                .cloned();
            if let Some(old) = holder {
                if old.member_epoch != STATIC_LEAVE_EPOCH {
                    return Err(GroupError::UnreleasedInstanceId {
                        group: self.id.clone(),
                        instance_id: inst.clone(),
                    });
                }
                // The static member is back: it takes over the old
                // member's assignment, without a rebalance.
                self.rec.members.remove(&old.member_id);
                self.timers.remove(&old.member_id);
                self.dirty.remove(&old.member_id);
                self.removed.insert(old.member_id.clone());
                let m = ConsumerMember {
                    member_id: id.clone(),
                    member_epoch: JOIN_EPOCH,
                    previous_member_epoch: JOIN_EPOCH,
                    state: MemberState::Stable,
                    pending_revocation: Assignment::new(),
                    ..old
                };
                self.removed.remove(&id);
                self.rec.members.insert(id.clone(), m);
                self.dirty.insert(id.clone());
                return Ok(id);
            }
        }
        match self.rec.members.get_mut(&id) {
            Some(m) => {
                // Rejoining after being fenced: the client gave up
                // everything it had.
                m.member_epoch = JOIN_EPOCH;
                m.previous_member_epoch = JOIN_EPOCH;
                m.state = MemberState::Stable;
                m.assigned.clear();
                m.pending_revocation.clear();
                self.dirty.insert(id.clone());
            }
            None => {
                if self.rec.members.len() >= s.max_size {
                    return Err(GroupError::GroupMaxSizeReached {
                        group: self.id.clone(),
                        max: s.max_size,
                    });
                }
                self.rec.members.insert(
                    id.clone(),
                    ConsumerMember {
                        member_id: id.clone(),
                        instance_id: hb.instance_id.clone(),
                        rebalance_timeout_ms: if hb.rebalance_timeout_ms > 0 {
                            hb.rebalance_timeout_ms
                        } else {
                            300_000
                        },
                        ..Default::default()
                    },
                );
                self.removed.remove(&id);
                self.dirty.insert(id.clone());
                // The epoch is bumped once, with the subscription update.
                self.new_member = true;
            }
        }
        Ok(id)
    }

    fn leave(
        &mut self,
        now: i64,
        s: &Settings,
        topics: &dyn Topics,
        hb: Heartbeat,
    ) -> Result<HeartbeatReply, GroupError> {
        let id = match self.rec.members.get(&hb.member_id) {
            Some(m) => m.member_id.clone(),
            None => {
                // A static member may leave by instance id alone.
                let by_instance = hb.instance_id.as_ref().and_then(|i| {
                    self.rec
                        .members
                        .values()
                        .find(|m| m.instance_id.as_ref() == Some(i))
                        .map(|m| m.member_id.clone())
                });
                by_instance.ok_or_else(|| GroupError::UnknownMember {
                    group: self.id.clone(),
                    member_id: hb.member_id.clone(),
                })?
            }
        };
        let is_static = self.rec.members[&id].instance_id.is_some();
        if hb.member_epoch == STATIC_LEAVE_EPOCH && is_static {
            // Kept, with its assignment, until its session expires.
            let m = self.rec.members.get_mut(&id).expect("member");
            m.member_epoch = STATIC_LEAVE_EPOCH;
            m.pending_revocation.clear();
            m.state = MemberState::Stable;
            self.dirty.insert(id.clone());
            let t = self.timers.entry(id.clone()).or_default();
            t.session_deadline = now.saturating_add(s.session_timeout_ms);
            t.revoke_deadline = None;
        } else {
            self.remove_member(&id);
            self.refresh(topics);
        }
        Ok(HeartbeatReply {
            member_id: id,
            member_epoch: hb.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// Expires members whose session ended or who did not revoke in time;
    /// recomputes the target if any left.
    pub fn tick(&mut self, now: i64, topics: &dyn Topics) {
        let expired: Vec<String> = self
            .timers
            .iter()
            .filter(|(_, t)| {
                t.session_deadline <= now || t.revoke_deadline.is_some_and(|d| d <= now)
            })
            .map(|(id, _)| id.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "consumer group member expired");
            self.remove_member(id);
            self.events.members_expired += 1;
        }
        self.refresh(topics);
    }

    /// Validates the member and epoch of an OffsetCommit (Kafka 4's rules
    /// for consumer groups). Epoch -1 with no member id commits only into
    /// an empty group.
    pub fn validate_commit(&self, member_id: &str, epoch: i32) -> Result<(), GroupError> {
        if epoch < 0 && member_id.is_empty() && self.rec.members.is_empty() {
            return Ok(());
        }
        self.validate_member_epoch(member_id, epoch)
    }

    /// Validates the member and epoch of an OffsetFetch (v9+ with a member
    /// id); an admin fetch (no member id, epoch -1) is always allowed.
    pub fn validate_fetch(&self, member_id: Option<&str>, epoch: i32) -> Result<(), GroupError> {
        let Some(member_id) = member_id.filter(|m| !m.is_empty()) else {
            return Ok(());
        };
        if epoch < 0 {
            return Ok(());
        }
        self.validate_member_epoch(member_id, epoch)
    }

    /// The member must exist and `epoch` be its current epoch.
    fn validate_member_epoch(&self, member_id: &str, epoch: i32) -> Result<(), GroupError> {
        let m = self
            .rec
            .members
            .get(member_id)
            .ok_or_else(|| GroupError::UnknownMember {
                group: self.id.clone(),
                member_id: member_id.to_string(),
            })?;
        if epoch > m.member_epoch {
            return Err(GroupError::FencedMemberEpoch {
                group: self.id.clone(),
                member_id: m.member_id.clone(),
                epoch,
                current: m.member_epoch,
            });
        }
        if epoch < m.member_epoch {
            return Err(GroupError::StaleMemberEpoch {
                group: self.id.clone(),
                member_id: m.member_id.clone(),
                epoch,
                current: m.member_epoch,
            });
        }
        Ok(())
    }

    /// Topics any member is subscribed to by name (offset expiry keeps them).
    pub fn subscribed_names(&self) -> BTreeSet<String> {
        self.rec
            .members
            .values()
            .flat_map(|m| m.subscribed_topics.iter().cloned())
            .collect()
    }
}
