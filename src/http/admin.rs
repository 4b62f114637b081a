//! Admin (REST Proxy v3 shapes): clusters, brokers, topics (list, create,
//! describe, delete), topic configs (list, alter), partitions with their
//! start and end offsets, consumer groups with members and lag.
//!
//! Topic creation, deletion and configs go through the Kafka handlers
//! (`kafka::dispatch`: CreateTopics, DeleteTopics, DescribeConfigs,
//! IncrementalAlterConfigs), so validation and errors are those of Kafka
//! clients; listings read the metadata snapshot.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use kafka_protocol::messages::{self as km, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};

use super::consumer::call;
use super::error::{rest_code, ApiError, ApiResult, ErrorBody, JsonBody};
use super::Rest;
use crate::auth::acl::{op, resource};

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// `metadata` of a REST Proxy resource.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResourceMeta {
    #[serde(rename = "self")]
    pub self_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

/// A link to a related collection.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Related {
    pub related: String,
}

/// A collection: `{kind, metadata, data}`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct List<T> {
    pub kind: String,
    pub metadata: ResourceMeta,
    pub data: Vec<T>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cluster {
    pub kind: String,
    pub metadata: ResourceMeta,
    pub cluster_id: String,
    pub controller: Related,
    pub brokers: Related,
    pub topics: Related,
    pub consumer_groups: Related,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BrokerInfo {
    pub kind: String,
    pub metadata: ResourceMeta,
    pub cluster_id: String,
    pub broker_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Topic {
    pub kind: String,
    pub metadata: ResourceMeta,
    pub cluster_id: String,
    pub topic_name: String,
    /// Topic UUID (Strata extension).
    pub topic_id: String,
    pub is_internal: bool,
    pub replication_factor: i32,
    pub partitions_count: i32,
    pub partitions: Related,
    pub configs: Related,
    /// Object-store requests, bytes and estimated monthly cost of the
    /// topic as this broker saw them (Strata extension; docs/cost.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::TopicCost>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Partition {
    pub kind: String,
    pub metadata: ResourceMeta,
    pub cluster_id: String,
    pub topic_name: String,
    pub partition_id: i32,
    pub leader: Related,
    /// Leader broker id (Strata extension).
    pub leader_id: i32,
    /// First readable offset (Strata extension).
    pub start_offset: i64,
    /// High watermark: offsets below are durable and readable (Strata extension).
    pub end_offset: i64,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicConfig {
    pub kind: String,
    pub metadata: ResourceMeta,
    pub cluster_id: String,
    pub topic_name: String,
    pub name: String,
    pub value: Option<String>,
    pub is_default: bool,
    pub is_read_only: bool,
    pub is_sensitive: bool,
    pub source: String,
}

/// `configs` entry of a topic creation.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfigEntry {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// Body of `POST /v3/clusters/{cluster_id}/topics`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateTopic {
    pub topic_name: String,
    /// Default: the broker's `--num-partitions`.
    #[serde(default)]
    pub partitions_count: Option<i32>,
    #[serde(default)]
    pub replication_factor: Option<i16>,
    #[serde(default)]
    pub configs: Vec<ConfigEntry>,
    #[serde(default)]
    pub validate_only: bool,
}

/// One change of `POST .../configs:alter`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct AlterConfig {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    /// `SET` (default) or `DELETE`.
    #[serde(default)]
    pub operation: Option<String>,
}

/// Body of `POST .../configs:alter`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AlterConfigs {
    pub data: Vec<AlterConfig>,
    #[serde(default)]
    pub validate_only: bool,
}

/// Body of `PUT .../configs/{name}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateConfig {
    pub value: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsumerGroup {
    pub kind: String,
    pub metadata: ResourceMeta,
    pub cluster_id: String,
    pub consumer_group_id: String,
    pub is_simple: bool,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: String,
    pub partition_assignor: String,
    pub state: String,
    pub coordinator: Related,
    pub consumers: Related,
    pub lag_summary: Related,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Consumer {
    pub kind: String,
    pub metadata: ResourceMeta,
    pub cluster_id: String,
    pub consumer_group_id: String,
    pub consumer_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    /// Member epoch of a KIP-848 consumer group member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_epoch: Option<i32>,
    /// Assigned partitions (Strata extension: inline instead of a link).
    pub assignments: Vec<AssignedPartition>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AssignedPartition {
    pub topic_name: String,
    pub partition_id: i32,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsumerLag {
    pub kind: String,
    pub metadata: ResourceMeta,
    pub cluster_id: String,
    pub consumer_group_id: String,
    pub topic_name: String,
    pub partition_id: i32,
    pub current_offset: i64,
    pub log_end_offset: i64,
    pub lag: i64,
    pub consumer_id: String,
}

fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn meta(url: String, resource: Option<String>) -> ResourceMeta {
    ResourceMeta {
        self_url: url,
        resource_name: resource,
    }
}

fn list<T>(kind: &str, url: String, data: Vec<T>) -> Json<List<T>> {
    Json(List {
        kind: kind.into(),
        metadata: meta(url, None),
        data,
    })
}

fn cluster(rest: &Rest, base: &str) -> Cluster {
    let c = &rest.broker.cluster_id;
    let u = format!("{base}/v3/clusters/{c}");
    Cluster {
        kind: "KafkaCluster".into(),
        metadata: meta(u.clone(), Some(format!("crn:///kafka={c}"))),
        cluster_id: c.clone(),
        controller: Related {
            related: format!("{u}/brokers/{}", rest.broker.broker_id),
        },
        brokers: Related {
            related: format!("{u}/brokers"),
        },
        topics: Related {
            related: format!("{u}/topics"),
        },
        consumer_groups: Related {
            related: format!("{u}/consumer-groups"),
        },
    }
}

/// List clusters (this broker's).
#[utoipa::path(get, path = "/v3/clusters", tag = "Admin (v3)",
    responses((status = 200, body = inline(List<Cluster>))))]
pub async fn list_clusters(
    State(rest): State<Arc<Rest>>,
    headers: HeaderMap,
) -> Json<List<Cluster>> {
    let b = base(&headers);
    list(
        "KafkaClusterList",
        format!("{b}/v3/clusters"),
        vec![cluster(&rest, &b)],
    )
}

/// Describe the cluster.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}", tag = "Admin (v3)",
    params(("cluster_id" = String, Path)),
    responses((status = 200, body = Cluster), (status = 404, body = ErrorBody)))]
pub async fn get_cluster(
    State(rest): State<Arc<Rest>>,
    Path(cluster_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Cluster>> {
    rest.check_cluster(&cluster_id)?;
    Ok(Json(cluster(&rest, &base(&headers))))
}

fn brokers(rest: &Rest, base: &str) -> Vec<BrokerInfo> {
    let c = &rest.broker.cluster_id;
    let cfg = &rest.broker.config;
    let m = rest.broker.meta();
    let mut out: Vec<BrokerInfo> = m
        .brokers
        .values()
        .map(|br| BrokerInfo {
            kind: "KafkaBroker".into(),
            metadata: meta(
                format!("{base}/v3/clusters/{c}/brokers/{}", br.broker_id),
                None,
            ),
            cluster_id: c.clone(),
            broker_id: br.broker_id,
            host: br.host.clone(),
            port: br.port,
            rack: br.rack.clone(),
        })
        .collect();
    if out.is_empty() {
        out.push(BrokerInfo {
            kind: "KafkaBroker".into(),
            metadata: meta(
                format!("{base}/v3/clusters/{c}/brokers/{}", rest.broker.broker_id),
                None,
            ),
            cluster_id: c.clone(),
            broker_id: rest.broker.broker_id,
            host: cfg.advertised_host.clone(),
            port: cfg.advertised_port() as i32,
            rack: cfg.rack.clone(),
        });
    }
    out
}

/// List brokers.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/brokers", tag = "Admin (v3)",
    params(("cluster_id" = String, Path)),
    responses((status = 200, body = inline(List<BrokerInfo>)), (status = 404, body = ErrorBody)))]
pub async fn list_brokers(
    State(rest): State<Arc<Rest>>,
    Path(cluster_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<List<BrokerInfo>>> {
    rest.check_cluster(&cluster_id)?;
    let b = base(&headers);
    Ok(list(
        "KafkaBrokerList",
        format!("{b}/v3/clusters/{cluster_id}/brokers"),
        brokers(&rest, &b),
    ))
}

/// Describe a broker.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/brokers/{broker_id}", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("broker_id" = i32, Path)),
    responses((status = 200, body = BrokerInfo), (status = 404, body = ErrorBody)))]
pub async fn get_broker(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, broker_id)): Path<(String, i32)>,
    headers: HeaderMap,
) -> ApiResult<Json<BrokerInfo>> {
    rest.check_cluster(&cluster_id)?;
    brokers(&rest, &base(&headers))
        .into_iter()
        .find(|b| b.broker_id == broker_id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("broker not found: {broker_id}")))
}

fn topic_info(rest: &Rest, base: &str, t: &crate::meta::Topic) -> Topic {
    let c = &rest.broker.cluster_id;
    let u = format!("{base}/v3/clusters/{c}/topics/{}", t.name);
    Topic {
        kind: "KafkaTopic".into(),
        metadata: meta(
            u.clone(),
            Some(format!("crn:///kafka={c}/topic={}", t.name)),
        ),
        cluster_id: c.clone(),
        topic_name: t.name.clone(),
        topic_id: t.topic_id.to_string(),
        is_internal: false,
        replication_factor: 1,
        partitions_count: t.partitions.len() as i32,
        partitions: Related {
            related: format!("{u}/partitions"),
        },
        configs: Related {
            related: format!("{u}/configs"),
        },
        cost: Some(rest.broker.topic_cost(t)),
    }
}

/// List topics.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/topics", tag = "Admin (v3)",
    params(("cluster_id" = String, Path)),
    responses((status = 200, body = inline(List<Topic>)), (status = 404, body = ErrorBody)))]
pub async fn list_topics(
    State(rest): State<Arc<Rest>>,
    Path(cluster_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<List<Topic>>> {
    rest.check_cluster(&cluster_id)?;
    let b = base(&headers);
    let m = rest.broker.meta();
    Ok(list(
        "KafkaTopicList",
        format!("{b}/v3/clusters/{cluster_id}/topics"),
        m.topics
            .values()
            .filter(|t| super::access::can(&rest.broker, op::DESCRIBE, resource::TOPIC, &t.name))
            .map(|t| topic_info(&rest, &b, t))
            .collect(),
    ))
}

/// Describe a topic.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/topics/{topic_name}", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("topic_name" = String, Path)),
    responses((status = 200, body = Topic), (status = 404, body = ErrorBody)))]
pub async fn get_topic(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, topic)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Topic>> {
    rest.check_cluster(&cluster_id)?;
    super::access::check_topic(&rest.broker, op::DESCRIBE, &topic)?;
    let m = rest.broker.meta();
    let t = m
        .topic(&topic)
        .ok_or_else(|| ApiError::unknown_topic(&topic))?;
    Ok(Json(topic_info(&rest, &base(&headers), t)))
}

/// Create a topic.
#[utoipa::path(post, path = "/v3/clusters/{cluster_id}/topics", tag = "Admin (v3)",
    params(("cluster_id" = String, Path)),
    request_body(content = CreateTopic, content_type = "application/json"),
    responses((status = 201, body = Topic), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Topic exists", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn create_topic(
    State(rest): State<Arc<Rest>>,
    Path(cluster_id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateTopic>,
) -> ApiResult<(StatusCode, Json<Topic>)> {
    rest.check_cluster(&cluster_id)?;
    let body = body.ok_or_else(|| ApiError::bad_request("expected a JSON body with topic_name"))?;
    if body.configs.len() > 1000 {
        return Err(ApiError::bad_request("too many configs"));
    }
    let req = km::CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_validate_only(body.validate_only)
        .with_topics(vec![km::create_topics_request::CreatableTopic::default()
            .with_name(km::TopicName(sb(&body.topic_name)))
            .with_num_partitions(body.partitions_count.unwrap_or(-1))
            .with_replication_factor(body.replication_factor.unwrap_or(-1))
            .with_configs(
                body.configs
                    .iter()
                    .map(|c| {
                        km::create_topics_request::CreatableTopicConfig::default()
                            .with_name(sb(&c.name))
                            .with_value(c.value.as_deref().map(sb))
                    })
                    .collect(),
            )]);
    let Some(ResponseKind::CreateTopics(r)) =
        call(&rest.broker, 7, RequestKind::CreateTopics(req)).await
    else {
        return Err(ApiError::internal("CreateTopics gave no answer"));
    };
    let t = r
        .topics
        .first()
        .ok_or_else(|| ApiError::internal("CreateTopics: empty answer"))?;
    if t.error_code != 0 {
        let mut e =
            ApiError::from_kafka(t.error_code, &format!("create topic {:?}", body.topic_name));
        if let Some(m) = &t.error_message {
            e.message = format!("{}: {m}", e.message);
        }
        return Err(e);
    }
    let b = base(&headers);
    let c = &rest.broker.cluster_id;
    let u = format!("{b}/v3/clusters/{c}/topics/{}", body.topic_name);
    let info = match rest.broker.meta().topic(&body.topic_name) {
        Some(t) if !body.validate_only => topic_info(&rest, &b, t),
        _ => Topic {
            kind: "KafkaTopic".into(),
            metadata: meta(u.clone(), None),
            cluster_id: c.clone(),
            topic_name: body.topic_name.clone(),
            topic_id: t.topic_id.to_string(),
            is_internal: false,
            replication_factor: i32::from(t.replication_factor),
            partitions_count: t.num_partitions,
            partitions: Related {
                related: format!("{u}/partitions"),
            },
            configs: Related {
                related: format!("{u}/configs"),
            },
            cost: None,
        },
    };
    Ok((StatusCode::CREATED, Json(info)))
}

/// Delete a topic.
#[utoipa::path(delete, path = "/v3/clusters/{cluster_id}/topics/{topic_name}", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("topic_name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_topic(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, topic)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    rest.check_cluster(&cluster_id)?;
    if rest.broker.topic(&topic).is_none() {
        return Err(ApiError::unknown_topic(&topic));
    }
    let req = km::DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![km::delete_topics_request::DeleteTopicState::default()
            .with_name(Some(km::TopicName(sb(&topic))))]);
    let Some(ResponseKind::DeleteTopics(r)) =
        call(&rest.broker, 6, RequestKind::DeleteTopics(req)).await
    else {
        return Err(ApiError::internal("DeleteTopics gave no answer"));
    };
    match r.responses.first().map(|t| t.error_code) {
        Some(0) => Ok(StatusCode::NO_CONTENT),
        Some(3) => Err(ApiError::unknown_topic(&topic)),
        Some(c) => Err(ApiError::from_kafka(c, &format!("delete topic {topic:?}"))),
        None => Err(ApiError::internal("DeleteTopics: empty answer")),
    }
}

async fn describe_configs(rest: &Rest, base: &str, topic: &str) -> ApiResult<Vec<TopicConfig>> {
    super::access::check_topic(&rest.broker, op::DESCRIBE_CONFIGS, topic)?;
    super::access::check_api(&rest.broker, km::ApiKey::DescribeConfigs)?;
    if rest.broker.topic(topic).is_none() {
        return Err(ApiError::unknown_topic(topic));
    }
    let req = km::DescribeConfigsRequest::default().with_resources(vec![
        km::describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(sb(topic))
            .with_configuration_keys(None),
    ]);
    let Some(ResponseKind::DescribeConfigs(r)) =
        call(&rest.broker, 4, RequestKind::DescribeConfigs(req)).await
    else {
        return Err(ApiError::internal("DescribeConfigs gave no answer"));
    };
    let res = r
        .results
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("empty answer"))?;
    if res.error_code != 0 {
        return Err(ApiError::from_kafka(
            res.error_code,
            &format!("configs of {topic:?}"),
        ));
    }
    let c = &rest.broker.cluster_id;
    Ok(res
        .configs
        .into_iter()
        .map(|e| {
            let name = e.name.to_string();
            TopicConfig {
                kind: "KafkaTopicConfig".into(),
                metadata: meta(
                    format!("{base}/v3/clusters/{c}/topics/{topic}/configs/{name}"),
                    None,
                ),
                cluster_id: c.clone(),
                topic_name: topic.to_string(),
                value: e.value.map(|v| v.to_string()),
                // Not overridden on the topic (a broker default or Kafka's).
                is_default: e.config_source != 1,
                is_read_only: e.read_only,
                is_sensitive: e.is_sensitive,
                source: match e.config_source {
                    1 => "DYNAMIC_TOPIC_CONFIG",
                    4 => "STATIC_BROKER_CONFIG",
                    5 => "DEFAULT_CONFIG",
                    _ => "UNKNOWN",
                }
                .into(),
                name,
            }
        })
        .collect())
}

/// List a topic's configs.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/topics/{topic_name}/configs", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("topic_name" = String, Path)),
    responses((status = 200, body = inline(List<TopicConfig>)), (status = 404, body = ErrorBody)))]
pub async fn list_configs(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, topic)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<List<TopicConfig>>> {
    rest.check_cluster(&cluster_id)?;
    let b = base(&headers);
    let data = describe_configs(&rest, &b, &topic).await?;
    Ok(list(
        "KafkaTopicConfigList",
        format!("{b}/v3/clusters/{cluster_id}/topics/{topic}/configs"),
        data,
    ))
}

/// Describe one config of a topic.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/topics/{topic_name}/configs/{name}", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("topic_name" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = TopicConfig), (status = 404, body = ErrorBody)))]
pub async fn get_config(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, topic, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<TopicConfig>> {
    rest.check_cluster(&cluster_id)?;
    describe_configs(&rest, &base(&headers), &topic)
        .await?
        .into_iter()
        .find(|c| c.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("config not found: {name}")))
}

async fn alter(
    rest: &Rest,
    topic: &str,
    changes: Vec<AlterConfig>,
    validate_only: bool,
) -> ApiResult<()> {
    super::access::check_topic(&rest.broker, op::ALTER_CONFIGS, topic)?;
    super::access::check_api(&rest.broker, km::ApiKey::IncrementalAlterConfigs)?;
    if rest.broker.topic(topic).is_none() {
        return Err(ApiError::unknown_topic(topic));
    }
    if changes.len() > 1000 {
        return Err(ApiError::bad_request("too many configs"));
    }
    let mut configs = Vec::with_capacity(changes.len());
    for c in changes {
        let op = match c
            .operation
            .as_deref()
            .map(|s| s.to_ascii_uppercase())
            .as_deref()
        {
            None | Some("SET") => 0,
            Some("DELETE") => 1,
            Some(o) => {
                return Err(ApiError::bad_request(format!(
                    "operation must be SET or DELETE, got {o:?}"
                )))
            }
        };
        configs.push(
            km::incremental_alter_configs_request::AlterableConfig::default()
                .with_name(sb(&c.name))
                .with_config_operation(op)
                .with_value(c.value.as_deref().map(sb)),
        );
    }
    let req = km::IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![
            km::incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(sb(topic))
                .with_configs(configs),
        ]);
    let Some(ResponseKind::IncrementalAlterConfigs(r)) =
        call(&rest.broker, 1, RequestKind::IncrementalAlterConfigs(req)).await
    else {
        return Err(ApiError::internal("IncrementalAlterConfigs gave no answer"));
    };
    match r.responses.first() {
        Some(x) if x.error_code == 0 => Ok(()),
        Some(x) => {
            let mut e = ApiError::from_kafka(x.error_code, &format!("alter configs of {topic:?}"));
            if let Some(m) = &x.error_message {
                e.message = format!("{}: {m}", e.message);
            }
            Err(e)
        }
        None => Err(ApiError::internal("empty answer")),
    }
}

/// Alter several configs of a topic at once.
#[utoipa::path(post, path = "/v3/clusters/{cluster_id}/topics/{topic_name}/configs:alter", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("topic_name" = String, Path)),
    request_body(content = AlterConfigs, content_type = "application/json"),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn alter_configs(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, topic)): Path<(String, String)>,
    JsonBody(body): JsonBody<AlterConfigs>,
) -> ApiResult<StatusCode> {
    rest.check_cluster(&cluster_id)?;
    let body = body.ok_or_else(|| ApiError::bad_request("expected {\"data\": [...]}"))?;
    alter(&rest, &topic, body.data, body.validate_only).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set one config of a topic.
#[utoipa::path(put, path = "/v3/clusters/{cluster_id}/topics/{topic_name}/configs/{name}", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("topic_name" = String, Path), ("name" = String, Path)),
    request_body(content = UpdateConfig, content_type = "application/json"),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_config(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, topic, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<UpdateConfig>,
) -> ApiResult<StatusCode> {
    rest.check_cluster(&cluster_id)?;
    let body = body.ok_or_else(|| ApiError::bad_request("expected {\"value\": ...}"))?;
    alter(
        &rest,
        &topic,
        vec![AlterConfig {
            name,
            value: body.value,
            operation: Some("SET".into()),
        }],
        false,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reset one config of a topic to its default.
#[utoipa::path(delete, path = "/v3/clusters/{cluster_id}/topics/{topic_name}/configs/{name}", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("topic_name" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn reset_config(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, topic, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    rest.check_cluster(&cluster_id)?;
    alter(
        &rest,
        &topic,
        vec![AlterConfig {
            name,
            value: None,
            operation: Some("DELETE".into()),
        }],
        false,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn partitions(rest: &Rest, base: &str, topic: &str) -> ApiResult<Vec<Partition>> {
    super::access::check_topic(&rest.broker, op::DESCRIBE, topic)?;
    let m = rest.broker.meta();
    let t = m
        .topic(topic)
        .ok_or_else(|| ApiError::unknown_topic(topic))?;
    let c = &rest.broker.cluster_id;
    Ok(t.partitions
        .iter()
        .enumerate()
        .map(|(i, p)| Partition {
            kind: "KafkaPartition".into(),
            metadata: meta(
                format!("{base}/v3/clusters/{c}/topics/{topic}/partitions/{i}"),
                None,
            ),
            cluster_id: c.clone(),
            topic_name: topic.to_string(),
            partition_id: i as i32,
            leader: Related {
                related: format!("{base}/v3/clusters/{c}/brokers/{}", p.leader),
            },
            leader_id: p.leader,
            start_offset: p.log_start_offset,
            end_offset: p.committed_end,
        })
        .collect())
}

/// List a topic's partitions with their start and end offsets.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/topics/{topic_name}/partitions", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("topic_name" = String, Path)),
    responses((status = 200, body = inline(List<Partition>)), (status = 404, body = ErrorBody)))]
pub async fn list_partitions(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, topic)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<List<Partition>>> {
    rest.check_cluster(&cluster_id)?;
    let b = base(&headers);
    let data = partitions(&rest, &b, &topic)?;
    Ok(list(
        "KafkaPartitionList",
        format!("{b}/v3/clusters/{cluster_id}/topics/{topic}/partitions"),
        data,
    ))
}

/// Describe one partition.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/topics/{topic_name}/partitions/{partition_id}", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("topic_name" = String, Path), ("partition_id" = i32, Path)),
    responses((status = 200, body = Partition), (status = 404, body = ErrorBody)))]
pub async fn get_partition(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, topic, partition)): Path<(String, String, i32)>,
    headers: HeaderMap,
) -> ApiResult<Json<Partition>> {
    rest.check_cluster(&cluster_id)?;
    partitions(&rest, &base(&headers), &topic)?
        .into_iter()
        .find(|p| p.partition_id == partition)
        .map(Json)
        .ok_or_else(|| ApiError::unknown_partition(&topic, partition))
}

async fn describe_group(
    rest: &Rest,
    group: &str,
) -> ApiResult<km::describe_groups_response::DescribedGroup> {
    super::access::check(&rest.broker, op::DESCRIBE, resource::GROUP, group)?;
    super::access::check_api(&rest.broker, km::ApiKey::DescribeGroups)?;
    let req = km::DescribeGroupsRequest::default().with_groups(vec![km::GroupId(sb(group))]);
    let Some(ResponseKind::DescribeGroups(r)) =
        call(&rest.broker, 5, RequestKind::DescribeGroups(req)).await
    else {
        return Err(ApiError::internal("DescribeGroups gave no answer"));
    };
    let g = r
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("empty answer"))?;
    let meta = rest.broker.meta();
    if let (69, Ok(Some(d))) = (
        g.error_code,
        rest.broker.groups.consumer_describe(&meta, group),
    ) {
        return Ok(crate::groups::consumer_protocol::as_classic_description(
            group, &d, &meta,
        ));
    }
    let known = meta.groups.group(group).is_some();
    if g.error_code == 69 || (g.group_state.as_str() == "Dead" && !known) {
        return Err(ApiError::with_code(
            StatusCode::NOT_FOUND,
            rest_code::GROUP_NOT_FOUND,
            format!("consumer group not found: {group}"),
        ));
    }
    if g.error_code != 0 {
        return Err(ApiError::from_kafka(g.error_code, "DescribeGroups"));
    }
    Ok(g)
}

fn group_info(
    rest: &Rest,
    base: &str,
    id: &str,
    state: &str,
    assignor: &str,
    simple: bool,
) -> ConsumerGroup {
    let c = &rest.broker.cluster_id;
    let u = format!("{base}/v3/clusters/{c}/consumer-groups/{id}");
    ConsumerGroup {
        kind: "KafkaConsumerGroup".into(),
        metadata: meta(u.clone(), None),
        cluster_id: c.clone(),
        consumer_group_id: id.to_string(),
        is_simple: simple,
        group_type: if rest
            .broker
            .groups
            .is_consumer_group(&rest.broker.meta(), id)
        {
            "consumer".into()
        } else {
            "classic".into()
        },
        partition_assignor: assignor.to_string(),
        state: state.to_uppercase(),
        coordinator: Related {
            related: format!("{base}/v3/clusters/{c}/brokers/{}", rest.broker.broker_id),
        },
        consumers: Related {
            related: format!("{u}/consumers"),
        },
        lag_summary: Related {
            related: format!("{u}/lags"),
        },
    }
}

/// List consumer groups.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/consumer-groups", tag = "Admin (v3)",
    params(("cluster_id" = String, Path)),
    responses((status = 200, body = inline(List<ConsumerGroup>)), (status = 404, body = ErrorBody)))]
pub async fn list_groups(
    State(rest): State<Arc<Rest>>,
    Path(cluster_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<List<ConsumerGroup>>> {
    rest.check_cluster(&cluster_id)?;
    super::access::check_api(&rest.broker, km::ApiKey::ListGroups)?;
    let b = base(&headers);
    let Some(ResponseKind::ListGroups(r)) = call(
        &rest.broker,
        4,
        RequestKind::ListGroups(km::ListGroupsRequest::default()),
    )
    .await
    else {
        return Err(ApiError::internal("ListGroups gave no answer"));
    };
    let data = r
        .groups
        .iter()
        .filter(|g| {
            super::access::can(
                &rest.broker,
                op::DESCRIBE,
                resource::GROUP,
                g.group_id.0.as_str(),
            )
        })
        .map(|g| {
            group_info(
                &rest,
                &b,
                g.group_id.0.as_str(),
                g.group_state.as_str(),
                "",
                g.protocol_type.is_empty(),
            )
        })
        .collect();
    Ok(list(
        "KafkaConsumerGroupList",
        format!("{b}/v3/clusters/{cluster_id}/consumer-groups"),
        data,
    ))
}

/// Describe a consumer group.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/consumer-groups/{group_id}", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("group_id" = String, Path)),
    responses((status = 200, body = ConsumerGroup), (status = 404, body = ErrorBody)))]
pub async fn get_group(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, group)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<ConsumerGroup>> {
    rest.check_cluster(&cluster_id)?;
    let g = describe_group(&rest, &group).await?;
    Ok(Json(group_info(
        &rest,
        &base(&headers),
        &group,
        g.group_state.as_str(),
        g.protocol_data.as_str(),
        g.protocol_type.is_empty(),
    )))
}

fn member_assignment(b: &bytes::Bytes) -> Vec<AssignedPartition> {
    super::consumer::decode_assignment(b.clone())
        .into_iter()
        .map(|(topic_name, partition_id)| AssignedPartition {
            topic_name,
            partition_id,
        })
        .collect()
}

/// List a group's members and their assignments.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/consumer-groups/{group_id}/consumers", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("group_id" = String, Path)),
    responses((status = 200, body = inline(List<Consumer>)), (status = 404, body = ErrorBody)))]
pub async fn list_group_consumers(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, group)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<List<Consumer>>> {
    rest.check_cluster(&cluster_id)?;
    let g = describe_group(&rest, &group).await?;
    let b = base(&headers);
    let c = &rest.broker.cluster_id;
    let epochs = rest
        .broker
        .groups
        .consumer_describe(&rest.broker.meta(), &group)
        .ok()
        .flatten();
    let epoch_of = |id: &str| {
        epochs
            .as_ref()
            .and_then(|d| d.record.members.get(id))
            .map(|m| m.member_epoch)
    };
    let data = g
        .members
        .iter()
        .map(|m| Consumer {
            kind: "KafkaConsumer".into(),
            metadata: meta(
                format!(
                    "{b}/v3/clusters/{c}/consumer-groups/{group}/consumers/{}",
                    m.member_id
                ),
                None,
            ),
            cluster_id: c.clone(),
            consumer_group_id: group.clone(),
            consumer_id: m.member_id.to_string(),
            instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id: m.client_id.to_string(),
            member_epoch: epoch_of(m.member_id.as_str()),
            assignments: member_assignment(&m.member_assignment),
        })
        .collect();
    Ok(list(
        "KafkaConsumerList",
        format!("{b}/v3/clusters/{cluster_id}/consumer-groups/{group}/consumers"),
        data,
    ))
}

/// Lag of a group per partition (log end offset minus committed offset).
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/consumer-groups/{group_id}/lags", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("group_id" = String, Path)),
    responses((status = 200, body = inline(List<ConsumerLag>)), (status = 404, body = ErrorBody)))]
pub async fn list_group_lags(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, group)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<List<ConsumerLag>>> {
    rest.check_cluster(&cluster_id)?;
    let g = describe_group(&rest, &group).await?;
    let owners: Vec<(String, i32, String)> = g
        .members
        .iter()
        .flat_map(|m| {
            member_assignment(&m.member_assignment)
                .into_iter()
                .map(move |a| (a.topic_name, a.partition_id, m.member_id.to_string()))
        })
        .collect();
    let b = base(&headers);
    let c = &rest.broker.cluster_id;
    let data = crate::groups::lag::group_lag(&rest.broker, &group)
        .into_iter()
        .map(|l| ConsumerLag {
            kind: "KafkaConsumerLag".into(),
            metadata: meta(
                format!(
                    "{b}/v3/clusters/{c}/consumer-groups/{group}/lags/{}/partitions/{}",
                    l.topic, l.partition
                ),
                None,
            ),
            cluster_id: c.clone(),
            consumer_group_id: group.clone(),
            consumer_id: owners
                .iter()
                .find(|o| o.0 == l.topic && o.1 == l.partition)
                .map(|o| o.2.clone())
                .unwrap_or_default(),
            topic_name: l.topic,
            partition_id: l.partition,
            current_offset: l.committed,
            log_end_offset: l.end,
            lag: l.lag,
        })
        .collect();
    Ok(list(
        "KafkaConsumerLagList",
        format!("{b}/v3/clusters/{cluster_id}/consumer-groups/{group}/lags"),
        data,
    ))
}

/// A transaction (`strata txn describe`).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transaction {
    pub kind: String,
    pub metadata: ResourceMeta,
    pub cluster_id: String,
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit or
    /// CompleteAbort.
    pub state: String,
    pub timeout_ms: i32,
    /// When the ongoing transaction started (-1 when none is ongoing).
    pub start_time_ms: i64,
    /// Broker coordinating this transactional id.
    pub coordinator_id: i32,
    pub partitions: Vec<AssignedPartition>,
    pub groups: Vec<String>,
}

fn transaction(rest: &Rest, b: &str, id: &str, t: &crate::meta::txn::TxnMeta) -> Transaction {
    let c = &rest.broker.cluster_id;
    let ongoing = t.status == crate::meta::txn::TxnStatus::Ongoing;
    Transaction {
        kind: "KafkaTransaction".into(),
        metadata: meta(format!("{b}/v3/clusters/{c}/transactions/{id}"), None),
        cluster_id: c.clone(),
        transactional_id: id.to_string(),
        producer_id: t.producer_id,
        producer_epoch: t.producer_epoch,
        state: t.status.kafka_name().into(),
        timeout_ms: t.timeout_ms,
        start_time_ms: if ongoing { t.started_ms } else { -1 },
        coordinator_id: rest.broker.groups.coordinator_for(id),
        partitions: t
            .partitions
            .iter()
            .map(|(topic_name, partition_id)| AssignedPartition {
                topic_name: topic_name.clone(),
                partition_id: *partition_id,
            })
            .collect(),
        groups: t.groups.iter().cloned().collect(),
    }
}

/// List transactional ids and their state.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/transactions", tag = "Admin (v3)",
    params(("cluster_id" = String, Path)),
    responses((status = 200, body = inline(List<Transaction>)), (status = 404, body = ErrorBody)))]
pub async fn list_transactions(
    State(rest): State<Arc<Rest>>,
    Path(cluster_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<List<Transaction>>> {
    rest.check_cluster(&cluster_id)?;
    let b = base(&headers);
    let m = rest.broker.meta();
    let data = m
        .txns
        .txns
        .iter()
        .filter(|(id, _)| {
            super::access::can(&rest.broker, op::DESCRIBE, resource::TRANSACTIONAL_ID, id)
        })
        .take(10_000)
        .map(|(id, t)| transaction(&rest, &b, id, t))
        .collect();
    Ok(list(
        "KafkaTransactionList",
        format!("{b}/v3/clusters/{cluster_id}/transactions"),
        data,
    ))
}

/// Describe one transactional id.
#[utoipa::path(get, path = "/v3/clusters/{cluster_id}/transactions/{transactional_id}", tag = "Admin (v3)",
    params(("cluster_id" = String, Path), ("transactional_id" = String, Path)),
    responses((status = 200, body = Transaction), (status = 404, body = ErrorBody)))]
pub async fn get_transaction(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Transaction>> {
    rest.check_cluster(&cluster_id)?;
    super::access::check(&rest.broker, op::DESCRIBE, resource::TRANSACTIONAL_ID, &id)?;
    let m = rest.broker.meta();
    let t = m
        .txns
        .txns
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("transactional id {id} not found")))?;
    Ok(Json(transaction(&rest, &base(&headers), &id, t)))
}
