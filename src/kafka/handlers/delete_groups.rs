//! DeleteGroups: removes empty groups and their committed offsets (a
//! metadata command); groups with members are refused NON_EMPTY_GROUP.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId, ResponseKind};

use crate::groups::{codes, GroupError};
use crate::kafka::{Ctx, Reply};
use crate::meta::groups::GroupOutput;

fn response(ids: &[GroupId], codes: &[i16]) -> ResponseKind {
    ResponseKind::DeleteGroups(
        DeleteGroupsResponse::default().with_results(
            ids.iter()
                .zip(codes)
                .map(|(g, c)| {
                    DeletableGroupResult::default()
                        .with_group_id(g.clone())
                        .with_error_code(*c)
                })
                .collect(),
        ),
    )
}

pub fn handle(ctx: &Ctx, req: DeleteGroupsRequest) -> Reply {
    let ids = req.groups_names;
    let names: Vec<String> = ids.iter().map(|g| g.to_string()).collect();
    let (verdicts, pending) = ctx.broker.groups.delete_groups(&ctx.broker.meta(), &names);
    let Some(rx) = pending else {
        let codes: Vec<i16> = verdicts
            .iter()
            .map(|v| match v {
                Some(Err(e)) => e.kafka_code(),
                _ => 0,
            })
            .collect();
        return Reply::Now(response(&ids, &codes));
    };
    Reply::Later(Box::pin(async move {
        let out = rx.await.unwrap_or_else(|_| {
            Err(GroupError::CoordinatorNotAvailable {
                reason: "the metadata writer stopped".into(),
            })
        });
        let codes: Vec<i16> = verdicts
            .iter()
            .zip(&names)
            .map(|(v, name)| match v {
                Some(Ok(())) => 0,
                Some(Err(e)) => e.kafka_code(),
                None => match &out {
                    Ok(GroupOutput::GroupsDeleted { deleted, .. }) if deleted.contains(name) => 0,
                    Ok(_) => codes::GROUP_ID_NOT_FOUND,
                    Err(e) => e.kafka_code(),
                },
            })
            .collect();
        response(&ids, &codes)
    }))
}
