//! Object storage: the durable home of every acknowledged record.
//!
//! Stores are chosen by URL through the `object_store` crate:
//! `file:///path` (local directory, fsync on), `s3://bucket/prefix`
//! (credentials from aws-config's default chain: env, profile, web identity /
//! IRSA, instance metadata; custom endpoint, region and path-style addressing
//! for MinIO, Ceph, R2, moto) and `memory://` for tests.
//!
//! [`Store`] is the narrow facade the broker uses: create-only puts, ranged
//! gets, deletes and listings, each counted and timed for `/metrics`. Every
//! key is built in [`paths`].

pub mod paths;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

/// Errors of the object store facade.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid object store url {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("object {key} already exists")]
    AlreadyExists { key: String },
    #[error("object {key} not found")]
    NotFound { key: String },
    #[error("object store {op} {key} failed: {message}")]
    Backend {
        op: &'static str,
        key: String,
        message: String,
    },
    #[error("the object store prefix belongs to cluster {owner}, not to this cluster ({ours}): point --object-store at a prefix of its own; nothing was written or deleted")]
    ForeignCluster { owner: String, ours: String },
    #[error("object store {op} {key} timed out after {after:?}")]
    Timeout {
        op: &'static str,
        key: String,
        after: Duration,
    },
}

impl StoreError {
    /// Worth retrying (never `AlreadyExists`, which is a precondition).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            StoreError::Backend { .. } | StoreError::Timeout { .. }
        )
    }
}

/// Object store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `file:///path`, `s3://bucket/prefix` or `memory://`.
    pub url: String,
    /// S3 endpoint for S3-compatible servers (e.g. `http://127.0.0.1:5000`).
    pub endpoint: Option<String>,
    /// S3 region (default: from the AWS config chain, else us-east-1).
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most
    /// S3-compatible servers.
    pub path_style: bool,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

const OPS: [&str; 5] = ["put", "get", "delete", "list", "head"];
/// Request counters of one operation.
#[derive(Default)]
struct OpStats {
    ok: AtomicU64,
    err: AtomicU64,
    latency: crate::metrics::Histogram,
}

/// Object store metrics (`strata_object_store_*`).
#[derive(Default)]
pub struct StoreMetrics {
    ops: [OpStats; OPS.len()],
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

impl StoreMetrics {
    fn observe(&self, op: usize, ok: bool, secs: f64) {
        let s = &self.ops[op];
        if ok {
            s.ok.fetch_add(1, Relaxed);
        } else {
            s.err.fetch_add(1, Relaxed);
        }
        s.latency.observe(secs);
    }

    /// Render in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP strata_object_store_requests_total Object store requests by operation and status.\n# TYPE strata_object_store_requests_total counter");
        for (i, op) in OPS.iter().enumerate() {
            let _ = writeln!(
                out,
                "strata_object_store_requests_total{{operation=\"{op}\",status=\"ok\"}} {}",
                self.ops[i].ok.load(Relaxed)
            );
            let _ = writeln!(
                out,
                "strata_object_store_requests_total{{operation=\"{op}\",status=\"error\"}} {}",
                self.ops[i].err.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP strata_object_store_request_duration_seconds Object store request latency.\n# TYPE strata_object_store_request_duration_seconds histogram");
        for (i, op) in OPS.iter().enumerate() {
            self.ops[i].latency.render(
                out,
                "strata_object_store_request_duration_seconds",
                &format!("operation=\"{op}\""),
            );
        }
        let _ = writeln!(
            out,
            "# HELP strata_object_store_bytes_total Bytes moved to and from the object store.\n# TYPE strata_object_store_bytes_total counter\nstrata_object_store_bytes_total{{direction=\"up\"}} {}\nstrata_object_store_bytes_total{{direction=\"down\"}} {}",
            self.bytes_up.load(Relaxed),
            self.bytes_down.load(Relaxed)
        );
    }
}

/// An object listed by [`Store::list`].
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub last_modified_ms: i64,
}

/// The broker's view of its bucket.
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    timeout: Duration,
    pub metrics: StoreMetrics,
    description: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.description)
    }
}

/// Bridges aws-config's credential chain into object_store.
#[derive(Debug)]
struct AwsChain(aws_credential_types::provider::SharedCredentialsProvider);

#[async_trait::async_trait]
impl object_store::CredentialProvider for AwsChain {
    type Credential = object_store::aws::AwsCredential;
    async fn get_credential(&self) -> object_store::Result<Arc<Self::Credential>> {
        use aws_credential_types::provider::ProvideCredentials;
        let c = self
            .0
            .provide_credentials()
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })?;
        Ok(Arc::new(object_store::aws::AwsCredential {
            key_id: c.access_key_id().to_string(),
            secret_key: c.secret_access_key().to_string(),
            token: c.session_token().map(str::to_string),
        }))
    }
}

impl Store {
    /// Open the store a URL names. `data_dir` anchors relative `file://` paths.
    pub async fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let bad = |reason: &str| StoreError::Url {
            url: cfg.url.clone(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = cfg
            .url
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://"))?;
        let (inner, prefix): (Arc<dyn ObjectStore>, String) = match scheme {
            "memory" => (
                Arc::new(object_store::memory::InMemory::new()),
                rest.trim_matches('/').to_string(),
            ),
            "file" => {
                if rest.is_empty() || !rest.starts_with('/') {
                    return Err(bad(
                        "file:// needs an absolute path, e.g. file:///var/lib/strata/objects",
                    ));
                }
                std::fs::create_dir_all(rest)
                    .map_err(|e| bad(&format!("cannot create {rest}: {e}")))?;
                // fsync on: an acknowledged WAL object must survive power loss.
                let fs = object_store::local::LocalFileSystem::new_with_prefix(rest)
                    .map_err(|e| bad(&e.to_string()))?
                    .with_fsync(true)
                    .with_automatic_cleanup(true);
                (Arc::new(fs), String::new())
            }
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(bad("missing bucket name"));
                }
                let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .load()
                    .await;
                let region = cfg
                    .region
                    .clone()
                    .or_else(|| sdk.region().map(|r| r.to_string()))
                    .unwrap_or_else(|| "us-east-1".to_string());
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_virtual_hosted_style_request(!cfg.path_style)
                    .with_client_options(
                        object_store::ClientOptions::new()
                            .with_timeout(cfg.request_timeout)
                            .with_allow_http(true),
                    );
                if let Some(creds) = sdk.credentials_provider() {
                    b = b.with_credentials(Arc::new(AwsChain(creds)));
                }
                if let Some(ep) = &cfg.endpoint {
                    b = b
                        .with_endpoint(ep.clone())
                        .with_allow_http(ep.starts_with("http://"));
                }
                let s3 = b.build().map_err(|e| bad(&e.to_string()))?;
                (Arc::new(s3), prefix.trim_matches('/').to_string())
            }
            other => {
                return Err(bad(&format!(
                    "unsupported scheme {other}; use file://, s3:// or memory://"
                )))
            }
        };
        Ok(Store {
            inner,
            prefix: Path::from(prefix),
            timeout: cfg.request_timeout,
            metrics: StoreMetrics::default(),
            description: cfg.url.clone(),
        })
    }

    /// An in-memory store (tests): nothing survives the process.
    pub fn memory() -> Store {
        Store {
            inner: Arc::new(object_store::memory::InMemory::new()),
            prefix: Path::from(""),
            timeout: Duration::from_secs(30),
            metrics: StoreMetrics::default(),
            description: "memory://".into(),
        }
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.as_ref().is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    async fn timed<T>(
        &self,
        op: usize,
        key: &str,
        f: impl std::future::Future<Output = object_store::Result<T>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let r = tokio::time::timeout(self.timeout, f).await;
        let secs = started.elapsed().as_secs_f64();
        let out = match r {
            Err(_) => Err(StoreError::Timeout {
                op: OPS[op],
                key: key.to_string(),
                after: self.timeout,
            }),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(object_store::Error::AlreadyExists { .. }))
            | Ok(Err(object_store::Error::Precondition { .. })) => Err(StoreError::AlreadyExists {
                key: key.to_string(),
            }),
            Ok(Err(object_store::Error::NotFound { .. })) => Err(StoreError::NotFound {
                key: key.to_string(),
            }),
            Ok(Err(e)) => Err(StoreError::Backend {
                op: OPS[op],
                key: key.to_string(),
                message: e.to_string(),
            }),
        };
        self.metrics.observe(op, out.is_ok(), secs);
        out
    }

    /// Create-only put (If-None-Match: *): a second writer of the same key
    /// gets `AlreadyExists` instead of overwriting.
    /// Claims the prefix for `cluster_id` with a create-only marker, or
    /// checks that the marker already there names it. A cluster pointed at
    /// another cluster's prefix must never write (or GC) there.
    pub async fn claim(&self, cluster_id: &str) -> Result<(), StoreError> {
        let body = Bytes::from(
            serde_json::json!({ "cluster_id": cluster_id })
                .to_string()
                .into_bytes(),
        );
        match self.put_create(paths::OWNER, body).await {
            Ok(()) => return Ok(()),
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        let have = self.get(paths::OWNER).await?;
        let owner = serde_json::from_slice::<serde_json::Value>(&have)
            .ok()
            .and_then(|v| v.get("cluster_id")?.as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&have[..have.len().min(200)]).into_owned());
        if owner == cluster_id {
            Ok(())
        } else {
            Err(StoreError::ForeignCluster {
                owner,
                ours: cluster_id.to_string(),
            })
        }
    }

    pub async fn put_create(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let len = data.len() as u64;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.timed(
            0,
            key,
            self.inner
                .put_opts(&self.path(key), PutPayload::from(data), opts),
        )
        .await?;
        self.metrics.bytes_up.fetch_add(len, Relaxed);
        Ok(())
    }

    /// Create-only put of an object given as a list of buffers (no copy).
    pub async fn put_create_parts(&self, key: &str, parts: Vec<Bytes>) -> Result<(), StoreError> {
        let len: u64 = parts.iter().map(|b| b.len() as u64).sum();
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let payload: PutPayload = parts.into_iter().collect();
        self.timed(0, key, self.inner.put_opts(&self.path(key), payload, opts))
            .await?;
        self.metrics.bytes_up.fetch_add(len, Relaxed);
        Ok(())
    }

    /// Upload `size` bytes of a local file as one object with a multipart
    /// upload, holding at most two parts in memory (a sealed segment can be
    /// as large as `segment.bytes`). Keys written this way are unique per
    /// leader epoch, so the missing create-only check cannot overwrite
    /// another writer's data.
    pub async fn put_file(
        &self,
        key: &str,
        file: Arc<std::fs::File>,
        size: u64,
    ) -> Result<(), StoreError> {
        const PART: u64 = 8 << 20;
        if size <= PART {
            let data = read_at(file, 0, size as usize)
                .await
                .map_err(|e| self.io_err("put", key, e))?;
            return self.put_create(key, data).await;
        }
        let started = Instant::now();
        let path = self.path(key);
        let result = async {
            let upload = self.inner.put_multipart(&path).await?;
            let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART as usize);
            let mut pos = 0u64;
            while pos < size {
                let n = PART.min(size - pos);
                let chunk = read_at(file.clone(), pos, n as usize).await.map_err(|e| {
                    object_store::Error::Generic {
                        store: "local file",
                        source: Box::new(e),
                    }
                })?;
                w.wait_for_capacity(2).await?;
                w.put(chunk);
                pos += n;
            }
            w.finish().await
        };
        let r = tokio::time::timeout(self.timeout * 10, result).await;
        let ok = matches!(r, Ok(Ok(_)));
        self.metrics.observe(0, ok, started.elapsed().as_secs_f64());
        match r {
            Ok(Ok(_)) => {
                self.metrics.bytes_up.fetch_add(size, Relaxed);
                Ok(())
            }
            Ok(Err(e)) => Err(StoreError::Backend {
                op: "put",
                key: key.to_string(),
                message: e.to_string(),
            }),
            Err(_) => Err(StoreError::Timeout {
                op: "put",
                key: key.to_string(),
                after: self.timeout * 10,
            }),
        }
    }

    fn io_err(&self, op: &'static str, key: &str, e: std::io::Error) -> StoreError {
        StoreError::Backend {
            op,
            key: key.to_string(),
            message: e.to_string(),
        }
    }

    /// Read a byte range.
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, StoreError> {
        let b = self
            .timed(1, key, self.inner.get_range(&self.path(key), range))
            .await?;
        self.metrics.bytes_down.fetch_add(b.len() as u64, Relaxed);
        Ok(b)
    }

    /// Read a whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let p = self.path(key);
        let b = self
            .timed(1, key, async {
                let r = self.inner.get(&p).await?;
                r.bytes().await
            })
            .await?;
        self.metrics.bytes_down.fetch_add(b.len() as u64, Relaxed);
        Ok(b)
    }

    /// Size of an object.
    pub async fn head(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self
            .timed(4, key, self.inner.head(&self.path(key)))
            .await?
            .size)
    }

    /// Delete (missing objects are not an error).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.timed(2, key, self.inner.delete(&self.path(key))).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// List every object under `sub` (keys relative to the store prefix).
    pub async fn list(&self, sub: &str) -> Result<Vec<Listed>, StoreError> {
        use futures_util::TryStreamExt;
        let p = self.path(sub);
        let strip = if self.prefix.as_ref().is_empty() {
            0
        } else {
            self.prefix.as_ref().len() + 1
        };
        let items: Vec<object_store::ObjectMeta> = self
            .timed(3, sub, self.inner.list(Some(&p)).try_collect())
            .await?;
        Ok(items
            .into_iter()
            .map(|m| Listed {
                key: m
                    .location
                    .as_ref()
                    .get(strip..)
                    .unwrap_or_default()
                    .to_string(),
                size: m.size,
                last_modified_ms: m.last_modified.timestamp_millis(),
            })
            .collect())
    }
}

/// `pread` of `len` bytes at `pos` off the async runtime.
async fn read_at(file: Arc<std::fs::File>, pos: u64, len: usize) -> std::io::Result<Bytes> {
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, pos).map(|_| Bytes::from(buf))
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> StoreConfig {
        StoreConfig {
            url: url.into(),
            endpoint: None,
            region: None,
            path_style: true,
            request_timeout: Duration::from_secs(5),
        }
    }

    /// The conformance checks every backend must pass.
    async fn conformance(s: &Store) {
        s.put_create(
            "wal/1/1/00000000000000000001.wal",
            Bytes::from_static(b"hello world"),
        )
        .await
        .unwrap();
        let again = s
            .put_create(
                "wal/1/1/00000000000000000001.wal",
                Bytes::from_static(b"other"),
            )
            .await;
        assert!(
            matches!(again, Err(StoreError::AlreadyExists { .. })),
            "{again:?}"
        );
        assert_eq!(
            &s.get_range("wal/1/1/00000000000000000001.wal", 6..11)
                .await
                .unwrap()[..],
            b"world"
        );
        assert_eq!(
            &s.get("wal/1/1/00000000000000000001.wal").await.unwrap()[..],
            b"hello world"
        );
        assert_eq!(
            s.head("wal/1/1/00000000000000000001.wal").await.unwrap(),
            11
        );
        let listed = s.list("wal").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, "wal/1/1/00000000000000000001.wal");
        s.delete("wal/1/1/00000000000000000001.wal").await.unwrap();
        s.delete("wal/1/1/00000000000000000001.wal").await.unwrap();
        assert!(matches!(
            s.get("wal/1/1/00000000000000000001.wal").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(s.list("wal").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn put_file_streams_large_files_in_parts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let data: Vec<u8> = (0..(20u32 << 20)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let f = Arc::new(std::fs::File::open(&path).unwrap());
        for url in [
            "memory://",
            &format!("file://{}", dir.path().join("o").display()),
        ] {
            let s = Store::open(&cfg(url)).await.unwrap();
            s.put_file("segments/x.log", f.clone(), data.len() as u64)
                .await
                .unwrap();
            assert_eq!(s.get("segments/x.log").await.unwrap().len(), data.len());
            assert_eq!(
                &s.get_range("segments/x.log", 9_000_000..9_000_010)
                    .await
                    .unwrap()[..],
                &data[9_000_000..9_000_010]
            );
            s.put_file("segments/small.log", f.clone(), 1000)
                .await
                .unwrap();
            assert_eq!(
                &s.get("segments/small.log").await.unwrap()[..],
                &data[..1000]
            );
        }
    }

    #[tokio::test]
    async fn memory_conformance() {
        conformance(&Store::open(&cfg("memory://pfx")).await.unwrap()).await;
    }

    #[tokio::test]
    async fn file_conformance() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&cfg(&format!("file://{}", dir.path().display())))
            .await
            .unwrap();
        conformance(&s).await;
    }

    #[tokio::test]
    async fn bad_urls_are_named() {
        for u in ["nope", "ftp://x", "file://relative", "s3://"] {
            let e = Store::open(&cfg(u)).await.unwrap_err().to_string();
            assert!(e.contains(u.split("://").next().unwrap()), "{e}");
        }
    }
}
