//! `strata topic ...`: topic administration against a running broker over
//! the Kafka protocol (like `kafka-topics.sh --bootstrap-server`).

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::kafka::client::{Client, ClientError};

/// CLI failures; printed by `main` and turned into a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Kafka(String),
    #[error("invalid argument {flag}: {message}")]
    Arg { flag: &'static str, message: String },
}

/// `strata topic` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TopicCmd {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (-1 = the broker's num-partitions).
        #[arg(long, short = 'p', default_value_t = -1)]
        partitions: i32,
        /// Topic config override, repeatable: --config retention.ms=60000
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        configs: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List topics.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a topic's id, partitions, offsets and config overrides.
    Describe {
        /// Topic name.
        name: String,
        /// A broker's HTTP listener (host:port), for the topic's
        /// object-store requests and estimated monthly cost.
        #[arg(long, env = "STRATA_HTTP", default_value = "127.0.0.1:8080")]
        http: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete records below an offset (DeleteRecords): the log start moves up.
    Truncate {
        /// Topic name.
        name: String,
        /// Only this partition (default: every partition).
        #[arg(long, short = 'p')]
        partition: Option<i32>,
        /// New log start offset; -1 = everything up to the high watermark.
        #[arg(long, allow_negative_numbers = true)]
        before: i64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Grow partitions and set or delete config overrides.
    Alter {
        /// Topic name.
        name: String,
        /// New total partition count (only grows).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Set a config, repeatable: --set retention.ms=60000
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Remove a config override (back to the default), repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Where the broker is.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// Broker address host:port.
    #[arg(
        long,
        short = 'b',
        env = "STRATA_BOOTSTRAP_SERVER",
        default_value = "localhost:9092"
    )]
    pub bootstrap_server: String,
    /// Request timeout in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
}

impl Conn {
    async fn client(&self) -> Result<Client, CliError> {
        Ok(Client::connect(
            &self.bootstrap_server,
            Duration::from_millis(self.timeout_ms),
        )
        .await?)
    }
}

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn parse_kv(flag: &'static str, items: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut m = BTreeMap::new();
    for it in items {
        let Some((k, v)) = it.split_once('=') else {
            return Err(CliError::Arg {
                flag,
                message: format!("expected KEY=VALUE, got {it:?}"),
            });
        };
        m.insert(k.trim().to_string(), v.to_string());
    }
    Ok(m)
}

fn check(code: i16, message: Option<&StrBytes>, what: &str) -> Result<(), CliError> {
    if code == 0 {
        return Ok(());
    }
    let m = message.map(|m| m.to_string()).unwrap_or_default();
    Err(CliError::Kafka(format!(
        "{what} failed: {} (error code {code}) {m}",
        error_name(code)
    )))
}

fn error_name(code: i16) -> &'static str {
    match code {
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        17 => "INVALID_TOPIC_EXCEPTION",
        36 => "TOPIC_ALREADY_EXISTS",
        37 => "INVALID_PARTITIONS",
        38 => "INVALID_REPLICATION_FACTOR",
        40 => "INVALID_CONFIG",
        42 => "INVALID_REQUEST",
        _ => "ERROR",
    }
}

/// Run a topic subcommand, printing its result to stdout.
pub async fn run_topic(cmd: TopicCmd) -> Result<(), CliError> {
    match cmd {
        TopicCmd::Create {
            name,
            partitions,
            configs,
            conn,
        } => {
            let configs = parse_kv("--config", &configs)?;
            let mut c = conn.client().await?;
            let topic = CreatableTopic::default()
                .with_name(TopicName(sb(name.clone())))
                .with_num_partitions(partitions)
                .with_replication_factor(-1)
                .with_configs(
                    configs
                        .into_iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(sb(k))
                                .with_value(Some(sb(v)))
                        })
                        .collect(),
                );
            let req = CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(30_000);
            let ResponseKind::CreateTopics(r) = c
                .send(ApiKey::CreateTopics, RequestKind::CreateTopics(req))
                .await?
            else {
                return Err(CliError::Kafka("unexpected response".into()));
            };
            for t in &r.topics {
                check(
                    t.error_code,
                    t.error_message.as_ref(),
                    &format!("create topic {name}"),
                )?;
                println!(
                    "created topic {} ({} partitions, id {})",
                    t.name.0.as_str(),
                    t.num_partitions,
                    t.topic_id
                );
            }
            Ok(())
        }
        TopicCmd::List { conn } => {
            let mut c = conn.client().await?;
            let req = MetadataRequest::default().with_topics(None);
            let ResponseKind::Metadata(r) =
                c.send(ApiKey::Metadata, RequestKind::Metadata(req)).await?
            else {
                return Err(CliError::Kafka("unexpected response".into()));
            };
            let mut names: Vec<_> = r
                .topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect();
            names.sort();
            for n in names {
                println!("{n}");
            }
            Ok(())
        }
        TopicCmd::Describe { name, http, conn } => describe(&name, &http, &conn).await,
        TopicCmd::Truncate {
            name,
            partition,
            before,
            conn,
        } => {
            let mut c = conn.client().await?;
            let parts: Vec<i32> = match partition {
                Some(p) => vec![p],
                None => {
                    let req = MetadataRequest::default()
                        .with_allow_auto_topic_creation(false)
                        .with_topics(Some(vec![MetadataRequestTopic::default()
                            .with_name(Some(TopicName(sb(name.clone()))))]));
                    let ResponseKind::Metadata(md) =
                        c.send(ApiKey::Metadata, RequestKind::Metadata(req)).await?
                    else {
                        return Err(CliError::Kafka("unexpected response".into()));
                    };
                    let t = md
                        .topics
                        .first()
                        .ok_or_else(|| CliError::Kafka(format!("topic {name} not found")))?;
                    check(t.error_code, None, &format!("truncate topic {name}"))?;
                    t.partitions.iter().map(|p| p.partition_index).collect()
                }
            };
            use kafka_protocol::messages::delete_records_request::{
                DeleteRecordsPartition, DeleteRecordsTopic,
            };
            let req = DeleteRecordsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(TopicName(sb(name.clone())))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|p| {
                                DeleteRecordsPartition::default()
                                    .with_partition_index(*p)
                                    .with_offset(before)
                            })
                            .collect(),
                    )]);
            let ResponseKind::DeleteRecords(r) = c
                .send(ApiKey::DeleteRecords, RequestKind::DeleteRecords(req))
                .await?
            else {
                return Err(CliError::Kafka("unexpected response".into()));
            };
            for t in &r.topics {
                for p in &t.partitions {
                    check(
                        p.error_code,
                        None,
                        &format!("truncate {name}-{}", p.partition_index),
                    )?;
                    println!(
                        "{name}-{}: log start offset {}",
                        p.partition_index, p.low_watermark
                    );
                }
            }
            Ok(())
        }
        TopicCmd::Delete { name, conn } => {
            let mut c = conn.client().await?;
            // v6 names topics in `topics` (by name or id), older versions in `topic_names`.
            let req = if c.version(ApiKey::DeleteTopics)? >= 6 {
                DeleteTopicsRequest::default().with_topics(vec![
                    kafka_protocol::messages::delete_topics_request::DeleteTopicState::default()
                        .with_name(Some(TopicName(sb(name.clone())))),
                ])
            } else {
                DeleteTopicsRequest::default().with_topic_names(vec![TopicName(sb(name.clone()))])
            }
            .with_timeout_ms(30_000);
            let ResponseKind::DeleteTopics(r) = c
                .send(ApiKey::DeleteTopics, RequestKind::DeleteTopics(req))
                .await?
            else {
                return Err(CliError::Kafka("unexpected response".into()));
            };
            let mine = r
                .responses
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name));
            let Some(t) = mine else {
                return Err(CliError::Kafka(format!(
                    "delete topic {name} failed: the broker did not answer for it"
                )));
            };
            check(
                t.error_code,
                t.error_message.as_ref(),
                &format!("delete topic {name}"),
            )?;
            println!("deleted topic {name}");
            Ok(())
        }
        TopicCmd::Alter {
            name,
            partitions,
            set,
            delete,
            conn,
        } => {
            let set = parse_kv("--set", &set)?;
            if partitions.is_none() && set.is_empty() && delete.is_empty() {
                return Err(CliError::Arg {
                    flag: "--partitions/--set/--delete",
                    message: "nothing to alter".into(),
                });
            }
            let mut c = conn.client().await?;
            if let Some(count) = partitions {
                let req = CreatePartitionsRequest::default()
                    .with_topics(vec![CreatePartitionsTopic::default()
                        .with_name(TopicName(sb(name.clone())))
                        .with_count(count)])
                    .with_timeout_ms(30_000);
                let ResponseKind::CreatePartitions(r) = c
                    .send(ApiKey::CreatePartitions, RequestKind::CreatePartitions(req))
                    .await?
                else {
                    return Err(CliError::Kafka("unexpected response".into()));
                };
                for t in &r.results {
                    check(
                        t.error_code,
                        t.error_message.as_ref(),
                        &format!("alter partitions of {name}"),
                    )?;
                }
                println!("topic {name} now has {count} partitions");
            }
            if !set.is_empty() || !delete.is_empty() {
                let mut configs: Vec<AlterableConfig> = set
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(sb(k.clone()))
                            .with_config_operation(0)
                            .with_value(Some(sb(v.clone())))
                    })
                    .collect();
                configs.extend(delete.iter().map(|k| {
                    AlterableConfig::default()
                        .with_name(sb(k.clone()))
                        .with_config_operation(1)
                }));
                let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(sb(name.clone()))
                        .with_configs(configs),
                ]);
                let ResponseKind::IncrementalAlterConfigs(r) = c
                    .send(
                        ApiKey::IncrementalAlterConfigs,
                        RequestKind::IncrementalAlterConfigs(req),
                    )
                    .await?
                else {
                    return Err(CliError::Kafka("unexpected response".into()));
                };
                for t in &r.responses {
                    check(
                        t.error_code,
                        t.error_message.as_ref(),
                        &format!("alter configs of {name}"),
                    )?;
                }
                println!("updated configs of topic {name}");
            }
            Ok(())
        }
    }
}

async fn describe(name: &str, http: &str, conn: &Conn) -> Result<(), CliError> {
    let mut c = conn.client().await?;
    // Describing must never create the topic, whatever the broker's auto-create.
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(sb(name))))
        ]));
    let ResponseKind::Metadata(md) = c.send(ApiKey::Metadata, RequestKind::Metadata(req)).await?
    else {
        return Err(CliError::Kafka("unexpected response".into()));
    };
    let Some(t) = md.topics.first() else {
        return Err(CliError::Kafka(format!("topic {name} not found")));
    };
    check(t.error_code, None, &format!("describe topic {name}"))?;
    // Offsets of every partition.
    let mut lo = kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default()
        .with_name(TopicName(sb(name)));
    let mut hi = lo.clone();
    for p in &t.partitions {
        lo.partitions.push(
            kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-2),
        );
        hi.partitions.push(
            kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1),
        );
    }
    let mut offsets: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for (which, topic) in [(0, lo), (1, hi)] {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![topic]);
        if let ResponseKind::ListOffsets(r) = c
            .send(ApiKey::ListOffsets, RequestKind::ListOffsets(req))
            .await?
        {
            for rt in &r.topics {
                for rp in &rt.partitions {
                    let e = offsets.entry(rp.partition_index).or_insert((-1, -1));
                    if which == 0 {
                        e.0 = rp.offset
                    } else {
                        e.1 = rp.offset
                    }
                }
            }
        }
    }
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(sb(name))]);
    let overrides: Vec<String> = match c
        .send(ApiKey::DescribeConfigs, RequestKind::DescribeConfigs(req))
        .await?
    {
        ResponseKind::DescribeConfigs(r) => r
            .results
            .iter()
            .flat_map(|res| res.configs.iter())
            .filter(|cfg| cfg.config_source == 1)
            .map(|cfg| {
                format!(
                    "{}={}",
                    cfg.name.as_str(),
                    cfg.value
                        .as_ref()
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    println!(
        "Topic: {name}\tTopicId: {}\tPartitionCount: {}\tConfigs: {}",
        t.topic_id,
        t.partitions.len(),
        overrides.join(",")
    );
    for p in &t.partitions {
        let (start, end) = offsets.get(&p.partition_index).copied().unwrap_or((-1, -1));
        println!(
            "\tPartition: {}\tLeader: {}\tLeaderEpoch: {}\tStartOffset: {}\tEndOffset: {}",
            p.partition_index, p.leader_id.0, p.leader_epoch, start, end
        );
    }
    // The cost lines come from the HTTP topic resource; without it the
    // rest of the description still stands.
    let cluster = md
        .cluster_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let path = format!("/v3/clusters/{cluster}/topics/{name}");
    let client = crate::controller::network::JsonClient::new();
    match client
        .call::<(), crate::http::admin::Topic>(
            http,
            &path,
            None,
            Duration::from_millis(conn.timeout_ms),
        )
        .await
    {
        Ok(crate::http::admin::Topic { cost: Some(c), .. }) => {
            let r = |op: &str| c.requests.get(op).copied().unwrap_or(0.0);
            let b = |op: &str| c.bytes.get(op).copied().unwrap_or(0);
            println!(
                "\tObjectStore: PUT {:.1} GET {:.1} DELETE {:.1} LIST {:.1} requests, {} bytes up, {} bytes down, {} bytes stored (broker at {http}, last {:.0} s)",
                r("put"),
                r("get"),
                r("delete"),
                r("list"),
                b("put"),
                b("get"),
                c.stored_bytes,
                c.window_seconds
            );
            println!(
                "\tEstimatedMonthlyCost: ${:.4} (requests ${:.4} + storage ${:.4}, price sheet of that broker)",
                c.estimated_monthly.total_usd, c.estimated_monthly.requests_usd, c.estimated_monthly.storage_usd
            );
        }
        Ok(_) => println!("\tEstimatedMonthlyCost: not reported by the broker at {http}"),
        Err(e) => println!(
            "\tEstimatedMonthlyCost: unavailable ({e}; set --http to a broker's HTTP listener)"
        ),
    }
    Ok(())
}

/// `strata drain`.
#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    /// The broker's HTTP listener (host:port).
    #[arg(long, env = "STRATA_DRAIN_HTTP", default_value = "127.0.0.1:8080")]
    pub http: String,
    /// Seconds to wait for the hand-off.
    #[arg(long, default_value_t = 30)]
    pub timeout_s: u64,
}

#[derive(serde::Deserialize)]
struct DrainAnswer {
    status: String,
    broker_id: i32,
    partitions_led: usize,
}

/// Asks the broker to hand off; fails when partitions are left behind
/// although other brokers are live.
pub async fn run_drain(args: DrainArgs) -> anyhow::Result<()> {
    let client = crate::controller::network::JsonClient::new();
    let a: DrainAnswer = client
        .call(
            &args.http,
            "/admin/drain",
            Some(&serde_json::json!({})),
            Duration::from_secs(args.timeout_s),
        )
        .await?;
    match a.status.as_str() {
        "drained" => println!("broker {} drained: it leads no partition", a.broker_id),
        "alone" => println!(
            "broker {} is the only live broker: it keeps its {} partitions",
            a.broker_id, a.partitions_led
        ),
        _ => anyhow::bail!(
            "broker {} still leads {} partitions after the hand-off",
            a.broker_id,
            a.partitions_led
        ),
    }
    Ok(())
}

/// `strata txn` subcommands (over a broker's HTTP API).
#[derive(Debug, clap::Subcommand)]
pub enum TxnCmd {
    /// List transactional ids with their producer, state and coordinator.
    List {
        #[command(flatten)]
        http: TxnHttp,
    },
    /// Show one transactional id: state, partitions, groups, timeout.
    Describe {
        /// The transactional id.
        transactional_id: String,
        #[command(flatten)]
        http: TxnHttp,
    },
}

/// Where the broker's HTTP API listens.
#[derive(Debug, clap::Args)]
pub struct TxnHttp {
    /// A broker's HTTP listener (host:port).
    #[arg(long, env = "STRATA_HTTP", default_value = "127.0.0.1:8080")]
    pub http: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Deserialize)]
struct ClusterList {
    data: Vec<serde_json::Value>,
}

/// Runs `strata txn ...`.
pub async fn run_txn(cmd: TxnCmd) -> anyhow::Result<()> {
    let client = crate::controller::network::JsonClient::new();
    let t = Duration::from_secs(30);
    let http = match &cmd {
        TxnCmd::List { http } | TxnCmd::Describe { http, .. } => http,
    };
    let clusters: ClusterList = client
        .call::<(), _>(&http.http, "/v3/clusters", None, t)
        .await?;
    let cluster = clusters
        .data
        .first()
        .and_then(|c| c["cluster_id"].as_str())
        .ok_or_else(|| anyhow::anyhow!("{} lists no cluster", http.http))?
        .to_string();
    let rows: Vec<serde_json::Value> = match &cmd {
        TxnCmd::List { .. } => {
            let l: ClusterList = client
                .call::<(), _>(
                    &http.http,
                    &format!("/v3/clusters/{cluster}/transactions"),
                    None,
                    t,
                )
                .await?;
            l.data
        }
        TxnCmd::Describe {
            transactional_id, ..
        } => {
            let path = format!(
                "/v3/clusters/{cluster}/transactions/{}",
                url_escape(transactional_id)
            );
            vec![client.call::<(), _>(&http.http, &path, None, t).await?]
        }
    };
    if http.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<32} {:>12} {:>6} {:<15} {:>11} {:>10}  PARTITIONS",
        "TRANSACTIONAL ID", "PRODUCER ID", "EPOCH", "STATE", "COORDINATOR", "TIMEOUT MS"
    );
    for r in rows {
        let parts: Vec<String> = r["partitions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        format!(
                            "{}-{}",
                            p["topic_name"].as_str().unwrap_or("?"),
                            p["partition_id"]
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:<32} {:>12} {:>6} {:<15} {:>11} {:>10}  {}",
            r["transactional_id"].as_str().unwrap_or("?"),
            r["producer_id"],
            r["producer_epoch"],
            r["state"].as_str().unwrap_or("?"),
            r["coordinator_id"],
            r["timeout_ms"],
            parts.join(",")
        );
    }
    Ok(())
}

/// Percent-escapes a path segment.
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
