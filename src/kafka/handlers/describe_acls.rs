//! DescribeAcls: the stored bindings a filter matches, grouped by resource
//! (needs DESCRIBE on the cluster).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};

use super::sb;
use crate::auth::acl::AclFilter;
use crate::auth::authz::code::SECURITY_DISABLED;
use crate::kafka::{code, Ctx};

pub fn handle(ctx: &Ctx, req: DescribeAclsRequest) -> DescribeAclsResponse {
    if !ctx.session.security.authorizer.enabled {
        return DescribeAclsResponse::default()
            .with_error_code(SECURITY_DISABLED)
            .with_error_message(Some(sb("no authorizer is configured (--authorizer acl)")));
    }
    let filter = AclFilter {
        resource_type: req.resource_type_filter,
        resource_name: req.resource_name_filter.map(|s| s.to_string()),
        pattern_type: req.pattern_type_filter,
        principal: req.principal_filter.map(|s| s.to_string()),
        host: req.host_filter.map(|s| s.to_string()),
        operation: req.operation,
        permission: req.permission_type,
    };
    if !filter.valid() {
        return DescribeAclsResponse::default()
            .with_error_code(code::INVALID_REQUEST)
            .with_error_message(Some(sb("invalid ACL filter")));
    }
    let meta = ctx.broker.meta();
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in meta.security.acls.iter().filter(|b| filter.matches(b)) {
        by_resource
            .entry((b.resource_type, b.resource_name.clone(), b.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(sb(b.principal.clone()))
                    .with_host(sb(b.host.clone()))
                    .with_operation(b.operation)
                    .with_permission_type(b.permission),
            );
    }
    DescribeAclsResponse::default().with_resources(
        by_resource
            .into_iter()
            .map(|((rt, name, pt), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(rt)
                    .with_resource_name(sb(name))
                    .with_pattern_type(pt)
                    .with_acls(acls)
            })
            .collect(),
    )
}
