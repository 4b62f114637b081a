//! The security part of the replicated metadata: SCRAM credentials (salted,
//! never passwords) and each broker's advertised listeners. Applied by
//! [`crate::meta::MetaState::apply`] like every other command: pure and
//! deterministic, refusals are outputs.

use serde::{Deserialize, Serialize};

use super::acl::{AclBinding, AclFilter};
use super::scram::{Credential, Mechanism, MAX_USER_LEN};
use crate::meta::{Map, MetaError};

/// At most this many SCRAM users (bounded metadata).
pub const MAX_USERS: usize = 100_000;
/// At most this many ACLs.
pub const MAX_ACLS: usize = 10_000;
/// At most this many listeners per broker.
pub const MAX_LISTENERS: usize = 16;

/// An advertised listener of a broker, as stored in the metadata.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AdvertisedListener {
    pub name: String,
    pub host: String,
    pub port: i32,
}

/// Security state (part of [`crate::meta::MetaState`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct SecurityState {
    /// user → mechanism → credential.
    #[serde(default)]
    pub scram: Map<String, Map<Mechanism, Credential>>,
    /// broker id → its listeners (clients are told the address of the
    /// listener they connected on).
    #[serde(default)]
    pub listeners: Map<i32, Vec<AdvertisedListener>>,
    /// ACLs, in creation order, without duplicates.
    #[serde(default)]
    pub acls: imbl::Vector<AclBinding>,
}

/// Commands changing the security state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum SecurityCommand {
    /// Creates or replaces a user's credential for one mechanism.
    UpsertScram {
        user: String,
        mechanism: Mechanism,
        credential: Credential,
    },
    /// Removes a user's credential for one mechanism.
    DeleteScram { user: String, mechanism: Mechanism },
    /// Records a broker's advertised listeners.
    SetListeners {
        broker_id: i32,
        listeners: Vec<AdvertisedListener>,
    },
    /// Adds ACLs (one already present is left as is).
    CreateAcls { bindings: Vec<AclBinding> },
    /// Removes the ACLs each filter matches.
    DeleteAcls { filters: Vec<AclFilter> },
}

/// What a security command did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum SecurityOutput {
    ScramUpserted,
    /// `existed`: false when there was nothing to delete.
    ScramDeleted {
        existed: bool,
    },
    ListenersSet,
    AclsCreated,
    /// Per filter, the ACLs it removed.
    AclsDeleted {
        deleted: Vec<Vec<AclBinding>>,
    },
}

fn invalid(reason: String) -> MetaError {
    MetaError::InvalidRequest { reason }
}

/// Kafka's rule for SCRAM user names: non-empty, bounded, printable.
pub fn valid_user(user: &str) -> bool {
    !user.is_empty() && user.len() <= MAX_USER_LEN && !user.chars().any(char::is_control)
}

impl SecurityState {
    /// The credential of `user` for `mech`.
    pub fn credential(&self, user: &str, mech: Mechanism) -> Option<&Credential> {
        self.scram.get(user).and_then(|m| m.get(&mech))
    }

    /// The address of `broker_id`'s listener `name`, if it published one.
    pub fn listener(&self, broker_id: i32, name: &str) -> Option<&AdvertisedListener> {
        self.listeners
            .get(&broker_id)
            .and_then(|ls| ls.iter().find(|l| l.name == name))
    }

    /// Whether `cmd` would be accepted.
    pub fn check(&self, cmd: &SecurityCommand) -> Result<(), MetaError> {
        match cmd {
            SecurityCommand::UpsertScram {
                user,
                mechanism,
                credential,
            } => {
                if !valid_user(user) {
                    return Err(invalid("invalid SCRAM user name".into()));
                }
                if !credential.valid_for(*mechanism) {
                    return Err(invalid(format!(
                        "invalid {} credential (iterations must be {}..={})",
                        mechanism.name(),
                        super::scram::MIN_ITERATIONS,
                        super::scram::MAX_ITERATIONS
                    )));
                }
                if !self.scram.contains_key(user) && self.scram.len() >= MAX_USERS {
                    return Err(invalid(format!("more than {MAX_USERS} SCRAM users")));
                }
                Ok(())
            }
            SecurityCommand::DeleteScram { .. } => Ok(()),
            SecurityCommand::CreateAcls { bindings } => {
                for b in bindings {
                    super::acl::validate(b).map_err(|e| invalid(format!("invalid ACL: {e}")))?;
                }
                if self.acls.len() + bindings.len() > MAX_ACLS {
                    return Err(invalid(format!("more than {MAX_ACLS} ACLs")));
                }
                Ok(())
            }
            SecurityCommand::DeleteAcls { filters } => {
                if filters.iter().all(AclFilter::valid) {
                    Ok(())
                } else {
                    Err(invalid("invalid ACL filter".into()))
                }
            }
            SecurityCommand::SetListeners {
                broker_id,
                listeners,
            } => {
                if *broker_id < 0 || listeners.len() > MAX_LISTENERS {
                    return Err(invalid("invalid listeners".into()));
                }
                for l in listeners {
                    if l.name.is_empty() || l.name.len() > 64 || l.host.len() > 255 {
                        return Err(invalid(format!("invalid listener {:?}", l.name)));
                    }
                    if !(1..=65535).contains(&l.port) {
                        return Err(invalid(format!("invalid port {} of {}", l.port, l.name)));
                    }
                }
                Ok(())
            }
        }
    }

    /// Apply a checked command.
    pub fn apply_checked(&mut self, cmd: SecurityCommand) -> SecurityOutput {
        match cmd {
            SecurityCommand::UpsertScram {
                user,
                mechanism,
                credential,
            } => {
                self.scram
                    .entry(user)
                    .or_default()
                    .insert(mechanism, credential);
                SecurityOutput::ScramUpserted
            }
            SecurityCommand::DeleteScram { user, mechanism } => {
                let mut existed = false;
                if let Some(m) = self.scram.get_mut(&user) {
                    existed = m.remove(&mechanism).is_some();
                    if m.is_empty() {
                        self.scram.remove(&user);
                    }
                }
                SecurityOutput::ScramDeleted { existed }
            }
            SecurityCommand::SetListeners {
                broker_id,
                listeners,
            } => {
                self.listeners.insert(broker_id, listeners);
                SecurityOutput::ListenersSet
            }
            SecurityCommand::CreateAcls { bindings } => {
                for b in bindings {
                    if !self.acls.contains(&b) {
                        self.acls.push_back(b);
                    }
                }
                SecurityOutput::AclsCreated
            }
            SecurityCommand::DeleteAcls { filters } => {
                let mut deleted = Vec::with_capacity(filters.len());
                for f in &filters {
                    let (gone, kept): (imbl::Vector<_>, imbl::Vector<_>) =
                        self.acls.iter().cloned().partition(|b| f.matches(b));
                    self.acls = kept;
                    deleted.push(gone.into_iter().collect());
                }
                SecurityOutput::AclsDeleted { deleted }
            }
        }
    }
}

/// Generators for the metadata proptests.
#[cfg(test)]
pub mod gen {
    use proptest::prelude::*;

    use super::*;

    pub fn command() -> impl Strategy<Value = SecurityCommand> {
        let user = prop_oneof![
            Just("alice".to_string()),
            Just("bob".to_string()),
            Just(String::new())
        ];
        let mech = prop_oneof![Just(Mechanism::Sha256), Just(Mechanism::Sha512)];
        prop_oneof![
            (user.clone(), mech.clone(), 4000u32..5000, any::<bool>()).prop_map(
                |(user, mechanism, iterations, good)| {
                    let len = if good { 32 } else { 3 };
                    SecurityCommand::UpsertScram {
                        user,
                        mechanism,
                        credential: Credential {
                            salt: vec![1, 2, 3],
                            iterations,
                            stored_key: vec![7; len],
                            server_key: vec![8; len],
                        },
                    }
                }
            ),
            (user, mech)
                .prop_map(|(user, mechanism)| SecurityCommand::DeleteScram { user, mechanism }),
            (
                prop_oneof![Just("t"), Just("t-"), Just("")],
                2i8..6,
                3i8..5,
                2i8..4
            )
                .prop_map(|(name, resource_type, pattern_type, permission)| {
                    SecurityCommand::CreateAcls {
                        bindings: vec![crate::auth::acl::AclBinding {
                            resource_type,
                            resource_name: name.to_string(),
                            pattern_type,
                            principal: "User:alice".into(),
                            host: "*".into(),
                            operation: 3,
                            permission,
                        }],
                    }
                }),
            (1i8..6, 1i8..5).prop_map(|(resource_type, pattern_type)| {
                SecurityCommand::DeleteAcls {
                    filters: vec![crate::auth::acl::AclFilter {
                        resource_type,
                        resource_name: None,
                        pattern_type,
                        principal: None,
                        host: None,
                        operation: 1,
                        permission: 1,
                    }],
                }
            }),
            (-1i32..3, 0i32..70000).prop_map(|(broker_id, port)| SecurityCommand::SetListeners {
                broker_id,
                listeners: vec![AdvertisedListener {
                    name: "SASL_SSL".into(),
                    host: "h".into(),
                    port,
                }],
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred() -> Credential {
        Credential::from_password(Mechanism::Sha256, b"p", vec![9; 16], 4096)
    }

    #[test]
    fn upsert_delete_and_refusals() {
        let mut s = SecurityState::default();
        let up = SecurityCommand::UpsertScram {
            user: "alice".into(),
            mechanism: Mechanism::Sha256,
            credential: cred(),
        };
        s.check(&up).unwrap();
        assert_eq!(s.apply_checked(up), SecurityOutput::ScramUpserted);
        assert!(s.credential("alice", Mechanism::Sha256).is_some());
        assert!(s.credential("alice", Mechanism::Sha512).is_none());
        let mut weak = cred();
        weak.iterations = 1000;
        assert!(s
            .check(&SecurityCommand::UpsertScram {
                user: "bob".into(),
                mechanism: Mechanism::Sha256,
                credential: weak,
            })
            .is_err());
        // A SHA-256 credential is not a SHA-512 one.
        assert!(s
            .check(&SecurityCommand::UpsertScram {
                user: "bob".into(),
                mechanism: Mechanism::Sha512,
                credential: cred(),
            })
            .is_err());
        let del = SecurityCommand::DeleteScram {
            user: "alice".into(),
            mechanism: Mechanism::Sha256,
        };
        assert_eq!(
            s.apply_checked(del.clone()),
            SecurityOutput::ScramDeleted { existed: true }
        );
        assert!(s.scram.is_empty());
        assert_eq!(
            s.apply_checked(del),
            SecurityOutput::ScramDeleted { existed: false }
        );
    }

    #[test]
    fn debug_output_carries_no_keys() {
        let text = format!("{:?}", cred());
        assert!(
            !text.contains("stored_key") && !text.contains("salt"),
            "{text}"
        );
    }
}
