//! Property tests over every [`Command`] variant: commands survive a JSON
//! round trip, replicas that apply the same command sequence (accepted or
//! refused) end in identical states, and the state's invariants hold after
//! every step.

use proptest::prelude::*;
use uuid::Uuid;

use super::command::{Command, LeadPartition};
use super::groups::{ExpireGroup, GroupCommand, GroupCommit, OffsetEntry};
use super::tier::{SegmentCommit, WalExtent};
use super::MetaState;

const NAMES: [&str; 3] = ["a", "b", "c"];

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(&NAMES[..]).prop_map(str::to_string)
}

fn topic_id() -> impl Strategy<Value = Uuid> {
    (1u128..=4).prop_map(Uuid::from_u128)
}

fn offset() -> impl Strategy<Value = i64> {
    prop::sample::select(&[0i64, 5, 10, 15, 20, 30][..])
}

fn key() -> impl Strategy<Value = String> {
    (0u8..6).prop_map(|k| format!("obj/{k}"))
}

fn wal_extent() -> impl Strategy<Value = WalExtent> {
    (
        topic_id(),
        0i32..3,
        0i32..3,
        offset(),
        1i64..10,
        prop::option::of(0u8..3),
        prop::sample::select(&[0u64, 100, 200][..]),
    )
        .prop_map(|(t, p, e, base, n, grow, at)| WalExtent {
            topic_id: t,
            partition: p,
            leader_epoch: e,
            base_offset: base,
            end_offset: base + n,
            byte_offset: at,
            byte_len: 100,
            max_timestamp: 1,
            txn: Vec::new(),
            // Growing objects (local mode) share names with other keys
            // so refusals are exercised too.
            object: grow.map(|g| format!("obj/{g}")),
        })
}

fn segment() -> impl Strategy<Value = SegmentCommit> {
    (topic_id(), 0i32..3, 0i32..3, key(), offset(), offset()).prop_map(|(t, p, e, k, b, end)| {
        SegmentCommit {
            topic_id: t,
            partition: p,
            leader_epoch: e,
            index_key: format!("{k}.idx"),
            key: k,
            size: 10,
            index_size: 1,
            base_offset: b,
            end_offset: end,
            max_timestamp: 1,
            tombstone_ts: -1,
        }
    })
}

fn group_cmd() -> impl Strategy<Value = GroupCommand> {
    let entry = (name(), 0i32..3, 0i64..50).prop_map(|(t, p, o)| OffsetEntry {
        topic: t,
        partition: p,
        offset: o,
        leader_epoch: -1,
        metadata: String::new(),
    });
    prop_oneof![
        (0i64..100, prop::collection::vec(entry, 0..3)).prop_map(|(ts, offsets)| {
            GroupCommand::CommitOffsets {
                timestamp_ms: ts,
                commits: vec![GroupCommit {
                    group: "g".into(),
                    offsets,
                }],
            }
        }),
        Just(GroupCommand::DeleteGroups {
            groups: vec!["g".into()]
        }),
        (name(), 0i32..3).prop_map(|(t, p)| GroupCommand::DeleteOffsets {
            group: "g".into(),
            partitions: vec![(t, p)],
        }),
        (0i64..200).prop_map(|now| GroupCommand::ExpireOffsets {
            now_ms: now,
            retention_ms: 50,
            groups: vec![ExpireGroup {
                group: "g".into(),
                empty_since_ms: Some(0),
                keep_topics: vec![],
            }],
        }),
        (
            0i32..4,
            0i32..4,
            topic_id(),
            0i32..3,
            "[ab]",
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(ge, ae, t, p, m, remove, delete)| {
                use super::consumer_groups::{ConsumerGroupUpdate, ConsumerMember};
                let member = ConsumerMember {
                    member_id: m.clone(),
                    member_epoch: ae,
                    subscribed_topics: vec!["a".into()],
                    assigned: [(t, [p].into())].into(),
                    target: [(t, [p].into())].into(),
                    ..Default::default()
                };
                GroupCommand::ConsumerGroup(ConsumerGroupUpdate {
                    group: "g".into(),
                    group_epoch: ge,
                    assignment_epoch: ae,
                    assignor: "uniform".into(),
                    metadata_hash: 7,
                    upsert: if remove { vec![] } else { vec![member] },
                    remove: if remove { vec![m] } else { vec![] },
                    delete,
                })
            }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (1i32..3).prop_map(|b| Command::RegisterBroker {
            broker_id: b,
            host: "h".into(),
            port: 9092,
            rack: None
        }),
        (name(), topic_id(), 1i32..4, 1i32..3).prop_map(|(n, id, p, l)| Command::CreateTopic {
            name: n,
            topic_id: id,
            partitions: p,
            replication_factor: -1,
            configs: Default::default(),
            leader: l,
            created_at_ms: 0,
        }),
        (name(), proptest::option::of(topic_id())).prop_map(|(n, id)| Command::DeleteTopic {
            name: n,
            topic_id: id
        }),
        (name(), 1i32..6, proptest::option::of(topic_id())).prop_map(|(n, t, id)| {
            Command::CreatePartitions {
                name: n,
                new_total: t,
                leader: 1,
                topic_id: id,
            }
        }),
        (name(), any::<bool>(), proptest::option::of(topic_id())).prop_map(|(n, r, id)| {
            Command::AlterTopicConfigs {
                name: n,
                set: [("retention.ms".to_string(), "1000".to_string())].into(),
                delete: vec![],
                replace_all: r,
                topic_id: id,
            }
        }),
        (1i32..3, name(), 0i32..3, offset()).prop_map(|(b, n, p, leo)| Command::BecomeLeader {
            broker_id: b,
            partitions: vec![(n, p, leo)]
        }),
        (
            name(),
            0i32..3,
            offset(),
            proptest::option::of(topic_id()),
            proptest::option::of(0i32..3)
        )
            .prop_map(|(n, p, o, id, e)| Command::AdvanceLogStart {
                name: n,
                partition: p,
                offset: o,
                topic_id: id,
                leader_epoch: e
            }),
        (1i64..5).prop_map(|count| Command::AllocateProducerIds { count }),
        group_cmd().prop_map(Command::Group),
        (
            1i32..3,
            1i64..3,
            key(),
            prop::collection::vec(wal_extent(), 1..3)
        )
            .prop_map(|(b, e, k, extents)| Command::CommitWal {
                broker_id: b,
                broker_epoch: e,
                key: k,
                size: 1000,
                committed_at_ms: 5,
                extents
            }),
        segment().prop_map(|s| Command::CommitSegment {
            segment: s,
            committed_at_ms: 7
        }),
        prop::collection::vec(key(), 0..3).prop_map(|keys| Command::ForgetObjects { keys }),
        (prop::collection::vec(key(), 0..3), 0i64..10)
            .prop_map(|(keys, at_ms)| Command::CondemnObjects { keys, at_ms }),
        (1i32..3, 1i64..3).prop_map(|(b, e)| Command::FenceBroker {
            broker_id: b,
            broker_epoch: e
        }),
        (1i32..3, 1i64..3).prop_map(|(b, e)| Command::UnregisterBroker {
            broker_id: b,
            broker_epoch: e
        }),
        Just(Command::AllocateBrokerId),
        ("[ab]", 0i32..3, 1i64..4).prop_map(|(id, timeout, now)| Command::Txn(
            crate::meta::txn::TxnCommand::InitProducer {
                transactional_id: id,
                timeout_ms: timeout * 1000,
                now_ms: now
            }
        )),
        ("[ab]", 1000i64..1003, 0i16..2, 0i32..3, name()).prop_map(|(id, pid, ep, p, n)| {
            Command::Txn(crate::meta::txn::TxnCommand::AddPartitions {
                transactional_id: id,
                producer_id: pid,
                producer_epoch: ep,
                partitions: vec![(n, p)],
                now_ms: 1,
            })
        }),
        ("[ab]", 1000i64..1003, 0i16..2, any::<bool>()).prop_map(|(id, pid, ep, commit)| {
            Command::Txn(crate::meta::txn::TxnCommand::End {
                transactional_id: id,
                producer_id: pid,
                producer_epoch: ep,
                commit,
                now_ms: 2,
            })
        }),
        ("[ab]", 1000i64..1003, 0i16..2).prop_map(|(id, pid, ep)| Command::Txn(
            crate::meta::txn::TxnCommand::Complete {
                transactional_id: id,
                producer_id: pid,
                producer_epoch: ep,
                now_ms: 3
            }
        )),
        (topic_id(), 0i32..3, 0i32..3, 1i32..3).prop_map(|(t, p, e, l)| Command::MoveLeaders {
            moves: vec![crate::meta::command::LeaderMove {
                topic_id: t,
                partition: p,
                expected_epoch: e,
                leader: l
            }]
        }),
        (
            topic_id(),
            0i32..3,
            0i32..3,
            key(),
            prop::collection::vec(segment(), 1..2)
        )
            .prop_map(|(t, p, e, k, segments)| Command::ReplaceSegments {
                topic_id: t,
                partition: p,
                leader_epoch: e,
                replaced: vec![k],
                segments,
                committed_at_ms: 9
            }),
        (1i32..3, 1i64..3, topic_id(), 0i32..3, 0i32..3, offset()).prop_map(
            |(b, be, t, p, e, leo)| Command::Lead {
                broker_id: b,
                broker_epoch: be,
                partitions: vec![LeadPartition {
                    topic_id: t,
                    partition: p,
                    expected_epoch: e,
                    log_end_offset: leo
                }]
            }
        ),
        Just(Command::ImportState {
            state: Box::new(MetaState::new())
        }),
        (1u64..4).prop_map(|node_id| Command::RetireController { node_id }),
        crate::auth::state::gen::command().prop_map(Command::Security),
        prop::sample::select(&["c1", "c2", ""][..]).prop_map(|c| Command::InitCluster {
            cluster_id: c.to_string()
        }),
        quota_cmd().prop_map(Command::Quota),
    ]
}

fn quota_cmd() -> impl Strategy<Value = crate::quotas::QuotaCommand> {
    use crate::quotas::state::{EntityName, QuotaAlteration, QuotaCommand, QuotaEntity};
    let part = || {
        prop::option::of(prop_oneof![
            Just(EntityName::Default),
            "[ab]".prop_map(EntityName::Named)
        ])
    };
    let key = prop::sample::select(
        &[
            "producer_byte_rate",
            "consumer_byte_rate",
            "request_percentage",
            "bogus",
        ][..],
    );
    let value = prop::sample::select(&[0.0f64, 1.5, 1024.0, -1.0][..]);
    prop::collection::vec(
        (
            part(),
            part(),
            prop::collection::btree_map(key.clone().prop_map(str::to_string), value, 0..3),
            prop::collection::vec(key.prop_map(str::to_string), 0..2),
        )
            .prop_map(|(user, client_id, set, remove)| QuotaAlteration {
                entity: QuotaEntity { user, client_id },
                set,
                remove,
            }),
        1..3,
    )
    .prop_map(|alterations| QuotaCommand::Alter { alterations })
}

fn with_batches() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => command(),
        1 => prop::collection::vec(command(), 1..4).prop_map(Command::Batch),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn replicas_agree_and_invariants_hold(cmds in prop::collection::vec(with_batches(), 1..80)) {
        let mut replicas = [MetaState::new(), MetaState::new(), MetaState::new()];
        for (i, cmd) in cmds.into_iter().enumerate() {
            let json = serde_json::to_vec(&cmd).unwrap();
            let back: Command = serde_json::from_slice(&json).unwrap();
            prop_assert_eq!(&back, &cmd);
            let index = i as u64 + 1;
            let outs: Vec<String> = replicas
                .iter_mut()
                .map(|s| {
                    let r = s.apply_entry(index, cmd.clone());
                    serde_json::to_string(&r).unwrap()
                })
                .collect();
            prop_assert!(outs.iter().all(|o| o == &outs[0]), "outputs differ: {:?}", outs);
            let digests: Vec<Vec<u8>> = replicas.iter().map(|s| serde_json::to_vec(s).unwrap()).collect();
            prop_assert!(digests.iter().all(|d| d == &digests[0]));
            prop_assert_eq!(replicas[0].applied_index, index);
            if let Err(e) = replicas[0].check_invariants() {
                prop_assert!(false, "invariant broken after {:?}: {}", cmd, e);
            }
        }
        // A state survives its own JSON (the snapshot payload).
        let json = serde_json::to_vec(&replicas[0]).unwrap();
        let back: MetaState = serde_json::from_slice(&json).unwrap();
        prop_assert_eq!(&back, &replicas[0]);
    }
}
