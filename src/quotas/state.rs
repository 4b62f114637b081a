//! Client quota configuration as replicated metadata: entities (user,
//! client-id, their defaults and the user+client-id combinations Kafka
//! allows), their quota values, the command that alters them, and Kafka's
//! precedence for finding the quota that applies to a connection.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `producer_byte_rate`: bytes/s of produce requests.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// `consumer_byte_rate`: bytes/s of fetch responses.
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// `request_percentage`: share of one request thread over the window, in %.
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
/// `controller_mutation_rate`: accepted and stored (not enforced).
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";

/// Quota keys this broker accepts, and whether each is a whole number.
pub const KEYS: [(&str, bool); 4] = [
    (PRODUCER_BYTE_RATE, true),
    (CONSUMER_BYTE_RATE, true),
    (REQUEST_PERCENTAGE, false),
    (CONTROLLER_MUTATION_RATE, false),
];

/// Entities held at most (each is one small map): bounds the state.
pub const MAX_ENTITIES: usize = 10_000;
/// Longest user or client-id name accepted.
pub const MAX_NAME_LEN: usize = 255;

/// Entity type names on the wire.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";

/// One component of an entity: a named user or client, or the default.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityName {
    Default,
    Named(String),
}

impl EntityName {
    /// Wire form: `None` is the default entity.
    pub fn as_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(n) => Some(n),
        }
    }
}

/// A quota entity: a user, a client id, or both (at least one).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

impl std::fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let part = |n: &EntityName| match n {
            EntityName::Default => "<default>".to_string(),
            EntityName::Named(s) => s.clone(),
        };
        let mut parts = Vec::new();
        if let Some(u) = &self.user {
            parts.push(format!("user={}", part(u)));
        }
        if let Some(c) = &self.client_id {
            parts.push(format!("client-id={}", part(c)));
        }
        write!(f, "{}", parts.join(","))
    }
}

/// Why a quota alteration is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuotaError {
    #[error("unsupported quota entity type {0:?} (supported: user, client-id)")]
    UnknownEntityType(String),
    #[error("entity type {0:?} given twice")]
    DuplicateEntityType(String),
    #[error("a quota entity needs a user or a client-id")]
    EmptyEntity,
    #[error("entity name of {len} bytes exceeds {MAX_NAME_LEN}")]
    NameTooLong { len: usize },
    #[error("unknown quota key {0:?}")]
    UnknownKey(String),
    #[error("quota {key}={value} must be a positive number")]
    NotPositive { key: String, value: f64 },
    #[error("quota {key}={value} must be a whole number")]
    NotWhole { key: String, value: f64 },
    #[error("quota key {0:?} is both set and removed")]
    SetAndRemoved(String),
    #[error("at most {MAX_ENTITIES} quota entities")]
    TooManyEntities,
}

impl From<QuotaError> for crate::meta::MetaError {
    fn from(e: QuotaError) -> Self {
        crate::meta::MetaError::InvalidRequest {
            reason: e.to_string(),
        }
    }
}

/// Build an entity from wire (type, name) pairs; `None` name = default.
pub fn entity_from_wire<'a>(
    parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<QuotaEntity, QuotaError> {
    let mut e = QuotaEntity {
        user: None,
        client_id: None,
    };
    for (ty, name) in parts {
        if let Some(n) = name {
            if n.len() > MAX_NAME_LEN {
                return Err(QuotaError::NameTooLong { len: n.len() });
            }
        }
        let name = name.map_or(EntityName::Default, |n| EntityName::Named(n.to_string()));
        let slot = match ty {
            USER => &mut e.user,
            CLIENT_ID => &mut e.client_id,
            other => return Err(QuotaError::UnknownEntityType(other.to_string())),
        };
        if slot.is_some() {
            return Err(QuotaError::DuplicateEntityType(ty.to_string()));
        }
        *slot = Some(name);
    }
    if e.user.is_none() && e.client_id.is_none() {
        return Err(QuotaError::EmptyEntity);
    }
    Ok(e)
}

/// Check one quota value.
pub fn validate_value(key: &str, value: f64) -> Result<(), QuotaError> {
    let Some((_, whole)) = KEYS.iter().find(|(k, _)| *k == key) else {
        return Err(QuotaError::UnknownKey(key.to_string()));
    };
    if !value.is_finite() || value <= 0.0 {
        return Err(QuotaError::NotPositive {
            key: key.to_string(),
            value,
        });
    }
    if *whole && (value.fract() != 0.0 || value > i64::MAX as f64) {
        return Err(QuotaError::NotWhole {
            key: key.to_string(),
            value,
        });
    }
    Ok(())
}

/// One entity's change in an AlterClientQuotas.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct QuotaAlteration {
    pub entity: QuotaEntity,
    /// Keys to set.
    pub set: BTreeMap<String, f64>,
    /// Keys to remove.
    pub remove: Vec<String>,
}

impl QuotaAlteration {
    /// Check an alteration on its own (names, keys, values).
    pub fn validate(&self) -> Result<(), QuotaError> {
        for n in [&self.entity.user, &self.entity.client_id]
            .into_iter()
            .flatten()
        {
            if let EntityName::Named(s) = n {
                if s.len() > MAX_NAME_LEN {
                    return Err(QuotaError::NameTooLong { len: s.len() });
                }
            }
        }
        if self.entity.user.is_none() && self.entity.client_id.is_none() {
            return Err(QuotaError::EmptyEntity);
        }
        for (k, v) in &self.set {
            validate_value(k, *v)?;
        }
        for k in &self.remove {
            if !KEYS.iter().any(|(x, _)| x == k) {
                return Err(QuotaError::UnknownKey(k.clone()));
            }
            if self.set.contains_key(k) {
                return Err(QuotaError::SetAndRemoved(k.clone()));
            }
        }
        Ok(())
    }
}

/// Quota commands of the metadata state machine.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum QuotaCommand {
    /// AlterClientQuotas: each alteration applied in order; an entity left
    /// with no value is forgotten. Refused as a whole if any alteration is
    /// invalid or the entity bound would be passed.
    Alter { alterations: Vec<QuotaAlteration> },
}

/// The quota values of every entity (serialized as a list of pairs: JSON
/// map keys must be strings).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct QuotasState {
    entries: crate::meta::Map<QuotaEntity, BTreeMap<String, f64>>,
}

impl Serialize for QuotasState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.entries.iter())
    }
}

impl<'de> Deserialize<'de> for QuotasState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Vec<(QuotaEntity, BTreeMap<String, f64>)> = Vec::deserialize(d)?;
        Ok(QuotasState {
            entries: v.into_iter().collect(),
        })
    }
}

impl QuotasState {
    /// Would `cmd` be accepted?
    pub fn check(&self, cmd: &QuotaCommand) -> Result<(), QuotaError> {
        let QuotaCommand::Alter { alterations } = cmd;
        let mut added = 0usize;
        for a in alterations {
            a.validate()?;
            if !self.entries.contains_key(&a.entity) && !a.set.is_empty() {
                added += 1;
            }
        }
        if self.entries.len() + added > MAX_ENTITIES {
            return Err(QuotaError::TooManyEntities);
        }
        Ok(())
    }

    /// Apply a checked command.
    pub fn apply_checked(&mut self, cmd: QuotaCommand) {
        let QuotaCommand::Alter { alterations } = cmd;
        for a in alterations {
            let mut values = self.entries.get(&a.entity).cloned().unwrap_or_default();
            values.extend(a.set);
            for k in &a.remove {
                values.remove(k);
            }
            if values.is_empty() {
                self.entries.remove(&a.entity);
            } else {
                self.entries.insert(a.entity, values);
            }
        }
    }

    /// Every entity with its values, in entity order.
    pub fn iter(&self) -> impl Iterator<Item = (&QuotaEntity, &BTreeMap<String, f64>)> {
        self.entries.iter()
    }

    pub fn get(&self, e: &QuotaEntity) -> Option<&BTreeMap<String, f64>> {
        self.entries.get(e)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Kafka's precedence (`DefaultQuotaCallback`): the first entity in
    /// this order that sets `key` gives the quota of (user, client_id):
    /// user+client, user+default client, user, default user+client,
    /// default user+default client, default user, client, default client.
    /// Returns the value and the entity that matched.
    pub fn resolve(&self, user: &str, client_id: &str, key: &str) -> Option<(f64, &QuotaEntity)> {
        let named = |s: &str| Some(EntityName::Named(s.to_string()));
        let d = || Some(EntityName::Default);
        let order = [
            (named(user), named(client_id)),
            (named(user), d()),
            (named(user), None),
            (d(), named(client_id)),
            (d(), d()),
            (d(), None),
            (None, named(client_id)),
            (None, d()),
        ];
        order.into_iter().find_map(|(user, client_id)| {
            let (e, v) = self
                .entries
                .get_key_value(&QuotaEntity { user, client_id })?;
            v.get(key).map(|x| (*x, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alter(entity: QuotaEntity, set: &[(&str, f64)], remove: &[&str]) -> QuotaCommand {
        QuotaCommand::Alter {
            alterations: vec![QuotaAlteration {
                entity,
                set: set.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                remove: remove.iter().map(|k| k.to_string()).collect(),
            }],
        }
    }

    fn apply(s: &mut QuotasState, c: QuotaCommand) -> Result<(), QuotaError> {
        s.check(&c)?;
        s.apply_checked(c);
        Ok(())
    }

    #[test]
    fn wire_entities_follow_kafka() {
        let e = entity_from_wire([(USER, Some("alice")), (CLIENT_ID, None)]).unwrap();
        assert_eq!(e.user, Some(EntityName::Named("alice".into())));
        assert_eq!(e.client_id, Some(EntityName::Default));
        assert_eq!(e.to_string(), "user=alice,client-id=<default>");
        assert!(matches!(
            entity_from_wire([("ip", Some("1.2.3.4"))]),
            Err(QuotaError::UnknownEntityType(_))
        ));
        assert!(matches!(
            entity_from_wire([(USER, Some("a")), (USER, None)]),
            Err(QuotaError::DuplicateEntityType(_))
        ));
        assert_eq!(entity_from_wire([]), Err(QuotaError::EmptyEntity));
    }

    #[test]
    fn values_are_checked() {
        assert!(validate_value(PRODUCER_BYTE_RATE, 1024.0).is_ok());
        assert!(validate_value(PRODUCER_BYTE_RATE, 10.5).is_err());
        assert!(validate_value(CONSUMER_BYTE_RATE, 0.0).is_err());
        assert!(validate_value(REQUEST_PERCENTAGE, 12.5).is_ok());
        assert!(validate_value(REQUEST_PERCENTAGE, f64::NAN).is_err());
        assert!(validate_value("bogus", 1.0).is_err());
    }

    #[test]
    fn precedence_and_removal() {
        let mut s = QuotasState::default();
        let client = |c: Option<&str>| QuotaEntity {
            user: None,
            client_id: Some(c.map_or(EntityName::Default, |c| EntityName::Named(c.into()))),
        };
        apply(
            &mut s,
            alter(client(None), &[(PRODUCER_BYTE_RATE, 100.0)], &[]),
        )
        .unwrap();
        apply(
            &mut s,
            alter(client(Some("fast")), &[(PRODUCER_BYTE_RATE, 1000.0)], &[]),
        )
        .unwrap();
        assert_eq!(
            s.resolve("ANONYMOUS", "fast", PRODUCER_BYTE_RATE)
                .unwrap()
                .0,
            1000.0
        );
        assert_eq!(
            s.resolve("ANONYMOUS", "other", PRODUCER_BYTE_RATE)
                .unwrap()
                .0,
            100.0
        );
        assert!(s
            .resolve("ANONYMOUS", "other", CONSUMER_BYTE_RATE)
            .is_none());
        // A user quota outranks any client-only one.
        let user = QuotaEntity {
            user: Some(EntityName::Named("ANONYMOUS".into())),
            client_id: None,
        };
        apply(
            &mut s,
            alter(user.clone(), &[(PRODUCER_BYTE_RATE, 7.0)], &[]),
        )
        .unwrap();
        assert_eq!(
            s.resolve("ANONYMOUS", "fast", PRODUCER_BYTE_RATE)
                .unwrap()
                .0,
            7.0
        );
        // Removing the last value forgets the entity.
        apply(&mut s, alter(user.clone(), &[], &[PRODUCER_BYTE_RATE])).unwrap();
        assert!(s.get(&user).is_none());
        assert_eq!(s.len(), 2);
        // Invalid alterations change nothing.
        assert!(apply(&mut s, alter(user, &[("nope", 1.0)], &[])).is_err());
        assert_eq!(s.len(), 2);
        // JSON round trip (the snapshot payload).
        let back: QuotasState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
