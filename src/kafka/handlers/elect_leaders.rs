//! ElectLeaders (KIP-460). Every partition has one replica, its leader,
//! placed by the controller on a live broker; the placement is the
//! preferred leader. A partition led by a live broker answers
//! ELECTION_NOT_NEEDED; one whose leader is fenced is being moved by the
//! placement already (PREFERRED_LEADER_NOT_AVAILABLE for a preferred
//! election, ELIGIBLE_LEADERS_NOT_AVAILABLE for an unclean one).

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::sb;
use crate::kafka::{code, Ctx};

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
const ELECTION_NOT_NEEDED: i16 = 84;

pub fn handle(ctx: &Ctx, req: ElectLeadersRequest) -> ElectLeadersResponse {
    let meta = ctx.broker.meta();
    // v0 has no election type: preferred.
    let election = if ctx.version == 0 {
        PREFERRED
    } else {
        req.election_type
    };
    if election != PREFERRED && election != UNCLEAN {
        return ElectLeadersResponse::default().with_error_code(code::INVALID_REQUEST);
    }
    // None: every partition.
    let wanted: Vec<(String, Vec<i32>)> = match req.topic_partitions {
        Some(tps) => tps
            .into_iter()
            .map(|tp| (tp.topic.0.to_string(), tp.partitions))
            .collect(),
        None => meta
            .topics
            .values()
            .map(|t| (t.name.clone(), (0..t.partitions.len() as i32).collect()))
            .collect(),
    };
    let results = wanted
        .into_iter()
        .map(|(name, parts)| {
            let topic = meta.topic(&name);
            let partition_result = parts
                .into_iter()
                .map(|i| {
                    let r = PartitionResult::default().with_partition_id(i);
                    let Some(p) = topic.and_then(|t| {
                        usize::try_from(i).ok().and_then(|i| t.partitions.get(i))
                    }) else {
                        return r
                            .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(sb(format!(
                                "unknown topic or partition {name}-{i}"
                            ))));
                    };
                    if meta.brokers.get(&p.leader).is_some_and(|b| !b.fenced) {
                        return r.with_error_code(ELECTION_NOT_NEEDED).with_error_message(Some(
                            sb(format!(
                                "{name}-{i} is led by its placed broker {}",
                                p.leader
                            )),
                        ));
                    }
                    let c = if election == PREFERRED {
                        PREFERRED_LEADER_NOT_AVAILABLE
                    } else {
                        ELIGIBLE_LEADERS_NOT_AVAILABLE
                    };
                    r.with_error_code(c).with_error_message(Some(sb(format!(
                        "{name}-{i}: its leader is not live; the controller's placement is moving it to a live broker"
                    ))))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(TopicName(sb(name)))
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}
