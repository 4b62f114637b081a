//! Produce (REST Proxy v3): `POST /v3/clusters/{cluster_id}/topics/{topic}/records`.
//!
//! The body is one JSON record, or several concatenated JSON records sent as
//! a stream (chunked). One record gets one JSON answer with an HTTP status
//! that says how it went; a stream gets `200` and one JSON line per record,
//! in order, each with its own `error_code`, as REST Proxy v3 does.
//!
//! Records are parsed as bytes arrive, each bounded by `--http-max-body-bytes`
//! (413 past it); what is parsed at once is grouped per partition into one
//! uncompressed RecordBatch (`RecordBatchEncoder`) and appended through
//! `Broker::append`, the same path Kafka produce takes. With `acks=all` (the
//! default, as REST Proxy) a record is answered once its batch is committed
//! to object storage; the durable waits of a stream are pipelined, so the
//! next records are appended while earlier ones wait.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};

use super::codec::{self, DataType, RecordData};
use super::error::{check_json_content_type, ApiError, ApiResult, ErrorBody};
use super::Rest;
use crate::broker::TopicHandle;

/// Longest wait for the next bytes of a streamed body.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Records parsed into one group (one batch per partition) at most.
const MAX_GROUP_RECORDS: usize = 2_000;
/// Groups of a stream appended ahead of their answers.
const MAX_PIPELINED_GROUPS: usize = 64;
/// How long acks=all waits for the object-storage commit.
const DURABLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Headers per record at most.
const MAX_HEADERS: usize = 1_000;

/// A header of a produced record.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct RecordHeader {
    pub name: String,
    /// Base64 of the header value; null for a null value.
    #[serde(default)]
    pub value: Option<String>,
}

/// One record to produce (REST Proxy v3 `ProduceRequest`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ProduceRecord {
    /// Partition to write to; default: murmur2 of the key as Kafka clients
    /// do, round-robin for null keys.
    #[serde(default)]
    pub partition_id: Option<i32>,
    #[serde(default)]
    pub headers: Vec<RecordHeader>,
    #[serde(default)]
    pub key: Option<RecordData>,
    #[serde(default)]
    pub value: Option<RecordData>,
    /// RFC 3339 time (or milliseconds since the epoch); default: now.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub timestamp: Option<serde_json::Value>,
}

/// Type and size of a produced key or value.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DataInfo {
    #[serde(rename = "type")]
    pub kind: DataType,
    pub size: usize,
}

/// The answer for one record (REST Proxy v3 `ProduceResponse`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProduceResult {
    /// 200 on success.
    pub error_code: i32,
    pub cluster_id: String,
    pub topic_name: String,
    pub partition_id: i32,
    pub offset: i64,
    /// RFC 3339 (the record's timestamp, or the log append time).
    pub timestamp: String,
    /// The same instant in milliseconds since the epoch (Strata extension).
    pub timestamp_ms: i64,
    pub key: Option<DataInfo>,
    pub value: Option<DataInfo>,
}

/// Query parameters of produce.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProduceQuery {
    /// `all` (default, also `-1`): answer once committed to object storage;
    /// `1` or `0`: answer after the local append (Strata extension).
    pub acks: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Acks {
    All,
    Leader,
}

/// A record ready to append.
struct Prepared {
    partition: i32,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
    timestamp: i64,
    key_info: Option<DataInfo>,
    value_info: Option<DataInfo>,
    size: usize,
}

fn prepare(rest: &Rest, topic: &TopicHandle, raw: &[u8], now: i64) -> Result<Prepared, ApiError> {
    let r: ProduceRecord = serde_json::from_slice(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid record: {e}")))?;
    let key = match &r.key {
        Some(d) => d.to_bytes("key").map_err(ApiError::bad_request)?,
        None => None,
    };
    let value = match &r.value {
        Some(d) => d.to_bytes("value").map_err(ApiError::bad_request)?,
        None => None,
    };
    let n = topic.partitions.len();
    let partition = match r.partition_id {
        Some(p) if p >= 0 && (p as usize) < n => p,
        Some(p) => return Err(ApiError::unknown_partition(&topic.name, p)),
        None => match &key {
            Some(k) => codec::partition_for_key(k, n),
            None => (rest.round_robin.fetch_add(1, Ordering::Relaxed) as usize % n.max(1)) as i32,
        },
    };
    if r.headers.len() > MAX_HEADERS {
        return Err(ApiError::bad_request(format!(
            "too many headers: {} > {MAX_HEADERS}",
            r.headers.len()
        )));
    }
    let mut headers = Vec::with_capacity(r.headers.len());
    let mut size = key.as_ref().map_or(0, |k| k.len()) + value.as_ref().map_or(0, |v| v.len());
    for h in r.headers {
        let v = match h.value {
            Some(s) => Some(Bytes::from(codec::b64_decode(&s).map_err(|e| {
                ApiError::bad_request(format!("header {:?}: invalid base64: {e}", h.name))
            })?)),
            None => None,
        };
        size += h.name.len() + v.as_ref().map_or(0, |v| v.len()) + 8;
        headers.push((h.name, v));
    }
    let timestamp = match &r.timestamp {
        None | Some(serde_json::Value::Null) => now,
        Some(serde_json::Value::String(s)) => codec::parse_rfc3339_ms(s).ok_or_else(|| {
            ApiError::bad_request(format!("invalid timestamp {s:?}: expected RFC 3339"))
        })?,
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .filter(|v| *v >= 0)
            .ok_or_else(|| ApiError::bad_request(format!("invalid timestamp {n}")))?,
        Some(other) => return Err(ApiError::bad_request(format!("invalid timestamp {other}"))),
    };
    let info = |d: &Option<RecordData>, b: &Option<Vec<u8>>| {
        b.as_ref().map(|b| DataInfo {
            kind: d.as_ref().and_then(|d| d.kind).unwrap_or(DataType::Json),
            size: b.len(),
        })
    };
    Ok(Prepared {
        partition,
        key_info: info(&r.key, &key),
        value_info: info(&r.value, &value),
        key: key.map(Bytes::from),
        value: value.map(Bytes::from),
        headers,
        timestamp,
        size,
    })
}

/// What one record's answer becomes once its batch is durable.
type Slot = Result<ProduceResult, ApiError>;

/// An acks=all wait: partition, leader epoch of the append, offsets below
/// which must be durable, and the records' indices.
type DurableWait = (i32, i32, i64, Vec<usize>);

/// Append a group of records (one batch per partition, split by
/// `max.message.bytes`). Returns the answers in input order and the
/// durable waits acks=all needs.
async fn append_group(
    rest: &Rest,
    topic: &Arc<TopicHandle>,
    recs: Vec<Result<Prepared, ApiError>>,
) -> (Vec<Slot>, Vec<DurableWait>) {
    let b = &rest.broker;
    let mut slots: Vec<Slot> = Vec::with_capacity(recs.len());
    let mut by_part: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    let mut prepared: Vec<Option<Prepared>> = Vec::with_capacity(recs.len());
    for (i, r) in recs.into_iter().enumerate() {
        match r {
            Ok(p) => {
                by_part.entry(p.partition).or_default().push(i);
                slots.push(Err(ApiError::internal("not appended")));
                prepared.push(Some(p));
            }
            Err(e) => {
                slots.push(Err(e));
                prepared.push(None);
            }
        }
    }
    let max_batch = topic.log_config.max_message_bytes.clamp(1024, 8 << 20) - 512;
    let mut waits = Vec::new();
    for (p, idxs) in by_part {
        let Some(ph) = topic.partition(p) else {
            for i in idxs {
                slots[i] = Err(ApiError::unknown_partition(&topic.name, p));
            }
            continue;
        };
        // Split into batches under max.message.bytes.
        let mut chunks: Vec<Vec<usize>> = vec![Vec::new()];
        let mut acc = 0usize;
        for i in idxs {
            let sz = prepared[i].as_ref().map_or(0, |r| r.size) + 32;
            let cur = chunks.last_mut().expect("non-empty");
            if !cur.is_empty() && acc + sz > max_batch {
                chunks.push(vec![i]);
                acc = sz;
            } else {
                cur.push(i);
                acc += sz;
            }
        }
        for chunk in chunks {
            let records: Vec<Record> = chunk
                .iter()
                .enumerate()
                .map(|(j, &i)| {
                    let r = prepared[i].as_ref().expect("prepared");
                    Record {
                        transactional: false,
                        control: false,
                        delete_horizon: false,
                        partition_leader_epoch: -1,
                        producer_id: -1,
                        producer_epoch: -1,
                        timestamp_type: TimestampType::Creation,
                        // Relative: the encoder derives offset deltas from it.
                        offset: j as i64,
                        sequence: -1,
                        timestamp: r.timestamp,
                        key: r.key.clone(),
                        value: r.value.clone(),
                        headers: r
                            .headers
                            .iter()
                            .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                            .collect(),
                    }
                })
                .collect();
            let mut buf = BytesMut::with_capacity(acc_size(&records));
            let opts = RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            };
            if let Err(e) = RecordBatchEncoder::encode(&mut buf, records.iter(), &opts) {
                for &i in &chunk {
                    slots[i] = Err(ApiError::internal(format!("cannot encode batch: {e}")));
                }
                continue;
            }
            match b.append(topic, ph, buf.to_vec()).await {
                Ok(info) => {
                    for (j, &i) in chunk.iter().enumerate() {
                        let r = prepared[i].take().expect("prepared");
                        let ts = if info.log_append_time >= 0 {
                            info.log_append_time
                        } else {
                            r.timestamp
                        };
                        slots[i] = Ok(ProduceResult {
                            error_code: 200,
                            cluster_id: b.cluster_id.clone(),
                            topic_name: topic.name.clone(),
                            partition_id: p,
                            offset: info.base_offset + j as i64,
                            timestamp: codec::format_rfc3339_ms(ts),
                            timestamp_ms: ts,
                            key: r.key_info,
                            value: r.value_info,
                        });
                    }
                    waits.push((p, ph.leader_epoch, info.last_offset + 1, chunk));
                }
                Err(e) => {
                    let code = e.kafka_code();
                    let err = match code {
                        10 => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
                        2 | 87 | 42 => ApiError::bad_request(e.to_string()),
                        _ => ApiError::unavailable(format!("append refused: {e}")),
                    };
                    for &i in &chunk {
                        slots[i] = Err(err.clone());
                    }
                }
            }
        }
    }
    (slots, waits)
}

fn acc_size(records: &[Record]) -> usize {
    61 + records
        .iter()
        .map(|r| {
            24 + r.key.as_ref().map_or(0, |k| k.len())
                + r.value.as_ref().map_or(0, |v| v.len())
                + r.headers
                    .iter()
                    .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 10)
                    .sum::<usize>()
        })
        .sum::<usize>()
}

/// Wait for acks=all; failures replace the answers of the records concerned.
async fn finish_group(
    rest: &Rest,
    topic_id: uuid::Uuid,
    acks: Acks,
    mut slots: Vec<Slot>,
    waits: Vec<DurableWait>,
) -> Vec<Slot> {
    if acks == Acks::All {
        for (p, epoch, upto, idxs) in waits {
            if let Err(e) = rest
                .broker
                .wait_durable(topic_id, p, Some(epoch), upto, DURABLE_TIMEOUT)
                .await
            {
                let err = ApiError::unavailable(format!(
                    "not acknowledged: {e} (the records may still be written)"
                ));
                for i in idxs {
                    slots[i] = Err(err.clone());
                }
            }
        }
    }
    slots
}

fn slot_line(s: &Slot) -> Vec<u8> {
    let mut v = match s {
        Ok(r) => serde_json::to_vec(r),
        Err(e) => serde_json::to_vec(&e.body()),
    }
    .unwrap_or_default();
    v.push(b'\n');
    v
}

/// Reads concatenated JSON values from a request body as bytes arrive.
struct ValueReader {
    body: axum::body::BodyDataStream,
    buf: BytesMut,
    eof: bool,
    limit: usize,
    /// Length of `buf` at the last incomplete parse: parse again only when
    /// a `}` arrived or the buffer doubled (no quadratic re-parsing).
    retry_at: usize,
    /// An error found after values that are still to be answered.
    failed: Option<ReadError>,
}

#[derive(Debug)]
enum ReadError {
    TooLarge(usize),
    Syntax(String),
    Body(String),
    Timeout,
}

impl ReadError {
    fn api(&self) -> ApiError {
        match self {
            ReadError::TooLarge(l) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("record larger than the limit of {l} bytes (--http-max-body-bytes)"),
            ),
            ReadError::Syntax(m) => ApiError::bad_request(format!("invalid JSON: {m}")),
            ReadError::Body(m) => ApiError::bad_request(format!("cannot read body: {m}")),
            ReadError::Timeout => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("no body bytes for {BODY_IDLE_TIMEOUT:?}"),
            ),
        }
    }
}

impl ValueReader {
    fn new(body: Body, limit: usize) -> ValueReader {
        ValueReader {
            body: body.into_data_stream(),
            buf: BytesMut::new(),
            eof: false,
            limit,
            retry_at: 0,
            failed: None,
        }
    }

    /// Split off the complete values buffered, at most `max`, as raw JSON
    /// (found with a non-allocating scan; each is parsed once later).
    fn parse(&mut self, out: &mut Vec<Bytes>, max: usize) -> Result<(), ReadError> {
        let mut consumed = 0;
        let mut ends = Vec::new();
        let mut incomplete = false;
        let mut oversized = false;
        {
            let mut it = serde_json::Deserializer::from_slice(&self.buf)
                .into_iter::<serde::de::IgnoredAny>();
            while out.len() + ends.len() < max {
                match it.next() {
                    None => {
                        consumed = it.byte_offset();
                        break;
                    }
                    Some(Ok(_)) => {
                        let end = it.byte_offset();
                        if end - consumed > self.limit {
                            // Complete but too big: answer what came before first.
                            self.failed = Some(ReadError::TooLarge(self.limit));
                            oversized = true;
                            consumed = end;
                            break;
                        }
                        ends.push(end);
                        consumed = end;
                    }
                    Some(Err(e)) if e.is_eof() => {
                        incomplete = true;
                        break;
                    }
                    Some(Err(e)) => {
                        if ends.is_empty() {
                            return Err(ReadError::Syntax(e.to_string()));
                        }
                        // Answer the good values first, then the error.
                        self.failed = Some(ReadError::Syntax(e.to_string()));
                        break;
                    }
                }
            }
        }
        let mut taken = 0;
        for end in ends {
            out.push(self.buf.split_to(end - taken).freeze());
            taken = end;
        }
        if oversized || self.failed.is_none() {
            self.buf.advance(consumed.saturating_sub(taken));
        }
        if incomplete {
            if self.buf.len() > self.limit {
                if !out.is_empty() {
                    // Answer the complete values first, then the 413.
                    self.failed = Some(ReadError::TooLarge(self.limit));
                    self.buf.clear();
                    self.retry_at = 0;
                    return Ok(());
                }
                return Err(ReadError::TooLarge(self.limit));
            }
            self.retry_at = self.buf.len().saturating_mul(2).max(1);
        } else {
            self.retry_at = 0;
        }
        Ok(())
    }

    /// Read one more chunk; false at the end of the body.
    async fn read_chunk(&mut self) -> Result<bool, ReadError> {
        if self.eof {
            return Ok(false);
        }
        match tokio::time::timeout(BODY_IDLE_TIMEOUT, self.body.next()).await {
            Err(_) => Err(ReadError::Timeout),
            Ok(None) => {
                self.eof = true;
                Ok(false)
            }
            Ok(Some(Err(e))) => Err(ReadError::Body(e.to_string())),
            Ok(Some(Ok(chunk))) => {
                let closes = chunk.contains(&b'}') || chunk.contains(&b']');
                self.buf.extend_from_slice(&chunk);
                if closes || self.buf.len() >= self.retry_at {
                    self.retry_at = 0;
                }
                if self.buf.len() > self.limit.saturating_mul(2).max(1 << 16) {
                    // Parse before growing further.
                    self.retry_at = 0;
                }
                Ok(true)
            }
        }
    }

    /// The next values: at least one unless the body ended, at most `max`.
    async fn next_values(&mut self, max: usize) -> Result<Vec<Bytes>, ReadError> {
        let mut out = Vec::new();
        loop {
            if let Some(e) = self.failed.take() {
                return Err(e);
            }
            if self.retry_at == 0 {
                self.parse(&mut out, max)?;
                if !out.is_empty() {
                    return Ok(out);
                }
                if let Some(e) = self.failed.take() {
                    return Err(e);
                }
            }
            if !self.read_chunk().await? {
                self.parse(&mut out, max)?;
                if out.is_empty() && self.buf.iter().any(|b| !b.is_ascii_whitespace()) {
                    return Err(ReadError::Syntax("body ends inside a record".into()));
                }
                return Ok(out);
            }
        }
    }

    /// Discard the rest of the body, at most `cap` bytes (bounded by the
    /// idle timeout per chunk).
    async fn drain(&mut self, cap: usize) {
        let mut seen = 0usize;
        self.buf.clear();
        while seen <= cap {
            match self.read_chunk().await {
                Ok(true) => {
                    seen += self.buf.len();
                    self.buf.clear();
                }
                _ => return,
            }
        }
    }

    /// Whether anything but whitespace follows (reads until it knows).
    async fn has_more(&mut self) -> Result<bool, ReadError> {
        loop {
            if self.failed.is_some() || self.buf.iter().any(|b| !b.is_ascii_whitespace()) {
                return Ok(true);
            }
            self.buf.clear();
            if !self.read_chunk().await? {
                return Ok(false);
            }
        }
    }
}

fn parse_acks(q: &ProduceQuery) -> ApiResult<Acks> {
    match q.acks.as_deref() {
        None | Some("all") | Some("-1") => Ok(Acks::All),
        Some("1") | Some("0") | Some("leader") | Some("none") => Ok(Acks::Leader),
        Some(other) => Err(ApiError::bad_request(format!(
            "acks must be all, -1, 1 or 0, got {other:?}"
        ))),
    }
}

/// Produce records.
#[utoipa::path(
    post,
    path = "/v3/clusters/{cluster_id}/topics/{topic_name}/records",
    tag = "Records (v3)",
    params(
        ("cluster_id" = String, Path, description = "Cluster id (GET /v3/clusters)"),
        ("topic_name" = String, Path, description = "Topic"),
        ProduceQuery
    ),
    request_body(
        content = ProduceRecord,
        content_type = "application/json",
        description = "One record, or several concatenated JSON records streamed in one (chunked) request"
    ),
    responses(
        (status = 200, description = "One answer per record, one JSON object per line", body = ProduceResult),
        (status = 400, description = "Malformed JSON or record", body = ErrorBody),
        (status = 404, description = "Unknown cluster, topic or partition", body = ErrorBody),
        (status = 413, description = "Record larger than --http-max-body-bytes or max.message.bytes", body = ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = ErrorBody),
        (status = 429, description = "Too many concurrent requests", body = ErrorBody),
        (status = 503, description = "Not committed in time, or shutting down", body = ErrorBody)
    )
)]
pub async fn produce(
    State(rest): State<Arc<Rest>>,
    Path((cluster_id, topic_name)): Path<(String, String)>,
    Query(q): Query<ProduceQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match produce_inner(rest, cluster_id, topic_name, q, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn produce_inner(
    rest: Arc<Rest>,
    cluster_id: String,
    topic_name: String,
    q: ProduceQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    rest.check_cluster(&cluster_id)?;
    let permit = rest.permit()?;
    check_json_content_type(&headers)?;
    let acks = parse_acks(&q)?;
    super::access::check_topic(&rest.broker, crate::auth::acl::op::WRITE, &topic_name)?;
    let topic = rest
        .broker
        .topic(&topic_name)
        .ok_or_else(|| ApiError::unknown_topic(&topic_name))?;
    let mut reader = ValueReader::new(body, rest.body_limit);
    let first = reader
        .next_values(MAX_GROUP_RECORDS)
        .await
        .map_err(|e| e.api())?;
    if first.is_empty() {
        return Err(ApiError::bad_request("empty body: expected a JSON record"));
    }
    let single = first.len() == 1 && !reader.has_more().await.map_err(|e| e.api())?;
    if single {
        let now = rest.broker.clock.now_ms();
        let recs = first
            .into_iter()
            .map(|v| prepare(&rest, &topic, &v, now))
            .collect();
        let (slots, waits) = append_group(&rest, &topic, recs).await;
        let mut slots = finish_group(&rest, topic.id, acks, slots, waits).await;
        return match slots.pop() {
            Some(Ok(r)) => Ok(axum::Json(r).into_response()),
            Some(Err(e)) => Err(e),
            None => Err(ApiError::internal("no answer")),
        };
    }
    // Streamed: answer 200 now, then one line per record.
    let (line_tx, line_rx) = tokio::sync::mpsc::channel::<Bytes>(MAX_PIPELINED_GROUPS);
    let (group_tx, mut group_rx) =
        tokio::sync::mpsc::channel::<crate::kafka::BoxFuture<Vec<Slot>>>(MAX_PIPELINED_GROUPS);
    let r2 = rest.clone();
    tokio::spawn(async move {
        // Appends groups in order; their durable waits go to the writer.
        let _permit = permit;
        let mut next = Some(first);
        loop {
            let values = match next.take() {
                Some(v) => v,
                None => match reader.next_values(MAX_GROUP_RECORDS).await {
                    Ok(v) if v.is_empty() => break,
                    Ok(v) => v,
                    Err(e) => {
                        let err: Slot = Err(e.api());
                        let _ = group_tx.send(Box::pin(async move { vec![err] })).await;
                        // Read (and drop) what the client still sends, up to a
                        // bound, so the keep-alive connection stays usable.
                        reader.drain(r2.body_limit.saturating_mul(4)).await;
                        break;
                    }
                },
            };
            let now = r2.broker.clock.now_ms();
            let recs = values
                .into_iter()
                .map(|v| prepare(&r2, &topic, &v, now))
                .collect();
            let (slots, waits) = append_group(&r2, &topic, recs).await;
            let r3 = r2.clone();
            let tid = topic.id;
            let fut = Box::pin(async move { finish_group(&r3, tid, acks, slots, waits).await });
            if group_tx.send(fut).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        // Answers groups in order.
        while let Some(fut) = group_rx.recv().await {
            let slots = fut.await;
            let mut out = Vec::with_capacity(slots.len() * 200);
            for s in &slots {
                out.extend_from_slice(&slot_line(s));
            }
            if line_tx.send(Bytes::from(out)).await.is_err() {
                break;
            }
        }
    });
    let stream = futures_util::stream::unfold(line_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reader_splits_concatenated_values_and_bounds_them() {
        let body = Body::from(
            r#"{"a":1} {"b":2}
{"c":3}"#,
        );
        let mut r = ValueReader::new(body, 1024);
        let v = r.next_values(10).await.unwrap();
        assert_eq!(v.len(), 3);
        assert!(r.next_values(10).await.unwrap().is_empty());

        let big = format!(r#"{{"a":"{}""#, "x".repeat(5000));
        let mut r = ValueReader::new(Body::from(big), 1024);
        assert!(matches!(
            r.next_values(10).await,
            Err(ReadError::TooLarge(_)) | Err(ReadError::Syntax(_))
        ));

        let mut r = ValueReader::new(Body::from("{\"a\":"), 1024);
        assert!(matches!(r.next_values(10).await, Err(ReadError::Syntax(_))));
        let mut r = ValueReader::new(Body::from("{]"), 1024);
        assert!(matches!(r.next_values(10).await, Err(ReadError::Syntax(_))));
    }
}
