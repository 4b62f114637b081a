//! The catalogue of Kafka topic-level configs this broker knows.
//!
//! Topics store only the overrides a client set explicitly, as the raw Kafka
//! strings (so DescribeConfigs can echo them back unchanged). This table gives
//! each known name its default, type, validation and a one-line doc, and
//! [`TopicConfig::resolve`] turns overrides + broker defaults into typed values
//! for the code that enforces them (retention, compaction, produce checks).

use std::collections::BTreeMap;

use super::error::MetaError;

/// The type (and accepted range) of a topic config value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConfigKind {
    /// A 64-bit integer within `min..=max`.
    Long {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A 32-bit integer within `min..=max`.
    Int {
        /// Smallest accepted value.
        min: i32,
        /// Largest accepted value.
        max: i32,
    },
    /// A finite floating point number within `min..=max`.
    Double {
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },
    /// `true` or `false` (case-insensitive, as Kafka parses it).
    Boolean,
    /// Exactly one of the listed strings (trimmed, case-sensitive, as Kafka's `ValidString`).
    Enum(&'static [&'static str]),
    /// A non-empty comma-separated list whose items are each one of the listed strings.
    List(&'static [&'static str]),
    /// Free text of at most [`MAX_TEXT_VALUE_LEN`] bytes (configs this broker
    /// accepts and ignores, e.g. `message.format.version`).
    Text,
}

/// Longest value a [`ConfigKind::Text`] config takes.
pub const MAX_TEXT_VALUE_LEN: usize = 4096;

/// Where an effective config value came from (DescribeConfigs' `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    TopicOverride,
    /// From the broker's defaults map.
    BrokerDefault,
    /// The table default below.
    Default,
}

/// One known topic config.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDef {
    /// Kafka's name, e.g. `retention.ms`.
    pub name: &'static str,
    /// Kafka's default, as the string DescribeConfigs reports.
    pub default: &'static str,
    /// Type and range.
    pub kind: ConfigKind,
    /// One-line description.
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";

const fn long(min: i64) -> ConfigKind {
    ConfigKind::Long { min, max: i64::MAX }
}

const fn int(min: i32) -> ConfigKind {
    ConfigKind::Int { min, max: i32::MAX }
}

// Sorted by name so `all()` lists configs the way Kafka's DescribeConfigs does.
static CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: "cleanup.policy",
        default: "delete",
        kind: ConfigKind::List(&["compact", "delete"]),
        doc: "delete old segments by time/size, compact to the latest value per key, or both",
    },
    ConfigDef {
        name: "compression.gzip.level",
        default: "-1",
        kind: ConfigKind::Int { min: -1, max: 9 },
        doc: "gzip level when the broker recompresses (it never does here)",
    },
    ConfigDef {
        name: "compression.lz4.level",
        default: "9",
        kind: ConfigKind::Int { min: 1, max: 17 },
        doc: "lz4 level when the broker recompresses (it never does here)",
    },
    ConfigDef {
        name: "compression.type",
        default: "producer",
        kind: ConfigKind::Enum(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
        doc: "compression of stored batches; this broker stores batches as sent, so only 'producer' is honoured",
    },
    ConfigDef {
        name: "compression.zstd.level",
        default: "3",
        kind: ConfigKind::Int { min: -131072, max: 22 },
        doc: "zstd level when the broker recompresses (it never does here)",
    },
    ConfigDef {
        name: "delete.retention.ms",
        default: "86400000",
        kind: long(0),
        doc: "how long compaction keeps tombstones so consumers can see deletes",
    },
    ConfigDef {
        name: "file.delete.delay.ms",
        default: "60000",
        kind: long(0),
        doc: "grace period between deleting a segment from metadata and deleting its data",
    },
    ConfigDef {
        name: "flush.messages",
        default: LONG_MAX,
        kind: long(1),
        doc: "force a flush after this many messages (durability comes from the WAL here)",
    },
    ConfigDef {
        name: "flush.ms",
        default: LONG_MAX,
        kind: long(0),
        doc: "force a flush after this much time (durability comes from the WAL here)",
    },
    ConfigDef {
        name: "follower.replication.throttled.replicas",
        default: "",
        kind: ConfigKind::Text,
        doc: "replicas whose follower replication is throttled (no followers here: data lives in object storage)",
    },
    ConfigDef {
        name: "index.interval.bytes",
        default: "4096",
        kind: int(0),
        doc: "bytes of records between two offset index entries",
    },
    ConfigDef {
        name: "leader.replication.throttled.replicas",
        default: "",
        kind: ConfigKind::Text,
        doc: "replicas whose leader-side replication is throttled (no followers here: data lives in object storage)",
    },
    ConfigDef {
        name: "local.retention.bytes",
        default: "-2",
        kind: long(-2),
        doc: "tiered storage: local bytes kept before deletion (-2 = retention.bytes)",
    },
    ConfigDef {
        name: "local.retention.ms",
        default: "-2",
        kind: long(-2),
        doc: "tiered storage: local time kept before deletion (-2 = retention.ms)",
    },
    ConfigDef {
        name: "max.compaction.lag.ms",
        default: LONG_MAX,
        kind: long(1),
        doc: "longest a record may stay uncompacted",
    },
    ConfigDef {
        name: "max.message.bytes",
        default: "1048588",
        kind: int(0),
        doc: "largest record batch the topic accepts",
    },
    ConfigDef {
        name: "message.downconversion.enable",
        default: "true",
        kind: ConfigKind::Boolean,
        doc: "whether old fetch versions get down-converted batches",
    },
    ConfigDef {
        name: "message.format.version",
        default: "3.0-IV1",
        kind: ConfigKind::Text,
        doc: "deprecated message format version; batches are always RecordBatch v2 here",
    },
    ConfigDef {
        name: "message.timestamp.after.max.ms",
        default: LONG_MAX,
        kind: long(0),
        doc: "how far in the future a CreateTime timestamp may be",
    },
    ConfigDef {
        name: "message.timestamp.before.max.ms",
        default: LONG_MAX,
        kind: long(0),
        doc: "how far in the past a CreateTime timestamp may be",
    },
    ConfigDef {
        name: "message.timestamp.difference.max.ms",
        default: LONG_MAX,
        kind: long(0),
        doc: "deprecated: largest difference between CreateTime and broker time",
    },
    ConfigDef {
        name: "message.timestamp.type",
        default: "CreateTime",
        kind: ConfigKind::Enum(&["CreateTime", "LogAppendTime"]),
        doc: "keep the producer's timestamp or stamp the broker's append time",
    },
    ConfigDef {
        name: "min.cleanable.dirty.ratio",
        default: "0.5",
        kind: ConfigKind::Double { min: 0.0, max: 1.0 },
        doc: "share of uncompacted log that triggers compaction",
    },
    ConfigDef {
        name: "min.compaction.lag.ms",
        default: "0",
        kind: long(0),
        doc: "shortest a record stays uncompacted",
    },
    ConfigDef {
        name: "min.insync.replicas",
        default: "1",
        kind: int(1),
        doc: "replicas that must ack acks=all writes (always 1 here: objects give durability)",
    },
    ConfigDef {
        name: "preallocate",
        default: "false",
        kind: ConfigKind::Boolean,
        doc: "preallocate segment files (no effect here)",
    },
    ConfigDef {
        name: "remote.log.copy.disable",
        default: "false",
        kind: ConfigKind::Boolean,
        doc: "tiered storage: stop copying segments (segments always live in object storage here)",
    },
    ConfigDef {
        name: "remote.log.delete.on.disable",
        default: "false",
        kind: ConfigKind::Boolean,
        doc: "tiered storage: delete remote data when tiering is disabled (no effect here)",
    },
    ConfigDef {
        name: "remote.storage.enable",
        default: "false",
        kind: ConfigKind::Boolean,
        doc: "tiered storage switch (segments always live in object storage here)",
    },
    ConfigDef {
        name: "retention.bytes",
        default: "-1",
        kind: long(-1),
        doc: "largest size of a partition before old segments are deleted (-1 = unlimited)",
    },
    ConfigDef {
        name: "retention.ms",
        default: "604800000",
        kind: long(-1),
        doc: "how long records are kept before deletion (-1 = forever)",
    },
    ConfigDef {
        name: "segment.bytes",
        default: "1073741824",
        kind: int(1024),
        doc: "size at which a segment is rolled",
    },
    ConfigDef {
        name: "segment.index.bytes",
        default: "10485760",
        kind: int(4),
        doc: "size of the offset index of a segment",
    },
    ConfigDef {
        name: "segment.jitter.ms",
        default: "0",
        kind: long(0),
        doc: "random jitter subtracted from segment.ms to avoid rolling all at once",
    },
    ConfigDef {
        name: "segment.ms",
        default: "604800000",
        kind: long(1),
        doc: "age at which a segment is rolled even if not full",
    },
    ConfigDef {
        name: "unclean.leader.election.enable",
        default: "false",
        kind: ConfigKind::Boolean,
        doc: "allow an out-of-sync replica to become leader (single replica here)",
    },
];

/// Configs Kafka 3.x clients still send that this broker accepts (after
/// validating the value) and does not act on: replication, flushing, index
/// sizing, down-conversion, tiering and recompression settings make no sense
/// where object storage holds the data and batches are stored as sent.
/// They are not stored; DescribeConfigs reports them as read-only defaults.
static IGNORED: &[&str] = &[
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "segment.index.bytes",
    "segment.jitter.ms",
    "unclean.leader.election.enable",
];

/// Whether `name` is a known config this broker accepts and ignores.
pub fn is_ignored(name: &str) -> bool {
    IGNORED.contains(&name)
}

/// Removes the ignored configs from `configs` after checking their values
/// (a bad value is refused as Kafka would); returns the removed names, for
/// the caller's warning.
pub fn strip_ignored(configs: &mut BTreeMap<String, String>) -> Result<Vec<String>, MetaError> {
    let mut removed = Vec::new();
    for (k, v) in configs.iter() {
        if is_ignored(k) {
            validate(k, v)?;
            removed.push(k.clone());
        }
    }
    for k in &removed {
        configs.remove(k);
    }
    Ok(removed)
}

/// The definition of a known topic config, or `None` for an unknown name.
pub fn lookup(name: &str) -> Option<&'static ConfigDef> {
    CONFIGS.iter().find(|d| d.name == name)
}

/// Every known topic config, sorted by name.
pub fn all() -> &'static [ConfigDef] {
    CONFIGS
}

/// Accepts `value` for `name` exactly when Kafka would (for the names we know).
///
/// Unknown names are refused: silently storing a config nothing enforces would
/// let a client believe e.g. a retention it set is in effect.
pub fn validate(name: &str, value: &str) -> Result<(), MetaError> {
    let bad = |reason: String| MetaError::InvalidConfig {
        key: name.to_string(),
        value: value.to_string(),
        reason,
    };
    let def = lookup(name).ok_or_else(|| bad("unknown topic config".to_string()))?;
    // Kafka trims numbers and booleans before parsing.
    let v = value.trim();
    match def.kind {
        ConfigKind::Long { min, max } => {
            let n: i64 = v
                .parse()
                .map_err(|_| bad("expected a 64-bit integer".to_string()))?;
            if n < min || n > max {
                return Err(bad(format!("must be in {min}..={max}")));
            }
        }
        ConfigKind::Int { min, max } => {
            let n: i32 = v
                .parse()
                .map_err(|_| bad("expected a 32-bit integer".to_string()))?;
            if n < min || n > max {
                return Err(bad(format!("must be in {min}..={max}")));
            }
        }
        ConfigKind::Double { min, max } => {
            let n: f64 = v
                .parse()
                .map_err(|_| bad("expected a number".to_string()))?;
            // NaN fails both comparisons, so test the accepted range positively.
            if !(n >= min && n <= max) {
                return Err(bad(format!("must be in {min}..={max}")));
            }
        }
        ConfigKind::Boolean => {
            parse_bool(v).ok_or_else(|| bad("expected true or false".to_string()))?;
        }
        ConfigKind::Enum(allowed) => {
            if !allowed.contains(&v) {
                return Err(bad(format!("must be one of {}", allowed.join(", "))));
            }
        }
        ConfigKind::Text => {
            if value.len() > MAX_TEXT_VALUE_LEN {
                return Err(bad(format!("longer than {MAX_TEXT_VALUE_LEN} bytes")));
            }
        }
        ConfigKind::List(allowed) => {
            let mut any = false;
            for item in value.split(',').map(str::trim) {
                if !allowed.contains(&item) {
                    return Err(bad(format!(
                        "each item must be one of {}",
                        allowed.join(", ")
                    )));
                }
                any = true;
            }
            if !any {
                return Err(bad("must not be empty".to_string()));
            }
        }
    }
    Ok(())
}

fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The effective value of one config and where it came from.
///
/// `broker_defaults` is keyed by the topic-level name (e.g. `retention.ms`,
/// not `log.retention.ms`). A broker default that does not validate is
/// ignored in favour of the table default, so a bad broker config file cannot
/// make topics unusable.
pub fn effective_value(
    def: &'static ConfigDef,
    overrides: &BTreeMap<String, String>,
    broker_defaults: &BTreeMap<String, String>,
) -> (String, ConfigSource) {
    if let Some(v) = overrides.get(def.name) {
        if validate(def.name, v).is_ok() {
            return (v.clone(), ConfigSource::TopicOverride);
        }
    }
    if let Some(v) = broker_defaults.get(def.name) {
        if validate(def.name, v).is_ok() {
            return (v.clone(), ConfigSource::BrokerDefault);
        }
    }
    (def.default.to_string(), ConfigSource::Default)
}

/// Every known config with its effective value and source, sorted by name
/// (what DescribeConfigs needs).
pub fn describe(
    overrides: &BTreeMap<String, String>,
    broker_defaults: &BTreeMap<String, String>,
) -> Vec<(&'static ConfigDef, String, ConfigSource)> {
    all()
        .iter()
        .map(|def| {
            let (v, src) = effective_value(def, overrides, broker_defaults);
            (def, v, src)
        })
        .collect()
}

/// Typed effective configs of a topic, for the code that enforces them.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `cleanup.policy` contains `delete`.
    pub cleanup_policy_delete: bool,
    /// `cleanup.policy` contains `compact`.
    pub cleanup_policy_compact: bool,
    /// `retention.ms`; -1 = forever.
    pub retention_ms: i64,
    /// `retention.bytes`; -1 = unlimited.
    pub retention_bytes: i64,
    /// `segment.bytes`.
    pub segment_bytes: u64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u32,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `message.timestamp.type` is `LogAppendTime`.
    pub log_append_time: bool,
    /// `max.message.bytes`.
    pub max_message_bytes: i32,
}

impl TopicConfig {
    /// Overrides win over broker defaults, which win over the table default.
    ///
    /// Never panics: invalid values (which `apply` never stores, but a broker
    /// defaults map might hold) fall through to the next source.
    pub fn resolve(
        overrides: &BTreeMap<String, String>,
        broker_defaults: &BTreeMap<String, String>,
    ) -> TopicConfig {
        let raw = |name: &str| -> String {
            match lookup(name) {
                Some(def) => effective_value(def, overrides, broker_defaults).0,
                None => String::new(),
            }
        };
        // Values are validated by `effective_value`, so the fallbacks (equal
        // to the table defaults) only matter if the table were inconsistent.
        let num = |name: &str| raw(name).trim().to_string();
        let long = |name: &str, fallback: i64| num(name).parse().unwrap_or(fallback);
        let policy = raw("cleanup.policy");
        let items: Vec<&str> = policy.split(',').map(str::trim).collect();
        TopicConfig {
            cleanup_policy_delete: items.contains(&"delete"),
            cleanup_policy_compact: items.contains(&"compact"),
            retention_ms: long("retention.ms", 604_800_000),
            retention_bytes: long("retention.bytes", -1),
            segment_bytes: num("segment.bytes").parse().unwrap_or(1 << 30),
            segment_ms: long("segment.ms", 604_800_000),
            index_interval_bytes: num("index.interval.bytes").parse().unwrap_or(4096),
            delete_retention_ms: long("delete.retention.ms", 86_400_000),
            min_compaction_lag_ms: long("min.compaction.lag.ms", 0),
            max_compaction_lag_ms: long("max.compaction.lag.ms", i64::MAX),
            min_cleanable_dirty_ratio: num("min.cleanable.dirty.ratio").parse().unwrap_or(0.5),
            log_append_time: num("message.timestamp.type") == "LogAppendTime",
            max_message_bytes: num("max.message.bytes").parse().unwrap_or(1_048_588),
        }
    }
}

impl Default for TopicConfig {
    /// Kafka's defaults, with no overrides and no broker defaults.
    fn default() -> Self {
        TopicConfig::resolve(&BTreeMap::new(), &BTreeMap::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &str, value: &str) {
        validate(name, value).unwrap_or_else(|e| panic!("{name}={value:?} refused: {e}"));
    }

    fn bad(name: &str, value: &str) {
        match validate(name, value) {
            Err(MetaError::InvalidConfig { key, value: v, .. }) => {
                assert_eq!((key.as_str(), v.as_str()), (name, value));
            }
            other => panic!("{name}={value:?} accepted or wrong error: {other:?}"),
        }
    }

    #[test]
    fn table_is_sorted_unique_and_defaults_validate() {
        for w in all().windows(2) {
            assert!(w[0].name < w[1].name, "{} >= {}", w[0].name, w[1].name);
        }
        for def in all() {
            ok(def.name, def.default);
            assert!(!def.doc.is_empty());
            assert_eq!(lookup(def.name), Some(def));
        }
        for name in [
            "cleanup.policy",
            "retention.ms",
            "retention.bytes",
            "segment.bytes",
            "segment.ms",
            "segment.index.bytes",
            "index.interval.bytes",
            "delete.retention.ms",
            "min.compaction.lag.ms",
            "max.compaction.lag.ms",
            "min.cleanable.dirty.ratio",
            "message.timestamp.type",
            "max.message.bytes",
            "compression.type",
            "min.insync.replicas",
            "unclean.leader.election.enable",
            "file.delete.delay.ms",
            "flush.messages",
            "flush.ms",
            "message.timestamp.before.max.ms",
            "message.timestamp.after.max.ms",
            "message.downconversion.enable",
            "preallocate",
        ] {
            assert!(lookup(name).is_some(), "{name} missing");
        }
    }

    #[test]
    fn ignored_configs_are_known_validated_and_stripped() {
        for name in IGNORED {
            assert!(lookup(name).is_some(), "ignored {name} is not in the table");
        }
        for name in [
            "retention.ms",
            "cleanup.policy",
            "index.interval.bytes",
            "segment.bytes",
        ] {
            assert!(!is_ignored(name), "{name} takes effect");
        }
        let mut m: BTreeMap<String, String> = [
            ("message.format.version", "2.8-IV1"),
            ("flush.ms", "1000"),
            ("retention.ms", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let removed = strip_ignored(&mut m).unwrap();
        assert_eq!(removed, vec!["flush.ms", "message.format.version"]);
        assert_eq!(m.keys().collect::<Vec<_>>(), vec!["retention.ms"]);
        let mut bad_value: BTreeMap<String, String> =
            [("min.insync.replicas".to_string(), "0".to_string())].into();
        assert!(strip_ignored(&mut bad_value).is_err());
        bad(
            "message.format.version",
            &"x".repeat(MAX_TEXT_VALUE_LEN + 1),
        );
    }

    #[test]
    fn unknown_name_is_invalid_config() {
        bad("retention.minutes", "1");
        assert_eq!(validate("x", "1").unwrap_err().kafka_code(), 40);
    }

    #[test]
    fn long_values() {
        ok("retention.ms", "-1");
        ok("retention.ms", "0");
        ok("retention.ms", " 9223372036854775807 ");
        bad("retention.ms", "-2");
        bad("retention.ms", "9223372036854775808");
        bad("retention.ms", "1.5");
        bad("retention.ms", "");
        bad("retention.ms", "7d");
        ok("retention.bytes", "-1");
        bad("retention.bytes", "-2");
        ok("segment.ms", "1");
        bad("segment.ms", "0");
        ok("max.compaction.lag.ms", "1");
        bad("max.compaction.lag.ms", "0");
        ok("flush.messages", "1");
        bad("flush.messages", "0");
    }

    #[test]
    fn int_values() {
        ok("segment.bytes", "1024");
        ok("segment.bytes", "2147483647");
        bad("segment.bytes", "1023");
        bad("segment.bytes", "2147483648");
        bad("segment.bytes", "1GB");
        ok("max.message.bytes", "0");
        bad("max.message.bytes", "-1");
        ok("min.insync.replicas", "1");
        bad("min.insync.replicas", "0");
        ok("segment.index.bytes", "4");
        bad("segment.index.bytes", "3");
    }

    #[test]
    fn double_values() {
        ok("min.cleanable.dirty.ratio", "0");
        ok("min.cleanable.dirty.ratio", "0.25");
        ok("min.cleanable.dirty.ratio", "1.0");
        bad("min.cleanable.dirty.ratio", "1.01");
        bad("min.cleanable.dirty.ratio", "-0.1");
        bad("min.cleanable.dirty.ratio", "NaN");
        bad("min.cleanable.dirty.ratio", "inf");
        bad("min.cleanable.dirty.ratio", "half");
    }

    #[test]
    fn boolean_values() {
        ok("preallocate", "true");
        ok("preallocate", "FALSE");
        ok("unclean.leader.election.enable", " True ");
        bad("preallocate", "yes");
        bad("preallocate", "1");
        bad("preallocate", "");
    }

    #[test]
    fn enum_values() {
        for v in ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"] {
            ok("compression.type", v);
        }
        bad("compression.type", "brotli");
        bad("compression.type", "GZIP");
        ok("message.timestamp.type", "LogAppendTime");
        ok("message.timestamp.type", "CreateTime");
        bad("message.timestamp.type", "createtime");
        bad("message.timestamp.type", "");
    }

    #[test]
    fn list_values() {
        for v in ["delete", "compact", "compact,delete", "delete, compact"] {
            ok("cleanup.policy", v);
        }
        for v in ["", "compact,", "remove", "compact;delete"] {
            bad("cleanup.policy", v);
        }
    }

    #[test]
    fn resolve_defaults() {
        let c = TopicConfig::default();
        assert_eq!(
            c,
            TopicConfig {
                cleanup_policy_delete: true,
                cleanup_policy_compact: false,
                retention_ms: 604_800_000,
                retention_bytes: -1,
                segment_bytes: 1_073_741_824,
                segment_ms: 604_800_000,
                index_interval_bytes: 4096,
                delete_retention_ms: 86_400_000,
                min_compaction_lag_ms: 0,
                max_compaction_lag_ms: i64::MAX,
                min_cleanable_dirty_ratio: 0.5,
                log_append_time: false,
                max_message_bytes: 1_048_588,
            }
        );
    }

    #[test]
    fn resolve_precedence_and_bad_broker_defaults() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let overrides = map(&[
            ("cleanup.policy", "compact, delete"),
            ("message.timestamp.type", "LogAppendTime"),
            ("segment.bytes", "2048"),
        ]);
        let broker = map(&[
            ("segment.bytes", "4096"),
            ("retention.ms", "100"),
            ("retention.bytes", "garbage"),
            ("min.cleanable.dirty.ratio", "0.1"),
        ]);
        let c = TopicConfig::resolve(&overrides, &broker);
        assert!(c.cleanup_policy_delete && c.cleanup_policy_compact && c.log_append_time);
        assert_eq!(c.segment_bytes, 2048);
        assert_eq!(c.retention_ms, 100);
        assert_eq!(c.retention_bytes, -1);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.1);

        let d = describe(&overrides, &broker);
        assert_eq!(d.len(), all().len());
        let src = |n: &str| {
            d.iter()
                .find(|(def, _, _)| def.name == n)
                .map(|(_, v, s)| (v.clone(), *s))
        };
        assert_eq!(
            src("segment.bytes"),
            Some(("2048".to_string(), ConfigSource::TopicOverride))
        );
        assert_eq!(
            src("retention.ms"),
            Some(("100".to_string(), ConfigSource::BrokerDefault))
        );
        assert_eq!(
            src("retention.bytes"),
            Some(("-1".to_string(), ConfigSource::Default))
        );
    }
}
