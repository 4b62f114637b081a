//! CreateAcls: store ACL bindings in the replicated metadata (needs ALTER
//! on the cluster; `SECURITY_DISABLED` without `--authorizer acl`, as Kafka
//! answers without an authorizer).

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

use super::sb;
use crate::auth::acl::{self, AclBinding};
use crate::auth::authz::code::SECURITY_DISABLED;
use crate::auth::state::SecurityCommand;
use crate::kafka::{code, Ctx};
use crate::meta::Command;

pub async fn handle(ctx: &Ctx, req: CreateAclsRequest) -> CreateAclsResponse {
    let results: Vec<Result<AclBinding, (i16, String)>> = req
        .creations
        .iter()
        .map(|c| {
            if !ctx.session.security.authorizer.enabled {
                return Err((
                    SECURITY_DISABLED,
                    "no authorizer is configured (--authorizer acl)".into(),
                ));
            }
            let b = AclBinding {
                resource_type: c.resource_type,
                resource_name: c.resource_name.to_string(),
                pattern_type: c.resource_pattern_type,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: c.operation,
                permission: c.permission_type,
            };
            acl::validate(&b)
                .map(|()| b)
                .map_err(|m| (code::INVALID_REQUEST, m))
        })
        .collect();
    let bindings: Vec<AclBinding> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let failed = if bindings.is_empty() {
        None
    } else {
        ctx.broker
            .submit(Command::Security(SecurityCommand::CreateAcls { bindings }))
            .await
            .err()
            .map(|e| (e.kafka_code(), e.to_string()))
    };
    CreateAclsResponse::default().with_results(
        results
            .into_iter()
            .map(|r| match r.err().or_else(|| failed.clone()) {
                None => AclCreationResult::default(),
                Some((c, m)) => AclCreationResult::default()
                    .with_error_code(c)
                    .with_error_message(Some(sb(m))),
            })
            .collect(),
    )
}
