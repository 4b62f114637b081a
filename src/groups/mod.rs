//! Consumer group coordination (membership, rebalancing, committed offsets).
//!
//! Membership is soft state held here by the coordinating broker
//! ([`group::Group`], Kafka's classic protocol state machine); committed
//! offsets are durable in the metadata state machine (`meta::groups`),
//! written through one batching [`writer`], so any broker that becomes a
//! group's coordinator serves them.
//!
//! - `group`: one group's state machine (pure: time and ids come in)
//! - `protocol`: the "consumer" embedded protocol (subscriptions, assignments)
//! - `writer`: the single, batching writer of group commands
//! - `lag`: per-partition lag and the kafka_exporter-style metrics
//! - `config`, `error`: settings (Kafka's defaults) and the error enum
//!
//! Placement: [`Coordinator::coordinator_for`] is the one place that decides
//! which broker coordinates a group: rendezvous hashing of the group id over
//! the live (registered, unfenced) brokers of the metadata view, so every
//! broker answers FindCoordinator alike, a group moves only when its own
//! broker dies or leaves (or a new broker wins it: about 1/n of the groups
//! when the pool grows to n), and members then rejoin the new coordinator
//! and resume from the committed offsets.

pub mod config;
pub mod consumer_protocol;
pub mod error;
pub mod group;
pub mod lag;
pub mod protocol;
mod writer;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

pub use config::GroupConfig;
pub use error::{codes, GroupError};
pub use group::{GroupState, GroupSummary, JoinArgs, JoinResult, MemberSummary, SyncResult};

use crate::broker::Broker;
use crate::meta::groups::{
    validate_group_id, CommittedOffset, ExpireGroup, GroupCommand, GroupOutput, OffsetEntry,
    MAX_OFFSET_METADATA_LEN,
};
use crate::meta::MetaState;
use group::Group;
use writer::{Job, Queue};

/// A group in the coordinator's map, with the bytes it was last counted at.
struct Slot {
    group: Group,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    groups: HashMap<String, Slot>,
    /// Sum of every slot's `bytes`.
    bytes: usize,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
}

/// Answer to an OffsetCommit: an immediate verdict per offset, plus the
/// pending write of those that passed.
pub struct CommitTicket {
    /// Per offset of the request, in order: `Some` = refused now.
    pub refused: Vec<Option<GroupError>>,
    /// Outcome of the write of the accepted offsets, if any were.
    pub pending: Option<oneshot::Receiver<Result<(), GroupError>>>,
}

/// Per partition: committed offset, if any.
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

/// The group coordinator of this broker.
pub struct Coordinator {
    cfg: GroupConfig,
    inner: Mutex<Inner>,
    queue: Queue,
    shutting_down: AtomicBool,
    rebalances: AtomicU64,
    members_expired: AtomicU64,
    offset_commits: Arc<AtomicU64>,
    /// Live broker ids, ascending (from the broker's metadata view).
    live: parking_lot::RwLock<Vec<i32>>,
    /// KIP-848 consumer groups.
    consumer: consumer_protocol::Groups,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("broker_id", &self.cfg.broker_id)
            .finish()
    }
}

fn invalid_group(group: &str, reason: &'static str) -> GroupError {
    GroupError::InvalidGroupId {
        group: group.chars().take(64).collect(),
        reason,
    }
}

/// A member id prefix from the client id (Kafka: `<client.id>-<uuid>`),
/// kept short and printable.
fn member_prefix(s: &str) -> String {
    let p: String = s.chars().filter(|c| !c.is_control()).take(64).collect();
    if p.is_empty() {
        "member".to_string()
    } else {
        p
    }
}

impl Coordinator {
    /// A coordinator with no groups loaded.
    pub fn new(config: &crate::config::Config) -> Coordinator {
        Coordinator::with_config(GroupConfig::for_broker(config))
    }

    /// A coordinator with explicit settings.
    pub fn with_config(cfg: GroupConfig) -> Coordinator {
        let queue = Queue::new(cfg.max_pending_commits);
        Coordinator {
            cfg,
            inner: Mutex::new(Inner::default()),
            queue,
            shutting_down: AtomicBool::new(false),
            rebalances: AtomicU64::new(0),
            members_expired: AtomicU64::new(0),
            offset_commits: Arc::new(AtomicU64::new(0)),
            live: parking_lot::RwLock::new(Vec::new()),
            consumer: consumer_protocol::Groups::default(),
        }
    }

    /// The live brokers groups are spread over (from a metadata view).
    pub fn set_live_brokers(&self, meta: &crate::meta::MetaState) {
        let live: Vec<i32> = meta
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.broker_id)
            .collect();
        *self.live.write() = live;
    }

    /// Settings in force.
    pub fn config(&self) -> &GroupConfig {
        &self.cfg
    }

    /// Start background work until `shutdown` flips: the metadata writer,
    /// the session/rebalance timer and offset retention.
    pub fn start(&self, broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
        if let Some(rx) = self.queue.rx.lock().take() {
            tokio::spawn(writer::run(
                broker.clone(),
                rx,
                self.cfg.max_commit_batch,
                self.offset_commits.clone(),
                shutdown.clone(),
            ));
        }
        let tick = Duration::from_millis(self.cfg.tick_ms.max(1));
        let b = broker.clone();
        let mut sd = shutdown.clone();
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(tick);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = iv.tick() => {
                        b.groups.tick(b.clock.now_ms());
                        b.groups.consumer_tick(b.clock.now_ms(), &b.meta());
                    }
                    _ = sd.changed() => break,
                }
            }
            b.groups.shut_down();
        });
        let every = Duration::from_millis(self.cfg.offsets_retention_check_interval_ms.max(1000));
        let mut sd = shutdown;
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(every);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            iv.tick().await;
            loop {
                tokio::select! {
                    _ = iv.tick() => {}
                    _ = sd.changed() => break,
                }
                let meta = broker.meta();
                if let Some(cmd) = broker.groups.retention_pass(broker.clock.now_ms(), &meta) {
                    match broker.groups.submit(cmd).await {
                        Ok(GroupOutput::OffsetsExpired {
                            offsets,
                            groups_removed,
                        }) => {
                            tracing::info!(
                                offsets,
                                groups = groups_removed.len(),
                                "expired committed offsets"
                            );
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "offset expiry failed"),
                    }
                }
            }
        });
    }

    /// The broker that coordinates `group`. Single-node: this one. The
    /// cluster milestone answers from the controller's view instead.
    pub fn coordinator_for(&self, group: &str) -> i32 {
        let live = self.live.read();
        if live.is_empty() {
            return self.cfg.broker_id;
        }
        place(group, &live)
    }

    fn check_local(&self, group: &str) -> Result<(), GroupError> {
        if self.shutting_down.load(Relaxed) {
            return Err(GroupError::NotCoordinator {
                group: group.to_string(),
                coordinator: -1,
            });
        }
        let c = self.coordinator_for(group);
        if c != self.cfg.broker_id {
            return Err(GroupError::NotCoordinator {
                group: group.to_string(),
                coordinator: c,
            });
        }
        Ok(())
    }

    /// Group id checks of the membership APIs (non-empty, bounded).
    fn check_member_api(&self, group: &str) -> Result<(), GroupError> {
        if group.is_empty() {
            return Err(invalid_group(group, "group id is empty"));
        }
        self.check_offset_api(group)
    }

    /// Group id checks of the offset APIs (empty allowed, as in Kafka).
    fn check_offset_api(&self, group: &str) -> Result<(), GroupError> {
        if validate_group_id(group).is_err() {
            return Err(invalid_group(group, "group id is too long"));
        }
        self.check_local(group)
    }

    fn absorb_events(&self, g: &mut Group) {
        let e = g.take_events();
        if e.rebalances > 0 {
            self.rebalances.fetch_add(e.rebalances, Relaxed);
        }
        if e.members_expired > 0 {
            self.members_expired.fetch_add(e.members_expired, Relaxed);
        }
    }

    /// Runs `f` on a group, keeping byte accounting and counters.
    fn with_group<T>(&self, group: &str, f: impl FnOnce(&mut Group) -> T) -> Option<T> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let slot = inner.groups.get_mut(group)?;
        let out = f(&mut slot.group);
        let now_bytes = slot.group.bytes();
        inner.bytes = inner.bytes - slot.bytes + now_bytes;
        slot.bytes = now_bytes;
        self.absorb_events(&mut slot.group);
        Some(out)
    }

    /// JoinGroup. The answer arrives on the returned channel, at once or
    /// when the rebalance's join phase completes.
    pub fn join(&self, now: i64, group_id: &str, a: JoinArgs) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let member_id = a.member_id.clone();
        let refuse = |tx: oneshot::Sender<JoinResult>, e: GroupError| {
            let _ = tx.send(JoinResult::error(member_id.clone(), e));
        };
        if let Err(e) = self.check_member_api(group_id) {
            refuse(tx, e);
            return rx;
        }
        let (min, max) = (
            self.cfg.min_session_timeout_ms,
            self.cfg.max_session_timeout_ms,
        );
        if a.session_timeout_ms < min || a.session_timeout_ms > max {
            refuse(
                tx,
                GroupError::InvalidSessionTimeout {
                    timeout_ms: a.session_timeout_ms,
                    min,
                    max,
                },
            );
            return rx;
        }
        let incoming = a.metadata_bytes();
        if incoming > self.cfg.max_member_metadata_bytes {
            refuse(
                tx,
                GroupError::InvalidRequest {
                    reason: format!(
                        "{incoming} bytes of protocol metadata, more than {}",
                        self.cfg.max_member_metadata_bytes
                    ),
                },
            );
            return rx;
        }
        let new_id = format!(
            "{}-{}",
            member_prefix(a.group_instance_id.as_deref().unwrap_or(&a.client_id)),
            uuid::Uuid::new_v4()
        );
        let mut inner = self.inner.lock();
        if inner.bytes + incoming > self.cfg.max_total_metadata_bytes {
            refuse(
                tx,
                GroupError::CoordinatorNotAvailable {
                    reason: "group metadata memory budget exhausted".into(),
                },
            );
            return rx;
        }
        if !inner.groups.contains_key(group_id) {
            if !a.member_id.is_empty() {
                refuse(
                    tx,
                    GroupError::UnknownMember {
                        group: group_id.to_string(),
                        member_id: a.member_id.clone(),
                    },
                );
                return rx;
            }
            if inner.groups.len() >= self.cfg.max_groups {
                inner.groups.retain(|_, s| !s.group.is_idle());
            }
            if inner.groups.len() >= self.cfg.max_groups {
                refuse(
                    tx,
                    GroupError::CoordinatorNotAvailable {
                        reason: format!(
                            "this coordinator holds {} groups already",
                            self.cfg.max_groups
                        ),
                    },
                );
                return rx;
            }
            inner.groups.insert(
                group_id.to_string(),
                Slot {
                    group: Group::new(group_id, now),
                    bytes: 0,
                },
            );
        }
        drop(inner);
        self.with_group(group_id, |g| g.join(now, &self.cfg, a, new_id, tx));
        rx
    }

    /// SyncGroup. Followers' answers arrive when the leader's assignment does.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &self,
        now: i64,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> oneshot::Receiver<SyncResult> {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.check_member_api(group_id) {
            let _ = tx.send(SyncResult::error(e));
            return rx;
        }
        let incoming: usize = assignments.iter().map(|(m, a)| m.len() + a.len()).sum();
        if self.inner.lock().bytes + incoming > self.cfg.max_total_metadata_bytes {
            let _ = tx.send(SyncResult::error(GroupError::CoordinatorNotAvailable {
                reason: "group metadata memory budget exhausted".into(),
            }));
            return rx;
        }
        let mut tx = Some(tx);
        self.with_group(group_id, |g| {
            if let Some(tx) = tx.take() {
                g.sync(
                    now,
                    generation,
                    member_id,
                    instance_id,
                    protocol_type,
                    protocol_name,
                    assignments,
                    tx,
                );
            }
        });
        if let Some(tx) = tx {
            let _ = tx.send(SyncResult::error(GroupError::UnknownMember {
                group: group_id.to_string(),
                member_id: member_id.to_string(),
            }));
        }
        rx
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        now: i64,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.check_member_api(group_id)?;
        self.with_group(group_id, |g| {
            g.heartbeat(now, member_id, instance_id, generation)
        })
        .unwrap_or_else(|| {
            Err(GroupError::UnknownMember {
                group: group_id.to_string(),
                member_id: member_id.to_string(),
            })
        })
    }

    /// LeaveGroup of one or more members: the group-level result, then one
    /// result per member in request order.
    pub fn leave(
        &self,
        now: i64,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.check_member_api(group_id)?;
        let unknown = |m: &str| GroupError::UnknownMember {
            group: group_id.to_string(),
            member_id: m.to_string(),
        };
        Ok(self
            .with_group(group_id, |g| {
                members
                    .iter()
                    .map(|(m, i)| g.leave(now, &self.cfg, m, i.as_deref()))
                    .collect()
            })
            .unwrap_or_else(|| members.iter().map(|(m, _)| Err(unknown(m))).collect()))
    }

    /// Validates an OffsetCommit and queues its accepted offsets for the
    /// metadata log (in call order).
    #[allow(clippy::too_many_arguments)]
    pub fn commit(
        &self,
        now: i64,
        meta: &MetaState,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<OffsetEntry>,
    ) -> CommitTicket {
        let all = |e: GroupError, n: usize| CommitTicket {
            refused: vec![Some(e); n],
            pending: None,
        };
        let n = offsets.len();
        if let Err(e) = self.check_offset_api(group_id) {
            return all(e, n);
        }
        let consumer = self.consumer_validate_commit(meta, group_id, member_id, generation);
        let verdict = consumer
            .or_else(|| {
                self.with_group(group_id, |g| {
                    g.validate_commit(now, generation, member_id, instance_id)
                })
            })
            .unwrap_or_else(|| {
                if meta.groups.group(group_id).is_some() {
                    // Offsets but no members (e.g. after a restart): an empty group.
                    Group::new(group_id, now).validate_commit(
                        now,
                        generation,
                        member_id,
                        instance_id,
                    )
                } else if generation < 0 {
                    Ok(())
                } else {
                    Err(GroupError::IllegalGeneration {
                        group: group_id.to_string(),
                        generation,
                        current: -1,
                    })
                }
            });
        if let Err(e) = verdict {
            return all(e, n);
        }
        let mut refused = Vec::with_capacity(n);
        let mut accepted = Vec::with_capacity(n);
        for o in offsets {
            let known = meta.topic(&o.topic).is_some_and(|t| {
                usize::try_from(o.partition).is_ok_and(|p| p < t.partitions.len())
            });
            let e = if !known {
                Some(GroupError::UnknownTopicOrPartition {
                    topic: o.topic.clone(),
                    partition: o.partition,
                })
            } else if o.metadata.len() > MAX_OFFSET_METADATA_LEN {
                Some(GroupError::MetadataTooLarge {
                    len: o.metadata.len(),
                    max: MAX_OFFSET_METADATA_LEN,
                })
            } else if o.offset < 0 {
                Some(GroupError::InvalidRequest {
                    reason: format!(
                        "negative offset {} for {}-{}",
                        o.offset, o.topic, o.partition
                    ),
                })
            } else {
                None
            };
            if e.is_none() {
                accepted.push(o);
            }
            refused.push(e);
        }
        if accepted.is_empty() {
            return CommitTicket {
                refused,
                pending: None,
            };
        }
        let (tx, rx) = oneshot::channel();
        let job = Job::Commit {
            group: group_id.to_string(),
            offsets: accepted,
            reply: tx,
        };
        if let Err(e) = self.queue.push(job) {
            return all(e, n);
        }
        CommitTicket {
            refused,
            pending: Some(rx),
        }
    }

    /// Queues a group command for the metadata log and awaits it.
    pub async fn submit(&self, cmd: GroupCommand) -> Result<GroupOutput, GroupError> {
        let rx = self.enqueue(cmd)?;
        rx.await.unwrap_or_else(|_| {
            Err(GroupError::CoordinatorNotAvailable {
                reason: "the metadata writer stopped".into(),
            })
        })
    }

    /// Queues a group command; the answer arrives on the channel.
    pub fn enqueue(
        &self,
        cmd: GroupCommand,
    ) -> Result<oneshot::Receiver<Result<GroupOutput, GroupError>>, GroupError> {
        let (tx, rx) = oneshot::channel();
        self.queue.push(Job::Command { cmd, reply: tx })?;
        Ok(rx)
    }

    /// OffsetFetch: committed offsets of the listed partitions (`None`: all
    /// the group has). Partitions without a commit answer `None`.
    pub fn fetch_offsets(
        &self,
        meta: &MetaState,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<FetchedOffsets, GroupError> {
        self.check_offset_api(group_id)?;
        let g = meta.groups.group(group_id);
        Ok(match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(t, parts)| {
                    let found = parts
                        .into_iter()
                        .map(|p| (p, g.and_then(|g| g.get(&t, p)).cloned()))
                        .collect();
                    (t, found)
                })
                .collect(),
            None => g
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(t, parts)| {
                            (
                                t.clone(),
                                parts.iter().map(|(p, c)| (*p, Some(c.clone()))).collect(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// ListGroups: groups with members or committed offsets.
    pub fn list(&self, meta: &MetaState) -> Vec<ListedGroup> {
        let mut out: BTreeMap<String, ListedGroup> = BTreeMap::new();
        for (id, slot) in self.inner.lock().groups.iter() {
            // A group that never completed a rebalance and has no offsets
            // is not worth listing (Kafka lists emptied groups until cleanup).
            if slot.group.is_idle()
                && slot.group.generation() == 0
                && meta.groups.group(id).is_none()
            {
                continue;
            }
            out.insert(
                id.clone(),
                ListedGroup {
                    group_id: id.clone(),
                    protocol_type: slot.group.protocol_type().unwrap_or_default().to_string(),
                    state: slot.group.state().name(),
                    group_type: "classic",
                },
            );
        }
        for g in self.consumer_list(meta) {
            out.insert(g.group_id.clone(), g);
        }
        for id in meta.groups.groups.keys() {
            out.entry(id.clone()).or_insert_with(|| ListedGroup {
                group_id: id.clone(),
                protocol_type: String::new(),
                state: GroupState::Empty.name(),
                group_type: "classic",
            });
        }
        out.into_values().collect()
    }

    /// DescribeGroups of one group; `Ok(None)`: no such group (Dead).
    pub fn describe(
        &self,
        meta: &MetaState,
        group_id: &str,
    ) -> Result<Option<GroupSummary>, GroupError> {
        self.check_offset_api(group_id)?;
        if self.is_consumer_group(meta, group_id) {
            // As Kafka: DescribeGroups does not describe consumer groups.
            return Err(GroupError::GroupIdNotFound {
                group: group_id.to_string(),
            });
        }
        if let Some(s) = self.with_group(group_id, |g| g.summary()) {
            if !(s.members.is_empty()
                && s.state == GroupState::Empty
                && meta.groups.group(group_id).is_none()
                && s.generation_id == 0)
            {
                return Ok(Some(s));
            }
        }
        Ok(meta.groups.group(group_id).map(|_| GroupSummary {
            state: GroupState::Empty,
            protocol_type: String::new(),
            protocol: String::new(),
            generation_id: -1,
            leader: String::new(),
            members: Vec::new(),
        }))
    }

    /// DeleteGroups, first half: decides per group and queues the metadata
    /// deletion. Returns per group an immediate verdict (`Some(Ok)` done,
    /// `Some(Err)` refused, `None` = decided by the queued command).
    #[allow(clippy::type_complexity)]
    pub fn delete_groups(
        &self,
        meta: &MetaState,
        groups: &[String],
    ) -> (
        Vec<Option<Result<(), GroupError>>>,
        Option<oneshot::Receiver<Result<GroupOutput, GroupError>>>,
    ) {
        let mut verdicts = Vec::with_capacity(groups.len());
        let mut durable = Vec::new();
        let mut inner = self.inner.lock();
        for id in groups {
            if let Err(e) = self.check_offset_api(id) {
                verdicts.push(Some(Err(e)));
                continue;
            }
            match self.consumer_delete(meta, id) {
                Some(Err(e)) => {
                    verdicts.push(Some(Err(e)));
                    continue;
                }
                Some(Ok(())) => {
                    durable.push(id.clone());
                    verdicts.push(None);
                    continue;
                }
                None => {}
            }
            let soft = inner.groups.get(id).map(|s| s.group.state());
            match soft {
                Some(GroupState::Empty) | None => {
                    let had_soft = soft.is_some();
                    if let Some(s) = inner.groups.remove(id) {
                        inner.bytes -= s.bytes;
                    }
                    if meta.groups.group(id).is_some() {
                        durable.push(id.clone());
                        verdicts.push(None);
                    } else if had_soft {
                        verdicts.push(Some(Ok(())));
                    } else {
                        verdicts.push(Some(Err(GroupError::GroupIdNotFound { group: id.clone() })));
                    }
                }
                Some(_) => {
                    verdicts.push(Some(Err(GroupError::NonEmptyGroup { group: id.clone() })))
                }
            }
        }
        drop(inner);
        if durable.is_empty() {
            return (verdicts, None);
        }
        match self.enqueue(GroupCommand::DeleteGroups { groups: durable }) {
            Ok(rx) => (verdicts, Some(rx)),
            Err(e) => (
                verdicts
                    .into_iter()
                    .map(|v| v.or_else(|| Some(Err(e.clone()))))
                    .collect(),
                None,
            ),
        }
    }

    /// OffsetDelete, first half: the group-level verdict, per partition an
    /// immediate refusal or `None`, and the queued deletion.
    #[allow(clippy::type_complexity)]
    pub fn delete_offsets(
        &self,
        meta: &MetaState,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<
        (
            Vec<Option<GroupError>>,
            Option<oneshot::Receiver<Result<GroupOutput, GroupError>>>,
        ),
        GroupError,
    > {
        self.check_offset_api(group_id)?;
        let soft = self.with_group(group_id, |g| {
            (
                g.state(),
                g.protocol_type().map(str::to_string),
                g.subscribed_topics().cloned(),
            )
        });
        let durable = meta.groups.group(group_id).is_some();
        let subscribed: BTreeSet<String> = match &soft {
            None | Some((GroupState::Empty, _, _)) => {
                if soft.is_none() && !durable {
                    return Err(GroupError::GroupIdNotFound {
                        group: group_id.to_string(),
                    });
                }
                BTreeSet::new()
            }
            Some((_, Some(pt), topics)) if pt == protocol::CONSUMER => {
                topics.clone().unwrap_or_default()
            }
            Some(_) => {
                return Err(GroupError::NonEmptyGroup {
                    group: group_id.to_string(),
                })
            }
        };
        let mut verdicts = Vec::with_capacity(partitions.len());
        let mut delete = Vec::new();
        for (t, p) in partitions {
            let known = meta
                .topic(t)
                .is_some_and(|x| usize::try_from(*p).is_ok_and(|i| i < x.partitions.len()));
            if !known {
                verdicts.push(Some(GroupError::UnknownTopicOrPartition {
                    topic: t.clone(),
                    partition: *p,
                }));
            } else if subscribed.contains(t) {
                verdicts.push(Some(GroupError::SubscribedToTopic {
                    group: group_id.to_string(),
                    topic: t.clone(),
                }));
            } else {
                verdicts.push(None);
                delete.push((t.clone(), *p));
            }
        }
        if delete.is_empty() || !durable {
            return Ok((verdicts, None));
        }
        let rx = self.enqueue(GroupCommand::DeleteOffsets {
            group: group_id.to_string(),
            partitions: delete,
        })?;
        Ok((verdicts, Some(rx)))
    }

    /// Enforces every group's deadlines.
    pub fn tick(&self, now: i64) {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let mut total = 0;
        for slot in inner.groups.values_mut() {
            slot.group.tick(now, &self.cfg);
            slot.bytes = slot.group.bytes();
            total += slot.bytes;
            let e = slot.group.take_events();
            self.rebalances.fetch_add(e.rebalances, Relaxed);
            self.members_expired.fetch_add(e.members_expired, Relaxed);
        }
        inner.bytes = total;
    }

    /// Stops serving: parked JoinGroup/SyncGroup requests are answered
    /// NOT_COORDINATOR (as Kafka does when a coordinator unloads a group).
    pub fn shut_down(&self) {
        self.shutting_down.store(true, Relaxed);
        let e = GroupError::NotCoordinator {
            group: String::new(),
            coordinator: -1,
        };
        for slot in self.inner.lock().groups.values_mut() {
            slot.group.fail_waiters(&e);
        }
    }

    /// The offset expiry pass: drops idle in-memory groups without offsets
    /// and returns the expiry command, if any offset is due.
    pub fn retention_pass(&self, now: i64, meta: &MetaState) -> Option<GroupCommand> {
        let retention = self.cfg.offsets_retention_ms;
        let mut inner = self.inner.lock();
        inner
            .groups
            .retain(|id, s| !(s.group.is_idle() && meta.groups.group(id).is_none()));
        let mut candidates = Vec::new();
        for (id, offsets) in &meta.groups.groups {
            let consumer = self.consumer_keep_topics(meta, id);
            let eg = match inner.groups.get(id) {
                _ if consumer.is_some() => ExpireGroup {
                    group: id.clone(),
                    empty_since_ms: None,
                    keep_topics: consumer.unwrap_or_default(),
                },
                None => ExpireGroup {
                    group: id.clone(),
                    empty_since_ms: None,
                    keep_topics: Vec::new(),
                },
                Some(s) => match s.group.state() {
                    GroupState::Empty => ExpireGroup {
                        group: id.clone(),
                        empty_since_ms: s.group.empty_since_ms(),
                        keep_topics: Vec::new(),
                    },
                    GroupState::Stable if s.group.protocol_type() == Some(protocol::CONSUMER) => {
                        match s.group.subscribed_topics() {
                            Some(t) => ExpireGroup {
                                group: id.clone(),
                                empty_since_ms: None,
                                keep_topics: t.iter().cloned().collect(),
                            },
                            None => continue,
                        }
                    }
                    _ => continue,
                },
            };
            let floor = eg.empty_since_ms.unwrap_or(i64::MIN);
            let due = offsets.offsets.iter().any(|(t, parts)| {
                !eg.keep_topics.contains(t)
                    && parts.values().any(|o| {
                        o.commit_timestamp_ms
                            .max(floor)
                            .checked_add(retention)
                            .is_some_and(|d| d <= now)
                    })
            });
            if due {
                candidates.push(eg);
            }
        }
        (!candidates.is_empty()).then_some(GroupCommand::ExpireOffsets {
            now_ms: now,
            retention_ms: retention,
            groups: candidates,
        })
    }

    fn member_counts(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .inner
            .lock()
            .groups
            .iter()
            .filter(|(_, s)| !s.group.is_empty())
            .map(|(id, s)| (id.clone(), s.group.len()))
            .collect();
        v.extend(self.consumer_member_counts());
        v.sort();
        v
    }

    fn counters(&self) -> (u64, u64, u64) {
        (
            self.rebalances.load(Relaxed),
            self.members_expired.load(Relaxed),
            self.offset_commits.load(Relaxed),
        )
    }

    fn state_counts(&self, meta: &MetaState) -> BTreeMap<&'static str, usize> {
        let mut m: BTreeMap<&'static str, usize> = BTreeMap::new();
        for g in self.list(meta) {
            *m.entry(g.state).or_default() += 1;
        }
        m
    }
}

/// The broker of `live` that coordinates `key` (a group or transactional
/// id): the one with the highest hash of (key, broker id), so removing a
/// broker moves only the keys it had, and adding one takes about 1/n of
/// them. `live` must not be empty.
pub fn place(key: &str, live: &[i32]) -> i32 {
    let base = crc32c::crc32c(key.as_bytes());
    let score = |b: i32| {
        // crc32c then a 64-bit finalizer (splitmix64): crc alone is linear,
        // so scores of nearby broker ids would be correlated.
        let mut z =
            u64::from(crc32c::crc32c_append(base, &b.to_be_bytes())) ^ (u64::from(base) << 32);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    };
    live.iter()
        .copied()
        .max_by_key(|&b| (score(b), b))
        .unwrap_or(-1)
}

#[cfg(test)]
mod place_tests {
    use super::place;

    #[test]
    fn a_dead_broker_moves_only_its_own_keys_and_keys_spread_evenly() {
        let keys: Vec<String> = (0..3000).map(|i| format!("group-{i}")).collect();
        let three = [1, 2, 3];
        let two = [1, 3];
        let mut per = std::collections::HashMap::new();
        for k in &keys {
            let before = place(k, &three);
            *per.entry(before).or_insert(0) += 1;
            let after = place(k, &two);
            if before != 2 {
                assert_eq!(before, after, "{k} moved though its broker lives");
            } else {
                assert!(after == 1 || after == 3);
            }
            // Every broker computes the same answer, in any order.
            assert_eq!(place(k, &[3, 1, 2]), before);
        }
        for b in three {
            let n = per[&b];
            assert!((800..=1200).contains(&n), "broker {b} got {n} of 3000");
        }
        // Growing to four takes about a quarter, all to the new broker.
        let four = [1, 2, 3, 4];
        let moved: Vec<_> = keys
            .iter()
            .filter(|k| place(k, &four) != place(k, &three))
            .collect();
        assert!(moved.iter().all(|k| place(k, &four) == 4));
        assert!((600..=900).contains(&moved.len()), "{} moved", moved.len());
        assert_eq!(place("g", &[]), -1);
    }
}

#[cfg(test)]
mod tests;
