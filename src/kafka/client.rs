//! A minimal Kafka client used by the `strata topic` commands: one
//! connection, one request at a time, versions negotiated from ApiVersions.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("i/o error talking to the broker: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the broker does not support {0:?}")]
    Unsupported(ApiKey),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// One connection to a broker.
pub struct Client {
    stream: TcpStream,
    next_id: i32,
    versions: Vec<(i16, i16, i16)>,
    timeout: Duration,
}

impl Client {
    /// Connect and negotiate API versions.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Client, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let mut c = Client {
            stream,
            next_id: 1,
            versions: Vec::new(),
            timeout,
        };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strata-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp = c
            .send_version(ApiKey::ApiVersions, 3, RequestKind::ApiVersions(req))
            .await?;
        let ResponseKind::ApiVersions(v) = resp else {
            return Err(ClientError::Protocol(
                "unexpected response to ApiVersions".into(),
            ));
        };
        c.versions = v
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        Ok(c)
    }

    /// The version [`Client::send`] will use for `key` (requests whose
    /// fields differ across versions are built for it).
    pub fn version(&self, key: ApiKey) -> Result<i16, ClientError> {
        let ours = key.valid_versions();
        let (_, lo, hi) = self
            .versions
            .iter()
            .find(|(k, _, _)| *k == key as i16)
            .copied()
            .ok_or(ClientError::Unsupported(key))?;
        let v = hi.min(ours.max);
        if v < lo.max(ours.min) {
            return Err(ClientError::Unsupported(key));
        }
        Ok(v)
    }

    /// Send a request at the highest version both sides speak.
    pub async fn send(
        &mut self,
        key: ApiKey,
        req: RequestKind,
    ) -> Result<ResponseKind, ClientError> {
        let v = self.version(key)?;
        self.send_version(key, v, req).await
    }

    async fn send_version(
        &mut self,
        key: ApiKey,
        version: i16,
        req: RequestKind,
    ) -> Result<ResponseKind, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("strata-cli")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        req.encode(&mut buf, version)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let len = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        let t = self.timeout;
        tokio::time::timeout(t, async {
            self.stream.write_all(&buf).await?;
            let size = self.stream.read_i32().await?;
            if !(4..=256 * 1024 * 1024).contains(&size) {
                return Err(ClientError::Protocol(format!("bad response size {size}")));
            }
            let mut body = vec![0u8; size as usize];
            self.stream.read_exact(&mut body).await?;
            let mut body = Bytes::from(body);
            let h = ResponseHeader::decode(&mut body, key.response_header_version(version))
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            if h.correlation_id != id {
                return Err(ClientError::Protocol(format!(
                    "correlation id {} != {id}",
                    h.correlation_id
                )));
            }
            let resp = ResponseKind::decode(key, &mut body, version)
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            let _ = body.remaining();
            Ok(resp)
        })
        .await
        .map_err(|_| ClientError::Timeout(t))?
    }
}
