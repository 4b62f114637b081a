//! `strata quota ...`: client quotas on a running broker over the Kafka
//! protocol (like `kafka-configs.sh --entity-type clients|users`).

use std::time::Duration;

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::*;

use super::state::{CLIENT_ID, USER};
use crate::cli::{CliError, Conn};
use crate::kafka::client::Client;
use crate::kafka::handlers::sb;

/// `strata quota` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum QuotaCmd {
    /// Set quotas of an entity: `strata quota set --client-id app producer_byte_rate=1048576`.
    Set {
        #[command(flatten)]
        entity: Entity,
        /// KEY=VALUE: producer_byte_rate, consumer_byte_rate, request_percentage.
        #[arg(required = true, value_name = "KEY=VALUE")]
        values: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove quota keys of an entity.
    Remove {
        #[command(flatten)]
        entity: Entity,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List quota entities and their values (all, or those matching the
    /// given user / client id).
    List {
        #[command(flatten)]
        entity: Entity,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

/// The entity: a user and/or a client id; an empty name is the default.
#[derive(Debug, Clone, clap::Args)]
pub struct Entity {
    /// User name ("" = the default user).
    #[arg(long)]
    pub user: Option<String>,
    /// Client id ("" = the default client id).
    #[arg(long)]
    pub client_id: Option<String>,
}

impl Entity {
    fn parts(&self) -> Vec<(&'static str, Option<String>)> {
        let name = |s: &String| (!s.is_empty()).then(|| s.clone());
        let mut v = Vec::new();
        if let Some(u) = &self.user {
            v.push((USER, name(u)));
        }
        if let Some(c) = &self.client_id {
            v.push((CLIENT_ID, name(c)));
        }
        v
    }
}

async fn client(conn: &Conn) -> Result<Client, CliError> {
    Ok(Client::connect(
        &conn.bootstrap_server,
        Duration::from_millis(conn.timeout_ms),
    )
    .await?)
}

async fn alter(conn: &Conn, entity: &Entity, ops: Vec<OpData>) -> Result<(), CliError> {
    let parts = entity.parts();
    if parts.is_empty() {
        return Err(CliError::Arg {
            flag: "--user/--client-id",
            message: "name a user, a client id or both".into(),
        });
    }
    let entry = EntryData::default()
        .with_entity(
            parts
                .into_iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(sb(t))
                        .with_entity_name(n.map(sb))
                })
                .collect(),
        )
        .with_ops(ops);
    let mut c = client(conn).await?;
    let resp = c
        .send(
            ApiKey::AlterClientQuotas,
            RequestKind::AlterClientQuotas(
                AlterClientQuotasRequest::default().with_entries(vec![entry]),
            ),
        )
        .await?;
    let ResponseKind::AlterClientQuotas(r) = resp else {
        return Err(CliError::Kafka("unexpected response".into()));
    };
    for e in r.entries {
        if e.error_code != 0 {
            return Err(CliError::Kafka(format!(
                "alter quotas failed (error code {}): {}",
                e.error_code,
                e.error_message.as_deref().unwrap_or("")
            )));
        }
    }
    Ok(())
}

/// Run a quota subcommand, printing its result to stdout.
pub async fn run_quota(cmd: QuotaCmd) -> Result<(), CliError> {
    match cmd {
        QuotaCmd::Set {
            entity,
            values,
            conn,
        } => {
            let mut ops = Vec::new();
            for kv in &values {
                let parsed = kv
                    .split_once('=')
                    .and_then(|(k, v)| Some((k.trim(), v.trim().parse::<f64>().ok()?)));
                let Some((k, v)) = parsed else {
                    return Err(CliError::Arg {
                        flag: "KEY=VALUE",
                        message: format!("expected KEY=NUMBER, got {kv:?}"),
                    });
                };
                ops.push(OpData::default().with_key(sb(k)).with_value(v));
            }
            alter(&conn, &entity, ops).await
        }
        QuotaCmd::Remove { entity, keys, conn } => {
            let ops = keys
                .iter()
                .map(|k| OpData::default().with_key(sb(k.clone())).with_remove(true))
                .collect();
            alter(&conn, &entity, ops).await
        }
        QuotaCmd::List { entity, json, conn } => {
            let components = entity
                .parts()
                .into_iter()
                .map(|(t, n)| {
                    let c = ComponentData::default().with_entity_type(sb(t));
                    match n {
                        Some(n) => c.with_match_type(0).with_match(Some(sb(n))),
                        None => c.with_match_type(1),
                    }
                })
                .collect();
            let mut c = client(&conn).await?;
            let resp = c
                .send(
                    ApiKey::DescribeClientQuotas,
                    RequestKind::DescribeClientQuotas(
                        DescribeClientQuotasRequest::default().with_components(components),
                    ),
                )
                .await?;
            let ResponseKind::DescribeClientQuotas(r) = resp else {
                return Err(CliError::Kafka("unexpected response".into()));
            };
            if r.error_code != 0 {
                return Err(CliError::Kafka(format!(
                    "describe quotas failed (error code {}): {}",
                    r.error_code,
                    r.error_message.as_deref().unwrap_or("")
                )));
            }
            let rows: Vec<serde_json::Value> = r
                .entries
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    let entity: serde_json::Map<String, serde_json::Value> = e
                        .entity
                        .iter()
                        .map(|x| {
                            (
                                x.entity_type.to_string(),
                                x.entity_name
                                    .as_ref()
                                    .map_or(serde_json::Value::Null, |n| n.to_string().into()),
                            )
                        })
                        .collect();
                    let values: serde_json::Map<String, serde_json::Value> = e
                        .values
                        .iter()
                        .map(|v| (v.key.to_string(), v.value.into()))
                        .collect();
                    serde_json::json!({ "entity": entity, "values": values })
                })
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_default()
                );
                return Ok(());
            }
            println!("{:<48} QUOTAS", "ENTITY");
            for r in rows {
                let ent: Vec<String> = r["entity"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("<default>")))
                            .collect()
                    })
                    .unwrap_or_default();
                let vals: Vec<String> = r["values"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                println!("{:<48} {}", ent.join(","), vals.join(","));
            }
            Ok(())
        }
    }
}
