//! Transaction coordinator state (exactly-once): per transactional id its
//! producer id and epoch, state, the partitions and groups it touched, the
//! offsets it will commit, and its deadline. It lives in the replicated
//! metadata, so the coordinator that takes over a transactional id (when
//! its broker dies or leaves) finishes or aborts what the last one left.
//!
//! States follow Kafka's: `Empty` → (AddPartitions/AddOffsets) `Ongoing` →
//! (EndTxn, or the timeout) `PrepareCommit` / `PrepareAbort` → (markers
//! written to every partition) `CompleteCommit` / `CompleteAbort`. A
//! transaction's staged group offsets become committed offsets only in
//! `Complete` of a commit.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::error::MetaError;
use super::groups::GroupCommit;
use super::state::MetaState;

/// Kafka codes of coordinator refusals.
pub mod codes {
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const PRODUCER_FENCED: i16 = 90;
}

/// Longest `transaction.timeout.ms` accepted (Kafka's
/// `transaction.max.timeout.ms` default: 15 minutes).
pub const MAX_TXN_TIMEOUT_MS: i32 = 900_000;
/// Most partitions one transaction may touch.
pub const MAX_TXN_PARTITIONS: usize = 10_000;
/// Most transactional ids kept.
pub const MAX_TXN_IDS: usize = 100_000;
/// Longest transactional id.
pub const MAX_TXN_ID_LEN: usize = 249;

/// Where a transaction is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnStatus {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnStatus {
    /// Kafka's name (DescribeTransactions, ListTransactions).
    pub fn kafka_name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
        }
    }

    /// Markers are being written: the coordinator must finish it.
    pub fn is_prepare(self) -> bool {
        matches!(self, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort)
    }
}

/// One transactional id.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    /// (topic, partition) pairs written in the current transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups whose offsets the transaction commits.
    pub groups: BTreeSet<String>,
    /// Offsets staged by TxnOffsetCommit, committed with the transaction.
    pub pending_offsets: Vec<GroupCommit>,
    /// When the current transaction started (its first partition or group).
    pub started_ms: i64,
    /// Last state change.
    pub updated_ms: i64,
}

/// Every transactional id's state (part of [`MetaState`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct TxnsState {
    pub txns: super::Map<String, TxnMeta>,
    /// Producer id -> transactional id.
    #[serde(default)]
    pub by_pid: super::Map<i64, String>,
}

/// Commands of the transaction coordinator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum TxnCommand {
    /// InitProducerId with a transactional id: a new producer id, or the
    /// same one with a bumped epoch (fencing older instances). An ongoing
    /// transaction is first moved to `PrepareAbort` (output `Aborting`).
    InitProducer {
        transactional_id: String,
        timeout_ms: i32,
        now_ms: i64,
    },
    /// AddPartitionsToTxn.
    AddPartitions {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<(String, i32)>,
        now_ms: i64,
    },
    /// AddOffsetsToTxn.
    AddGroup {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        group: String,
        now_ms: i64,
    },
    /// TxnOffsetCommit: stage offsets until the transaction ends.
    StageOffsets {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        commit: GroupCommit,
    },
    /// EndTxn: `Ongoing` → `PrepareCommit` / `PrepareAbort`.
    End {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    },
    /// The coordinator aborts a transaction past its timeout, bumping the
    /// epoch so the producer is fenced.
    Expire {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        now_ms: i64,
    },
    /// Markers are written: `Prepare*` → `Complete*`; a commit's staged
    /// offsets become committed offsets.
    Complete {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        now_ms: i64,
    },
}

/// Outputs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum TxnOutput {
    /// The producer id and epoch to use.
    Initialized {
        producer_id: i64,
        producer_epoch: i16,
    },
    /// An ongoing transaction must be aborted first (now `PrepareAbort`,
    /// epoch bumped): write its markers, complete it, then init again.
    Aborting,
    /// The transaction's state after the command.
    State(Box<TxnMeta>),
}

fn refuse(id: &str, code: i16, reason: impl Into<String>) -> MetaError {
    MetaError::Txn {
        transactional_id: id.to_string(),
        code,
        reason: reason.into(),
    }
}

impl TxnsState {
    /// The transaction's state if `producer_id`/`producer_epoch` is its
    /// current producer.
    fn producer(&self, id: &str, producer_id: i64, epoch: i16) -> Result<&TxnMeta, MetaError> {
        let t = self.txns.get(id).ok_or_else(|| {
            refuse(
                id,
                codes::INVALID_PRODUCER_ID_MAPPING,
                "unknown transactional id",
            )
        })?;
        if t.producer_id != producer_id {
            return Err(refuse(
                id,
                codes::INVALID_PRODUCER_ID_MAPPING,
                format!("producer id {producer_id} is not {}", t.producer_id),
            ));
        }
        if epoch != t.producer_epoch {
            return Err(refuse(
                id,
                codes::PRODUCER_FENCED,
                format!(
                    "producer epoch {epoch} fenced by epoch {}",
                    t.producer_epoch
                ),
            ));
        }
        Ok(t)
    }

    /// Would the command apply?
    pub fn check(&self, cmd: &TxnCommand, state: &MetaState) -> Result<(), MetaError> {
        match cmd {
            TxnCommand::InitProducer {
                transactional_id: id,
                timeout_ms,
                ..
            } => {
                if id.is_empty() || id.len() > MAX_TXN_ID_LEN {
                    return Err(MetaError::InvalidRequest {
                        reason: format!("transactional id must be 1..={MAX_TXN_ID_LEN} bytes"),
                    });
                }
                if !(1..=MAX_TXN_TIMEOUT_MS).contains(timeout_ms) {
                    return Err(refuse(
                        id,
                        codes::INVALID_TRANSACTION_TIMEOUT,
                        format!("transaction.timeout.ms must be in 1..={MAX_TXN_TIMEOUT_MS}, got {timeout_ms}"),
                    ));
                }
                match self.txns.get(id) {
                    None if self.txns.len() >= MAX_TXN_IDS => Err(MetaError::PolicyViolation {
                        reason: format!("more than {MAX_TXN_IDS} transactional ids"),
                    }),
                    None => state
                        .next_producer_id
                        .checked_add(1)
                        .map(|_| ())
                        .ok_or_else(|| MetaError::InvalidRequest {
                            reason: "producer ids exhausted".into(),
                        }),
                    Some(t) => not_completing(id, t),
                }
            }
            TxnCommand::AddPartitions {
                transactional_id: id,
                producer_id,
                producer_epoch,
                partitions,
                ..
            } => {
                let t = self.producer(id, *producer_id, *producer_epoch)?;
                not_completing(id, t)?;
                for (topic, p) in partitions {
                    let known = state
                        .topics
                        .get(topic)
                        .is_some_and(|x| *p >= 0 && (*p as usize) < x.partitions.len());
                    if !known {
                        return Err(MetaError::UnknownPartition {
                            name: topic.clone(),
                            partition: *p,
                        });
                    }
                }
                if t.partitions.len() + partitions.len() > MAX_TXN_PARTITIONS {
                    return Err(MetaError::PolicyViolation {
                        reason: format!(
                            "more than {MAX_TXN_PARTITIONS} partitions in a transaction"
                        ),
                    });
                }
                Ok(())
            }
            TxnCommand::AddGroup {
                transactional_id: id,
                producer_id,
                producer_epoch,
                group,
                ..
            } => {
                super::groups::validate_group_id(group)?;
                let t = self.producer(id, *producer_id, *producer_epoch)?;
                not_completing(id, t)?;
                if t.groups.len() >= 1000 {
                    return Err(MetaError::PolicyViolation {
                        reason: "more than 1000 groups in a transaction".into(),
                    });
                }
                Ok(())
            }
            TxnCommand::StageOffsets {
                transactional_id: id,
                producer_id,
                producer_epoch,
                commit,
            } => {
                let t = self.producer(id, *producer_id, *producer_epoch)?;
                if t.status != TxnStatus::Ongoing || !t.groups.contains(&commit.group) {
                    return Err(refuse(
                        id,
                        codes::INVALID_TXN_STATE,
                        format!("group {} was not added to the transaction", commit.group),
                    ));
                }
                let staged: usize = t.pending_offsets.iter().map(|c| c.offsets.len()).sum();
                if staged + commit.offsets.len() > MAX_TXN_PARTITIONS {
                    return Err(MetaError::PolicyViolation {
                        reason: format!("more than {MAX_TXN_PARTITIONS} offsets in a transaction"),
                    });
                }
                state.groups.check(
                    &super::groups::GroupCommand::CommitOffsets {
                        timestamp_ms: 0,
                        commits: vec![commit.clone()],
                    },
                    &state.topics,
                )
            }
            TxnCommand::End {
                transactional_id: id,
                producer_id,
                producer_epoch,
                commit,
                ..
            } => {
                let t = self.producer(id, *producer_id, *producer_epoch)?;
                match (t.status, commit) {
                    (TxnStatus::Ongoing, _) => Ok(()),
                    // A retried EndTxn of a finished transaction.
                    (TxnStatus::CompleteCommit | TxnStatus::PrepareCommit, true)
                    | (TxnStatus::CompleteAbort | TxnStatus::PrepareAbort, false) => Ok(()),
                    // Nothing was written: an empty commit or abort.
                    (TxnStatus::Empty, _) => Ok(()),
                    (s, _) => Err(refuse(
                        id,
                        codes::INVALID_TXN_STATE,
                        format!(
                            "cannot {} in state {}",
                            if *commit { "commit" } else { "abort" },
                            s.kafka_name()
                        ),
                    )),
                }
            }
            TxnCommand::Expire {
                transactional_id: id,
                producer_id,
                producer_epoch,
                ..
            } => {
                let t = self.producer(id, *producer_id, *producer_epoch)?;
                if t.status != TxnStatus::Ongoing {
                    return Err(refuse(id, codes::INVALID_TXN_STATE, "not ongoing"));
                }
                Ok(())
            }
            TxnCommand::Complete {
                transactional_id: id,
                producer_id,
                producer_epoch,
                ..
            } => {
                let t = self.producer(id, *producer_id, *producer_epoch)?;
                if !t.status.is_prepare() {
                    return Err(refuse(id, codes::INVALID_TXN_STATE, "not completing"));
                }
                Ok(())
            }
        }
    }

    /// Applies a checked command. `next_producer_id` is the state's
    /// producer id counter (one id per new transactional id).
    pub fn apply_checked(
        &mut self,
        cmd: TxnCommand,
        next_producer_id: &mut i64,
        groups: &mut super::groups::GroupsState,
        topics: &super::Map<String, super::state::Topic>,
    ) -> TxnOutput {
        match cmd {
            TxnCommand::InitProducer {
                transactional_id,
                timeout_ms,
                now_ms,
            } => {
                let fresh = |pid: i64| TxnMeta {
                    producer_id: pid,
                    producer_epoch: 0,
                    timeout_ms,
                    status: TxnStatus::Empty,
                    partitions: BTreeSet::new(),
                    groups: BTreeSet::new(),
                    pending_offsets: Vec::new(),
                    started_ms: now_ms,
                    updated_ms: now_ms,
                };
                let Some(t) = self.txns.get_mut(&transactional_id) else {
                    let pid = *next_producer_id;
                    *next_producer_id += 1;
                    self.by_pid.insert(pid, transactional_id.clone());
                    self.txns.insert(transactional_id, fresh(pid));
                    return TxnOutput::Initialized {
                        producer_id: pid,
                        producer_epoch: 0,
                    };
                };
                if t.status == TxnStatus::Ongoing {
                    t.producer_epoch = t.producer_epoch.saturating_add(1);
                    t.status = TxnStatus::PrepareAbort;
                    t.updated_ms = now_ms;
                    return TxnOutput::Aborting;
                }
                if t.producer_epoch >= i16::MAX - 1 {
                    let pid = *next_producer_id;
                    *next_producer_id += 1;
                    self.by_pid.remove(&t.producer_id);
                    *t = fresh(pid);
                    self.by_pid.insert(pid, transactional_id.clone());
                } else {
                    t.producer_epoch += 1;
                    t.timeout_ms = timeout_ms;
                    t.status = TxnStatus::Empty;
                    t.partitions.clear();
                    t.groups.clear();
                    t.pending_offsets.clear();
                    t.updated_ms = now_ms;
                }
                TxnOutput::Initialized {
                    producer_id: t.producer_id,
                    producer_epoch: t.producer_epoch,
                }
            }
            TxnCommand::AddPartitions {
                transactional_id,
                partitions,
                now_ms,
                ..
            } => {
                let t = self.txns.get_mut(&transactional_id).expect("checked");
                begin(t, now_ms);
                t.partitions.extend(partitions);
                TxnOutput::State(Box::new(t.clone()))
            }
            TxnCommand::AddGroup {
                transactional_id,
                group,
                now_ms,
                ..
            } => {
                let t = self.txns.get_mut(&transactional_id).expect("checked");
                begin(t, now_ms);
                t.groups.insert(group);
                TxnOutput::State(Box::new(t.clone()))
            }
            TxnCommand::StageOffsets {
                transactional_id,
                commit,
                ..
            } => {
                let t = self.txns.get_mut(&transactional_id).expect("checked");
                t.pending_offsets.push(commit);
                TxnOutput::State(Box::new(t.clone()))
            }
            TxnCommand::End {
                transactional_id,
                commit,
                now_ms,
                ..
            } => {
                let t = self.txns.get_mut(&transactional_id).expect("checked");
                match t.status {
                    TxnStatus::Ongoing => {
                        t.status = if commit {
                            TxnStatus::PrepareCommit
                        } else {
                            TxnStatus::PrepareAbort
                        };
                        t.updated_ms = now_ms;
                    }
                    TxnStatus::Empty => {
                        t.status = if commit {
                            TxnStatus::CompleteCommit
                        } else {
                            TxnStatus::CompleteAbort
                        };
                        t.updated_ms = now_ms;
                    }
                    _ => {}
                }
                TxnOutput::State(Box::new(t.clone()))
            }
            TxnCommand::Expire {
                transactional_id,
                now_ms,
                ..
            } => {
                let t = self.txns.get_mut(&transactional_id).expect("checked");
                t.producer_epoch = t.producer_epoch.saturating_add(1);
                t.status = TxnStatus::PrepareAbort;
                t.updated_ms = now_ms;
                TxnOutput::State(Box::new(t.clone()))
            }
            TxnCommand::Complete {
                transactional_id,
                now_ms,
                ..
            } => {
                let t = self.txns.get_mut(&transactional_id).expect("checked");
                let commit = t.status == TxnStatus::PrepareCommit;
                let staged = std::mem::take(&mut t.pending_offsets);
                if commit && !staged.is_empty() {
                    // Offsets of partitions deleted meanwhile are dropped.
                    let commits: Vec<GroupCommit> = staged
                        .into_iter()
                        .map(|mut c| {
                            c.offsets.retain(|o| {
                                topics.get(&o.topic).is_some_and(|x| {
                                    o.partition >= 0 && (o.partition as usize) < x.partitions.len()
                                })
                            });
                            c
                        })
                        .collect();
                    let names: Vec<String> = commits.iter().map(|c| c.group.clone()).collect();
                    groups.apply_checked(
                        super::groups::GroupCommand::CommitOffsets {
                            timestamp_ms: now_ms,
                            commits,
                        },
                        topics,
                    );
                    for g in names {
                        if let Some(g) = groups.groups.get_mut(&g) {
                            g.transactional = true;
                        }
                    }
                }
                t.status = if commit {
                    TxnStatus::CompleteCommit
                } else {
                    TxnStatus::CompleteAbort
                };
                t.partitions.clear();
                t.groups.clear();
                t.updated_ms = now_ms;
                TxnOutput::State(Box::new(t.clone()))
            }
        }
    }

    /// Offsets a transaction of `group` has staged for this partition and
    /// not yet committed or aborted (OffsetFetch `require_stable`).
    pub fn pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.txns.values().any(|t| {
            t.pending_offsets.iter().any(|c| {
                c.group == group
                    && c.offsets
                        .iter()
                        .any(|o| o.topic == topic && o.partition == partition)
            })
        })
    }

    /// The transaction of a producer id (the leader's check that a
    /// transactional write belongs to an ongoing transaction).
    pub fn of_producer(&self, producer_id: i64) -> Option<(&String, &TxnMeta)> {
        let id = self.by_pid.get(&producer_id)?;
        Some((id, self.txns.get(id)?))
    }
}

/// CONCURRENT_TRANSACTIONS while the last transaction's markers are
/// being written.
fn not_completing(id: &str, t: &TxnMeta) -> Result<(), MetaError> {
    if t.status.is_prepare() {
        return Err(refuse(
            id,
            codes::CONCURRENT_TRANSACTIONS,
            "the last transaction is completing",
        ));
    }
    Ok(())
}

fn begin(t: &mut TxnMeta, now_ms: i64) {
    if t.status != TxnStatus::Ongoing {
        t.status = TxnStatus::Ongoing;
        t.started_ms = now_ms;
        t.partitions.clear();
        t.groups.clear();
        t.pending_offsets.clear();
    }
    t.updated_ms = now_ms;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::groups::OffsetEntry;
    use crate::meta::{Command, CommandOutput};

    fn state() -> MetaState {
        let mut s = MetaState::new();
        s.apply(Command::RegisterBroker {
            broker_id: 1,
            host: "h".into(),
            port: 9092,
            rack: None,
        })
        .unwrap();
        s.apply(Command::CreateTopic {
            name: "t".into(),
            topic_id: uuid::Uuid::from_u128(1),
            partitions: 2,
            replication_factor: -1,
            configs: Default::default(),
            leader: 1,
            created_at_ms: 0,
        })
        .unwrap();
        s
    }

    fn txn(s: &mut MetaState, c: TxnCommand) -> Result<TxnOutput, MetaError> {
        s.apply(Command::Txn(c)).map(|o| match o {
            CommandOutput::Txn(t) => t,
            o => panic!("{o:?}"),
        })
    }

    fn init(s: &mut MetaState, id: &str) -> (i64, i16) {
        match txn(
            s,
            TxnCommand::InitProducer {
                transactional_id: id.into(),
                timeout_ms: 60_000,
                now_ms: 0,
            },
        )
        .unwrap()
        {
            TxnOutput::Initialized {
                producer_id,
                producer_epoch,
            } => (producer_id, producer_epoch),
            o => panic!("{o:?}"),
        }
    }

    fn code(e: MetaError) -> i16 {
        e.kafka_code()
    }

    #[test]
    fn a_new_instance_fences_the_old_and_aborts_its_transaction() {
        let mut s = state();
        let (pid, e0) = init(&mut s, "x");
        assert_eq!(e0, 0);
        txn(
            &mut s,
            TxnCommand::AddPartitions {
                transactional_id: "x".into(),
                producer_id: pid,
                producer_epoch: 0,
                partitions: vec![("t".into(), 0)],
                now_ms: 5,
            },
        )
        .unwrap();
        assert_eq!(
            s.txns.of_producer(pid).unwrap().1.status,
            TxnStatus::Ongoing
        );
        // A second instance: the open transaction must be aborted first.
        let out = txn(
            &mut s,
            TxnCommand::InitProducer {
                transactional_id: "x".into(),
                timeout_ms: 60_000,
                now_ms: 6,
            },
        )
        .unwrap();
        assert_eq!(out, TxnOutput::Aborting);
        let t = s.txns.txns["x"].clone();
        assert_eq!((t.status, t.producer_epoch), (TxnStatus::PrepareAbort, 1));
        // The zombie (epoch 0) can do nothing any more.
        let e = txn(
            &mut s,
            TxnCommand::End {
                transactional_id: "x".into(),
                producer_id: pid,
                producer_epoch: 0,
                commit: true,
                now_ms: 7,
            },
        )
        .unwrap_err();
        assert_eq!(code(e), codes::PRODUCER_FENCED);
        // Init again while completing: CONCURRENT_TRANSACTIONS.
        let e = txn(
            &mut s,
            TxnCommand::InitProducer {
                transactional_id: "x".into(),
                timeout_ms: 60_000,
                now_ms: 8,
            },
        )
        .unwrap_err();
        assert_eq!(code(e), codes::CONCURRENT_TRANSACTIONS);
        txn(
            &mut s,
            TxnCommand::Complete {
                transactional_id: "x".into(),
                producer_id: pid,
                producer_epoch: 1,
                now_ms: 9,
            },
        )
        .unwrap();
        assert_eq!(s.txns.txns["x"].status, TxnStatus::CompleteAbort);
        assert_eq!(init(&mut s, "x"), (pid, 2));
    }

    #[test]
    fn staged_offsets_commit_only_with_the_transaction() {
        for commit in [true, false] {
            let mut s = state();
            let (pid, ep) = init(&mut s, "y");
            txn(
                &mut s,
                TxnCommand::AddGroup {
                    transactional_id: "y".into(),
                    producer_id: pid,
                    producer_epoch: ep,
                    group: "g".into(),
                    now_ms: 1,
                },
            )
            .unwrap();
            let offsets = GroupCommit {
                group: "g".into(),
                offsets: vec![OffsetEntry {
                    topic: "t".into(),
                    partition: 1,
                    offset: 42,
                    leader_epoch: -1,
                    metadata: String::new(),
                }],
            };
            txn(
                &mut s,
                TxnCommand::StageOffsets {
                    transactional_id: "y".into(),
                    producer_id: pid,
                    producer_epoch: ep,
                    commit: offsets,
                },
            )
            .unwrap();
            assert!(s.txns.pending_offset("g", "t", 1));
            assert!(s.groups.group("g").is_none(), "visible before the commit");
            txn(
                &mut s,
                TxnCommand::End {
                    transactional_id: "y".into(),
                    producer_id: pid,
                    producer_epoch: ep,
                    commit,
                    now_ms: 2,
                },
            )
            .unwrap();
            txn(
                &mut s,
                TxnCommand::Complete {
                    transactional_id: "y".into(),
                    producer_id: pid,
                    producer_epoch: ep,
                    now_ms: 3,
                },
            )
            .unwrap();
            assert!(!s.txns.pending_offset("g", "t", 1));
            let got = s
                .groups
                .group("g")
                .and_then(|g| g.get("t", 1))
                .map(|o| o.offset);
            assert_eq!(got, commit.then_some(42), "commit={commit}");
            // A group committed by a transaction has its lag measured to
            // the last stable offset.
            assert_eq!(s.groups.group("g").is_some_and(|g| g.transactional), commit);
        }
    }

    #[test]
    fn expiry_bumps_the_epoch_and_bad_inputs_are_refused() {
        let mut s = state();
        let (pid, ep) = init(&mut s, "z");
        let add = |p: i32| TxnCommand::AddPartitions {
            transactional_id: "z".into(),
            producer_id: pid,
            producer_epoch: ep,
            partitions: vec![("t".into(), p)],
            now_ms: 1,
        };
        assert!(matches!(
            s.apply(Command::Txn(add(7))),
            Err(MetaError::UnknownPartition { .. })
        ));
        txn(&mut s, add(0)).unwrap();
        txn(
            &mut s,
            TxnCommand::Expire {
                transactional_id: "z".into(),
                producer_id: pid,
                producer_epoch: ep,
                now_ms: 70_000,
            },
        )
        .unwrap();
        let t = &s.txns.txns["z"];
        assert_eq!((t.status, t.producer_epoch), (TxnStatus::PrepareAbort, 1));
        let e = txn(
            &mut s,
            TxnCommand::InitProducer {
                transactional_id: "w".into(),
                timeout_ms: MAX_TXN_TIMEOUT_MS + 1,
                now_ms: 0,
            },
        )
        .unwrap_err();
        assert_eq!(code(e), codes::INVALID_TRANSACTION_TIMEOUT);
        s.check_invariants().unwrap();
    }
}
