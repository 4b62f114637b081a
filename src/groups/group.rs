//! One classic consumer group: membership, generations and the rebalance
//! state machine of Apache Kafka's `GroupCoordinator` (Empty →
//! PreparingRebalance → CompletingRebalance → Stable).
//!
//! A pure core: every call takes the time (`now`, ms) and any new member id
//! from the caller, and answers long-polling requests through the oneshot
//! senders it is handed, so tests drive it without sockets, clocks or a
//! runtime. Timers (sessions, join and sync deadlines, the initial rebalance
//! delay) are plain deadlines that [`Group::tick`] enforces.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::config::GroupConfig;
use super::error::GroupError;
use super::protocol;

/// Kafka's group states (`DescribeGroups` / `ListGroups` spell them so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The name Kafka uses on the wire.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// One member in a JoinGroup response (sent to the leader only).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What a JoinGroup request is answered with.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinResult {
    pub error: Option<GroupError>,
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub members: Vec<JoinMember>,
}

impl JoinResult {
    /// An error answer (generation -1, no protocol, no members).
    pub fn error(member_id: impl Into<String>, e: GroupError) -> JoinResult {
        JoinResult {
            error: Some(e),
            member_id: member_id.into(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// What a SyncGroup request is answered with.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResult {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(e: GroupError) -> SyncResult {
        SyncResult {
            error: Some(e),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A JoinGroup request as the group sees it.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// JoinGroup v4+: a member without id first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader may skip the assignment.
    pub support_skip_assignment: bool,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
}

impl JoinArgs {
    /// Bytes of protocol metadata carried.
    pub fn metadata_bytes(&self) -> usize {
        self.protocols.iter().map(|(n, m)| n.len() + m.len()).sum()
    }
}

/// A member of the group.
#[derive(Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// Joined in the current rebalance and has not completed one yet.
    is_new: bool,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
    /// Session (or new-member join) deadline.
    deadline_ms: i64,
}

impl Member {
    fn awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    fn awaiting_sync(&self) -> bool {
        self.sync_waiter.is_some()
    }

    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Kafka's `hasSatisfiedHeartbeat` inverted: new members expire while
    /// they wait in JoinGroup; others never while awaiting join or sync.
    fn expired(&self, now: i64) -> bool {
        if !self.is_new && (self.awaiting_join() || self.awaiting_sync()) {
            return false;
        }
        now >= self.deadline_ms
    }

    fn answer_join(&mut self, r: JoinResult) {
        if let Some(tx) = self.join_waiter.take() {
            let _ = tx.send(r);
        }
    }

    fn answer_sync(&mut self, r: SyncResult) -> bool {
        match self.sync_waiter.take() {
            Some(tx) => {
                let _ = tx.send(r);
                true
            }
            None => false,
        }
    }

    fn bytes(&self) -> usize {
        self.protocols
            .iter()
            .map(|(n, m)| n.len() + m.len())
            .sum::<usize>()
            + self.assignment.len()
    }
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub generation_id: i32,
    pub leader: String,
    pub members: Vec<MemberSummary>,
}

/// Counters the coordinator exports.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Events {
    pub rebalances: u64,
    pub members_expired: u64,
}

/// One group's soft state.
#[derive(Debug)]
pub struct Group {
    id: String,
    state: GroupState,
    /// When the group entered its current state (for "empty since").
    state_since_ms: i64,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED -> deadline to rejoin.
    pending_members: BTreeMap<String, i64>,
    /// Members that have not sent SyncGroup for the current generation.
    pending_sync: BTreeSet<String>,
    join_deadline_ms: Option<i64>,
    /// The first rebalance of an empty group: `Some(rebalance time left)`
    /// while it waits `initial_rebalance_delay_ms` for more members.
    initial_join_remaining_ms: Option<i64>,
    new_member_added: bool,
    sync_deadline_ms: Option<i64>,
    /// Topics the members subscribe to (consumer protocol), if known.
    subscribed_topics: Option<BTreeSet<String>>,
    events: Events,
}

fn unknown(group: &str, member_id: &str) -> GroupError {
    GroupError::UnknownMember {
        group: group.to_string(),
        member_id: member_id.to_string(),
    }
}

impl Group {
    /// A new, empty group.
    pub fn new(id: impl Into<String>, now: i64) -> Group {
        Group {
            id: id.into(),
            state: GroupState::Empty,
            state_since_ms: now,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            join_deadline_ms: None,
            initial_join_remaining_ms: None,
            new_member_added: false,
            sync_deadline_ms: None,
            subscribed_topics: None,
            events: Events::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether the group has nothing worth keeping in memory.
    pub fn is_idle(&self) -> bool {
        self.state == GroupState::Empty
            && self.members.is_empty()
            && self.pending_members.is_empty()
    }

    /// When the group became empty, if it is.
    pub fn empty_since_ms(&self) -> Option<i64> {
        (self.state == GroupState::Empty).then_some(self.state_since_ms)
    }

    /// Topics a stable consumer group subscribes to.
    pub fn subscribed_topics(&self) -> Option<&BTreeSet<String>> {
        self.subscribed_topics.as_ref()
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub fn events(&self) -> Events {
        self.events
    }

    /// Returns and resets the counters.
    pub fn take_events(&mut self) -> Events {
        std::mem::take(&mut self.events)
    }

    /// Member metadata and assignment bytes held.
    pub fn bytes(&self) -> usize {
        self.members.values().map(Member::bytes).sum()
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as i64)
            .max()
            .unwrap_or(0)
    }

    fn num_awaiting_join(&self) -> usize {
        self.members.values().filter(|m| m.awaiting_join()).count()
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    fn transition(&mut self, to: GroupState, now: i64) {
        self.state = to;
        self.state_since_ms = now;
    }

    // ------------------------------------------------------------ protocols

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> BTreeSet<&str> {
        let mut it = self.members.values();
        let Some(first) = it.next() else {
            return BTreeSet::new();
        };
        let mut set: BTreeSet<&str> = first.protocols.iter().map(|(n, _)| n.as_str()).collect();
        for m in it {
            let theirs: BTreeSet<&str> = m.protocols.iter().map(|(n, _)| n.as_str()).collect();
            set.retain(|p| theirs.contains(p));
        }
        set
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty
    /// offer; otherwise the protocol type must match and at least one of the
    /// member's protocols must be supported by every current member.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        if self.members.is_empty() {
            return !protocols.is_empty();
        }
        let candidates = self.candidate_protocols();
        protocols
            .iter()
            .any(|(n, _)| candidates.contains(n.as_str()))
    }

    /// Every member votes for its most preferred protocol among those all
    /// support; most votes wins (ties: the first member's preference order).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(n.as_str()))
            {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        let order = self.members.values().next()?;
        let mut best: Option<(&str, usize)> = None;
        for (n, _) in &order.protocols {
            if let Some(&v) = votes.get(n.as_str()) {
                if best.is_none_or(|(_, b)| v > b) {
                    best = Some((n.as_str(), v));
                }
            }
        }
        best.map(|(n, _)| n.to_string())
    }

    fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(protocol::CONSUMER) {
            return None;
        }
        let proto = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(protocol::subscription_topics(&m.metadata(proto))?);
        }
        Some(topics)
    }

    fn current_member_metadata(&self) -> Vec<JoinMember> {
        let proto = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(proto),
            })
            .collect()
    }

    fn join_result(
        &self,
        member_id: &str,
        with_members: bool,
        leader: String,
        skip: bool,
    ) -> JoinResult {
        JoinResult {
            error: None,
            member_id: member_id.to_string(),
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            skip_assignment: skip,
            members: if with_members {
                self.current_member_metadata()
            } else {
                Vec::new()
            },
        }
    }

    // ------------------------------------------------------------ membership

    /// Kafka's `validateCurrentMember`: a given instance id must map to this
    /// member id; the member must exist.
    fn validate_current_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(iid) = instance_id {
            return match self.static_members.get(iid) {
                Some(current) if current != member_id => Err(GroupError::FencedInstanceId {
                    group: self.id.clone(),
                    member_id: member_id.to_string(),
                    instance_id: iid.to_string(),
                    current: current.clone(),
                }),
                Some(_) => Ok(()),
                None => Err(unknown(&self.id, member_id)),
            };
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(unknown(&self.id, member_id))
        }
    }

    fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if let Some(iid) = &member.group_instance_id {
            self.static_members
                .insert(iid.clone(), member.member_id.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member without any rebalance decision (Kafka's `remove`).
    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let m = self.members.remove(member_id);
        if let Some(m) = &m {
            if let Some(iid) = &m.group_instance_id {
                if self.static_members.get(iid).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(iid);
                }
            }
        }
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline_ms = None;
        }
        m
    }

    /// Removes a member and rebalances what remains (leave, expiry).
    fn remove_member_and_update(&mut self, now: i64, cfg: &GroupConfig, member_id: &str) {
        let Some(mut m) = self.remove_member(member_id) else {
            return;
        };
        // A member removed while parked in JoinGroup/SyncGroup gets an answer
        // that makes it start over.
        m.answer_join(JoinResult::error("", unknown(&self.id, member_id)));
        m.answer_sync(SyncResult::error(unknown(&self.id, member_id)));
        match self.state {
            GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(now, cfg)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, cfg),
        }
    }

    fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        )
    }

    fn maybe_prepare_rebalance(&mut self, now: i64, cfg: &GroupConfig) {
        if self.can_rebalance() {
            self.prepare_rebalance(now, cfg);
        }
    }

    fn prepare_rebalance(&mut self, now: i64, cfg: &GroupConfig) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_assignment_error(GroupError::RebalanceInProgress {
                group: self.id.clone(),
            });
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        let timeout = self.rebalance_timeout_ms();
        if self.state == GroupState::Empty {
            let delay = cfg.initial_rebalance_delay_ms.max(0);
            self.join_deadline_ms = Some(now.saturating_add(delay));
            self.initial_join_remaining_ms = Some((timeout - delay).max(0));
            self.new_member_added = false;
        } else {
            self.join_deadline_ms = Some(now.saturating_add(timeout));
            self.initial_join_remaining_ms = None;
        }
        self.transition(GroupState::PreparingRebalance, now);
        tracing::info!(group = %self.id, generation = self.generation, members = self.members.len(), "preparing to rebalance");
        // Like Kafka's tryCompleteElseWatch: a join phase with everyone
        // already in (say, nobody left) completes at once.
        self.try_complete_join(now, cfg);
    }

    fn reset_and_propagate_assignment_error(&mut self, e: GroupError) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            m.answer_sync(SyncResult::error(e.clone()));
        }
    }

    fn has_all_members_joined(&self) -> bool {
        self.members.values().all(Member::awaiting_join) && self.pending_members.is_empty()
    }

    /// Completes the join phase early once everyone is in (never during the
    /// initial delay, as Kafka's InitialDelayedJoin).
    fn try_complete_join(&mut self, now: i64, cfg: &GroupConfig) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_join_remaining_ms.is_none()
            && self.has_all_members_joined()
        {
            self.complete_join(now, cfg);
        }
    }

    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else {
            return false;
        };
        if self.members.get(&leader).is_some_and(Member::awaiting_join) {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join()) {
            Some(m) => {
                self.leader = Some(m.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// Kafka's `onCompleteJoin`.
    fn complete_join(&mut self, now: i64, _cfg: &GroupConfig) {
        self.join_deadline_ms = None;
        self.initial_join_remaining_ms = None;
        self.new_member_added = false;
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            tracing::info!(group = %self.id, member = %id, "removing member that did not rejoin in time");
            self.remove_member(&id);
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined remain: wait again
            // until they rejoin or their sessions expire.
            self.join_deadline_ms = Some(now.saturating_add(self.rebalance_timeout_ms()));
            return;
        }
        self.generation = if self.generation == i32::MAX {
            1
        } else {
            self.generation + 1
        };
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed_topics = None;
            self.transition(GroupState::Empty, now);
            tracing::info!(group = %self.id, generation = self.generation, "group is empty");
            return;
        }
        self.protocol_name = self.select_protocol();
        self.subscribed_topics = self.compute_subscribed_topics();
        self.transition(GroupState::CompletingRebalance, now);
        self.events.rebalances += 1;
        let leader = self.leader.clone().unwrap_or_default();
        let all = self.current_member_metadata();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = id == leader;
            let r = JoinResult {
                error: None,
                member_id: id.clone(),
                generation_id: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                leader: leader.clone(),
                skip_assignment: false,
                members: if is_leader { all.clone() } else { Vec::new() },
            };
            if let Some(m) = self.members.get_mut(&id) {
                m.answer_join(r);
                m.deadline_ms = now.saturating_add(m.session_timeout_ms as i64);
                m.is_new = false;
            }
            self.pending_sync.insert(id);
        }
        self.sync_deadline_ms = Some(now.saturating_add(self.rebalance_timeout_ms()));
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol_name.as_deref().unwrap_or(""),
            "rebalance: join complete"
        );
    }

    fn new_member(
        now: i64,
        cfg: &GroupConfig,
        member_id: String,
        a: &JoinArgs,
        tx: oneshot::Sender<JoinResult>,
    ) -> Member {
        Member {
            member_id,
            group_instance_id: a.group_instance_id.clone(),
            client_id: a.client_id.clone(),
            client_host: a.client_host.clone(),
            session_timeout_ms: a.session_timeout_ms,
            rebalance_timeout_ms: a.rebalance_timeout_ms,
            protocol_type: a.protocol_type.clone(),
            protocols: a.protocols.clone(),
            assignment: Bytes::new(),
            is_new: true,
            join_waiter: Some(tx),
            sync_waiter: None,
            deadline_ms: now.saturating_add(cfg.new_member_join_timeout_ms),
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        member_id: String,
        a: &JoinArgs,
        tx: oneshot::Sender<JoinResult>,
    ) {
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            self.new_member_added = true;
        }
        let m = Group::new_member(now, cfg, member_id, a, tx);
        self.add_member(m);
        self.maybe_prepare_rebalance(now, cfg);
    }

    fn update_member(member: &mut Member, a: &JoinArgs, tx: oneshot::Sender<JoinResult>) {
        member.protocols = a.protocols.clone();
        member.rebalance_timeout_ms = a.rebalance_timeout_ms;
        member.session_timeout_ms = a.session_timeout_ms;
        member.client_id = a.client_id.clone();
        member.client_host = a.client_host.clone();
        if let Some(old) = member.join_waiter.replace(tx) {
            // A retried JoinGroup replaces the parked one; answer the old
            // request so its connection is not blocked.
            let _ = old.send(JoinResult::error(
                member.member_id.clone(),
                GroupError::RebalanceInProgress {
                    group: String::new(),
                },
            ));
        }
    }

    fn update_member_and_rebalance(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        member_id: &str,
        a: &JoinArgs,
        tx: oneshot::Sender<JoinResult>,
    ) {
        if let Some(m) = self.members.get_mut(member_id) {
            Group::update_member(m, a, tx);
        }
        self.maybe_prepare_rebalance(now, cfg);
    }

    /// Moves a static member to a new member id, fencing whatever the old
    /// id had parked.
    fn replace_static_member(&mut self, instance_id: &str, old_id: &str, new_id: &str) {
        let Some(mut m) = self.members.remove(old_id) else {
            return;
        };
        let fenced = GroupError::FencedInstanceId {
            group: self.id.clone(),
            member_id: old_id.to_string(),
            instance_id: instance_id.to_string(),
            current: new_id.to_string(),
        };
        m.answer_join(JoinResult::error(old_id, fenced.clone()));
        m.answer_sync(SyncResult::error(fenced));
        m.member_id = new_id.to_string();
        self.members.insert(new_id.to_string(), m);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.to_string());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_string());
        }
        self.static_members
            .insert(instance_id.to_string(), new_id.to_string());
    }

    #[allow(clippy::too_many_arguments)]
    fn update_static_member_and_rebalance(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        instance_id: &str,
        old_id: &str,
        new_id: String,
        a: &JoinArgs,
        tx: oneshot::Sender<JoinResult>,
    ) {
        let current_leader = self.leader.clone().unwrap_or_default();
        self.replace_static_member(instance_id, old_id, &new_id);
        let Some(m) = self.members.get_mut(&new_id) else {
            return;
        };
        m.deadline_ms = now.saturating_add(a.session_timeout_ms as i64);
        Group::update_member(m, a, tx);
        match self.state {
            GroupState::Stable => {
                if self.select_protocol() == self.protocol_name {
                    // Same protocol: no rebalance, the member takes over the
                    // old id's assignment (static membership, KIP-345).
                    let r = if a.support_skip_assignment {
                        let is_leader = self.is_leader(&new_id);
                        self.join_result(
                            &new_id,
                            is_leader,
                            self.leader.clone().unwrap_or_default(),
                            is_leader,
                        )
                    } else {
                        // Older clients must not think they lead: the old
                        // leader id makes a returning leader a follower.
                        self.join_result(&new_id, false, current_leader, false)
                    };
                    if let Some(m) = self.members.get_mut(&new_id) {
                        m.answer_join(r);
                    }
                } else {
                    self.maybe_prepare_rebalance(now, cfg);
                }
            }
            GroupState::CompletingRebalance => self.prepare_rebalance(now, cfg),
            GroupState::PreparingRebalance | GroupState::Empty => {}
        }
    }

    /// Whether a member id is in the group or waiting to rejoin with it.
    fn accept_joining_member(&self, cfg: &GroupConfig, member_id: &str) -> bool {
        match self.state {
            GroupState::Empty => true,
            GroupState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(Member::awaiting_join)
                    || self.num_awaiting_join() < cfg.max_group_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < cfg.max_group_size
            }
        }
    }

    /// JoinGroup. `new_member_id` is used when the request has no member id.
    /// The answer goes to `tx`, now or when the join phase completes.
    pub fn join(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        a: JoinArgs,
        new_member_id: String,
        tx: oneshot::Sender<JoinResult>,
    ) {
        let is_unknown = a.member_id.is_empty();
        if !self.accept_joining_member(cfg, &a.member_id) {
            if let Some(mut m) = self.remove_member(&a.member_id) {
                m.answer_join(JoinResult::error("", unknown(&self.id, &a.member_id)));
            }
            let _ = tx.send(JoinResult::error(
                "",
                GroupError::GroupMaxSizeReached {
                    group: self.id.clone(),
                    max: cfg.max_group_size,
                },
            ));
        } else if is_unknown {
            self.join_new_member(now, cfg, a, new_member_id, tx);
        } else {
            self.join_current_member(now, cfg, a, tx);
        }
        if self.state == GroupState::PreparingRebalance {
            self.try_complete_join(now, cfg);
        }
    }

    fn join_new_member(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        a: JoinArgs,
        new_id: String,
        tx: oneshot::Sender<JoinResult>,
    ) {
        if !self.supports_protocols(&a.protocol_type, &a.protocols) {
            let _ = tx.send(JoinResult::error(
                "",
                GroupError::InconsistentProtocol {
                    group: self.id.clone(),
                },
            ));
            return;
        }
        match a.group_instance_id.clone() {
            Some(iid) => match self.static_members.get(&iid).cloned() {
                Some(old) => {
                    tracing::info!(group = %self.id, instance = %iid, old = %old, new = %new_id, "static member rejoins with a new member id");
                    self.update_static_member_and_rebalance(now, cfg, &iid, &old, new_id, &a, tx);
                }
                None => self.add_member_and_rebalance(now, cfg, new_id, &a, tx),
            },
            None if a.require_known_member_id => {
                self.pending_members.insert(
                    new_id.clone(),
                    now.saturating_add(a.session_timeout_ms as i64),
                );
                let _ = tx.send(JoinResult::error(
                    new_id.clone(),
                    GroupError::MemberIdRequired {
                        group: self.id.clone(),
                        member_id: new_id,
                    },
                ));
            }
            None => self.add_member_and_rebalance(now, cfg, new_id, &a, tx),
        }
    }

    fn join_current_member(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        a: JoinArgs,
        tx: oneshot::Sender<JoinResult>,
    ) {
        let id = a.member_id.clone();
        if !self.supports_protocols(&a.protocol_type, &a.protocols) {
            let _ = tx.send(JoinResult::error(
                id,
                GroupError::InconsistentProtocol {
                    group: self.id.clone(),
                },
            ));
            return;
        }
        if self.pending_members.contains_key(&id) {
            if a.group_instance_id.is_some() {
                let _ = tx.send(JoinResult::error(
                    id,
                    GroupError::InvalidRequest {
                        reason: "a pending dynamic member cannot join with a group instance id"
                            .into(),
                    },
                ));
                return;
            }
            self.add_member_and_rebalance(now, cfg, id, &a, tx);
            return;
        }
        if let Err(e) = self.validate_current_member(&id, a.group_instance_id.as_deref()) {
            let _ = tx.send(JoinResult::error(id, e));
            return;
        }
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(now, cfg, &id, &a, tx)
            }
            GroupState::CompletingRebalance => {
                let same = self
                    .members
                    .get(&id)
                    .is_some_and(|m| m.matches(&a.protocols));
                if same {
                    // A retry of a JoinGroup whose answer was lost.
                    let r = self.join_result(
                        &id,
                        self.is_leader(&id),
                        self.leader.clone().unwrap_or_default(),
                        false,
                    );
                    let _ = tx.send(r);
                } else {
                    self.update_member_and_rebalance(now, cfg, &id, &a, tx);
                }
            }
            GroupState::Stable => {
                let same = self
                    .members
                    .get(&id)
                    .is_some_and(|m| m.matches(&a.protocols));
                if self.is_leader(&id) || !same {
                    // A leader's JoinGroup forces a rebalance (e.g. topic
                    // metadata changed); so do changed subscriptions.
                    self.update_member_and_rebalance(now, cfg, &id, &a, tx);
                } else {
                    let r = self.join_result(
                        &id,
                        false,
                        self.leader.clone().unwrap_or_default(),
                        false,
                    );
                    let _ = tx.send(r);
                }
            }
            GroupState::Empty => {
                let _ = tx.send(JoinResult::error(id.clone(), unknown(&self.id, &id)));
            }
        }
    }

    /// SyncGroup. Followers park until the leader's assignment arrives.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        now: i64,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        tx: oneshot::Sender<SyncResult>,
    ) {
        let check = self
            .validate_current_member(member_id, instance_id)
            .and_then(|()| {
                if generation != self.generation {
                    return Err(GroupError::IllegalGeneration {
                        group: self.id.clone(),
                        generation,
                        current: self.generation,
                    });
                }
                let pt_bad =
                    protocol_type.is_some_and(|p| self.protocol_type.as_deref() != Some(p));
                let pn_bad =
                    protocol_name.is_some_and(|p| self.protocol_name.as_deref() != Some(p));
                if pt_bad || pn_bad {
                    return Err(GroupError::InconsistentProtocol {
                        group: self.id.clone(),
                    });
                }
                Ok(())
            });
        if let Err(e) = check {
            let _ = tx.send(SyncResult::error(e));
            return;
        }
        match self.state {
            GroupState::Empty => {
                let _ = tx.send(SyncResult::error(unknown(&self.id, member_id)));
            }
            GroupState::PreparingRebalance => {
                let _ = tx.send(SyncResult::error(GroupError::RebalanceInProgress {
                    group: self.id.clone(),
                }));
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    if let Some(old) = m.sync_waiter.replace(tx) {
                        let _ = old.send(SyncResult::error(GroupError::RebalanceInProgress {
                            group: self.id.clone(),
                        }));
                    }
                }
                self.pending_sync.remove(member_id);
                if self.pending_sync.is_empty() {
                    self.sync_deadline_ms = None;
                }
                if self.is_leader(member_id) {
                    let mut by_member: BTreeMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = by_member.remove(&m.member_id).unwrap_or_default();
                    }
                    self.propagate_assignment(now);
                    self.transition(GroupState::Stable, now);
                    tracing::info!(group = %self.id, generation = self.generation, "rebalance complete: group is stable");
                }
            }
            GroupState::Stable => {
                self.pending_sync.remove(member_id);
                if self.pending_sync.is_empty() {
                    self.sync_deadline_ms = None;
                }
                let r = SyncResult {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: self
                        .members
                        .get(member_id)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default(),
                };
                let _ = tx.send(r);
                if let Some(m) = self.members.get_mut(member_id) {
                    m.deadline_ms = now.saturating_add(m.session_timeout_ms as i64);
                }
            }
        }
    }

    fn propagate_assignment(&mut self, now: i64) {
        let pt = self.protocol_type.clone();
        let pn = self.protocol_name.clone();
        for m in self.members.values_mut() {
            let r = SyncResult {
                error: None,
                protocol_type: pt.clone(),
                protocol_name: pn.clone(),
                assignment: m.assignment.clone(),
            };
            if m.answer_sync(r) {
                m.deadline_ms = now.saturating_add(m.session_timeout_ms as i64);
            }
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        now: i64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.validate_current_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                group: self.id.clone(),
                generation,
                current: self.generation,
            });
        }
        let state = self.state;
        let m = self
            .members
            .get_mut(member_id)
            .ok_or_else(|| unknown(&self.id, member_id))?;
        match state {
            GroupState::Empty => Err(unknown(&self.id, member_id)),
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.deadline_ms = now.saturating_add(m.session_timeout_ms as i64);
                Ok(())
            }
            GroupState::PreparingRebalance => {
                m.deadline_ms = now.saturating_add(m.session_timeout_ms as i64);
                Err(GroupError::RebalanceInProgress {
                    group: self.id.clone(),
                })
            }
        }
    }

    /// LeaveGroup of one member (by member id, or by instance id alone when
    /// the member id is empty: administrative removal of a static member).
    pub fn leave(
        &mut self,
        now: i64,
        cfg: &GroupConfig,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if member_id.is_empty() {
            let current = instance_id.and_then(|i| self.static_members.get(i).cloned());
            return match current {
                Some(id) => {
                    tracing::info!(group = %self.id, member = %id, "static member removed by LeaveGroup");
                    self.remove_member_and_update(now, cfg, &id);
                    Ok(())
                }
                None => Err(unknown(&self.id, member_id)),
            };
        }
        if self.pending_members.remove(member_id).is_some() {
            if self.state == GroupState::PreparingRebalance {
                self.try_complete_join(now, cfg);
            }
            return Ok(());
        }
        self.validate_current_member(member_id, instance_id)?;
        tracing::info!(group = %self.id, member = %member_id, "member left the group");
        self.remove_member_and_update(now, cfg, member_id);
        Ok(())
    }

    /// Kafka's `validateOffsetCommit` for a group that exists: who may
    /// commit now. Refreshes the member's session like a heartbeat.
    pub fn validate_commit(
        &mut self,
        now: i64,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if generation < 0 && self.state == GroupState::Empty {
            // Admin tools and consumers that assign partitions themselves.
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_current_member(member_id, instance_id)?;
            if generation != self.generation {
                return Err(GroupError::IllegalGeneration {
                    group: self.id.clone(),
                    generation,
                    current: self.generation,
                });
            }
        } else if self.state != GroupState::Empty {
            return Err(unknown(&self.id, member_id));
        }
        match self.state {
            GroupState::CompletingRebalance => Err(GroupError::RebalanceInProgress {
                group: self.id.clone(),
            }),
            GroupState::Stable | GroupState::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.deadline_ms = now.saturating_add(m.session_timeout_ms as i64);
                }
                Ok(())
            }
            GroupState::Empty => Ok(()),
        }
    }

    /// Enforces deadlines: pending members, sessions, the join phase (and
    /// its initial delay) and the sync phase.
    pub fn tick(&mut self, now: i64, cfg: &GroupConfig) {
        let expired_pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, d)| now >= **d)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired_pending {
            tracing::info!(group = %self.id, member = %id, "pending member did not rejoin in time");
            self.pending_members.remove(&id);
            if self.state == GroupState::PreparingRebalance {
                self.try_complete_join(now, cfg);
            }
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.expired(now))
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired; removing it");
            self.events.members_expired += 1;
            self.remove_member_and_update(now, cfg, &id);
        }
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline_ms.is_some_and(|d| now >= d)
        {
            match self.initial_join_remaining_ms {
                Some(remaining) if self.new_member_added && remaining > 0 => {
                    let delay = cfg.initial_rebalance_delay_ms.max(0).min(remaining);
                    self.new_member_added = false;
                    self.initial_join_remaining_ms = Some(remaining - delay);
                    self.join_deadline_ms = Some(now.saturating_add(delay));
                }
                _ => self.complete_join(now, cfg),
            }
        }
        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && self.sync_deadline_ms.is_some_and(|d| now >= d)
        {
            self.sync_deadline_ms = None;
            let missing: Vec<String> = std::mem::take(&mut self.pending_sync).into_iter().collect();
            if !missing.is_empty() {
                for id in &missing {
                    tracing::info!(group = %self.id, member = %id, "member did not send SyncGroup in time; removing it");
                    if let Some(mut m) = self.remove_member(id) {
                        m.answer_sync(SyncResult::error(unknown(&self.id, id)));
                    }
                }
                self.prepare_rebalance(now, cfg);
            }
        }
    }

    /// Answers every parked request with `e` (coordinator shutdown).
    pub fn fail_waiters(&mut self, e: &GroupError) {
        for m in self.members.values_mut() {
            m.answer_join(JoinResult::error(m.member_id.clone(), e.clone()));
            m.answer_sync(SyncResult::error(e.clone()));
        }
    }

    /// DescribeGroups view: metadata and assignments only when stable.
    pub fn summary(&self) -> GroupSummary {
        let stable = self.state == GroupState::Stable;
        let proto = self.protocol_name.clone().unwrap_or_default();
        GroupSummary {
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { proto.clone() } else { String::new() },
            generation_id: self.generation,
            leader: self.leader.clone().unwrap_or_default(),
            members: self
                .members
                .values()
                .map(|m| MemberSummary {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&proto)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
