//! Consumer lag: per group and partition, high watermark (the end offset consumers can reach) minus committed
//! offset, exported with kafka_exporter's metric names so existing
//! dashboards and alerts work unchanged. A group whose offsets are committed
//! by transactions (an exactly-once consumer, reading read_committed) is
//! measured against the last stable offset instead.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::Coordinator;
use crate::broker::Broker;
use crate::meta::MetaState;

/// The end a group can reach in a partition: the high watermark, or the
/// last stable offset for a transactional group.
fn reachable_end(meta: &MetaState, topic: &str, p: i32, transactional: bool) -> Option<i64> {
    let pm = meta
        .topics
        .get(topic)?
        .partitions
        .get(usize::try_from(p).ok()?)?;
    Some(if transactional {
        pm.last_stable_offset()
    } else {
        pm.committed_end
    })
}

/// Lag of one committed partition.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    /// Log end offset, -1 if the partition is unknown here.
    pub end: i64,
    /// `end - committed`, never negative; -1 if `end` is unknown.
    pub lag: i64,
}

/// Lag of every partition a group committed, in (topic, partition) order.
pub fn group_lag(broker: &Broker, group: &str) -> Vec<PartitionLag> {
    let meta = broker.meta();
    let Some(g) = meta.groups.group(group) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(g.len());
    for (topic, parts) in &g.offsets {
        for (p, c) in parts {
            let end = reachable_end(&meta, topic, *p, g.transactional).unwrap_or(-1);
            out.push(PartitionLag {
                topic: topic.clone(),
                partition: *p,
                committed: c.offset,
                end,
                lag: if end < 0 { -1 } else { (end - c.offset).max(0) },
            });
        }
    }
    out
}

/// Escapes a Prometheus label value (`\`, `"` and newlines).
fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

impl Coordinator {
    /// Appends the consumer-group metrics to a Prometheus text exposition:
    /// kafka_exporter's `kafka_consumergroup_*` families plus the
    /// coordinator's own `strata_group_*` counters.
    pub fn render_metrics(&self, broker: &Broker, o: &mut String) {
        let meta = broker.meta();
        let members = self.member_counts();
        let mut current = String::new();
        let mut current_sum = String::new();
        let mut lag = String::new();
        let mut lag_sum = String::new();
        for (group, offsets) in &meta.groups.groups {
            let g = label(group);
            let mut per_topic: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
            for (topic, parts) in &offsets.offsets {
                for (p, c) in parts {
                    let Some(end) = reachable_end(&meta, topic, *p, offsets.transactional) else {
                        continue;
                    };
                    let l = (end - c.offset).max(0);
                    let _ = writeln!(
                        current,
                        "kafka_consumergroup_current_offset{{consumergroup=\"{g}\",topic=\"{topic}\",partition=\"{p}\"}} {}",
                        c.offset
                    );
                    let _ = writeln!(
                        lag,
                        "kafka_consumergroup_lag{{consumergroup=\"{g}\",topic=\"{topic}\",partition=\"{p}\"}} {l}"
                    );
                    let e = per_topic.entry(topic).or_default();
                    e.0 += c.offset;
                    e.1 += l;
                }
            }
            for (topic, (cur, l)) in per_topic {
                let _ = writeln!(
                    current_sum,
                    "kafka_consumergroup_current_offset_sum{{consumergroup=\"{g}\",topic=\"{topic}\"}} {cur}"
                );
                let _ = writeln!(
                    lag_sum,
                    "kafka_consumergroup_lag_sum{{consumergroup=\"{g}\",topic=\"{topic}\"}} {l}"
                );
            }
        }
        let families = [
            (
                "kafka_consumergroup_current_offset",
                "Committed offset of a consumer group in a partition.",
                current,
            ),
            (
                "kafka_consumergroup_current_offset_sum",
                "Sum of a consumer group's committed offsets in a topic.",
                current_sum,
            ),
            (
                "kafka_consumergroup_lag",
                "Log end offset minus committed offset of a consumer group in a partition.",
                lag,
            ),
            (
                "kafka_consumergroup_lag_sum",
                "Sum of a consumer group's lag in a topic.",
                lag_sum,
            ),
        ];
        for (name, help, body) in families {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
            o.push_str(&body);
        }
        let _ = writeln!(o, "# HELP kafka_consumergroup_members Members of a consumer group coordinated by this broker.\n# TYPE kafka_consumergroup_members gauge");
        for (group, n) in &members {
            let _ = writeln!(
                o,
                "kafka_consumergroup_members{{consumergroup=\"{}\"}} {n}",
                label(group)
            );
        }
        let (rebalances, expired, commits) = self.counters();
        let _ = writeln!(o, "# HELP strata_group_rebalances_total Rebalances completed (join phases that produced a generation).\n# TYPE strata_group_rebalances_total counter\nstrata_group_rebalances_total {rebalances}");
        let _ = writeln!(o, "# HELP strata_group_members_expired_total Members removed because their session timed out.\n# TYPE strata_group_members_expired_total counter\nstrata_group_members_expired_total {expired}");
        let _ = writeln!(o, "# HELP strata_group_offset_commits_total OffsetCommit requests written to the metadata log.\n# TYPE strata_group_offset_commits_total counter\nstrata_group_offset_commits_total {commits}");
        let _ = writeln!(o, "# HELP strata_groups Consumer groups this broker coordinates, by state.\n# TYPE strata_groups gauge");
        for (state, n) in self.state_counts(&meta) {
            let _ = writeln!(o, "strata_groups{{state=\"{state}\"}} {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label("plain-group.1"), "plain-group.1");
    }
}
