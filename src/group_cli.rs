//! `strata group ...`: consumer group administration against a running
//! broker over the Kafka protocol (like `kafka-consumer-groups.sh`): list,
//! describe (members, assignment, committed offset, end offset, lag), delete
//! and reset-offsets.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::cli::{CliError, Conn};
use crate::groups::protocol;
use crate::kafka::client::Client;

/// `strata group` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum GroupCmd {
    /// List consumer groups (with members or committed offsets) and their state.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a group's state, members, assignment, committed offsets, end offsets and lag.
    Describe {
        /// Group id.
        group: String,
        /// Print JSON (group, epochs, members, assignments) instead of tables.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete empty groups and their committed offsets.
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Move an inactive group's committed offsets (dry run unless --execute).
    ResetOffsets {
        /// Group id.
        group: String,
        /// Topic, or topic:partition[,partition...], repeatable.
        #[arg(long = "topic", value_name = "TOPIC[:P,...]")]
        topics: Vec<String>,
        /// Every topic the group has committed offsets for.
        #[arg(long, conflicts_with = "topics")]
        all_topics: bool,
        /// To the log start offset.
        #[arg(long, group = "target")]
        to_earliest: bool,
        /// To the log end offset.
        #[arg(long, group = "target")]
        to_latest: bool,
        /// To this offset (clamped to the log's range).
        #[arg(long, group = "target", value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// Move the committed offset by N (negative: back), clamped.
        #[arg(long, group = "target", value_name = "N", allow_hyphen_values = true)]
        shift_by: Option<i64>,
        /// To the first offset whose timestamp is >= this (ms since the epoch).
        #[arg(long, group = "target", value_name = "MS")]
        to_timestamp: Option<i64>,
        /// Commit the new offsets (without it, only print the plan).
        #[arg(long)]
        execute: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn error_name(code: i16) -> &'static str {
    match code {
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        22 => "ILLEGAL_GENERATION",
        24 => "INVALID_GROUP_ID",
        25 => "UNKNOWN_MEMBER_ID",
        27 => "REBALANCE_IN_PROGRESS",
        68 => "NON_EMPTY_GROUP",
        69 => "GROUP_ID_NOT_FOUND",
        86 => "GROUP_SUBSCRIBED_TO_TOPIC",
        _ => "ERROR",
    }
}

fn kafka_err(what: &str, code: i16) -> CliError {
    CliError::Kafka(format!(
        "{what} failed: {} (error code {code})",
        error_name(code)
    ))
}

async fn connect(conn: &Conn) -> Result<Client, CliError> {
    Ok(Client::connect(
        &conn.bootstrap_server,
        Duration::from_millis(conn.timeout_ms),
    )
    .await?)
}

/// A connection to the group's coordinator (the bootstrap broker when the
/// coordinator cannot be reached at its advertised address).
async fn coordinator(conn: &Conn, group: &str) -> Result<Client, CliError> {
    let mut c = connect(conn).await?;
    // v4+ (batched keys); every Strata broker serves it.
    let req = FindCoordinatorRequest::default().with_coordinator_keys(vec![sb(group)]);
    let ResponseKind::FindCoordinator(r) = c
        .send(ApiKey::FindCoordinator, RequestKind::FindCoordinator(req))
        .await?
    else {
        return Err(CliError::Kafka("unexpected response".into()));
    };
    let (code, host, port) = match r.coordinators.first() {
        Some(k) => (k.error_code, k.host.to_string(), k.port),
        None => (r.error_code, r.host.to_string(), r.port),
    };
    if code != 0 {
        return Err(kafka_err("find coordinator", code));
    }
    let addr = format!("{host}:{port}");
    if addr == conn.bootstrap_server {
        return Ok(c);
    }
    match Client::connect(&addr, Duration::from_millis(conn.timeout_ms)).await {
        Ok(k) => Ok(k),
        Err(_) => Ok(c),
    }
}

struct Described {
    state: String,
    protocol_type: String,
    protocol: String,
    /// (group epoch, assignment epoch) of a KIP-848 consumer group.
    epochs: Option<(i32, i32)>,
    members: Vec<DescribedMember>,
}

struct DescribedMember {
    member_id: String,
    instance_id: Option<String>,
    client_id: String,
    host: String,
    /// Member epoch (consumer groups only).
    epoch: Option<i32>,
    assignment: Vec<(String, Vec<i32>)>,
}

/// A KIP-848 consumer group through ConsumerGroupDescribe (`None`: the
/// group is not one).
async fn describe_consumer_group(
    c: &mut Client,
    group: &str,
) -> Result<Option<Described>, CliError> {
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb(group))]);
    let ResponseKind::ConsumerGroupDescribe(r) = c
        .send(
            ApiKey::ConsumerGroupDescribe,
            RequestKind::ConsumerGroupDescribe(req),
        )
        .await?
    else {
        return Err(CliError::Kafka("unexpected response".into()));
    };
    let Some(g) = r.groups.into_iter().next() else {
        return Ok(None);
    };
    if g.error_code == 69 {
        return Ok(None);
    }
    if g.error_code != 0 {
        return Err(kafka_err(&format!("describe group {group}"), g.error_code));
    }
    Ok(Some(Described {
        state: g.group_state.to_string(),
        protocol_type: crate::groups::consumer_protocol::PROTOCOL_TYPE.into(),
        protocol: g.assignor_name.to_string(),
        epochs: Some((g.group_epoch, g.assignment_epoch)),
        members: g
            .members
            .into_iter()
            .map(|m| DescribedMember {
                member_id: m.member_id.to_string(),
                instance_id: m.instance_id.map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                epoch: Some(m.member_epoch),
                assignment: m
                    .assignment
                    .topic_partitions
                    .into_iter()
                    .map(|t| (t.topic_name.to_string(), t.partitions))
                    .collect(),
            })
            .collect(),
    }))
}

async fn describe_group(c: &mut Client, group: &str) -> Result<Described, CliError> {
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]);
    let ResponseKind::DescribeGroups(r) = c
        .send(ApiKey::DescribeGroups, RequestKind::DescribeGroups(req))
        .await?
    else {
        return Err(CliError::Kafka("unexpected response".into()));
    };
    let Some(g) = r.groups.into_iter().next() else {
        return Err(CliError::Kafka("empty DescribeGroups response".into()));
    };
    if g.error_code != 0 && g.error_code != 69 {
        return Err(kafka_err(&format!("describe group {group}"), g.error_code));
    }
    if g.error_code == 69 && c.version(ApiKey::ConsumerGroupDescribe).is_ok() {
        if let Some(d) = describe_consumer_group(c, group).await? {
            return Ok(d);
        }
    }
    let consumer = g.protocol_type.as_str() == protocol::CONSUMER;
    Ok(Described {
        state: if g.error_code == 69 {
            "Dead".into()
        } else {
            g.group_state.to_string()
        },
        protocol_type: g.protocol_type.to_string(),
        protocol: g.protocol_data.to_string(),
        epochs: None,
        members: g
            .members
            .into_iter()
            .map(|m| DescribedMember {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                epoch: None,
                assignment: if consumer {
                    protocol::assignment_partitions(&m.member_assignment).unwrap_or_default()
                } else {
                    Vec::new()
                },
            })
            .collect(),
    })
}

/// Committed offsets of a group: (topic, partition) -> offset.
async fn committed(c: &mut Client, group: &str) -> Result<BTreeMap<(String, i32), i64>, CliError> {
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(None)]);
    let ResponseKind::OffsetFetch(r) = c
        .send(ApiKey::OffsetFetch, RequestKind::OffsetFetch(req))
        .await?
    else {
        return Err(CliError::Kafka("unexpected response".into()));
    };
    let mut out = BTreeMap::new();
    for g in r.groups {
        if g.error_code != 0 {
            return Err(kafka_err(
                &format!("fetch offsets of {group}"),
                g.error_code,
            ));
        }
        for t in g.topics {
            for p in t.partitions {
                if p.committed_offset >= 0 {
                    out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
    }
    Ok(out)
}

/// ListOffsets with `timestamp` (-1 latest, -2 earliest, or a time) for
/// the given partitions: (topic, partition) -> offset (-1 when unknown).
async fn list_offsets(
    c: &mut Client,
    parts: &BTreeSet<(String, i32)>,
    timestamp: i64,
) -> Result<BTreeMap<(String, i32), i64>, CliError> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(*p);
    }
    let topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            ListOffsetsTopic::default()
                .with_name(TopicName(sb(t)))
                .with_partitions(
                    ps.into_iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )
        })
        .collect();
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(topics);
    let ResponseKind::ListOffsets(r) = c
        .send(ApiKey::ListOffsets, RequestKind::ListOffsets(req))
        .await?
    else {
        return Err(CliError::Kafka("unexpected response".into()));
    };
    let mut out = BTreeMap::new();
    for t in r.topics {
        for p in t.partitions {
            let off = if p.error_code == 0 { p.offset } else { -1 };
            out.insert((t.name.to_string(), p.partition_index), off);
        }
    }
    Ok(out)
}

/// Partition counts of topics (missing topics are errors).
async fn partitions_of(
    c: &mut Client,
    topics: &[String],
) -> Result<BTreeMap<String, i32>, CliError> {
    let req = MetadataRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(sb(t.clone())))))
            .collect(),
    ));
    let ResponseKind::Metadata(md) = c.send(ApiKey::Metadata, RequestKind::Metadata(req)).await?
    else {
        return Err(CliError::Kafka("unexpected response".into()));
    };
    let mut out = BTreeMap::new();
    for t in md.topics {
        let name = t.name.map(|n| n.to_string()).unwrap_or_default();
        if t.error_code != 0 {
            return Err(kafka_err(&format!("look up topic {name}"), t.error_code));
        }
        out.insert(name, t.partitions.len() as i32);
    }
    Ok(out)
}

/// Prints rows as left-aligned columns.
fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i + 1 == r.len() {
                    s.clone()
                } else {
                    format!("{s:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

/// Run a group subcommand, printing its result to stdout.
pub async fn run_group(cmd: GroupCmd) -> Result<(), CliError> {
    match cmd {
        GroupCmd::List { conn } => {
            let mut c = connect(&conn).await?;
            let ResponseKind::ListGroups(r) = c
                .send(
                    ApiKey::ListGroups,
                    RequestKind::ListGroups(ListGroupsRequest::default()),
                )
                .await?
            else {
                return Err(CliError::Kafka("unexpected response".into()));
            };
            if r.error_code != 0 {
                return Err(kafka_err("list groups", r.error_code));
            }
            let mut groups: Vec<_> = r
                .groups
                .iter()
                .map(|g| {
                    vec![
                        g.group_id.to_string(),
                        dash(&g.group_state),
                        dash(&g.protocol_type),
                    ]
                })
                .collect();
            groups.sort();
            let mut rows = vec![vec!["GROUP".into(), "STATE".into(), "PROTOCOL-TYPE".into()]];
            rows.extend(groups);
            print_table(&rows);
            Ok(())
        }
        GroupCmd::Describe { group, json, conn } => describe(&group, json, &conn).await,
        GroupCmd::Delete { groups, conn } => {
            let mut c = connect(&conn).await?;
            let req = DeleteGroupsRequest::default()
                .with_groups_names(groups.iter().map(|g| GroupId(sb(g.clone()))).collect());
            let ResponseKind::DeleteGroups(r) = c
                .send(ApiKey::DeleteGroups, RequestKind::DeleteGroups(req))
                .await?
            else {
                return Err(CliError::Kafka("unexpected response".into()));
            };
            let mut failed = Vec::new();
            for res in &r.results {
                if res.error_code == 0 {
                    println!("deleted group {}", res.group_id.as_str());
                } else {
                    failed.push(format!(
                        "{}: {} (error code {})",
                        res.group_id.as_str(),
                        error_name(res.error_code),
                        res.error_code
                    ));
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(CliError::Kafka(format!(
                    "delete failed for {}",
                    failed.join("; ")
                )))
            }
        }
        GroupCmd::ResetOffsets {
            group,
            topics,
            all_topics,
            to_earliest,
            to_latest,
            to_offset,
            shift_by,
            to_timestamp,
            execute,
            conn,
        } => {
            let target = if to_earliest {
                Target::Earliest
            } else if to_latest {
                Target::Latest
            } else if let Some(o) = to_offset {
                Target::Offset(o)
            } else if let Some(n) = shift_by {
                Target::Shift(n)
            } else if let Some(ts) = to_timestamp {
                Target::Timestamp(ts)
            } else {
                return Err(CliError::Arg {
                    flag: "--to-earliest/--to-latest/--to-offset/--shift-by/--to-timestamp",
                    message: "choose where to reset to".into(),
                });
            };
            if topics.is_empty() && !all_topics {
                return Err(CliError::Arg {
                    flag: "--topic/--all-topics",
                    message: "choose the topics to reset".into(),
                });
            }
            reset_offsets(&group, &topics, all_topics, target, execute, &conn).await
        }
    }
}

fn describe_json(group: &str, d: &Described, offsets: &BTreeMap<(String, i32), i64>) -> String {
    let members: Vec<serde_json::Value> = d
        .members
        .iter()
        .map(|m| {
            serde_json::json!({
                "member_id": m.member_id,
                "instance_id": m.instance_id,
                "client_id": m.client_id,
                "host": m.host,
                "member_epoch": m.epoch,
                "assignment": m.assignment.iter().cloned().collect::<BTreeMap<String, Vec<i32>>>(),
            })
        })
        .collect();
    let offsets: Vec<serde_json::Value> = offsets
        .iter()
        .map(|((t, p), o)| serde_json::json!({"topic": t, "partition": p, "offset": o}))
        .collect();
    serde_json::json!({
        "group": group,
        "state": d.state,
        "protocol_type": d.protocol_type,
        "assignor": d.protocol,
        "group_epoch": d.epochs.map(|e| e.0),
        "assignment_epoch": d.epochs.map(|e| e.1),
        "members": members,
        "offsets": offsets,
    })
    .to_string()
}

async fn describe(group: &str, json: bool, conn: &Conn) -> Result<(), CliError> {
    let mut c = coordinator(conn, group).await?;
    let d = describe_group(&mut c, group).await?;
    let offsets = committed(&mut c, group).await?;
    if d.state == "Dead" && offsets.is_empty() {
        return Err(CliError::Kafka(format!(
            "consumer group {group} does not exist"
        )));
    }
    if json {
        println!("{}", describe_json(group, &d, &offsets));
        return Ok(());
    }
    let mut owner: BTreeMap<(String, i32), usize> = BTreeMap::new();
    for (i, m) in d.members.iter().enumerate() {
        for (t, ps) in &m.assignment {
            for p in ps {
                owner.insert((t.clone(), *p), i);
            }
        }
    }
    let parts: BTreeSet<(String, i32)> = offsets.keys().chain(owner.keys()).cloned().collect();
    let ends = if parts.is_empty() {
        BTreeMap::new()
    } else {
        list_offsets(&mut c, &parts, -1).await?
    };
    let proto = if d.protocol.is_empty() {
        dash(&d.protocol_type)
    } else {
        format!("{}/{}", d.protocol_type, d.protocol)
    };
    let epochs = d.epochs.map_or(String::new(), |(g, a)| {
        format!("  Group epoch: {g}  Assignment epoch: {a}")
    });
    println!(
        "Group: {group}  State: {}  Protocol: {proto}  Members: {}{epochs}",
        d.state,
        d.members.len()
    );
    println!();
    let mut rows = vec![[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for key in &parts {
        let cur = offsets.get(key).copied();
        let end = ends.get(key).copied().filter(|e| *e >= 0);
        let lag = match (cur, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            _ => "-".into(),
        };
        let m = owner.get(key).map(|i| &d.members[*i]);
        rows.push(vec![
            group.to_string(),
            key.0.clone(),
            key.1.to_string(),
            cur.map_or("-".into(), |c| c.to_string()),
            end.map_or("-".into(), |e| e.to_string()),
            lag,
            m.map_or("-".into(), |m| m.member_id.clone()),
            m.map_or("-".into(), |m| dash(&m.host)),
            m.map_or("-".into(), |m| dash(&m.client_id)),
        ]);
    }
    print_table(&rows);
    if !d.members.is_empty() {
        println!();
        let mut rows = vec![[
            "CONSUMER-ID",
            "INSTANCE-ID",
            "HOST",
            "CLIENT-ID",
            "EPOCH",
            "#PARTITIONS",
            "ASSIGNMENT",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()];
        for m in &d.members {
            let n: usize = m.assignment.iter().map(|(_, ps)| ps.len()).sum();
            let a: Vec<String> = m
                .assignment
                .iter()
                .map(|(t, ps)| {
                    let ps: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
                    format!("{t}({})", ps.join(","))
                })
                .collect();
            rows.push(vec![
                m.member_id.clone(),
                m.instance_id.clone().unwrap_or_else(|| "-".into()),
                dash(&m.host),
                dash(&m.client_id),
                m.epoch.map_or("-".into(), |e| e.to_string()),
                n.to_string(),
                if a.is_empty() {
                    "-".into()
                } else {
                    a.join(" ")
                },
            ]);
        }
        print_table(&rows);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Shift(i64),
    Timestamp(i64),
}

fn parse_topic_arg(s: &str) -> Result<(String, Option<Vec<i32>>), CliError> {
    match s.split_once(':') {
        None => Ok((s.to_string(), None)),
        Some((t, ps)) => {
            let parts: Result<Vec<i32>, _> =
                ps.split(',').map(|p| p.trim().parse::<i32>()).collect();
            match parts {
                Ok(p) if !p.is_empty() && !t.is_empty() => Ok((t.to_string(), Some(p))),
                _ => Err(CliError::Arg {
                    flag: "--topic",
                    message: format!("expected TOPIC or TOPIC:P[,P...], got {s:?}"),
                }),
            }
        }
    }
}

async fn reset_offsets(
    group: &str,
    topics: &[String],
    all_topics: bool,
    target: Target,
    execute: bool,
    conn: &Conn,
) -> Result<(), CliError> {
    let mut c = coordinator(conn, group).await?;
    let d = describe_group(&mut c, group).await?;
    if d.state != "Empty" && d.state != "Dead" {
        return Err(CliError::Kafka(format!(
            "group {group} is {} with {} member(s): stop its consumers before resetting offsets",
            d.state,
            d.members.len()
        )));
    }
    let current = committed(&mut c, group).await?;
    let mut parts: BTreeSet<(String, i32)> = BTreeSet::new();
    if all_topics {
        parts.extend(current.keys().cloned());
    } else {
        let parsed: Vec<(String, Option<Vec<i32>>)> = topics
            .iter()
            .map(|t| parse_topic_arg(t))
            .collect::<Result<_, _>>()?;
        let names: Vec<String> = parsed.iter().map(|(t, _)| t.clone()).collect();
        let counts = partitions_of(&mut c, &names).await?;
        for (t, ps) in parsed {
            let n = counts.get(&t).copied().unwrap_or(0);
            match ps {
                Some(ps) => {
                    for p in ps {
                        if p < 0 || p >= n {
                            return Err(CliError::Arg {
                                flag: "--topic",
                                message: format!("topic {t} has no partition {p} ({n} partitions)"),
                            });
                        }
                        parts.insert((t.clone(), p));
                    }
                }
                None => parts.extend((0..n).map(|p| (t.clone(), p))),
            }
        }
    }
    if parts.is_empty() {
        return Err(CliError::Kafka(format!(
            "nothing to reset for group {group}"
        )));
    }
    let earliest = list_offsets(&mut c, &parts, -2).await?;
    let latest = list_offsets(&mut c, &parts, -1).await?;
    let by_time = match target {
        Target::Timestamp(ts) => Some(list_offsets(&mut c, &parts, ts).await?),
        _ => None,
    };
    let mut plan = Vec::new();
    for key in &parts {
        let lo = earliest.get(key).copied().unwrap_or(0).max(0);
        let hi = latest.get(key).copied().unwrap_or(lo).max(lo);
        let want = match target {
            Target::Earliest => lo,
            Target::Latest => hi,
            Target::Offset(o) => o,
            Target::Shift(n) => current.get(key).copied().unwrap_or(lo).saturating_add(n),
            Target::Timestamp(_) => {
                let o = by_time
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .copied()
                    .unwrap_or(-1);
                if o < 0 {
                    hi
                } else {
                    o
                }
            }
        };
        plan.push((key.clone(), want.clamp(lo, hi)));
    }
    let mut rows = vec![["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()];
    for ((t, p), o) in &plan {
        rows.push(vec![
            group.to_string(),
            t.clone(),
            p.to_string(),
            o.to_string(),
        ]);
    }
    print_table(&rows);
    if !execute {
        println!();
        println!("dry run: nothing changed (add --execute to commit these offsets)");
        return Ok(());
    }
    let mut by_topic: BTreeMap<String, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in &plan {
        by_topic.entry(t.clone()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_metadata(Some(sb(""))),
        );
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(sb(""))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let ResponseKind::OffsetCommit(r) = c
        .send(ApiKey::OffsetCommit, RequestKind::OffsetCommit(req))
        .await?
    else {
        return Err(CliError::Kafka("unexpected response".into()));
    };
    for t in &r.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                return Err(kafka_err(
                    &format!("commit offset of {}-{}", t.name.as_str(), p.partition_index),
                    p.error_code,
                ));
            }
        }
    }
    println!();
    println!("committed {} offset(s) for group {group}", plan.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_arguments() {
        assert_eq!(parse_topic_arg("t").unwrap(), ("t".to_string(), None));
        assert_eq!(
            parse_topic_arg("t:0,2").unwrap(),
            ("t".to_string(), Some(vec![0, 2]))
        );
        for bad in ["t:", ":1", "t:x", "t:1,,2"] {
            assert!(parse_topic_arg(bad).is_err(), "{bad}");
        }
    }
}
