//! DeleteAcls: remove the bindings each filter matches and list them
//! (needs ALTER on the cluster).

use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

use super::sb;
use crate::auth::acl::AclFilter;
use crate::auth::authz::code::SECURITY_DISABLED;
use crate::auth::state::{SecurityCommand, SecurityOutput};
use crate::kafka::{code, Ctx};
use crate::meta::{Command, CommandOutput};

pub async fn handle(ctx: &Ctx, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let fail = |c: i16, m: &str| {
        DeleteAclsResponse::default().with_filter_results(
            req.filters
                .iter()
                .map(|_| {
                    DeleteAclsFilterResult::default()
                        .with_error_code(c)
                        .with_error_message(Some(sb(m)))
                })
                .collect(),
        )
    };
    if !ctx.session.security.authorizer.enabled {
        return fail(
            SECURITY_DISABLED,
            "no authorizer is configured (--authorizer acl)",
        );
    }
    let filters: Vec<AclFilter> = req
        .filters
        .iter()
        .map(|f| AclFilter {
            resource_type: f.resource_type_filter,
            resource_name: f.resource_name_filter.as_ref().map(|s| s.to_string()),
            pattern_type: f.pattern_type_filter,
            principal: f.principal_filter.as_ref().map(|s| s.to_string()),
            host: f.host_filter.as_ref().map(|s| s.to_string()),
            operation: f.operation,
            permission: f.permission_type,
        })
        .collect();
    if !filters.iter().all(AclFilter::valid) {
        return fail(code::INVALID_REQUEST, "invalid ACL filter");
    }
    match ctx
        .broker
        .submit(Command::Security(SecurityCommand::DeleteAcls { filters }))
        .await
    {
        Ok(CommandOutput::Security(SecurityOutput::AclsDeleted { deleted })) => {
            DeleteAclsResponse::default().with_filter_results(
                deleted
                    .into_iter()
                    .map(|gone| {
                        DeleteAclsFilterResult::default().with_matching_acls(
                            gone.into_iter()
                                .map(|b| {
                                    DeleteAclsMatchingAcl::default()
                                        .with_resource_type(b.resource_type)
                                        .with_resource_name(sb(b.resource_name))
                                        .with_pattern_type(b.pattern_type)
                                        .with_principal(sb(b.principal))
                                        .with_host(sb(b.host))
                                        .with_operation(b.operation)
                                        .with_permission_type(b.permission)
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            )
        }
        Ok(_) => fail(code::UNKNOWN_SERVER_ERROR, "unexpected metadata output"),
        Err(e) => fail(e.kafka_code(), &e.to_string()),
    }
}
