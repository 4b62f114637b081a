//! The Kafka wire protocol: framing and connections (`server`), the table of
//! APIs and versions this broker serves, request dispatch, and one handler
//! file per API under `handlers/` (decode → handle → encode).

pub mod budget;
pub mod client;
pub mod fetch_session;
pub mod handlers;
pub mod server;

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;

use crate::broker::Broker;

/// APIs served, with the version range advertised in ApiVersions. A version
/// outside the range is refused (UNSUPPORTED_VERSION for ApiVersions, a
/// closed connection otherwise, as Kafka does); an API not listed is not
/// advertised and its requests close the connection.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// The advertised range of an API, if served.
pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, lo, hi)| (*lo, *hi))
}

/// Kafka error codes used across handlers.
pub mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
    pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
    pub const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

/// A boxed future that can move to another task.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

/// What a handler hands back: a response now, one that completes later
/// (acks=all durability, fetch long-poll), or nothing (acks=0).
// Responses are moved once per request; boxing them would add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    Now(ResponseKind),
    Later(BoxFuture<ResponseKind>),
    NoResponse,
}

/// Per-request context.
#[derive(Clone)]
pub struct Ctx {
    pub broker: Arc<Broker>,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The connection's listener and authenticated principal.
    pub session: Arc<crate::auth::Session>,
}

/// Run the handler of a decoded request. Runs on the connection's reader so
/// that appends of one connection happen in request order (idempotent
/// producers depend on it); waiting parts are returned as `Reply::Later`.
pub async fn dispatch(ctx: &Ctx, req: RequestKind) -> Reply {
    use handlers::*;
    if let Some(refused) = crate::auth::authz::refuse(ctx, &req) {
        return Reply::Now(refused);
    }
    match req {
        RequestKind::ApiVersions(r) => {
            Reply::Now(ResponseKind::ApiVersions(api_versions::handle(ctx, r)))
        }
        RequestKind::Metadata(r) => {
            Reply::Now(ResponseKind::Metadata(metadata::handle(ctx, r).await))
        }
        RequestKind::CreateTopics(r) => Reply::Now(ResponseKind::CreateTopics(
            create_topics::handle(ctx, r).await,
        )),
        RequestKind::DeleteTopics(r) => Reply::Now(ResponseKind::DeleteTopics(
            delete_topics::handle(ctx, r).await,
        )),
        RequestKind::CreatePartitions(r) => Reply::Now(ResponseKind::CreatePartitions(
            create_partitions::handle(ctx, r).await,
        )),
        RequestKind::Produce(r) => produce::handle(ctx, r).await,
        RequestKind::Fetch(r) => fetch::handle(ctx, r),
        RequestKind::ListOffsets(r) => list_offsets::handle(ctx, r),
        RequestKind::DescribeConfigs(r) => Reply::Now(ResponseKind::DescribeConfigs(
            describe_configs::handle(ctx, r),
        )),
        RequestKind::AlterConfigs(r) => Reply::Now(ResponseKind::AlterConfigs(
            alter_configs::handle(ctx, r).await,
        )),
        RequestKind::IncrementalAlterConfigs(r) => Reply::Now(
            ResponseKind::IncrementalAlterConfigs(incremental_alter_configs::handle(ctx, r).await),
        ),
        RequestKind::DescribeCluster(r) => Reply::Now(ResponseKind::DescribeCluster(
            describe_cluster::handle(ctx, r),
        )),
        RequestKind::InitProducerId(r) => Reply::Now(ResponseKind::InitProducerId(
            init_producer_id::handle(ctx, r).await,
        )),
        RequestKind::DeleteRecords(r) => Reply::Now(ResponseKind::DeleteRecords(
            delete_records::handle(ctx, r).await,
        )),
        RequestKind::OffsetForLeaderEpoch(r) => Reply::Now(ResponseKind::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(ctx, r),
        )),
        RequestKind::FindCoordinator(r) => Reply::Now(ResponseKind::FindCoordinator(
            find_coordinator::handle(ctx, r),
        )),
        RequestKind::JoinGroup(r) => join_group::handle(ctx, r),
        RequestKind::SyncGroup(r) => sync_group::handle(ctx, r),
        RequestKind::Heartbeat(r) => Reply::Now(ResponseKind::Heartbeat(heartbeat::handle(ctx, r))),
        RequestKind::LeaveGroup(r) => {
            Reply::Now(ResponseKind::LeaveGroup(leave_group::handle(ctx, r)))
        }
        RequestKind::OffsetCommit(r) => offset_commit::handle(ctx, r),
        RequestKind::OffsetFetch(r) => {
            Reply::Now(ResponseKind::OffsetFetch(offset_fetch::handle(ctx, r)))
        }
        RequestKind::ListGroups(r) => {
            Reply::Now(ResponseKind::ListGroups(list_groups::handle(ctx, r)))
        }
        RequestKind::DescribeGroups(r) => Reply::Now(ResponseKind::DescribeGroups(
            describe_groups::handle(ctx, r),
        )),
        RequestKind::DeleteGroups(r) => delete_groups::handle(ctx, r),
        RequestKind::OffsetDelete(r) => offset_delete::handle(ctx, r),
        RequestKind::AddPartitionsToTxn(r) => Reply::Now(ResponseKind::AddPartitionsToTxn(
            txn::add_partitions(ctx, r).await,
        )),
        RequestKind::AddOffsetsToTxn(r) => Reply::Now(ResponseKind::AddOffsetsToTxn(
            txn::add_offsets(ctx, r).await,
        )),
        RequestKind::TxnOffsetCommit(r) => Reply::Now(ResponseKind::TxnOffsetCommit(
            txn::txn_offset_commit(ctx, r).await,
        )),
        // Waiting parts (markers, durability) run off the connection's
        // reader, so its other requests are not held up.
        RequestKind::EndTxn(r) => {
            let ctx = ctx.clone();
            Reply::Later(Box::pin(async move {
                ResponseKind::EndTxn(txn::end_txn(&ctx, r).await)
            }))
        }
        RequestKind::WriteTxnMarkers(r) => {
            let ctx = ctx.clone();
            Reply::Later(Box::pin(async move {
                ResponseKind::WriteTxnMarkers(txn::write_markers(&ctx, r).await)
            }))
        }
        RequestKind::DescribeTransactions(r) => {
            Reply::Now(ResponseKind::DescribeTransactions(txn::describe(ctx, r)))
        }
        RequestKind::ListTransactions(r) => {
            Reply::Now(ResponseKind::ListTransactions(txn::list(ctx, r)))
        }
        RequestKind::DescribeTopicPartitions(r) => Reply::Now(
            ResponseKind::DescribeTopicPartitions(describe_topic_partitions::handle(ctx, r)),
        ),
        RequestKind::DescribeProducers(r) => Reply::Now(ResponseKind::DescribeProducers(
            describe_producers::handle(ctx, r),
        )),
        RequestKind::DescribeLogDirs(r) => Reply::Now(ResponseKind::DescribeLogDirs(
            describe_log_dirs::handle(ctx, r),
        )),
        RequestKind::ElectLeaders(r) => {
            Reply::Now(ResponseKind::ElectLeaders(elect_leaders::handle(ctx, r)))
        }
        RequestKind::ListPartitionReassignments(r) => Reply::Now(
            ResponseKind::ListPartitionReassignments(partition_reassignments::list(ctx, r)),
        ),
        RequestKind::AlterPartitionReassignments(r) => Reply::Now(
            ResponseKind::AlterPartitionReassignments(partition_reassignments::alter(ctx, r)),
        ),
        RequestKind::DescribeClientQuotas(r) => Reply::Now(ResponseKind::DescribeClientQuotas(
            describe_client_quotas::handle(ctx, r),
        )),
        RequestKind::AlterClientQuotas(r) => Reply::Now(ResponseKind::AlterClientQuotas(
            alter_client_quotas::handle(ctx, r).await,
        )),
        RequestKind::ConsumerGroupHeartbeat(r) => consumer_group_heartbeat::handle(ctx, r),
        RequestKind::ConsumerGroupDescribe(r) => Reply::Now(ResponseKind::ConsumerGroupDescribe(
            consumer_group_describe::handle(ctx, r),
        )),
        RequestKind::SaslHandshake(r) => {
            Reply::Now(ResponseKind::SaslHandshake(sasl_handshake::handle(ctx, r)))
        }
        RequestKind::SaslAuthenticate(r) => Reply::Now(ResponseKind::SaslAuthenticate(
            sasl_authenticate::handle(ctx, r).await,
        )),
        RequestKind::AlterUserScramCredentials(r) => {
            Reply::Now(ResponseKind::AlterUserScramCredentials(
                alter_user_scram_credentials::handle(ctx, r).await,
            ))
        }
        RequestKind::DescribeUserScramCredentials(r) => {
            Reply::Now(ResponseKind::DescribeUserScramCredentials(
                describe_user_scram_credentials::handle(ctx, r),
            ))
        }
        RequestKind::CreateAcls(r) => {
            Reply::Now(ResponseKind::CreateAcls(create_acls::handle(ctx, r).await))
        }
        RequestKind::DescribeAcls(r) => {
            Reply::Now(ResponseKind::DescribeAcls(describe_acls::handle(ctx, r)))
        }
        RequestKind::DeleteAcls(r) => {
            Reply::Now(ResponseKind::DeleteAcls(delete_acls::handle(ctx, r).await))
        }
        // Not advertised; the connection layer refuses these before decoding.
        _ => Reply::NoResponse,
    }
}

/// Encode a response frame: size prefix, response header, body.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    resp: &ResponseKind,
) -> anyhow_free::Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(anyhow_free::Error::from_display)?;
    resp.encode(&mut buf, version)
        .map_err(anyhow_free::Error::from_display)?;
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// Decode the header and body of a request frame (without the size prefix).
pub fn decode_request(
    api_key: ApiKey,
    version: i16,
    frame: &mut bytes::Bytes,
) -> anyhow_free::Result<(RequestHeader, RequestKind)> {
    use kafka_protocol::protocol::Decodable;
    let header = RequestHeader::decode(frame, api_key.request_header_version(version))
        .map_err(anyhow_free::Error::from_display)?;
    let req =
        RequestKind::decode(api_key, frame, version).map_err(anyhow_free::Error::from_display)?;
    Ok((header, req))
}

/// A small typed error for codec failures (the protocol crate reports
/// `anyhow` errors; they stop here, at the module edge).
pub mod anyhow_free {
    /// Encode/decode failure with the crate's message.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct Error(pub String);
    impl Error {
        pub fn from_display(e: impl std::fmt::Display) -> Error {
            Error(e.to_string())
        }
    }
    pub type Result<T> = std::result::Result<T, Error>;
}

/// Whether a response carries an error code anywhere (top level, topic or
/// partition), for `strata_request_errors_total`. APIs not listed count as
/// answered without error.
pub fn response_has_error(r: &ResponseKind) -> bool {
    fn any<T>(v: &[T], f: impl Fn(&T) -> bool) -> bool {
        v.iter().any(f)
    }
    match r {
        ResponseKind::Produce(x) => any(&x.responses, |t| {
            any(&t.partition_responses, |p| p.error_code != 0)
        }),
        ResponseKind::Fetch(x) => {
            x.error_code != 0 || any(&x.responses, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseKind::ListOffsets(x) => {
            any(&x.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseKind::Metadata(x) => any(&x.topics, |t| t.error_code != 0),
        ResponseKind::OffsetCommit(x) => {
            any(&x.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseKind::OffsetFetch(x) => {
            x.error_code != 0
                || any(&x.topics, |t| any(&t.partitions, |p| p.error_code != 0))
                || any(&x.groups, |g| {
                    g.error_code != 0
                        || any(&g.topics, |t| any(&t.partitions, |p| p.error_code != 0))
                })
        }
        ResponseKind::FindCoordinator(x) => {
            x.error_code != 0 || any(&x.coordinators, |c| c.error_code != 0)
        }
        ResponseKind::JoinGroup(x) => x.error_code != 0,
        ResponseKind::SyncGroup(x) => x.error_code != 0,
        ResponseKind::Heartbeat(x) => x.error_code != 0,
        ResponseKind::ConsumerGroupHeartbeat(x) => x.error_code != 0,
        ResponseKind::ConsumerGroupDescribe(x) => any(&x.groups, |g| g.error_code != 0),
        ResponseKind::LeaveGroup(x) => x.error_code != 0,
        ResponseKind::ListGroups(x) => x.error_code != 0,
        ResponseKind::DescribeGroups(x) => any(&x.groups, |g| g.error_code != 0),
        ResponseKind::CreateTopics(x) => any(&x.topics, |t| t.error_code != 0),
        ResponseKind::DeleteTopics(x) => any(&x.responses, |t| t.error_code != 0),
        ResponseKind::DeleteRecords(x) => {
            any(&x.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseKind::InitProducerId(x) => x.error_code != 0,
        ResponseKind::EndTxn(x) => x.error_code != 0,
        ResponseKind::AddOffsetsToTxn(x) => x.error_code != 0,
        ResponseKind::AddPartitionsToTxn(x) => {
            x.error_code != 0
                || any(&x.results_by_topic_v3_and_below, |t| {
                    any(&t.results_by_partition, |p| p.partition_error_code != 0)
                })
                || any(&x.results_by_transaction, |r| {
                    any(&r.topic_results, |t| {
                        any(&t.results_by_partition, |p| p.partition_error_code != 0)
                    })
                })
        }
        ResponseKind::TxnOffsetCommit(x) => {
            any(&x.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseKind::ApiVersions(x) => x.error_code != 0,
        ResponseKind::DescribeTopicPartitions(x) => any(&x.topics, |t| t.error_code != 0),
        ResponseKind::DescribeProducers(x) => {
            any(&x.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseKind::DescribeLogDirs(x) => {
            x.error_code != 0 || any(&x.results, |r| r.error_code != 0)
        }
        ResponseKind::ElectLeaders(x) => x.error_code != 0,
        ResponseKind::DescribeClientQuotas(x) => x.error_code != 0,
        ResponseKind::AlterClientQuotas(x) => any(&x.entries, |e| e.error_code != 0),
        ResponseKind::SaslHandshake(x) => x.error_code != 0,
        ResponseKind::CreateAcls(x) => any(&x.results, |r| r.error_code != 0),
        ResponseKind::DescribeAcls(x) => x.error_code != 0,
        ResponseKind::DeleteAcls(x) => any(&x.filter_results, |r| r.error_code != 0),
        ResponseKind::SaslAuthenticate(x) => x.error_code != 0,
        ResponseKind::AlterUserScramCredentials(x) => any(&x.results, |r| r.error_code != 0),
        ResponseKind::DescribeUserScramCredentials(x) => {
            x.error_code != 0 || any(&x.results, |r| r.error_code != 0)
        }
        ResponseKind::AlterPartitionReassignments(x) => {
            x.error_code != 0 || any(&x.responses, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        _ => false,
    }
}
