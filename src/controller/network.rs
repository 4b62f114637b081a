//! Controller-to-controller RPCs (openraft's network) and the small JSON
//! HTTP client every caller of a controller uses.
//!
//! Each RPC is one HTTP POST of a JSON body to `http://<peer>/raft/...`,
//! answered with the JSON of `Result<Response, RaftError>`. Requests carry
//! openraft's own deadline; bodies are bounded both ways.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{NodeId, TypeConfig};

/// Largest controller request or response body (a batch of log entries or
/// one snapshot chunk, or a whole state for a far-behind broker).
pub const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// Why a controller HTTP call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("{addr} answered HTTP {status}: {body}")]
    Status {
        addr: String,
        status: u16,
        body: String,
    },
    #[error("bad answer from {addr}: {reason}")]
    Bad { addr: String, reason: String },
}

/// A JSON-over-HTTP client with bounded bodies and no proxy (controllers
/// are addressed directly).
#[derive(Clone, Debug)]
pub struct JsonClient {
    http: reqwest::Client,
    scheme: &'static str,
}

impl Default for JsonClient {
    fn default() -> Self {
        JsonClient::new()
    }
}

impl JsonClient {
    /// Plain HTTP (the HTTP API of a broker).
    pub fn new() -> JsonClient {
        JsonClient {
            http: Self::builder().build().unwrap_or_default(),
            scheme: "http",
        }
    }

    /// A client of the controller API: HTTPS with the node certificate
    /// when node TLS is installed ([`super::tls::install`]), else plain.
    pub fn controller() -> JsonClient {
        let Some(tls) = super::tls::get() else {
            return JsonClient::new();
        };
        match Self::builder()
            .tls_backend_preconfigured(tls.client.clone())
            .build()
        {
            Ok(http) => JsonClient {
                http,
                scheme: "https",
            },
            Err(e) => {
                // Only a TLS backend mismatch fails here, which the build
                // rules out; refuse every call rather than go plain.
                tracing::error!(error = %e, "cannot build the controller TLS client");
                JsonClient {
                    http: reqwest::Client::builder()
                        .https_only(true)
                        .build()
                        .unwrap_or_default(),
                    scheme: "https",
                }
            }
        }
    }

    fn builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
    }

    /// POSTs `body` as JSON (GET when `None`) and decodes the JSON answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: Option<&Req>,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let url = format!("{}://{addr}{path}", self.scheme);
        let req = match body {
            Some(b) => {
                let bytes = serde_json::to_vec(b).map_err(|e| CallError::Bad {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?;
                self.http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(bytes)
            }
            None => self.http.get(&url),
        };
        let mut resp = req
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| CallError::Unreachable {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        let status = resp.status().as_u16();
        let mut buf = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if buf.len() + c.len() > MAX_BODY_BYTES {
                        return Err(CallError::Bad {
                            addr: addr.to_string(),
                            reason: format!("answer larger than {MAX_BODY_BYTES} bytes"),
                        });
                    }
                    buf.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(CallError::Unreachable {
                        addr: addr.to_string(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        if status != 200 {
            return Err(CallError::Status {
                addr: addr.to_string(),
                status,
                body: String::from_utf8_lossy(&buf[..buf.len().min(2000)]).into_owned(),
            });
        }
        serde_json::from_slice(&buf).map_err(|e| CallError::Bad {
            addr: addr.to_string(),
            reason: e.to_string(),
        })
    }
}

/// Creates one connection object per peer.
#[derive(Clone, Default)]
pub struct Network {
    pub client: JsonClient,
}

/// openraft's view of one peer.
pub struct Peer {
    target: NodeId,
    addr: String,
    client: JsonClient,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            client: self.client.clone(),
        }
    }
}

impl Peer {
    async fn rpc<Req, Resp, E>(
        &self,
        path: &str,
        req: Req,
        option: RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let res: Result<Result<Resp, E>, CallError> = self
            .client
            .call(&self.addr, path, Some(&req), option.hard_ttl())
            .await;
        match res {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(e @ CallError::Unreachable { .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc("/raft/append", rpc, option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc("/raft/snapshot", rpc, option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc("/raft/vote", rpc, option).await
    }
}
