//! Fetch: whole batches below the high watermark (the offset up to which
//! data is committed to object storage) from each requested partition,
//! within `max_bytes` and `partition_max_bytes` (the first batch always, so
//! consumers progress), long-polling up to `max_wait_ms` until `min_bytes`
//! are available. Offsets no longer on local disk are read from object
//! storage through the block cache, off every lock, so cold reads never
//! block produce. Incremental fetch sessions (KIP-227) are served through
//! [`crate::kafka::fetch_session`]: an incremental request reads every
//! partition of its session and answers only those with news.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ProducerId, ResponseKind, TopicName,
};
use uuid::Uuid;

use super::sb;
use crate::broker::{Broker, TopicHandle};
use crate::kafka::fetch_session::{
    Context, FetchPosition, PartKey, PartitionNews, SessionRequest, TopicKey,
};
use crate::kafka::{code, Ctx, Reply};
use crate::meta::tier::Extent;

/// Longest long-poll honoured, whatever the client asks.
const MAX_WAIT_CAP_MS: i32 = 30_000;

struct Want {
    topic: Option<Arc<TopicHandle>>,
    name: TopicName,
    topic_id: Uuid,
    /// READ on the topic (always true without the ACL authorizer).
    authorized: bool,
    partitions: Vec<(i32, i64, i32, i32)>, // (partition, offset, partition_max_bytes, current_leader_epoch)
}

/// A read that must go to object storage.
struct Remote {
    topic_id: Uuid,
    partition: i32,
    topic: usize,
    part: usize,
    extent: Extent,
    offset: i64,
    limit: usize,
    hw: i64,
    /// The local log may fill gaps (false for a read this broker serves as
    /// a zone-local replica: its local copy may be stale).
    local_ok: bool,
}

/// Zone-local reads (KIP-392) for a fetch naming the client's rack.
struct RackRead<'a> {
    /// The client's rack (`client.rack`).
    client: &'a str,
    /// Live brokers in that rack, ascending.
    replicas: Vec<i32>,
}

/// Leader-epoch check of KIP-320 shared by Fetch, ListOffsets and
/// OffsetForLeaderEpoch.
pub fn check_epoch(requested: i32, current: i32) -> i16 {
    if requested < 0 || requested == current {
        code::NONE
    } else if requested < current {
        code::FENCED_LEADER_EPOCH
    } else {
        code::UNKNOWN_LEADER_EPOCH
    }
}

/// [`check_epoch`], after checking that this broker leads the partition
/// and finished taking it over (else NOT_LEADER_OR_FOLLOWER: the client
/// refreshes its metadata and goes to the leader).
pub fn check_leader(
    b: &crate::broker::Broker,
    topic_id: uuid::Uuid,
    ph: &crate::broker::PartitionHandle,
    requested: i32,
) -> i16 {
    if !b.leads(topic_id, ph) {
        return code::NOT_LEADER_OR_FOLLOWER;
    }
    check_epoch(requested, ph.leader_epoch)
}

pub fn handle(ctx: &Ctx, req: FetchRequest) -> Reply {
    let b = ctx.broker.clone();
    let use_ids = ctx.version >= 13;
    let session = Session::open(&b, &req, use_ids);
    if let Context::Error(c) = session.context {
        return Reply::Now(ResponseKind::Fetch(
            FetchResponse::default()
                .with_error_code(c)
                .with_session_id(0),
        ));
    }
    let wants = session.wants(ctx, &b);
    let meta = b.meta();
    let user = crate::quotas::user_for(&meta.quotas, &ctx.session);
    let max_bytes = b.quotas.cap_fetch_bytes(
        &meta.quotas,
        &user,
        ctx.client_id.as_deref(),
        (req.max_bytes.max(0) as usize).min(b.config.fetch_max_bytes),
    );
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_wait = req.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS);
    let read_committed = req.isolation_level == 1;
    let rack = (ctx.version >= 11 && !req.rack_id.is_empty()).then(|| req.rack_id.to_string());
    let no_wants = wants.is_empty();
    let mut rx = b.subscribe_appends();
    let gather = move |b: &Broker| {
        let meta = b.meta();
        let rack = rack.as_deref().map(|client| RackRead {
            client,
            replicas: meta
                .brokers
                .values()
                .filter(|x| !x.fenced && x.rack.as_deref() == Some(client))
                .map(|x| x.broker_id)
                .collect(),
        });
        gather(b, &wants, max_bytes, use_ids, read_committed, rack.as_ref())
    };
    let (resp, bytes, errors, remotes) = gather(&b);
    if !remotes.is_empty() {
        return Reply::Later(Box::pin(async move {
            let resp = read_remote(&b, resp, remotes).await;
            ResponseKind::Fetch(session.finish(&b, resp))
        }));
    }
    if bytes >= min_bytes.max(1) || errors || max_wait == 0 || no_wants || b.is_shutting_down() {
        return Reply::Now(ResponseKind::Fetch(session.finish(&b, resp)));
    }
    Reply::Later(Box::pin(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(max_wait as u64);
        while let Ok(Ok(())) = tokio::time::timeout_at(deadline, rx.changed()).await {
            if b.is_shutting_down() {
                break;
            }
            let (resp, bytes, errors, remotes) = gather(&b);
            if !remotes.is_empty() {
                let resp = read_remote(&b, resp, remotes).await;
                return ResponseKind::Fetch(session.finish(&b, resp));
            }
            if bytes >= min_bytes.max(1) || errors {
                return ResponseKind::Fetch(session.finish(&b, resp));
            }
        }
        let resp = gather(&b).0;
        ResponseKind::Fetch(session.finish(&b, resp))
    }))
}

/// The fetch session side of one request (KIP-227).
struct Session {
    context: Context,
    privileged: bool,
    uses_ids: bool,
    /// The partitions read, in response order.
    listed: Vec<(PartKey, FetchPosition)>,
}

impl Session {
    fn open(b: &Broker, req: &FetchRequest, uses_ids: bool) -> Session {
        let key = |name: &TopicName, id: &Uuid| {
            if uses_ids {
                TopicKey::Id(*id)
            } else {
                TopicKey::Name(name.0.to_string())
            }
        };
        let updates: Vec<(PartKey, FetchPosition)> = req
            .topics
            .iter()
            .flat_map(|t| {
                let k = key(&t.topic, &t.topic_id);
                t.partitions.iter().map(move |p| {
                    (
                        (k.clone(), p.partition),
                        FetchPosition {
                            offset: p.fetch_offset,
                            max_bytes: p.partition_max_bytes,
                            leader_epoch: p.current_leader_epoch,
                        },
                    )
                })
            })
            .collect();
        let forgotten = req
            .forgotten_topics_data
            .iter()
            .flat_map(|t| {
                let k = key(&t.topic, &t.topic_id);
                t.partitions.iter().map(move |p| (k.clone(), *p))
            })
            .collect();
        let sreq = SessionRequest {
            session_id: req.session_id,
            epoch: req.session_epoch,
            uses_ids,
            // Kafka ranks follower sessions above consumers'. Strata has
            // no follower fetches, and without authentication any client
            // could claim a replica id: every session is a consumer's.
            privileged: false,
            updates,
            forgotten,
        };
        let context = b.fetch_sessions.new_context(&sreq, b.clock.now_ms());
        let listed = match &context {
            Context::Incremental { parts, .. } => parts.clone(),
            _ => sreq.updates,
        };
        Session {
            context,
            privileged: sreq.privileged,
            uses_ids,
            listed,
        }
    }

    /// What to read: the listed partitions, consecutive partitions of one
    /// topic grouped.
    fn wants(&self, ctx: &Ctx, b: &Broker) -> Vec<Want> {
        let mut wants: Vec<Want> = Vec::new();
        let mut last: Option<&TopicKey> = None;
        for ((k, p), pos) in &self.listed {
            if last != Some(k) {
                let (topic, name, topic_id) = match k {
                    TopicKey::Id(id) => {
                        let t = b.topic_by_id(id);
                        let name = t.as_ref().map(|h| h.name.clone()).unwrap_or_default();
                        (t, name, *id)
                    }
                    TopicKey::Name(n) => (b.topic(n), n.clone(), Uuid::nil()),
                };
                wants.push(Want {
                    authorized: topic.as_ref().is_none_or(|h| {
                        crate::auth::allowed(
                            ctx,
                            crate::auth::acl::op::READ,
                            crate::auth::acl::resource::TOPIC,
                            &h.name,
                        )
                    }),
                    name: TopicName(sb(name)),
                    topic_id,
                    topic,
                    partitions: Vec::new(),
                });
                last = Some(k);
            }
            if let Some(w) = wants.last_mut() {
                w.partitions
                    .push((*p, pos.offset, pos.max_bytes, pos.leader_epoch));
            }
        }
        wants
    }

    /// Stamp the session on a response: create a session after a full
    /// fetch, keep only partitions with news in an incremental one.
    fn finish(&self, b: &Broker, mut resp: FetchResponse) -> FetchResponse {
        let news = |pd: &PartitionData| PartitionNews {
            records: pd.records.as_ref().map_or(0, |r| r.len()),
            high_watermark: pd.high_watermark,
            log_start_offset: pd.log_start_offset,
            error: pd.error_code != code::NONE,
            preferred_replica: pd.preferred_read_replica.0 >= 0,
        };
        let flat = resp.responses.iter().flat_map(|t| t.partitions.iter());
        match &self.context {
            Context::Full => {
                let parts = self
                    .listed
                    .iter()
                    .zip(flat)
                    .map(|((k, pos), pd)| (k.clone(), *pos, news(pd)))
                    .collect();
                resp.session_id = b.fetch_sessions.create(
                    self.privileged,
                    self.uses_ids,
                    parts,
                    b.clock.now_ms(),
                );
            }
            Context::Incremental { id, .. } => {
                let all: Vec<(PartKey, PartitionNews)> = self
                    .listed
                    .iter()
                    .zip(flat)
                    .map(|((k, _), pd)| (k.clone(), news(pd)))
                    .collect();
                let mut keep = b.fetch_sessions.finish_incremental(*id, &all).into_iter();
                for t in &mut resp.responses {
                    t.partitions.retain(|_| keep.next().unwrap_or(true));
                }
                resp.responses.retain(|t| !t.partitions.is_empty());
                resp.session_id = *id;
            }
            Context::Sessionless | Context::Error(_) => resp.session_id = 0,
        }
        resp
    }
}

/// Fill in the partitions whose data must come from object storage.
async fn read_remote(
    b: &Arc<Broker>,
    mut resp: FetchResponse,
    remotes: Vec<Remote>,
) -> FetchResponse {
    for r in remotes {
        let span = tracing::debug_span!(
            "read_remote",
            topic_id = %r.topic_id,
            partition = r.partition,
            offset = r.offset,
            key = r.extent.key
        );
        let pd = &mut resp.responses[r.topic].partitions[r.part];
        read_one_remote(b, pd, r).instrument(span).await;
    }
    resp
}

/// One partition's read from object storage into `pd`.
async fn read_one_remote(b: &Arc<Broker>, pd: &mut PartitionData, r: Remote) {
    // A compacted extent may hold no batch at or after the offset: move
    // on to the next extent (bounded) so consumers skip the gap.
    let mut extent = r.extent.clone();
    let mut result = b.reader().read(&extent, r.offset, r.limit, r.hw).await;
    for _ in 0..64 {
        if !matches!(&result, Ok(bytes) if bytes.is_empty()) || extent.end_offset >= r.hw {
            break;
        }
        let next_offset = extent.end_offset;
        let local = b
            .topic_by_id(&r.topic_id)
            .and_then(|t| t.partition(r.partition).map(|p| p.log.clone()));
        if let Some(log) = local.filter(|l| r.local_ok && next_offset >= l.log_start_offset()) {
            result = log
                .read_upto(next_offset, r.limit, true, r.hw)
                .map(|x| x.records)
                .map_err(|e| crate::objstore::StoreError::Backend {
                    op: "read",
                    key: "local".into(),
                    message: e.to_string(),
                });
            break;
        }
        let meta = b.meta();
        let Some(n) = meta
            .topic_by_id(&r.topic_id)
            .and_then(|t| t.partitions.get(r.partition as usize))
            .and_then(|p| {
                p.extents
                    .iter()
                    .find(|e| e.base_offset <= next_offset && next_offset < e.end_offset)
                    .cloned()
            })
        else {
            break;
        };
        extent = n;
        result = b.reader().read(&extent, next_offset, r.limit, r.hw).await;
    }
    match result {
        Ok(bytes) => {
            b.metrics.bytes_out.fetch_add(bytes.len() as u64, Relaxed);
            if let Some(t) = b.topic_by_id(&r.topic_id) {
                t.stats.bytes_out.fetch_add(bytes.len() as u64, Relaxed);
            }
            pd.records = Some(bytes);
        }
        Err(e) => {
            tracing::warn!(key = r.extent.key, error = %e, "read from object storage failed");
            pd.error_code = code::KAFKA_STORAGE_ERROR;
        }
    }
}

/// Read what is available now. Returns the response, the record bytes in it,
/// whether any partition carries an error (which ends a long-poll), and the
/// reads that must go to object storage.
fn gather(
    b: &Broker,
    wants: &[Want],
    max_bytes: usize,
    use_ids: bool,
    read_committed: bool,
    rack: Option<&RackRead>,
) -> (FetchResponse, usize, bool, Vec<Remote>) {
    let mut total = 0usize;
    let mut errors = false;
    let mut remotes = Vec::new();
    let mut responses = Vec::with_capacity(wants.len());
    let meta = b.meta();
    for (wi, w) in wants.iter().enumerate() {
        let mut parts = Vec::with_capacity(w.partitions.len());
        for (pi, &(p, offset, pmax, epoch)) in w.partitions.iter().enumerate() {
            let pd = PartitionData::default()
                .with_partition_index(p)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_aborted_transactions(read_committed.then(Vec::new))
                .with_records(Some(Bytes::new()));
            if !w.authorized {
                errors = true;
                parts.push(pd.with_error_code(code::TOPIC_AUTHORIZATION_FAILED));
                continue;
            }
            let found = w.topic.as_ref().and_then(|t| {
                Some((
                    t.partition(p)?,
                    meta.topic_by_id(&t.id)?.partitions.get(p as usize)?,
                ))
            });
            let Some((ph, pm)) = found else {
                errors = true;
                let c = if use_ids && w.topic.is_none() {
                    code::UNKNOWN_TOPIC_ID
                } else {
                    code::UNKNOWN_TOPIC_OR_PARTITION
                };
                parts.push(pd.with_error_code(c));
                continue;
            };
            let pm_topic_id = w.topic.as_ref().map(|t| t.id).unwrap_or_default();
            let leader_here = b.leads(pm_topic_id, ph);
            // KIP-392: a client in another rack than this leader is sent to
            // a live broker of its own rack, which serves committed data
            // from its cache and object storage (no cross-zone traffic).
            if let Some(r) = rack.filter(|r| {
                leader_here && b.config.rack.as_deref() != Some(r.client) && !r.replicas.is_empty()
            }) {
                let replica = r.replicas[p.unsigned_abs() as usize % r.replicas.len()];
                parts.push(
                    pd.with_high_watermark(pm.committed_end)
                        .with_last_stable_offset(pm.last_stable_offset())
                        .with_log_start_offset(pm.log_start_offset)
                        .with_preferred_read_replica(BrokerId(replica)),
                );
                continue;
            }
            let replica_read = !leader_here
                && rack.is_some_and(|r| r.replicas.contains(&b.broker_id))
                && meta.brokers.get(&pm.leader).is_some_and(|l| !l.fenced);
            let ec = if replica_read {
                check_epoch(epoch, ph.leader_epoch)
            } else {
                check_leader(b, pm_topic_id, ph, epoch)
            };
            if ec != code::NONE {
                errors = true;
                parts.push(pd.with_error_code(ec));
                continue;
            }
            let (start, hw) = (pm.log_start_offset, pm.committed_end);
            // A replica serves committed data only, never its local copy.
            let leo = if replica_read {
                hw
            } else {
                ph.log.log_end_offset().max(hw)
            };
            let lso = pm.last_stable_offset();
            // read_committed consumers read up to the last stable offset.
            let upto = if read_committed { lso } else { hw };
            let mut pd = pd
                .with_high_watermark(hw)
                .with_last_stable_offset(lso)
                .with_log_start_offset(start);
            if read_committed {
                pd.aborted_transactions = Some(
                    pm.aborted_in(offset, upto)
                        .map(|a| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_first_offset(a.first_offset)
                        })
                        .collect(),
                );
            }
            if offset < start || offset > leo {
                errors = true;
                parts.push(pd.with_error_code(code::OFFSET_OUT_OF_RANGE));
                continue;
            }
            let room = max_bytes.saturating_sub(total);
            let limit = (pmax.max(0) as usize).min(room);
            let min_one = total == 0;
            if offset >= upto || (limit == 0 && !min_one) {
                parts.push(pd);
                continue;
            }
            // Local first; a read that loses the race with local trimming
            // (retention of the local copy, a compaction swap) between the
            // check and the read goes to object storage instead of
            // answering OFFSET_OUT_OF_RANGE (which resets consumers).
            if !replica_read && offset >= ph.log.log_start_offset() {
                let _read = tracing::debug_span!(
                    "read",
                    topic = w.topic.as_ref().map(|t| t.name.as_str()),
                    partition = p,
                    offset
                )
                .entered();
                match ph.log.read_upto(offset, limit, min_one, upto) {
                    Ok(r) => {
                        total += r.records.len();
                        b.metrics
                            .bytes_out
                            .fetch_add(r.records.len() as u64, Relaxed);
                        if let Some(t) = &w.topic {
                            t.stats.bytes_out.fetch_add(r.records.len() as u64, Relaxed);
                        }
                        parts.push(pd.with_records(Some(r.records)));
                        continue;
                    }
                    Err(e)
                        if e.kafka_code() == code::OFFSET_OUT_OF_RANGE
                            && offset < ph.log.log_start_offset() =>
                    {
                        b.metrics.fetch_trim_races.fetch_add(1, Relaxed);
                    }
                    Err(e) => {
                        errors = true;
                        parts.push(pd.with_error_code(e.kafka_code()));
                        continue;
                    }
                }
            }
            // Not on local disk: read from object storage.
            match pm
                .extents
                .iter()
                .find(|e| e.base_offset <= offset && offset < e.end_offset)
            {
                Some(e) => {
                    total += limit.max(1);
                    remotes.push(Remote {
                        topic_id: pm_topic_id,
                        partition: p,
                        topic: wi,
                        part: pi,
                        extent: e.clone(),
                        offset,
                        limit: limit.max(1),
                        hw: upto,
                        local_ok: !replica_read,
                    });
                    parts.push(pd);
                }
                None => {
                    errors = true;
                    parts.push(pd.with_error_code(code::OFFSET_OUT_OF_RANGE));
                }
            }
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(w.name.clone())
                .with_topic_id(w.topic.as_ref().map(|t| t.id).unwrap_or(w.topic_id))
                .with_partitions(parts),
        );
    }
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(responses),
        total,
        errors,
        remotes,
    )
}
