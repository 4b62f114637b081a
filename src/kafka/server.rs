//! Kafka listener and connections.
//!
//! Bounded everywhere: a semaphore caps connections; a frame's length prefix
//! is checked against `request-max-bytes` before anything is allocated, and
//! the body buffer grows only as bytes really arrive, so a lying length costs
//! the attacker the bytes it sends; a stalled or idle connection is closed
//! after `connections-max-idle-ms`; at most `max-inflight-per-connection`
//! requests wait for their responses, which are written in request order;
//! and the bytes of all requests held at once, over every connection, are
//! bounded by `queued-max-request-bytes` (see `budget`), each request
//! counting at least [`REQUEST_OVERHEAD`].

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::budget::{Held, RequestBudget};
use super::{
    code, decode_request, dispatch, encode_response, response_has_error, supported_range, Ctx,
    Reply,
};
use crate::broker::Broker;

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("frame of {size} bytes exceeds request-max-bytes {max}")]
    TooLarge { size: i64, max: usize },
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(i32),
    #[error("unknown api key {0}")]
    UnknownApi(i16),
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("malformed {api:?} v{version} request: {message}")]
    Malformed {
        api: ApiKey,
        version: i16,
        message: String,
    },
    #[error("idle or stalled for {0:?}")]
    Idle(Duration),
    #[error("{api:?} before authentication")]
    Unauthenticated { api: ApiKey },
    #[error("SASL session expired without re-authentication")]
    SessionExpired,
    #[error("SASL authentication failed")]
    AuthenticationFailed,
    #[error("{api:?} refused: with --authorizer acl it needs ALL on the cluster")]
    Unauthorized { api: ApiKey },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Accept connections of one listener (`endpoint`: its protocol, TLS and
/// SASL settings) until `shutdown` flips to true. `limit` is shared by
/// every listener of the broker.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    endpoint: Arc<crate::auth::Endpoint>,
    limit: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            broker.metrics.connections_refused.fetch_add(1, Relaxed);
            tracing::warn!(%peer, "connection limit reached; refusing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let b = broker.clone();
        let sd = shutdown.clone();
        let ep = endpoint.clone();
        tokio::spawn(
            async move {
                b.metrics.connections.fetch_add(1, Relaxed);
                b.metrics.connections_total.fetch_add(1, Relaxed);
                let session = Arc::new(ep.session(peer));
                let result = match ep.tls_acceptor() {
                    None => {
                        let (rd, wr) = stream.into_split();
                        connection(b.clone(), rd, wr, session, sd).await
                    }
                    Some(acceptor) => {
                        let idle = Duration::from_millis(b.config.connections_max_idle_ms);
                        match tokio::time::timeout(idle, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => {
                                if let Some(p) = crate::auth::tls::certificate_principal(
                                    tls.get_ref().1.peer_certificates(),
                                ) {
                                    session.set_certificate_principal(p);
                                }
                                let (rd, wr) = tokio::io::split(tls);
                                connection(b.clone(), rd, wr, session, sd).await
                            }
                            Ok(Err(e)) => {
                                crate::auth::metrics()
                                    .tls_handshake_failures
                                    .fetch_add(1, Relaxed);
                                tracing::info!(error = %e, "TLS handshake failed");
                                Ok(())
                            }
                            Err(_) => Err(ConnError::Idle(idle)),
                        }
                    }
                };
                match result {
                    Ok(()) => tracing::debug!("connection closed"),
                    Err(ConnError::Io(e)) => tracing::debug!(error = %e, "connection closed"),
                    Err(e) => {
                        b.metrics.protocol_errors.fetch_add(1, Relaxed);
                        tracing::info!(error = %e, "closing connection");
                    }
                }
                b.metrics.connections.fetch_sub(1, Relaxed);
                drop(permit);
            }
            .instrument(tracing::debug_span!("conn", %peer)),
        );
    }
}

enum Slot {
    Ready(BytesMut, Held),
    Pending(JoinHandle<Option<BytesMut>>, Held),
}

/// Read one frame body, holding its bytes in the broker's request budget.
/// `Ok(None)` = clean EOF between frames.
async fn read_frame<R: AsyncRead + Unpin>(
    stream: &mut R,
    min: i32,
    max: usize,
    idle: Duration,
    budget: &RequestBudget,
) -> Result<Option<(Bytes, Held)>, ConnError> {
    let mut len_buf = [0u8; 4];
    match tokio::time::timeout(idle, stream.read_exact(&mut len_buf)).await {
        Err(_) => return Err(ConnError::Idle(idle)),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) => return Err(e.into()),
        Ok(Ok(_)) => {}
    }
    let size = i32::from_be_bytes(len_buf);
    if size < min {
        return Err(ConnError::TooShort(size));
    }
    if size as usize > max {
        return Err(ConnError::TooLarge {
            size: size as i64,
            max,
        });
    }
    let size = size as usize;
    // Grow with the bytes that arrive; never trust the prefix for capacity.
    let mut buf = BytesMut::with_capacity(size.min(FIRST_CHUNK));
    let mut deadline = tokio::time::Instant::now() + idle;
    let mut held = None;
    while buf.len() < size {
        if held.is_none() && buf.len() >= FIRST_CHUNK.min(size) {
            // The first chunk has arrived: hold the whole frame in the
            // broker's budget, waiting (socket unread) while it is spent.
            // A sender that announces a large frame and goes quiet holds
            // nothing (its first chunk is bounded per connection).
            held = Some(budget.take(size.max(REQUEST_OVERHEAD)).await);
            // The wait for the budget is not the sender's stall.
            deadline = tokio::time::Instant::now() + idle;
        }
        if buf.capacity() == buf.len() {
            // At most 4× what has arrived: few reallocations (each one a
            // copy), and still no trust in the length prefix.
            buf.reserve((size - buf.len()).min(buf.len().max(64 * 1024) * 3));
        }
        let want = (size - buf.len()).min(buf.capacity() - buf.len());
        let mut limited = (&mut *stream).take(want as u64);
        let n = match tokio::time::timeout_at(deadline, limited.read_buf(&mut buf)).await {
            Err(_) => return Err(ConnError::Idle(idle)),
            Ok(r) => r?,
        };
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    let held = match held {
        Some(h) => h,
        None => budget.take(size.max(REQUEST_OVERHEAD)).await,
    };
    Ok(Some((buf.freeze(), held)))
}

/// Bytes of a frame's body read before it takes its size from the request
/// budget (at most this much per connection is held outside the budget).
const FIRST_CHUNK: usize = 64 * 1024;

/// What a request counts in the budget at least: its task, its slot and
/// its response while it waits. Requests waiting only for durability
/// (acks=all) are thus bounded broker-wide by bytes, not by a small count
/// per connection that a pipelining producer would exhaust.
const REQUEST_OVERHEAD: usize = 1024;

async fn connection<R, W>(
    broker: Arc<Broker>,
    mut rd: R,
    mut wr: W,
    session: Arc<crate::auth::Session>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let full_max = broker.config.request_max_bytes;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let (tx, mut rx) = mpsc::channel::<Slot>(broker.config.max_inflight_per_connection);
    let mute = Arc::new(crate::quotas::Mute::default());
    let writer_metrics = broker.clone();
    let writer = tokio::spawn(async move {
        while let Some(slot) = rx.recv().await {
            // The request's bytes go back to the budget once its response
            // is written.
            let (buf, _held) = match slot {
                Slot::Ready(b, held) => (b, held),
                Slot::Pending(h, held) => match h.await {
                    Ok(Some(b)) => (b, held),
                    Ok(None) => continue,
                    Err(_) => break,
                },
            };
            if wr.write_all(&buf).await.is_err() {
                break;
            }
            // A TLS stream may keep the last records of a response in its
            // buffer when the socket was full; only a flush (or the next
            // write, which may be a long-poll away) sends them, and the
            // client would wait for them until its request timeout. A no-op
            // on plain TCP.
            if wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
        drop(writer_metrics);
    });
    let result = loop {
        // Before authentication only small frames are read (the cap holds
        // before anything is allocated).
        let authenticated = session.authenticated();
        let max = if authenticated {
            full_max
        } else {
            full_max.min(crate::auth::PRE_AUTH_MAX_FRAME)
        };
        // A request has at least its header; a raw SASL token (after
        // SaslHandshake v0) at least one byte.
        let min = if session.expects_raw_token() { 1 } else { 8 };
        // A throttled connection (client quotas) is muted: its socket is
        // not read until the throttle time has passed.
        let frame = tokio::select! {
            f = async {
                mute.wait(&*broker.clock).await;
                read_frame(&mut rd, min, max, idle, &broker.request_budget).await
            } => f,
            _ = shutdown.changed() => break Ok(()),
        };
        let (mut frame, held) = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(e) => {
                if !authenticated && matches!(e, ConnError::TooLarge { .. }) {
                    crate::auth::metrics()
                        .pre_auth_refused
                        .fetch_add(1, Relaxed);
                }
                break Err(e);
            }
        };
        // A response finished meanwhile (a long-poll) may have muted it.
        tokio::select! {
            _ = mute.wait(&*broker.clock) => {}
            _ = shutdown.changed() => break Ok(()),
        }
        let frame_len = frame.len();
        let started = Instant::now();
        if session.expects_raw_token() {
            // SaslHandshake v0: a raw SASL token, answered in kind once the
            // responses before it are written.
            match crate::auth::raw_token(&broker, &session, &frame).await {
                Some(reply) => {
                    if tx.send(Slot::Ready(reply, held)).await.is_err() {
                        break Ok(());
                    }
                    continue;
                }
                None => break Err(ConnError::AuthenticationFailed),
            }
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let Ok(api) = ApiKey::try_from(key) else {
            break Err(ConnError::UnknownApi(key));
        };
        let Some((lo, hi)) = supported_range(api) else {
            break Err(ConnError::UnknownApi(key));
        };
        if !crate::auth::Endpoint::allowed(&session, api, started) {
            if session.expired(started) {
                break Err(ConnError::SessionExpired);
            }
            crate::auth::metrics()
                .pre_auth_refused
                .fetch_add(1, Relaxed);
            break Err(ConnError::Unauthenticated { api });
        }
        if version < lo || version > hi {
            if api == ApiKey::ApiVersions {
                // KIP-511: answer with v0 and UNSUPPORTED_VERSION so the
                // client can retry with a version we speak.
                let resp = super::handlers::api_versions::response(code::UNSUPPORTED_VERSION);
                let buf = encode_api_versions_v0(correlation_id, resp);
                if tx.send(Slot::Ready(buf, held)).await.is_err() {
                    break Ok(());
                }
                continue;
            }
            break Err(ConnError::UnsupportedVersion { api, version });
        }
        let (header, req) = match decode_request(api, version, &mut frame) {
            Ok(x) => x,
            Err(e) => {
                break Err(ConnError::Malformed {
                    api,
                    version,
                    message: e.0,
                })
            }
        };
        let ctx = Ctx {
            broker: broker.clone(),
            version,
            correlation_id,
            client_id: header.client_id.as_ref().map(|s| s.to_string()),
            session: session.clone(),
        };
        if !crate::auth::api_allowed(&ctx, api) {
            break Err(ConnError::Unauthorized { api });
        }
        let span = tracing::info_span!(
            "request",
            api = ?api,
            version,
            correlation_id,
            client_id = header.client_id.as_deref().unwrap_or("")
        );
        let reply = dispatch(&ctx, req).instrument(span.clone()).await;
        let usage = crate::quotas::Usage {
            api,
            request_bytes: frame_len,
            handler_secs: started.elapsed().as_secs_f64(),
        };
        let b = broker.clone();
        let slot = match reply {
            Reply::Now(mut resp) => {
                crate::quotas::after_request(&b, &ctx, &mute, usage, Some(&mut resp));
                b.metrics.observe_request(
                    key,
                    started.elapsed().as_secs_f64(),
                    response_has_error(&resp),
                );
                match encode_response(api, version, correlation_id, &resp) {
                    Ok(buf) => Slot::Ready(buf, held),
                    Err(e) => {
                        tracing::error!(error = %e, ?api, version, "cannot encode response");
                        break Err(ConnError::Malformed {
                            api,
                            version,
                            message: e.0,
                        });
                    }
                }
            }
            Reply::NoResponse => {
                crate::quotas::after_request(&b, &ctx, &mute, usage, None);
                b.metrics
                    .observe_request(key, started.elapsed().as_secs_f64(), false);
                continue;
            }
            Reply::Later(fut) => {
                let mute = mute.clone();
                Slot::Pending(tokio::spawn(
                async move {
                    let mut resp = fut.await;
                    crate::quotas::after_request(&b, &ctx, &mute, usage, Some(&mut resp));
                    b.metrics.observe_request(
                        key,
                        started.elapsed().as_secs_f64(),
                        response_has_error(&resp),
                    );
                    match encode_response(api, version, correlation_id, &resp) {
                        Ok(buf) => Some(buf),
                        Err(e) => {
                            tracing::error!(error = %e, ?api, version, "cannot encode response");
                            None
                        }
                    }
                }
                .instrument(span),
            ), held)
            }
        };
        if tx.send(slot).await.is_err() {
            break Ok(());
        }
    };
    drop(tx);
    let _ = writer.await;
    result
}

fn encode_api_versions_v0(correlation_id: i32, resp: ApiVersionsResponse) -> BytesMut {
    encode_response(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ResponseKind::ApiVersions(resp),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Config;

    /// A response must reach the client even through a writer that keeps
    /// what it is given until flushed, as a TLS stream keeps the records it
    /// could not send while the socket was full.
    #[tokio::test]
    async fn responses_are_flushed_through_a_buffering_writer() {
        let dir = tempfile::tempdir().unwrap();
        let node = crate::controller::testing::SingleNode::start(&dir.path().join("meta")).await;
        let broker = Broker::open(
            Config {
                data_dir: dir.path().to_path_buf(),
                ..Config::default()
            },
            ManualClock::new(1_000),
            Arc::new(crate::objstore::Store::memory()),
            node.metadata.clone(),
        )
        .await
        .unwrap();
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let (rd, wr) = tokio::io::split(server);
        let wr = tokio::io::BufWriter::with_capacity(1 << 16, wr);
        let (_stop, stop_rx) = watch::channel(false);
        let session = crate::auth::Session::internal("User:ANONYMOUS");
        tokio::spawn(connection(broker, rd, wr, session, stop_rx));
        // ApiVersions v0: api key 18, version 0, correlation id 7, no client id.
        let mut request = Vec::new();
        request.extend_from_slice(&10i32.to_be_bytes());
        request.extend_from_slice(&18i16.to_be_bytes());
        request.extend_from_slice(&0i16.to_be_bytes());
        request.extend_from_slice(&7i32.to_be_bytes());
        request.extend_from_slice(&(-1i16).to_be_bytes());
        client.write_all(&request).await.unwrap();
        let mut head = [0u8; 8];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut head))
            .await
            .expect("the response stayed in the writer's buffer")
            .unwrap();
        assert_eq!(i32::from_be_bytes(head[4..8].try_into().unwrap()), 7);
        let len = i32::from_be_bytes(head[..4].try_into().unwrap());
        assert!(len > 4, "response of {len} bytes");
    }
}
