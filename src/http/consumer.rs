//! Consume over HTTP.
//!
//! - REST Proxy v2 consumer instances (`/consumers/{group}/...`): each
//!   instance is a real member of its group, driven through
//!   `kafka::dispatch` exactly like a Kafka client (JoinGroup, SyncGroup,
//!   Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, Fetch). A task per
//!   instance keeps its membership (heartbeats, rejoins on rebalance; when
//!   it is the group leader it assigns with the range or roundrobin
//!   assignor, so HTTP instances and Kafka consumers can share a group).
//!   Instances idle longer than `--http-consumer-idle-timeout-ms` are
//!   closed with a LeaveGroup.
//! - A stateless read of one partition from an offset (Strata extension).
//!
//! Bounds: instances (`--http-max-consumer-instances`), records per
//! response (`MAX_RECORDS`), bytes per response (`--fetch-max-bytes` and the
//! request's `max_bytes`), long-poll time (`MAX_TIMEOUT_MS`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{self as km, RequestKind, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use super::codec;
use super::error::{rest_code, ApiError, ApiResult, ErrorBody, JsonBody};
use super::Rest;
use crate::broker::Broker;
use crate::kafka::{dispatch, Ctx, Reply};

/// Records per response at most.
pub const MAX_RECORDS: usize = 10_000;
/// Longest long-poll of a records request.
pub const MAX_TIMEOUT_MS: u64 = 30_000;
const SESSION_TIMEOUT_MS: i32 = 30_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1_000);
const CLIENT_ID: &str = "strata-http";

/// Run one Kafka API in-process, like a client on a connection.
pub(crate) async fn call(b: &Arc<Broker>, version: i16, req: RequestKind) -> Option<ResponseKind> {
    let ctx = Ctx {
        broker: b.clone(),
        version,
        correlation_id: 0,
        client_id: Some(CLIENT_ID.to_string()),
        // The HTTP request's principal (see `access`), else anonymous.
        session: crate::auth::http::current()
            .unwrap_or_else(|| crate::auth::Session::internal("User:ANONYMOUS")),
    };
    match dispatch(&ctx, req).await {
        Reply::Now(r) => Some(r),
        Reply::Later(f) => Some(f.await),
        Reply::NoResponse => None,
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Payload format of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Keys and values as base64.
    Binary,
    /// Keys and values as JSON (payloads that are not JSON become strings).
    Json,
}

impl Format {
    fn media_type(self) -> &'static str {
        match self {
            Format::Binary => "application/vnd.kafka.binary.v2+json",
            Format::Json => "application/vnd.kafka.json.v2+json",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reset {
    Earliest,
    Latest,
    None,
}

/// Body of `POST /consumers/{group}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct CreateConsumer {
    /// Instance name (default: generated).
    #[serde(default)]
    pub name: Option<String>,
    /// `binary` (default) or `json`.
    #[serde(default)]
    pub format: Option<String>,
    /// `earliest`, `latest` (default) or `none`.
    #[serde(default, rename = "auto.offset.reset")]
    pub auto_offset_reset: Option<String>,
    /// `true`: commit the positions after every records response (default `false`).
    #[serde(default, rename = "auto.commit.enable")]
    #[schema(value_type = Option<String>)]
    pub auto_commit_enable: Option<serde_json::Value>,
    /// Long-poll of a records request in ms (default 1000).
    #[serde(default, rename = "consumer.request.timeout.ms")]
    #[schema(value_type = Option<String>)]
    pub request_timeout_ms: Option<serde_json::Value>,
}

/// Answer of `POST /consumers/{group}`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedConsumer {
    pub instance_id: String,
    pub base_uri: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Partitions {
    #[serde(default)]
    pub partitions: Vec<TopicPartition>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Subscription {
    #[serde(default)]
    pub topics: Vec<String>,
    /// Not supported (400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_pattern: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Offsets {
    #[serde(default)]
    pub offsets: Vec<PartitionOffset>,
}

/// A record header as returned (value base64, null for a null value).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeaderOut {
    pub key: String,
    pub value: Option<String>,
}

/// One consumed record (REST Proxy v2 shape; `timestamp` and `headers` are
/// Strata additions). `key`/`value` are base64 strings (binary) or JSON.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsumedRecord {
    pub topic: String,
    #[schema(value_type = Object)]
    pub key: serde_json::Value,
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub headers: Vec<HeaderOut>,
}

/// Query of records requests.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordsQuery {
    /// Long-poll up to this many ms when nothing is available.
    pub timeout: Option<u64>,
    /// Bytes of record batches read at most (the first batch always).
    pub max_bytes: Option<usize>,
    /// Records returned at most (Strata extension; default and cap 10000).
    pub max_records: Option<usize>,
}

/// Membership and positions of one instance.
#[derive(Default)]
struct InstState {
    subscription: Vec<String>,
    manual: Vec<(String, i32)>,
    member_id: String,
    generation: i32,
    assigned: Vec<(String, i32)>,
    positions: HashMap<(String, i32), i64>,
    /// Stops the membership task (which then leaves the group).
    stop: Option<watch::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// One v2 consumer instance.
pub struct Instance {
    pub group: String,
    pub name: String,
    format: Format,
    reset: Reset,
    auto_commit: bool,
    request_timeout_ms: u64,
    last_used: Mutex<Instant>,
    state: Mutex<InstState>,
    fetch_lock: tokio::sync::Mutex<()>,
    /// The principal that created it; only it may use the instance.
    owner: Option<String>,
}

impl Instance {
    fn touch(&self) {
        *self.last_used.lock() = Instant::now();
    }

    /// Partitions this instance reads: its manual assignment, or what the
    /// group gave it.
    fn partitions(&self) -> Vec<(String, i32)> {
        let st = self.state.lock();
        if st.manual.is_empty() {
            st.assigned.clone()
        } else {
            st.manual.clone()
        }
    }

    /// Stop the membership task and wait (bounded) for its LeaveGroup.
    async fn stop_membership(&self) {
        let (stop, task) = {
            let mut st = self.state.lock();
            st.assigned.clear();
            (st.stop.take(), st.task.take())
        };
        if let Some(s) = stop {
            let _ = s.send(true);
        }
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// The live instances.
pub struct Consumers {
    idle: Duration,
    max: usize,
    instances: Mutex<HashMap<(String, String), Arc<Instance>>>,
    seq: AtomicU64,
}

impl Consumers {
    pub fn new(idle: Duration, max: usize) -> Consumers {
        Consumers {
            idle,
            max,
            instances: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
        }
    }

    fn get(&self, group: &str, name: &str) -> ApiResult<Arc<Instance>> {
        let i = self
            .instances
            .lock()
            .get(&(group.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| {
                ApiError::with_code(
                    StatusCode::NOT_FOUND,
                    rest_code::CONSUMER_INSTANCE_NOT_FOUND,
                    format!("consumer instance not found: group {group:?}, instance {name:?}"),
                )
            })?;
        let caller = crate::auth::http::current().and_then(|s| s.principal());
        if i.owner.is_some() && caller != i.owner {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "consumer instance {name:?} of group {group:?} belongs to another principal"
                ),
            ));
        }
        i.touch();
        Ok(i)
    }

    pub fn len(&self) -> usize {
        self.instances.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Close instances idle longer than the timeout, with a LeaveGroup.
pub fn start_reaper(rest: &Arc<Rest>) {
    let weak = Arc::downgrade(rest);
    let tick = (rest.consumers.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(tick);
        loop {
            iv.tick().await;
            let Some(rest) = weak.upgrade() else { return };
            let now = Instant::now();
            let expired: Vec<Arc<Instance>> = {
                let mut map = rest.consumers.instances.lock();
                let keys: Vec<_> = map
                    .iter()
                    .filter(|(_, i)| now.duration_since(*i.last_used.lock()) > rest.consumers.idle)
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.iter().filter_map(|k| map.remove(k)).collect()
            };
            for i in expired {
                tracing::info!(group = %i.group, instance = %i.name, "HTTP consumer instance expired");
                i.stop_membership().await;
            }
        }
    });
}

fn encode_subscription(topics: &[String]) -> Bytes {
    let sub = km::ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| sb(t)).collect());
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    let _ = sub.encode(&mut buf, 0);
    buf.freeze()
}

fn decode_subscription(mut b: Bytes) -> Vec<String> {
    if b.len() < 2 {
        return Vec::new();
    }
    let v = i16::from_be_bytes([b[0], b[1]]).clamp(0, 3);
    bytes::Buf::advance(&mut b, 2);
    km::ConsumerProtocolSubscription::decode(&mut b, v)
        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

fn encode_assignment(parts: &[(String, i32)]) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(*p);
    }
    let a = km::ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                km::consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(km::TopicName(sb(t)))
                    .with_partitions(ps)
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    let _ = a.encode(&mut buf, 0);
    buf.freeze()
}

/// The (topic, partition) pairs of a consumer-protocol assignment.
pub(crate) fn decode_assignment(mut b: Bytes) -> Vec<(String, i32)> {
    if b.len() < 2 {
        return Vec::new();
    }
    let v = i16::from_be_bytes([b[0], b[1]]).clamp(0, 3);
    bytes::Buf::advance(&mut b, 2);
    km::ConsumerProtocolAssignment::decode(&mut b, v)
        .map(|a| {
            a.assigned_partitions
                .iter()
                .flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.0.to_string(), *p)))
                .collect()
        })
        .unwrap_or_default()
}

/// Client-side assignment as the group leader: Kafka's range or roundrobin
/// assignor over the members' subscriptions. Pure.
pub fn assign(
    protocol: &str,
    members: &[(String, Vec<String>)],
    partitions: &dyn Fn(&str) -> usize,
) -> BTreeMap<String, Vec<(String, i32)>> {
    let mut out: BTreeMap<String, Vec<(String, i32)>> = members
        .iter()
        .map(|(m, _)| (m.clone(), Vec::new()))
        .collect();
    let mut topics: Vec<String> = members.iter().flat_map(|(_, t)| t.clone()).collect();
    topics.sort();
    topics.dedup();
    if protocol == "roundrobin" {
        let mut sorted: Vec<&(String, Vec<String>)> = members.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut i = 0usize;
        for t in &topics {
            for p in 0..partitions(t) {
                // Next member (cyclically) subscribed to t.
                for _ in 0..sorted.len() {
                    let m = sorted[i % sorted.len()];
                    i += 1;
                    if m.1.contains(t) {
                        out.entry(m.0.clone())
                            .or_default()
                            .push((t.clone(), p as i32));
                        break;
                    }
                }
            }
        }
        return out;
    }
    for t in &topics {
        let mut subs: Vec<&String> = members
            .iter()
            .filter(|(_, ts)| ts.contains(t))
            .map(|(m, _)| m)
            .collect();
        subs.sort();
        let n = partitions(t);
        if subs.is_empty() {
            continue;
        }
        let per = n / subs.len();
        let extra = n % subs.len();
        for (i, m) in subs.iter().enumerate() {
            let start = i * per + i.min(extra);
            let len = per + usize::from(i < extra);
            let e = out.entry((*m).clone()).or_default();
            for p in start..start + len {
                e.push((t.clone(), p as i32));
            }
        }
    }
    out
}

/// Wait for `fut` unless `stop` fires first.
async fn or_stop<T>(
    stop: &mut watch::Receiver<bool>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    if *stop.borrow() {
        return None;
    }
    tokio::select! {
        v = fut => Some(v),
        _ = stop.changed() => None,
    }
}

/// Keeps an instance in its group until stopped; then leaves it.
async fn membership(b: Arc<Broker>, inst: Arc<Instance>, mut stop: watch::Receiver<bool>) {
    let group = inst.group.clone();
    let mut member_id = String::new();
    'outer: loop {
        if *stop.borrow() || b.is_shutting_down() {
            break;
        }
        let topics = inst.state.lock().subscription.clone();
        let meta = encode_subscription(&topics);
        let join = km::JoinGroupRequest::default()
            .with_group_id(km::GroupId(sb(&group)))
            .with_session_timeout_ms(SESSION_TIMEOUT_MS)
            .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
            .with_member_id(sb(&member_id))
            .with_protocol_type(sb("consumer"))
            .with_protocols(
                ["range", "roundrobin"]
                    .iter()
                    .map(|n| {
                        km::join_group_request::JoinGroupRequestProtocol::default()
                            .with_name(sb(n))
                            .with_metadata(meta.clone())
                    })
                    .collect(),
            );
        let Some(resp) = or_stop(&mut stop, call(&b, 5, RequestKind::JoinGroup(join))).await else {
            break;
        };
        let Some(ResponseKind::JoinGroup(jr)) = resp else {
            break;
        };
        match jr.error_code {
            0 => {}
            79 => {
                member_id = jr.member_id.to_string();
                continue;
            }
            25 => {
                member_id.clear();
                continue;
            }
            code => {
                tracing::debug!(group = %group, code, "HTTP consumer join failed; retrying");
                if or_stop(&mut stop, tokio::time::sleep(Duration::from_millis(500)))
                    .await
                    .is_none()
                {
                    break;
                }
                continue;
            }
        }
        member_id = jr.member_id.to_string();
        let generation = jr.generation_id;
        let protocol = jr
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "range".into());
        let assignments = if jr.leader.as_str() == member_id {
            let members: Vec<(String, Vec<String>)> = jr
                .members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        decode_subscription(m.metadata.clone()),
                    )
                })
                .collect();
            let counts = |t: &str| b.topic(t).map_or(0, |h| h.partitions.len());
            assign(&protocol, &members, &counts)
                .into_iter()
                .map(|(m, parts)| {
                    km::sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(sb(&m))
                        .with_assignment(encode_assignment(&parts))
                })
                .collect()
        } else {
            Vec::new()
        };
        let sync = km::SyncGroupRequest::default()
            .with_group_id(km::GroupId(sb(&group)))
            .with_generation_id(generation)
            .with_member_id(sb(&member_id))
            .with_protocol_type(Some(sb("consumer")))
            .with_protocol_name(Some(sb(&protocol)))
            .with_assignments(assignments);
        let Some(resp) = or_stop(&mut stop, call(&b, 5, RequestKind::SyncGroup(sync))).await else {
            break;
        };
        let Some(ResponseKind::SyncGroup(sr)) = resp else {
            break;
        };
        match sr.error_code {
            0 => {}
            25 => {
                member_id.clear();
                continue;
            }
            _ => continue,
        }
        let parts = decode_assignment(sr.assignment.clone());
        {
            let mut st = inst.state.lock();
            st.member_id = member_id.clone();
            st.generation = generation;
            st.positions.retain(|k, _| parts.contains(k));
            st.assigned = parts;
        }
        tracing::debug!(group = %group, member = %member_id, generation, "HTTP consumer joined");
        loop {
            if or_stop(&mut stop, tokio::time::sleep(HEARTBEAT_INTERVAL))
                .await
                .is_none()
            {
                break 'outer;
            }
            let hb = km::HeartbeatRequest::default()
                .with_group_id(km::GroupId(sb(&group)))
                .with_generation_id(generation)
                .with_member_id(sb(&member_id));
            let code = match call(&b, 4, RequestKind::Heartbeat(hb)).await {
                Some(ResponseKind::Heartbeat(h)) => h.error_code,
                _ => -1,
            };
            match code {
                0 => {}
                25 => {
                    member_id.clear();
                    break;
                }
                _ => break, // REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, ...: rejoin
            }
        }
        // Revoked until the next assignment.
        let mut st = inst.state.lock();
        st.assigned.clear();
        st.generation = -1;
    }
    {
        let mut st = inst.state.lock();
        st.assigned.clear();
        st.generation = -1;
        st.member_id.clear();
    }
    if !member_id.is_empty() {
        let leave = km::LeaveGroupRequest::default()
            .with_group_id(km::GroupId(sb(&group)))
            .with_members(vec![
                km::leave_group_request::MemberIdentity::default().with_member_id(sb(&member_id))
            ]);
        let _ = call(&b, 3, RequestKind::LeaveGroup(leave)).await;
        tracing::debug!(group = %group, member = %member_id, "HTTP consumer left");
    }
}

fn parse_bool(v: &Option<serde_json::Value>) -> ApiResult<bool> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(o) => Err(ApiError::bad_request(format!(
            "auto.commit.enable must be true or false, got {o}"
        ))),
    }
}

fn valid_name(what: &str, s: &str) -> ApiResult<()> {
    if s.is_empty()
        || s.len() > 249
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(ApiError::bad_request(format!(
            "invalid {what} {s:?}: 1-249 characters of [a-zA-Z0-9._-]"
        )));
    }
    Ok(())
}

/// Create a consumer instance.
#[utoipa::path(
    post,
    path = "/consumers/{group_name}",
    tag = "Consumers (v2)",
    params(("group_name" = String, Path, description = "Consumer group")),
    request_body(content = CreateConsumer, content_type = "application/vnd.kafka.v2+json"),
    responses(
        (status = 200, body = CreatedConsumer),
        (status = 400, body = ErrorBody),
        (status = 409, description = "An instance of that name exists", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 429, description = "Too many instances", body = ErrorBody)
    )
)]
pub async fn create_instance(
    State(rest): State<Arc<Rest>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateConsumer>,
) -> ApiResult<Response> {
    let _p = rest.permit()?;
    let body = body.unwrap_or_default();
    valid_name("group", &group)?;
    super::access::check(
        &rest.broker,
        crate::auth::acl::op::READ,
        crate::auth::acl::resource::GROUP,
        &group,
    )?;
    let format = match body.format.as_deref() {
        None | Some("binary") => Format::Binary,
        Some("json") => Format::Json,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "format must be binary or json, got {o:?}"
            )))
        }
    };
    let reset = match body.auto_offset_reset.as_deref() {
        None | Some("latest") | Some("largest") => Reset::Latest,
        Some("earliest") | Some("smallest") => Reset::Earliest,
        Some("none") => Reset::None,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "auto.offset.reset must be earliest, latest or none, got {o:?}"
            )))
        }
    };
    let auto_commit = parse_bool(&body.auto_commit_enable)?;
    let request_timeout_ms = match &body.request_timeout_ms {
        None | Some(serde_json::Value::Null) => 1000,
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(1000),
        Some(serde_json::Value::String(s)) => s.parse().map_err(|_| {
            ApiError::bad_request(format!("consumer.request.timeout.ms: not a number: {s:?}"))
        })?,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "consumer.request.timeout.ms: not a number: {o}"
            )))
        }
    }
    .min(MAX_TIMEOUT_MS);
    let name = match body.name {
        Some(n) => {
            valid_name("instance name", &n)?;
            n
        }
        None => format!(
            "rest-consumer-{}-{}",
            rest.broker.broker_id,
            rest.consumers.seq.fetch_add(1, Ordering::Relaxed) + 1
        ),
    };
    {
        let mut map = rest.consumers.instances.lock();
        if map.contains_key(&(group.clone(), name.clone())) {
            return Err(ApiError::with_code(
                StatusCode::CONFLICT,
                rest_code::CONSUMER_ALREADY_EXISTS,
                format!("consumer instance {name:?} already exists in group {group:?}"),
            ));
        }
        if map.len() >= rest.consumers.max {
            return Err(ApiError::too_many(format!(
                "{} consumer instances exist (--http-max-consumer-instances)",
                rest.consumers.max
            )));
        }
        map.insert(
            (group.clone(), name.clone()),
            Arc::new(Instance {
                group: group.clone(),
                name: name.clone(),
                format,
                reset,
                auto_commit,
                request_timeout_ms,
                last_used: Mutex::new(Instant::now()),
                state: Mutex::new(InstState {
                    generation: -1,
                    ..Default::default()
                }),
                fetch_lock: tokio::sync::Mutex::new(()),
                owner: crate::auth::http::current().and_then(|s| s.principal()),
            }),
        );
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    Ok(Json(CreatedConsumer {
        base_uri: format!("http://{host}/consumers/{group}/instances/{name}"),
        instance_id: name,
    })
    .into_response())
}

/// Close a consumer instance (it leaves its group).
#[utoipa::path(
    delete,
    path = "/consumers/{group_name}/instances/{instance}",
    tag = "Consumers (v2)",
    params(("group_name" = String, Path), ("instance" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody))
)]
pub async fn delete_instance(
    State(rest): State<Arc<Rest>>,
    Path((group, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let inst = rest.consumers.get(&group, &name)?;
    rest.consumers
        .instances
        .lock()
        .remove(&(group.clone(), name.clone()));
    inst.stop_membership().await;
    Ok(StatusCode::NO_CONTENT)
}

/// Subscribe to topics (joins the group).
#[utoipa::path(
    post,
    path = "/consumers/{group_name}/instances/{instance}/subscription",
    tag = "Consumers (v2)",
    params(("group_name" = String, Path), ("instance" = String, Path)),
    request_body(content = Subscription, content_type = "application/vnd.kafka.v2+json"),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn subscribe(
    State(rest): State<Arc<Rest>>,
    Path((group, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Subscription>,
) -> ApiResult<StatusCode> {
    let inst = rest.consumers.get(&group, &name)?;
    let body = body.ok_or_else(|| ApiError::bad_request("expected {\"topics\": [...]}"))?;
    if body.topic_pattern.is_some() {
        return Err(ApiError::bad_request("topic_pattern is not supported"));
    }
    if body.topics.is_empty() || body.topics.len() > 1000 {
        return Err(ApiError::bad_request("topics: 1 to 1000 topic names"));
    }
    if !inst.state.lock().manual.is_empty() {
        return Err(ApiError::conflict(
            "the instance has a manual assignment; subscription and assignment are exclusive",
        ));
    }
    inst.stop_membership().await;
    let (tx, rx) = watch::channel(false);
    let task = super::access::spawn(membership(rest.broker.clone(), inst.clone(), rx));
    let mut st = inst.state.lock();
    st.subscription = body.topics;
    st.stop = Some(tx);
    st.task = Some(task);
    Ok(StatusCode::NO_CONTENT)
}

/// The subscribed topics.
#[utoipa::path(
    get,
    path = "/consumers/{group_name}/instances/{instance}/subscription",
    tag = "Consumers (v2)",
    params(("group_name" = String, Path), ("instance" = String, Path)),
    responses((status = 200, body = Subscription), (status = 404, body = ErrorBody))
)]
pub async fn get_subscription(
    State(rest): State<Arc<Rest>>,
    Path((group, name)): Path<(String, String)>,
) -> ApiResult<Json<Subscription>> {
    let inst = rest.consumers.get(&group, &name)?;
    let topics = inst.state.lock().subscription.clone();
    Ok(Json(Subscription {
        topics,
        topic_pattern: None,
    }))
}

/// Unsubscribe (leaves the group).
#[utoipa::path(
    delete,
    path = "/consumers/{group_name}/instances/{instance}/subscription",
    tag = "Consumers (v2)",
    params(("group_name" = String, Path), ("instance" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody))
)]
pub async fn unsubscribe(
    State(rest): State<Arc<Rest>>,
    Path((group, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let inst = rest.consumers.get(&group, &name)?;
    inst.stop_membership().await;
    let mut st = inst.state.lock();
    st.subscription.clear();
    st.positions.clear();
    Ok(StatusCode::NO_CONTENT)
}

fn check_partitions(b: &Broker, parts: &[TopicPartition]) -> ApiResult<()> {
    for tp in parts {
        let h = b
            .topic(&tp.topic)
            .ok_or_else(|| ApiError::unknown_topic(&tp.topic))?;
        if h.partition(tp.partition).is_none() {
            return Err(ApiError::unknown_partition(&tp.topic, tp.partition));
        }
    }
    Ok(())
}

/// Assign partitions manually (no group membership; commits use the group).
#[utoipa::path(
    post,
    path = "/consumers/{group_name}/instances/{instance}/assignments",
    tag = "Consumers (v2)",
    params(("group_name" = String, Path), ("instance" = String, Path)),
    request_body(content = Partitions, content_type = "application/vnd.kafka.v2+json"),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn assign_partitions(
    State(rest): State<Arc<Rest>>,
    Path((group, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Partitions>,
) -> ApiResult<StatusCode> {
    let inst = rest.consumers.get(&group, &name)?;
    let body = body.unwrap_or_default();
    check_partitions(&rest.broker, &body.partitions)?;
    let mut st = inst.state.lock();
    if !st.subscription.is_empty() {
        return Err(ApiError::conflict(
            "the instance is subscribed; subscription and assignment are exclusive",
        ));
    }
    st.manual = body
        .partitions
        .into_iter()
        .map(|tp| (tp.topic, tp.partition))
        .collect();
    let manual = st.manual.clone();
    st.positions.retain(|k, _| manual.contains(k));
    Ok(StatusCode::NO_CONTENT)
}

/// The partitions this instance reads.
#[utoipa::path(
    get,
    path = "/consumers/{group_name}/instances/{instance}/assignments",
    tag = "Consumers (v2)",
    params(("group_name" = String, Path), ("instance" = String, Path)),
    responses((status = 200, body = Partitions), (status = 404, body = ErrorBody))
)]
pub async fn get_assignments(
    State(rest): State<Arc<Rest>>,
    Path((group, name)): Path<(String, String)>,
) -> ApiResult<Json<Partitions>> {
    let inst = rest.consumers.get(&group, &name)?;
    Ok(Json(Partitions {
        partitions: inst
            .partitions()
            .into_iter()
            .map(|(topic, partition)| TopicPartition { topic, partition })
            .collect(),
    }))
}

/// Seek to offsets.
#[utoipa::path(
    post,
    path = "/consumers/{group_name}/instances/{instance}/positions",
    tag = "Consumers (v2)",
    params(("group_name" = String, Path), ("instance" = String, Path)),
    request_body(content = Offsets, content_type = "application/vnd.kafka.v2+json"),
    responses((status = 204), (status = 404, body = ErrorBody))
)]
pub async fn seek(
    State(rest): State<Arc<Rest>>,
    Path((group, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Offsets>,
) -> ApiResult<StatusCode> {
    let inst = rest.consumers.get(&group, &name)?;
    let body = body.unwrap_or_default();
    let parts: Vec<TopicPartition> = body
        .offsets
        .iter()
        .map(|o| TopicPartition {
            topic: o.topic.clone(),
            partition: o.partition,
        })
        .collect();
    check_partitions(&rest.broker, &parts)?;
    let mut st = inst.state.lock();
    for o in body.offsets {
        if o.offset < 0 {
            return Err(ApiError::bad_request(format!(
                "offset must be >= 0, got {}",
                o.offset
            )));
        }
        st.positions.insert((o.topic, o.partition), o.offset);
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn seek_edge(
    rest: &Rest,
    group: &str,
    name: &str,
    body: Option<Partitions>,
    end: bool,
) -> ApiResult<StatusCode> {
    let inst = rest.consumers.get(group, name)?;
    let body = body.unwrap_or_default();
    check_partitions(&rest.broker, &body.partitions)?;
    let mut st = inst.state.lock();
    for tp in body.partitions {
        let h = rest.broker.topic(&tp.topic);
        let (start, hw) = h
            .and_then(|h| rest.broker.partition_bounds(&h.id, tp.partition))
            .unwrap_or((0, 0));
        st.positions
            .insert((tp.topic, tp.partition), if end { hw } else { start });
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Seek to the first offsets.
#[utoipa::path(
    post,
    path = "/consumers/{group_name}/instances/{instance}/positions/beginning",
    tag = "Consumers (v2)",
    params(("group_name" = String, Path), ("instance" = String, Path)),
    request_body(content = Partitions, content_type = "application/vnd.kafka.v2+json"),
    responses((status = 204), (status = 404, body = ErrorBody))
)]
pub async fn seek_beginning(
    State(rest): State<Arc<Rest>>,
    Path((group, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Partitions>,
) -> ApiResult<StatusCode> {
    seek_edge(&rest, &group, &name, body, false).await
}

/// Seek to the ends.
#[utoipa::path(
    post,
    path = "/consumers/{group_name}/instances/{instance}/positions/end",
    tag = "Consumers (v2)",
    params(("group_name" = String, Path), ("instance" = String, Path)),
    request_body(content = Partitions, content_type = "application/vnd.kafka.v2+json"),
    responses((status = 204), (status = 404, body = ErrorBody))
)]
pub async fn seek_end(
    State(rest): State<Arc<Rest>>,
    Path((group, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Partitions>,
) -> ApiResult<StatusCode> {
    seek_edge(&rest, &group, &name, body, true).await
}

/// Committed offsets of a group, by OffsetFetch.
async fn committed(
    b: &Arc<Broker>,
    group: &str,
    parts: &[(String, i32)],
) -> ApiResult<HashMap<(String, i32), (i64, Option<String>)>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(*p);
    }
    let req = km::OffsetFetchRequest::default()
        .with_group_id(km::GroupId(sb(group)))
        .with_topics(Some(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    km::offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(km::TopicName(sb(t)))
                        .with_partition_indexes(ps)
                })
                .collect(),
        ));
    let Some(ResponseKind::OffsetFetch(r)) = call(b, 7, RequestKind::OffsetFetch(req)).await else {
        return Err(ApiError::internal("OffsetFetch gave no answer"));
    };
    if r.error_code != 0 {
        return Err(ApiError::from_kafka(r.error_code, "OffsetFetch"));
    }
    let mut out = HashMap::new();
    for t in r.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    (p.committed_offset, p.metadata.map(|m| m.to_string())),
                );
            }
        }
    }
    Ok(out)
}

/// Commit offsets: the given ones (each + 1, as REST Proxy: the offset of
/// the last record consumed), or the positions of every partition read.
#[utoipa::path(
    post,
    path = "/consumers/{group_name}/instances/{instance}/offsets",
    tag = "Consumers (v2)",
    params(("group_name" = String, Path), ("instance" = String, Path)),
    request_body(content = Offsets, content_type = "application/vnd.kafka.v2+json", description = "Offsets of the last records consumed; empty body = commit all positions"),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, description = "Rebalance in progress", body = ErrorBody))
)]
pub async fn commit(
    State(rest): State<Arc<Rest>>,
    Path((group, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Offsets>,
) -> ApiResult<StatusCode> {
    let inst = rest.consumers.get(&group, &name)?;
    let offsets: Vec<(String, i32, i64, Option<String>)> = match body {
        Some(o) if !o.offsets.is_empty() => o
            .offsets
            .into_iter()
            .map(|o| (o.topic, o.partition, o.offset + 1, o.metadata))
            .collect(),
        _ => {
            let st = inst.state.lock();
            st.positions
                .iter()
                .map(|((t, p), o)| (t.clone(), *p, *o, None))
                .collect()
        }
    };
    commit_offsets(&rest.broker, &inst, offsets).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn commit_offsets(
    b: &Arc<Broker>,
    inst: &Instance,
    offsets: Vec<(String, i32, i64, Option<String>)>,
) -> ApiResult<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let (member, generation) = {
        let st = inst.state.lock();
        if st.manual.is_empty() && !st.subscription.is_empty() {
            (st.member_id.clone(), st.generation)
        } else {
            (String::new(), -1)
        }
    };
    let mut by_topic: BTreeMap<String, Vec<(i32, i64, Option<String>)>> = BTreeMap::new();
    for (t, p, o, m) in offsets {
        by_topic.entry(t).or_default().push((p, o, m));
    }
    let req = km::OffsetCommitRequest::default()
        .with_group_id(km::GroupId(sb(&inst.group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(&member))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    km::offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(km::TopicName(sb(&t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, o, m)| {
                                    km::offset_commit_request::OffsetCommitRequestPartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                        .with_committed_leader_epoch(-1)
                                        .with_committed_metadata(m.map(StrBytes::from_string))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let Some(ResponseKind::OffsetCommit(r)) = call(b, 8, RequestKind::OffsetCommit(req)).await
    else {
        return Err(ApiError::internal("OffsetCommit gave no answer"));
    };
    for t in &r.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                return Err(ApiError::from_kafka(
                    p.error_code,
                    &format!("commit of {}-{}", t.name.0, p.partition_index),
                ));
            }
        }
    }
    Ok(())
}

/// Committed offsets of the given partitions (or of every partition read).
#[utoipa::path(
    get,
    path = "/consumers/{group_name}/instances/{instance}/offsets",
    tag = "Consumers (v2)",
    params(("group_name" = String, Path), ("instance" = String, Path)),
    request_body(content = Partitions, content_type = "application/vnd.kafka.v2+json"),
    responses((status = 200, body = Offsets), (status = 404, body = ErrorBody))
)]
pub async fn get_committed(
    State(rest): State<Arc<Rest>>,
    Path((group, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Partitions>,
) -> ApiResult<Json<Offsets>> {
    let inst = rest.consumers.get(&group, &name)?;
    let parts: Vec<(String, i32)> = match body {
        Some(p) if !p.partitions.is_empty() => p
            .partitions
            .into_iter()
            .map(|tp| (tp.topic, tp.partition))
            .collect(),
        _ => inst.partitions(),
    };
    let c = committed(&rest.broker, &group, &parts).await?;
    let mut offsets: Vec<PartitionOffset> = c
        .into_iter()
        .map(|((topic, partition), (offset, metadata))| PartitionOffset {
            topic,
            partition,
            offset,
            metadata,
        })
        .collect();
    offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(Json(Offsets { offsets }))
}

/// Records of one fetched partition.
pub struct Fetched {
    pub records: Vec<ConsumedRecord>,
    pub next: i64,
    pub high_watermark: i64,
    pub error: i16,
}

/// Fetch from several partitions through the Kafka Fetch handler and decode
/// (and decompress) the batches. At most `max_records` records in all.
pub async fn fetch(
    b: &Arc<Broker>,
    want: &[(String, i32, i64)],
    max_bytes: usize,
    max_wait_ms: u64,
    max_records: usize,
    format: Format,
) -> ApiResult<Vec<Fetched>> {
    let max_bytes = max_bytes
        .clamp(1, b.config.fetch_max_bytes)
        .min(i32::MAX as usize) as i32;
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (t, p, o) in want {
        by_topic.entry(t).or_default().push((*p, *o));
    }
    let req = km::FetchRequest::default()
        .with_replica_id(km::BrokerId(-1))
        .with_max_wait_ms(max_wait_ms.min(MAX_TIMEOUT_MS) as i32)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    km::fetch_request::FetchTopic::default()
                        .with_topic(km::TopicName(sb(t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, o)| {
                                    km::fetch_request::FetchPartition::default()
                                        .with_partition(p)
                                        .with_fetch_offset(o)
                                        .with_current_leader_epoch(-1)
                                        .with_log_start_offset(-1)
                                        .with_partition_max_bytes(max_bytes)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let Some(ResponseKind::Fetch(r)) = call(b, 12, RequestKind::Fetch(req)).await else {
        return Err(ApiError::internal("Fetch gave no answer"));
    };
    if r.error_code != 0 {
        return Err(ApiError::from_kafka(r.error_code, "Fetch"));
    }
    let mut out = Vec::new();
    let mut budget = max_records;
    for t in r.responses {
        let topic = t.topic.0.to_string();
        for p in t.partitions {
            let from = want
                .iter()
                .find(|(wt, wp, _)| *wt == topic && *wp == p.partition_index)
                .map_or(0, |w| w.2);
            let mut f = Fetched {
                records: Vec::new(),
                next: from,
                high_watermark: p.high_watermark,
                error: p.error_code,
            };
            if let Some(mut bytes) = p.records {
                while budget > 0 && !bytes.is_empty() {
                    let Ok(set) = crate::log::decode::decode_batch(
                        &mut bytes,
                        crate::log::decode::MAX_DECOMPRESSED_BATCH_BYTES,
                    ) else {
                        break;
                    };
                    for rec in set.records {
                        if budget == 0 {
                            break;
                        }
                        if rec.control || rec.offset < f.next {
                            if rec.control && rec.offset >= f.next {
                                f.next = rec.offset + 1;
                            }
                            continue;
                        }
                        f.next = rec.offset + 1;
                        budget -= 1;
                        f.records.push(ConsumedRecord {
                            topic: topic.clone(),
                            key: render(rec.key.as_deref(), format),
                            value: render(rec.value.as_deref(), format),
                            partition: p.partition_index,
                            offset: rec.offset,
                            timestamp: rec.timestamp,
                            headers: rec
                                .headers
                                .iter()
                                .map(|(k, v)| HeaderOut {
                                    key: k.to_string(),
                                    value: v.as_deref().map(codec::b64),
                                })
                                .collect(),
                        });
                    }
                }
            }
            out.push(f);
        }
    }
    Ok(out)
}

fn render(b: Option<&[u8]>, format: Format) -> serde_json::Value {
    match (b, format) {
        (None, _) => serde_json::Value::Null,
        (Some(b), Format::Binary) => serde_json::Value::String(codec::b64(b)),
        (Some(b), Format::Json) => serde_json::from_slice(b)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(b).into_owned())),
    }
}

/// Fetch records (long-polls up to `timeout` ms).
#[utoipa::path(
    get,
    path = "/consumers/{group_name}/instances/{instance}/records",
    tag = "Consumers (v2)",
    params(("group_name" = String, Path), ("instance" = String, Path), RecordsQuery),
    responses(
        (status = 200, body = [ConsumedRecord], content_type = "application/vnd.kafka.binary.v2+json"),
        (status = 404, body = ErrorBody),
        (status = 406, description = "Accept does not match the instance's format", body = ErrorBody)
    )
)]
pub async fn records(
    State(rest): State<Arc<Rest>>,
    Path((group, name)): Path<(String, String)>,
    Query(q): Query<RecordsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let _p = rest.permit()?;
    let inst = rest.consumers.get(&group, &name)?;
    if let Some(accept) = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()) {
        let a = accept.to_ascii_lowercase();
        let other = match inst.format {
            Format::Binary => "application/vnd.kafka.json.v2+json",
            Format::Json => "application/vnd.kafka.binary.v2+json",
        };
        if a.contains(other) && !a.contains(inst.format.media_type()) {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "the instance's format is {:?}; Accept {} instead",
                    inst.format,
                    inst.format.media_type()
                ),
            ));
        }
    }
    let timeout = q
        .timeout
        .unwrap_or(inst.request_timeout_ms)
        .min(MAX_TIMEOUT_MS);
    let max_records = q.max_records.unwrap_or(MAX_RECORDS).clamp(1, MAX_RECORDS);
    let max_bytes = q.max_bytes.unwrap_or(rest.broker.config.fetch_max_bytes);
    let _g = inst.fetch_lock.lock().await;
    let deadline = Instant::now() + Duration::from_millis(timeout);
    // Wait (bounded) for an assignment.
    let mut parts = inst.partitions();
    while parts.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        parts = inst.partitions();
    }
    let mut out: Vec<ConsumedRecord> = Vec::new();
    if !parts.is_empty() {
        let missing: Vec<(String, i32)> = {
            let st = inst.state.lock();
            parts
                .iter()
                .filter(|k| !st.positions.contains_key(*k))
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            let c = committed(&rest.broker, &group, &missing).await?;
            let mut st = inst.state.lock();
            for k in missing {
                let pos = match c.get(&k) {
                    Some((o, _)) => *o,
                    None => {
                        let (start, hw) = rest
                            .broker
                            .topic(&k.0)
                            .and_then(|h| rest.broker.partition_bounds(&h.id, k.1))
                            .unwrap_or((0, 0));
                        match inst.reset {
                            Reset::Earliest => start,
                            Reset::Latest => hw,
                            Reset::None => {
                                return Err(ApiError::bad_request(format!(
                                    "no committed offset for {}-{} and auto.offset.reset is none",
                                    k.0, k.1
                                )))
                            }
                        }
                    }
                };
                st.positions.insert(k, pos);
            }
        }
        let want: Vec<(String, i32, i64)> = {
            let st = inst.state.lock();
            parts
                .iter()
                .filter_map(|k| st.positions.get(k).map(|o| (k.0.clone(), k.1, *o)))
                .collect()
        };
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        let fetched = fetch(
            &rest.broker,
            &want,
            max_bytes,
            wait,
            max_records,
            inst.format,
        )
        .await?;
        let mut st = inst.state.lock();
        let still: Vec<(String, i32)> = if st.manual.is_empty() {
            st.assigned.clone()
        } else {
            st.manual.clone()
        };
        for (f, w) in fetched.into_iter().zip(want.iter()) {
            let k = (w.0.clone(), w.1);
            if !still.contains(&k) || st.positions.get(&k) != Some(&w.2) {
                continue; // revoked or moved meanwhile
            }
            if f.error == 1 {
                // OFFSET_OUT_OF_RANGE: reset.
                let (start, hw) = rest
                    .broker
                    .topic(&k.0)
                    .and_then(|h| rest.broker.partition_bounds(&h.id, k.1))
                    .unwrap_or((0, 0));
                let pos = if inst.reset == Reset::Latest {
                    hw
                } else {
                    start
                };
                st.positions.insert(k, pos);
                continue;
            }
            st.positions.insert(k, f.next);
            out.extend(f.records);
        }
    }
    if inst.auto_commit && !out.is_empty() {
        let offsets: Vec<(String, i32, i64, Option<String>)> = {
            let st = inst.state.lock();
            st.positions
                .iter()
                .map(|((t, p), o)| (t.clone(), *p, *o, None))
                .collect()
        };
        if let Err(e) = commit_offsets(&rest.broker, &inst, offsets).await {
            tracing::debug!(error = %e, "HTTP consumer auto-commit failed");
        }
    }
    inst.touch();
    Ok((
        [(header::CONTENT_TYPE, inst.format.media_type())],
        Json(out),
    )
        .into_response())
}

/// Query of the stateless partition read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// First offset to read (default: the log start).
    pub offset: Option<i64>,
    /// Bytes of record batches read at most (the first batch always).
    pub max_bytes: Option<usize>,
    /// Records returned at most (default and cap 10000).
    pub max_records: Option<usize>,
    /// Long-poll up to this many ms when nothing is available (default 0).
    pub timeout_ms: Option<u64>,
    /// `binary` (default) or `json`.
    pub format: Option<String>,
}

/// Answer of the stateless partition read.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartitionRecords {
    pub topic_name: String,
    pub partition_id: i32,
    /// Offset to ask for next.
    pub next_offset: i64,
    pub high_watermark: i64,
    pub records: Vec<ConsumedRecord>,
}

/// Read one partition from an offset, without a group (Strata extension).
#[utoipa::path(
    get,
    path = "/v3/clusters/{cluster_id}/topics/{topic_name}/partitions/{partition_id}/records",
    tag = "Records (v3)",
    params(
        ("cluster_id" = String, Path),
        ("topic_name" = String, Path),
        ("partition_id" = i32, Path),
        ReadQuery
    ),
    responses(
        (status = 200, body = PartitionRecords),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 416, description = "Offset out of range", body = ErrorBody)
    )
)]
pub async fn read_partition(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, topic, partition)): Path<(String, String, i32)>,
    Query(q): Query<ReadQuery>,
) -> ApiResult<Json<PartitionRecords>> {
    rest.check_cluster(&cluster_id)?;
    let _p = rest.permit()?;
    let h = rest
        .broker
        .topic(&topic)
        .ok_or_else(|| ApiError::unknown_topic(&topic))?;
    if h.partition(partition).is_none() {
        return Err(ApiError::unknown_partition(&topic, partition));
    }
    let format = match q.format.as_deref() {
        None | Some("binary") => Format::Binary,
        Some("json") => Format::Json,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "format must be binary or json, got {o:?}"
            )))
        }
    };
    let (start, _) = rest
        .broker
        .partition_bounds(&h.id, partition)
        .unwrap_or((0, 0));
    let offset = q.offset.unwrap_or(start);
    if offset < 0 {
        return Err(ApiError::bad_request(format!(
            "offset must be >= 0, got {offset}"
        )));
    }
    let max_records = q.max_records.unwrap_or(MAX_RECORDS).clamp(1, MAX_RECORDS);
    let max_bytes = q.max_bytes.unwrap_or(1 << 20);
    let f = fetch(
        &rest.broker,
        &[(topic.clone(), partition, offset)],
        max_bytes,
        q.timeout_ms.unwrap_or(0),
        max_records,
        format,
    )
    .await?;
    let f = f
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("no partition in answer"))?;
    match f.error {
        0 => {}
        1 => {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("offset {offset} is out of range for {topic}-{partition}"),
            ))
        }
        c => return Err(ApiError::from_kafka(c, "Fetch")),
    }
    Ok(Json(PartitionRecords {
        topic_name: topic,
        partition_id: partition,
        next_offset: f.next,
        high_watermark: f.high_watermark,
        records: f.records,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_and_roundrobin_assignors() {
        let members = vec![
            ("a".to_string(), vec!["t".to_string()]),
            ("b".to_string(), vec!["t".to_string()]),
        ];
        let n = |_: &str| 5usize;
        let r = assign("range", &members, &n);
        assert_eq!(
            r["a"].iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(r["b"].iter().map(|x| x.1).collect::<Vec<_>>(), vec![3, 4]);
        let r = assign("roundrobin", &members, &n);
        assert_eq!(
            r["a"].iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![0, 2, 4]
        );
        assert_eq!(r["b"].iter().map(|x| x.1).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn protocol_metadata_round_trips() {
        let s = encode_subscription(&["x".into(), "y".into()]);
        assert_eq!(
            decode_subscription(s),
            vec!["x".to_string(), "y".to_string()]
        );
        let a = encode_assignment(&[("x".into(), 1), ("x".into(), 2), ("y".into(), 0)]);
        assert_eq!(
            decode_assignment(a),
            vec![
                ("x".to_string(), 1),
                ("x".to_string(), 2),
                ("y".to_string(), 0)
            ]
        );
        assert!(decode_assignment(Bytes::from_static(b"\x00")).is_empty());
    }
}
