//! OffsetDelete: removes committed offsets of partitions a group no longer
//! consumes (GROUP_SUBSCRIBED_TO_TOPIC for topics its live members subscribe to).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    OffsetDeleteRequest, OffsetDeleteResponse, ResponseKind, TopicName,
};

use crate::groups::GroupError;
use crate::kafka::{Ctx, Reply};

type Layout = Vec<(TopicName, Vec<i32>)>;

fn response(layout: &Layout, codes: &[i16]) -> ResponseKind {
    let mut it = codes.iter();
    ResponseKind::OffsetDelete(
        OffsetDeleteResponse::default().with_topics(
            layout
                .iter()
                .map(|(name, parts)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(name.clone())
                        .with_partitions(
                            parts
                                .iter()
                                .map(|p| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(*p)
                                        .with_error_code(it.next().copied().unwrap_or(0))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    )
}

pub fn handle(ctx: &Ctx, req: OffsetDeleteRequest) -> Reply {
    let layout: Layout = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let partitions: Vec<(String, i32)> = layout
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.to_string(), *p)))
        .collect();
    let meta = ctx.broker.meta();
    let (verdicts, pending) =
        match ctx
            .broker
            .groups
            .delete_offsets(&meta, &req.group_id, &partitions)
        {
            Err(e) => {
                return Reply::Now(ResponseKind::OffsetDelete(
                    OffsetDeleteResponse::default().with_error_code(e.kafka_code()),
                ))
            }
            Ok(x) => x,
        };
    let codes_with = move |write: i16| -> Vec<i16> {
        verdicts
            .iter()
            .map(|v| v.as_ref().map_or(write, GroupError::kafka_code))
            .collect()
    };
    match pending {
        None => Reply::Now(response(&layout, &codes_with(0))),
        Some(rx) => Reply::Later(Box::pin(async move {
            let code = match rx.await {
                Ok(Ok(_)) => 0,
                Ok(Err(e)) => e.kafka_code(),
                Err(_) => crate::groups::codes::COORDINATOR_NOT_AVAILABLE,
            };
            response(&layout, &codes_with(code))
        })),
    }
}
