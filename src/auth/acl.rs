//! Kafka ACLs: bindings (resource pattern + entry), filters (Describe /
//! DeleteAcls), and the decision of [`decide`] (pure, over the bindings in
//! the replicated metadata):
//!
//! - a binding matches a resource when the types are equal and its pattern
//!   is `LITERAL` with the same name or `*`, or `PREFIXED` with a prefix of
//!   the name;
//! - an entry applies to a principal (`User:NAME`, or `User:*`) and a host
//!   (the client's address, or `*`);
//! - DENY wins over ALLOW; `ALL` covers every operation; DESCRIBE is implied
//!   by READ, WRITE, DELETE and ALTER, DESCRIBE_CONFIGS by ALTER_CONFIGS (as
//!   Kafka's `AclAuthorizer`).

use serde::{Deserialize, Serialize};

/// Kafka `ResourceType` codes.
pub mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
}

/// Kafka `PatternType` codes.
pub mod pattern {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Kafka `AclOperation` codes.
pub mod op {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
}

/// Kafka `AclPermissionType` codes.
pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// The one cluster resource's name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// One ACL.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// Why a binding cannot be created.
pub fn validate(b: &AclBinding) -> Result<(), String> {
    if !matches!(
        b.resource_type,
        resource::TOPIC | resource::GROUP | resource::CLUSTER | resource::TRANSACTIONAL_ID
    ) {
        return Err(format!("unsupported resource type {}", b.resource_type));
    }
    if !matches!(b.pattern_type, pattern::LITERAL | pattern::PREFIXED) {
        return Err(format!(
            "pattern type must be LITERAL or PREFIXED, got {}",
            b.pattern_type
        ));
    }
    if b.resource_name.is_empty() || b.resource_name.len() > 1024 {
        return Err("resource name must be 1..=1024 bytes".into());
    }
    if b.resource_type == resource::CLUSTER && b.resource_name != CLUSTER_NAME {
        return Err(format!("the cluster resource is named {CLUSTER_NAME}"));
    }
    if !(op::ALL..=op::IDEMPOTENT_WRITE).contains(&b.operation) {
        return Err(format!("invalid operation {}", b.operation));
    }
    if !matches!(b.permission, permission::ALLOW | permission::DENY) {
        return Err(format!(
            "permission must be ALLOW or DENY, got {}",
            b.permission
        ));
    }
    let Some((kind, name)) = b.principal.split_once(':') else {
        return Err(format!(
            "principal must be TYPE:NAME, got {:?}",
            b.principal
        ));
    };
    if kind.is_empty() || name.is_empty() || b.principal.len() > 512 {
        return Err(format!(
            "principal must be TYPE:NAME, got {:?}",
            b.principal
        ));
    }
    if b.host.is_empty() || b.host.len() > 255 {
        return Err("host must be an address or *".into());
    }
    Ok(())
}

/// A filter of DescribeAcls / DeleteAcls (Kafka's `AclBindingFilter`):
/// `None` and the ANY codes match everything.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter {
    /// Whether the filter is well formed (codes Kafka knows).
    pub fn valid(&self) -> bool {
        (resource::ANY..=7).contains(&self.resource_type)
            && (pattern::ANY..=pattern::PREFIXED).contains(&self.pattern_type)
            && (op::ANY..=14).contains(&self.operation)
            && (permission::ANY..=permission::ALLOW).contains(&self.permission)
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, b: &AclBinding) -> bool {
        let rt = self.resource_type == resource::ANY || self.resource_type == b.resource_type;
        let name_and_pattern = match self.pattern_type {
            // MATCH: the bindings that would apply to the named resource.
            pattern::MATCH => match &self.resource_name {
                None => true,
                Some(n) => resource_matches(b, n),
            },
            p => {
                (p == pattern::ANY || p == b.pattern_type)
                    && self
                        .resource_name
                        .as_ref()
                        .is_none_or(|n| *n == b.resource_name)
            }
        };
        rt && name_and_pattern
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && (self.operation == op::ANY || self.operation == b.operation)
            && (self.permission == permission::ANY || self.permission == b.permission)
    }
}

fn resource_matches(b: &AclBinding, name: &str) -> bool {
    match b.pattern_type {
        pattern::LITERAL => b.resource_name == name || b.resource_name == "*",
        pattern::PREFIXED => name.starts_with(&b.resource_name),
        _ => false,
    }
}

/// Operations that imply `wanted` (besides itself and ALL).
fn implies(granted: i8, wanted: i8) -> bool {
    granted == wanted
        || granted == op::ALL
        || (wanted == op::DESCRIBE
            && matches!(granted, op::READ | op::WRITE | op::DELETE | op::ALTER))
        || (wanted == op::DESCRIBE_CONFIGS && granted == op::ALTER_CONFIGS)
}

/// The authorizer's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthorizerConfig {
    /// `--authorizer acl`: enforcement on.
    pub enabled: bool,
    /// `--super-users`: principals allowed everything.
    pub super_users: Vec<String>,
    /// `--allow-everyone-if-no-acl-found`.
    pub allow_if_no_acl: bool,
}

/// May `principal` connected from `host` perform `operation` on the
/// resource `(resource_type, name)`, given `acls`?
pub fn decide<'a>(
    cfg: &AuthorizerConfig,
    acls: impl Iterator<Item = &'a AclBinding> + Clone,
    principal: &str,
    host: &str,
    operation: i8,
    resource_type: i8,
    name: &str,
) -> bool {
    if !cfg.enabled || cfg.super_users.iter().any(|s| s == principal) {
        return true;
    }
    let on_resource =
        acls.filter(|b| b.resource_type == resource_type && resource_matches(b, name));
    let applies = |b: &&AclBinding| {
        (b.principal == principal || b.principal == "User:*") && (b.host == host || b.host == "*")
    };
    let mut any = false;
    let mut allowed = false;
    for b in on_resource {
        any = true;
        if !applies(&b) {
            continue;
        }
        if b.permission == permission::DENY && (b.operation == operation || b.operation == op::ALL)
        {
            return false;
        }
        if b.permission == permission::ALLOW && implies(b.operation, operation) {
            allowed = true;
        }
    }
    allowed || (!any && cfg.allow_if_no_acl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: i8, name: &str, pt: i8, principal: &str, operation: i8, perm: i8) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission: perm,
        }
    }

    fn on() -> AuthorizerConfig {
        AuthorizerConfig {
            enabled: true,
            super_users: vec!["User:admin".into()],
            allow_if_no_acl: false,
        }
    }

    #[test]
    fn literal_prefixed_implied_and_deny_wins() {
        use permission::*;
        use resource::*;
        let acls = [
            acl(
                TOPIC,
                "orders",
                pattern::LITERAL,
                "User:alice",
                op::WRITE,
                ALLOW,
            ),
            acl(
                TOPIC,
                "logs-",
                pattern::PREFIXED,
                "User:alice",
                op::READ,
                ALLOW,
            ),
            acl(
                TOPIC,
                "logs-secret",
                pattern::LITERAL,
                "User:alice",
                op::ALL,
                DENY,
            ),
            acl(GROUP, "*", pattern::LITERAL, "User:*", op::READ, ALLOW),
        ];
        let d = |p: &str, o, rt, n: &str| decide(&on(), acls.iter(), p, "127.0.0.1", o, rt, n);
        assert!(d("User:alice", op::WRITE, TOPIC, "orders"));
        assert!(
            d("User:alice", op::DESCRIBE, TOPIC, "orders"),
            "DESCRIBE implied by WRITE"
        );
        assert!(!d("User:alice", op::READ, TOPIC, "orders"));
        assert!(!d("User:alice", op::WRITE, TOPIC, "orders2"));
        assert!(d("User:alice", op::READ, TOPIC, "logs-app"));
        assert!(
            !d("User:alice", op::READ, TOPIC, "logs-secret"),
            "deny wins"
        );
        assert!(!d("User:alice", op::DESCRIBE, TOPIC, "logs-secret"));
        assert!(
            d("User:bob", op::READ, GROUP, "any-group"),
            "wildcard principal and name"
        );
        assert!(!d("User:bob", op::WRITE, TOPIC, "orders"));
        assert!(
            d("User:admin", op::DELETE, CLUSTER, CLUSTER_NAME),
            "super user"
        );
        let mut cfg = on();
        cfg.allow_if_no_acl = true;
        assert!(decide(
            &cfg,
            acls.iter(),
            "User:bob",
            "h",
            op::WRITE,
            TOPIC,
            "no-acls-here"
        ));
        assert!(!decide(
            &cfg,
            acls.iter(),
            "User:bob",
            "h",
            op::READ,
            TOPIC,
            "orders"
        ));
        cfg.enabled = false;
        assert!(decide(
            &cfg,
            acls.iter(),
            "User:bob",
            "h",
            op::READ,
            TOPIC,
            "orders"
        ));
    }

    #[test]
    fn hosts_and_filters() {
        let mut b = acl(
            resource::TOPIC,
            "t",
            pattern::LITERAL,
            "User:a",
            op::READ,
            permission::ALLOW,
        );
        b.host = "10.0.0.1".into();
        let acls = [b.clone()];
        assert!(decide(
            &on(),
            acls.iter(),
            "User:a",
            "10.0.0.1",
            op::READ,
            resource::TOPIC,
            "t"
        ));
        assert!(!decide(
            &on(),
            acls.iter(),
            "User:a",
            "10.0.0.2",
            op::READ,
            resource::TOPIC,
            "t"
        ));
        let any = AclFilter {
            resource_type: resource::ANY,
            resource_name: None,
            pattern_type: pattern::ANY,
            principal: None,
            host: None,
            operation: op::ANY,
            permission: permission::ANY,
        };
        assert!(any.valid() && any.matches(&b));
        let by_match = AclFilter {
            resource_name: Some("t".into()),
            pattern_type: pattern::MATCH,
            ..any.clone()
        };
        assert!(by_match.matches(&b));
        let other = AclFilter {
            principal: Some("User:b".into()),
            ..any
        };
        assert!(!other.matches(&b));
        assert!(validate(&b).is_ok());
        for bad in [
            AclBinding {
                pattern_type: pattern::MATCH,
                ..b.clone()
            },
            AclBinding {
                resource_type: resource::CLUSTER,
                ..b.clone()
            },
            AclBinding {
                principal: "alice".into(),
                ..b.clone()
            },
            AclBinding {
                permission: permission::ANY,
                ..b.clone()
            },
            AclBinding {
                operation: op::ANY,
                ..b.clone()
            },
        ] {
            assert!(validate(&bad).is_err(), "{bad:?}");
        }
    }
}
