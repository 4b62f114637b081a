//! Object storage: the durable home of every acknowledged record.
//!
//! Stores are chosen by URL through the `object_store` crate:
//! `file:///path` (local directory, fsync on), `s3://bucket/prefix`
//! (credentials from aws-config's default chain: env, profile, web identity /
//! IRSA, instance metadata; custom endpoint, region and path-style addressing
//! for MinIO, Ceph, R2, moto) and `memory://` for tests.
//!
//! [`Store`] is the narrow facade the broker uses: create-only puts, ranged
//! gets, deletes and listings, each counted and timed for `/metrics` and
//! retried under one [`RetryPolicy`] ([`retry`]). Listings are streamed
//! ([`Lister`]), never collected whole. Multipart uploads abort on failure
//! ([`multipart`]). [`fault::FaultStore`] injects failures for tests. Every
//! key is built in [`paths`].

pub mod fault;
pub mod multipart;
pub mod paths;
pub mod retry;

pub use retry::RetryPolicy;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

/// Errors of the object store facade.
#[derive(Debug, Clone, thiserror::Error)]
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
const PUT: usize = 0;
const GET: usize = 1;
const DELETE: usize = 2;
const LIST: usize = 3;
const HEAD: usize = 4;
/// Request counters of one operation.
#[derive(Default)]
struct OpStats {
    ok: AtomicU64,
    err: AtomicU64,
    retries: AtomicU64,
    latency: crate::metrics::Histogram,
}

/// Object store metrics (`strata_object_store_*`).
#[derive(Default)]
pub struct StoreMetrics {
    ops: [OpStats; OPS.len()],
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    /// Local files made objects by a hard link (`file://` stores).
    pub links: AtomicU64,
    link_latency: crate::metrics::Histogram,
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

    /// Retries of `op` ("put", "get", "delete", "list", "head") so far.
    pub fn retries(&self, op: &str) -> u64 {
        OPS.iter()
            .position(|o| *o == op)
            .map_or(0, |i| self.ops[i].retries.load(Relaxed))
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
        let _ = writeln!(out, "# HELP strata_object_store_retries_total Object store operations attempted again after a retriable error.\n# TYPE strata_object_store_retries_total counter");
        for (i, op) in OPS.iter().enumerate() {
            let _ = writeln!(
                out,
                "strata_object_store_retries_total{{operation=\"{op}\"}} {}",
                self.ops[i].retries.load(Relaxed)
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
        let _ = writeln!(
            out,
            "# HELP strata_object_store_links_total Local files made objects of a file:// store by a hard link instead of a copy.\n# TYPE strata_object_store_links_total counter\nstrata_object_store_links_total {}",
            self.links.load(Relaxed)
        );
        let _ = writeln!(out, "# HELP strata_object_store_link_duration_seconds Time to link a local file into a file:// store (link, directory fsync).\n# TYPE strata_object_store_link_duration_seconds histogram");
        self.link_latency
            .render(out, "strata_object_store_link_duration_seconds", "");
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
    retry: RetryPolicy,
    pub metrics: StoreMetrics,
    description: String,
    /// The directory of a `file://` store: objects are its files.
    local_root: Option<std::path::PathBuf>,
    /// Requests and bytes per topic (`cost`).
    pub cost: crate::cost::CostMeter,
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
                let mut store = Store::wrap(Arc::new(fs), "", cfg.request_timeout, &cfg.url);
                store.local_root = Some(std::path::PathBuf::from(rest));
                return Ok(store);
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
                // Retries live in one place, the operation level
                // (`retry::RetryPolicy`): the client makes one request per
                // attempt, bounded by the request timeout.
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_retry(object_store::RetryConfig {
                        max_retries: 0,
                        retry_timeout: cfg.request_timeout,
                        ..Default::default()
                    })
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
        Ok(Store::wrap(inner, &prefix, cfg.request_timeout, &cfg.url))
    }

    /// A store over any `ObjectStore` (a fault-injecting wrapper in tests),
    /// with keys under `prefix` and the default retry policy.
    pub fn wrap(
        inner: Arc<dyn ObjectStore>,
        prefix: &str,
        timeout: Duration,
        description: &str,
    ) -> Store {
        Store {
            inner,
            prefix: Path::from(prefix),
            timeout,
            retry: RetryPolicy::for_timeout(timeout),
            metrics: StoreMetrics::default(),
            description: description.to_string(),
            local_root: None,
            cost: Default::default(),
        }
    }

    /// The directory of a `file://` store, whose objects are plain files
    /// (`None` for other stores).
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// Make the local file `src` the object `key` without copying a byte:
    /// a hard link into a `file://` store's directory, create-only (an
    /// existing key is `AlreadyExists` unless it is this very file, then
    /// `Ok(false)`). A new link's directory is fsynced and the file's
    /// modification time set to now, so GC's grace for unreferenced
    /// objects counts from the link. Blocking: runs on a blocking thread.
    pub async fn link_file(&self, src: &std::path::Path, key: &str) -> Result<bool, StoreError> {
        let Some(root) = self.local_root.clone() else {
            return Err(StoreError::Backend {
                op: "link",
                key: key.to_string(),
                message: "not a file:// store".to_string(),
            });
        };
        let src = src.to_path_buf();
        let dst = root.join(self.path(key).as_ref());
        let started = Instant::now();
        let r = tokio::task::spawn_blocking(move || link_synced(&src, &dst))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        self.metrics
            .link_latency
            .observe(started.elapsed().as_secs_f64());
        match r {
            Ok(created) => {
                if created {
                    self.metrics.links.fetch_add(1, Relaxed);
                }
                Ok(created)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StoreError::AlreadyExists {
                    key: key.to_string(),
                })
            }
            Err(e) => Err(self.io_err("link", key, e)),
        }
    }

    /// Replace the retry policy of every operation.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Store {
        self.retry = policy;
        self
    }

    /// The retry policy of every operation.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// An in-memory store (tests): nothing survives the process.
    pub fn memory() -> Store {
        Store::wrap(
            Arc::new(object_store::memory::InMemory::new()),
            "",
            Duration::from_secs(30),
            "memory://",
        )
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.as_ref().is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    /// One attempt of `op` on `key`, bounded by the request timeout, counted
    /// and classified.
    async fn timed<T>(
        &self,
        op: usize,
        key: &str,
        f: impl std::future::Future<Output = object_store::Result<T>>,
    ) -> Result<T, StoreError> {
        self.timed_range(op, key, None, f).await
    }

    /// [`Store::timed`] of a request over `range` of the object (billed to
    /// the topics whose bytes it covers).
    async fn timed_range<T>(
        &self,
        op: usize,
        key: &str,
        range: Option<(u64, u64)>,
        f: impl std::future::Future<Output = object_store::Result<T>>,
    ) -> Result<T, StoreError> {
        // Every attempt is a billed request, whatever its outcome.
        self.cost.request(op, key, 1.0, range);
        let started = Instant::now();
        let r = tokio::time::timeout(self.timeout, f).await;
        let secs = started.elapsed().as_secs_f64();
        let out = match r {
            Err(_) => Err(StoreError::Timeout {
                op: OPS[op],
                key: key.to_string(),
                after: self.timeout,
            }),
            Ok(r) => r.map_err(|e| self.classify(op, key, e)),
        };
        self.metrics.observe(op, out.is_ok(), secs);
        out
    }

    fn classify(&self, op: usize, key: &str, e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => StoreError::AlreadyExists {
                key: key.to_string(),
            },
            object_store::Error::NotFound { .. } => StoreError::NotFound {
                key: key.to_string(),
            },
            e => StoreError::Backend {
                op: OPS[op],
                key: key.to_string(),
                message: e.to_string(),
            },
        }
    }

    /// Run `attempt` under `policy`, counting retries of `op` and telling
    /// `on_retry` (the caller's own metrics and health) about each one.
    async fn retrying<T, F, Fut>(
        &self,
        op: usize,
        key: &str,
        policy: &RetryPolicy,
        on_retry: &(dyn Fn(&StoreError, u32) + Send + Sync),
        attempt: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        policy
            .run(
                |e, n| {
                    self.metrics.ops[op].retries.fetch_add(1, Relaxed);
                    tracing::debug!(op = OPS[op], key, attempt = n, error = %e, "object store operation failed; retrying");
                    on_retry(e, n);
                },
                attempt,
            )
            .await
    }

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

    /// Create-only put (If-None-Match: *): a second writer of the same key
    /// gets `AlreadyExists` instead of overwriting.
    pub async fn put_create(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        self.put_create_with(key, PutPayload::from(data), &self.retry, &|_, _| {})
            .await
    }

    /// Create-only put of an object given as a list of buffers (no copy).
    pub async fn put_create_parts(&self, key: &str, parts: Vec<Bytes>) -> Result<(), StoreError> {
        self.put_create_with(key, parts.into_iter().collect(), &self.retry, &|_, _| {})
            .await
    }

    /// Create-only put under `policy`. A retry follows a failure whose
    /// outcome is unknown (a timeout or a 5xx may come after the write was
    /// applied): when it meets `AlreadyExists`, the object there is read
    /// back and, if it holds exactly these bytes, the put succeeded. Any
    /// other object is another writer's and stays `AlreadyExists`.
    pub async fn put_create_with(
        &self,
        key: &str,
        payload: PutPayload,
        policy: &RetryPolicy,
        on_retry: &(dyn Fn(&StoreError, u32) + Send + Sync),
    ) -> Result<(), StoreError> {
        let len = payload.content_length() as u64;
        let path = self.path(key);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.retrying(PUT, key, policy, on_retry, |n| {
            let payload = payload.clone();
            let opts = opts.clone();
            let path = &path;
            async move {
                match self
                    .timed(PUT, key, self.inner.put_opts(path, payload.clone(), opts))
                    .await
                {
                    Err(StoreError::AlreadyExists { .. }) if n > 0 => {
                        self.holds(key, &payload).await
                    }
                    other => other.map(|_| ()),
                }
            }
        })
        .await?;
        self.metrics.bytes_up.fetch_add(len, Relaxed);
        self.cost.moved(PUT, key, None, len);
        Ok(())
    }

    /// `Ok` when `key` holds exactly `payload`, `AlreadyExists` when it holds
    /// something else; a failed read is returned (and retried by the caller).
    async fn holds(&self, key: &str, payload: &PutPayload) -> Result<(), StoreError> {
        let p = self.path(key);
        let have = self
            .timed(GET, key, async {
                let r = self.inner.get(&p).await?;
                r.bytes().await
            })
            .await?;
        let mut at = 0usize;
        let same = have.len() == payload.content_length()
            && payload.iter().all(|b| {
                let ok = have[at..at + b.len()] == b[..];
                at += b.len();
                ok
            });
        if same {
            tracing::info!(key, "a retried put met its own earlier attempt; success");
            Ok(())
        } else {
            Err(StoreError::AlreadyExists {
                key: key.to_string(),
            })
        }
    }

    /// Upload `size` bytes of a local file as one object with a multipart
    /// upload, holding at most two parts in memory (a sealed segment can be
    /// as large as `segment.bytes`). Keys written this way are unique per
    /// leader epoch, so the missing create-only check cannot overwrite
    /// another writer's data. A failed or timed-out attempt aborts its
    /// upload and is retried whole under the store's policy.
    pub async fn put_file(
        &self,
        key: &str,
        file: Arc<std::fs::File>,
        size: u64,
    ) -> Result<(), StoreError> {
        self.put_file_with(key, file, size, PART_BYTES).await
    }

    async fn put_file_with(
        &self,
        key: &str,
        file: Arc<std::fs::File>,
        size: u64,
        part: u64,
    ) -> Result<(), StoreError> {
        if let Some(root) = self.local_root.clone() {
            return self.copy_local(root, key, file, size).await;
        }
        if size <= part {
            let data = read_at(file, 0, size as usize)
                .await
                .map_err(|e| self.io_err("put", key, e))?;
            return self.put_create(key, data).await;
        }
        self.retrying(PUT, key, &self.retry, &|_, _| {}, |_| {
            self.put_file_once(key, file.clone(), size, part)
        })
        .await?;
        self.metrics.bytes_up.fetch_add(size, Relaxed);
        self.cost.moved(PUT, key, None, size);
        Ok(())
    }

    /// [`Store::put_file`] into a `file://` store: the file is copied into
    /// a staging file beside the object in steps of [`LOCAL_COPY_STEP`]
    /// (each its own blocking task, so a segment's copy never holds a thread
    /// for long), fsynced, then linked under its key create-only. One PUT.
    async fn copy_local(
        &self,
        root: std::path::PathBuf,
        key: &str,
        file: Arc<std::fs::File>,
        size: u64,
    ) -> Result<(), StoreError> {
        let dst = root.join(self.path(key).as_ref());
        // `#` and digits: object_store's own staging names, never listed.
        let staging = std::path::PathBuf::from(format!(
            "{}#{}",
            dst.display(),
            uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000
        ));
        self.cost.request(PUT, key, 1.0, None);
        let started = Instant::now();
        let r = copy_in_steps(file, size, staging.clone(), dst).await;
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(staging)).await;
        self.metrics
            .observe(PUT, r.is_ok(), started.elapsed().as_secs_f64());
        match r {
            Ok(_) => {
                self.metrics.bytes_up.fetch_add(size, Relaxed);
                self.cost.moved(PUT, key, None, size);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StoreError::AlreadyExists {
                    key: key.to_string(),
                })
            }
            Err(e) => Err(self.io_err("put", key, e)),
        }
    }

    async fn put_file_once(
        &self,
        key: &str,
        file: Arc<std::fs::File>,
        size: u64,
        part: u64,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.timeout * 10;
        let path = self.path(key);
        let upload = match tokio::time::timeout_at(deadline, self.inner.put_multipart(&path)).await
        {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => return Err(self.classify(PUT, key, e)),
            Err(_) => return Err(self.timeout_err(PUT, key, self.timeout * 10)),
        };
        let mut mp = multipart::Multipart::new(upload, 2, key);
        let sent = tokio::time::timeout_at(deadline, async {
            let mut pos = 0u64;
            while pos < size {
                let n = part.min(size - pos);
                let chunk = read_at(file.clone(), pos, n as usize).await.map_err(|e| {
                    object_store::Error::Generic {
                        store: "local file",
                        source: Box::new(e),
                    }
                })?;
                mp.put_part(chunk.into()).await?;
                pos += n;
            }
            mp.flush().await
        })
        .await;
        let r = match sent {
            // Completing: on an error or the deadline the upload is
            // aborted by `Multipart`'s drop.
            Ok(Ok(())) => match tokio::time::timeout_at(deadline, mp.complete()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(self.classify(PUT, key, e)),
                Err(_) => Err(self.timeout_err(PUT, key, self.timeout * 10)),
            },
            failed => {
                let _ = tokio::time::timeout(self.timeout, mp.abort()).await;
                match failed {
                    Ok(Err(e)) => Err(self.classify(PUT, key, e)),
                    _ => Err(self.timeout_err(PUT, key, self.timeout * 10)),
                }
            }
        };
        self.metrics
            .observe(PUT, r.is_ok(), started.elapsed().as_secs_f64());
        // Create, each part, complete (or abort).
        self.cost
            .request(PUT, key, (2 + size.div_ceil(part.max(1))) as f64, None);
        r
    }

    fn timeout_err(&self, op: usize, key: &str, after: Duration) -> StoreError {
        StoreError::Timeout {
            op: OPS[op],
            key: key.to_string(),
            after,
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
        let p = self.path(key);
        let b = self
            .retrying(GET, key, &self.retry, &|_, _| {}, |_| {
                self.timed_range(
                    GET,
                    key,
                    Some((range.start, range.end)),
                    self.inner.get_range(&p, range.clone()),
                )
            })
            .await?;
        self.metrics.bytes_down.fetch_add(b.len() as u64, Relaxed);
        self.cost
            .moved(GET, key, Some((range.start, range.end)), b.len() as u64);
        Ok(b)
    }

    /// Read a whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let p = self.path(key);
        let b = self
            .retrying(GET, key, &self.retry, &|_, _| {}, |_| {
                self.timed(GET, key, async {
                    let r = self.inner.get(&p).await?;
                    r.bytes().await
                })
            })
            .await?;
        self.metrics.bytes_down.fetch_add(b.len() as u64, Relaxed);
        self.cost.moved(GET, key, None, b.len() as u64);
        Ok(b)
    }

    /// Size of an object.
    pub async fn head(&self, key: &str) -> Result<u64, StoreError> {
        let p = self.path(key);
        Ok(self
            .retrying(HEAD, key, &self.retry, &|_, _| {}, |_| {
                self.timed(HEAD, key, self.inner.head(&p))
            })
            .await?
            .size)
    }

    /// Delete (missing objects are not an error, so a retry after a lost
    /// response succeeds).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let p = self.path(key);
        let r = self
            .retrying(DELETE, key, &self.retry, &|_, _| {}, |_| {
                self.timed(DELETE, key, self.inner.delete(&p))
            })
            .await;
        match r {
            Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stream the objects under `sub` (keys relative to the store prefix),
    /// one at a time as the store's pages arrive: nothing holds the whole
    /// listing.
    pub fn lister(&self, sub: &str) -> Lister<'_> {
        Lister {
            store: self,
            sub: sub.to_string(),
            prefix: self.path(sub),
            stream: None,
            last: None,
            failures: 0,
            failing_since: None,
            rng: retry::Rng::new(self.retry.seed),
            started: Instant::now(),
            done: false,
            items: 0,
        }
    }

    fn relative(&self, location: &Path) -> String {
        let strip = if self.prefix.as_ref().is_empty() {
            0
        } else {
            self.prefix.as_ref().len() + 1
        };
        location
            .as_ref()
            .get(strip..)
            .unwrap_or_default()
            .to_string()
    }
}

/// Part size of multipart uploads.
const PART_BYTES: u64 = 8 << 20;

/// A streamed listing ([`Store::lister`]). Each item waits at most the
/// request timeout. After a retriable error the listing resumes after the
/// last key it yielded (`list_with_offset`) under the store's retry policy
/// (the limits count consecutive failures). On a store that does not list
/// in key order a resumed listing can skip or repeat keys: callers treat a
/// listing as a sample to act on idempotently, never as the complete set.
pub struct Lister<'a> {
    store: &'a Store,
    sub: String,
    prefix: Path,
    stream: Option<futures_util::stream::BoxStream<'static, object_store::Result<ObjectMeta>>>,
    last: Option<Path>,
    failures: u32,
    failing_since: Option<tokio::time::Instant>,
    rng: retry::Rng,
    started: Instant,
    done: bool,
    items: u64,
}

impl Lister<'_> {
    /// The next object, `None` at the end; an error ends the listing.
    pub async fn next(&mut self) -> Option<Result<Listed, StoreError>> {
        use futures_util::StreamExt;
        let store = self.store;
        loop {
            if self.done {
                return None;
            }
            let prefix = &self.prefix;
            let last = &self.last;
            let stream = self.stream.get_or_insert_with(|| match last {
                None => store.inner.list(Some(prefix)),
                Some(after) => store.inner.list_with_offset(Some(prefix), after),
            });
            let item = tokio::time::timeout(store.timeout, stream.next()).await;
            let err = match item {
                Ok(None) => {
                    self.done = true;
                    // A page is up to 1,000 keys (S3's ListObjectsV2).
                    store
                        .cost
                        .record_list(&self.sub, self.items.div_ceil(1000).max(1) as f64);
                    store
                        .metrics
                        .observe(LIST, true, self.started.elapsed().as_secs_f64());
                    return None;
                }
                Ok(Some(Ok(m))) => {
                    self.failures = 0;
                    self.failing_since = None;
                    let listed = Listed {
                        key: store.relative(&m.location),
                        size: m.size,
                        last_modified_ms: m.last_modified.timestamp_millis(),
                    };
                    self.last = Some(m.location);
                    self.items += 1;
                    return Some(Ok(listed));
                }
                Ok(Some(Err(e))) => store.classify(LIST, &self.sub, e),
                Err(_) => store.timeout_err(LIST, &self.sub, store.timeout),
            };
            self.stream = None;
            self.failures += 1;
            let since = *self
                .failing_since
                .get_or_insert_with(tokio::time::Instant::now);
            let wait = if err.is_retriable() {
                store
                    .retry
                    .next_wait(self.failures, since.elapsed(), &mut self.rng)
            } else {
                None
            };
            match wait {
                Some(wait) => {
                    store.metrics.ops[LIST].retries.fetch_add(1, Relaxed);
                    tracing::debug!(prefix = self.sub, error = %err, "listing failed; resuming after the last key");
                    tokio::time::sleep(wait).await;
                }
                None => {
                    self.done = true;
                    store
                        .metrics
                        .observe(LIST, false, self.started.elapsed().as_secs_f64());
                    return Some(Err(err));
                }
            }
        }
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

/// Bytes per blocking step of [`Store::copy_local`].
const LOCAL_COPY_STEP: usize = 1 << 20;

/// Copy `size` bytes of `file` into a new `staging` file a step at a time,
/// fsync it and link it as `dst` (create-only, see [`link_synced`]).
async fn copy_in_steps(
    file: Arc<std::fs::File>,
    size: u64,
    staging: std::path::PathBuf,
    dst: std::path::PathBuf,
) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = std::io::Result<T>> {
        let task = tokio::task::spawn_blocking(f);
        async move { task.await.map_err(std::io::Error::other)? }
    }
    let out = {
        let staging = staging.clone();
        Arc::new(
            blocking(move || {
                if let Some(dir) = staging.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&staging)
            })
            .await?,
        )
    };
    let mut buf = vec![0u8; LOCAL_COPY_STEP.min(size as usize)];
    let mut pos = 0u64;
    while pos < size {
        let n = (size - pos).min(LOCAL_COPY_STEP as u64) as usize;
        let (src, dst_file) = (file.clone(), out.clone());
        buf = blocking(move || {
            src.read_exact_at(&mut buf[..n], pos)?;
            dst_file.write_all_at(&buf[..n], pos)?;
            Ok(buf)
        })
        .await?;
        pos += n as u64;
    }
    blocking(move || {
        out.sync_data()?;
        link_synced(&staging, &dst)
    })
    .await
}

/// Hard-link `src` as `dst` (create-only; `Ok(false)` when `dst` already
/// is this very file), then set its modification time and fsync the new
/// name's directory.
fn link_synced(src: &std::path::Path, dst: &std::path::Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let dir = dst
        .parent()
        .ok_or_else(|| std::io::Error::other("object path has no directory"))?;
    // Directories created for it are made durable too (each in its parent).
    let mut created: Vec<&std::path::Path> = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d.filter(|p| !p.exists()) {
        created.push(p);
        d = p.parent();
    }
    std::fs::create_dir_all(dir)?;
    for p in created.iter().rev() {
        if let Some(parent) = p.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    match std::fs::hard_link(src, dst) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let (a, b) = (std::fs::metadata(src)?, std::fs::metadata(dst)?);
            if a.dev() == b.dev() && a.ino() == b.ino() {
                return Ok(false);
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    }
    // The filesystem's own "now" (UTIME_NOW): GC compares the store's
    // timestamps, which the filesystem keeps.
    let f = std::fs::File::open(dst)?;
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
    ];
    // SAFETY: a valid open descriptor and a two-element array, as
    // futimens(2) requires.
    if unsafe { libc::futimens(std::os::fd::AsRawFd::as_raw_fd(&f), times.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(true)
}

/// Staging files (`<object>#<digits>`, the names of object_store's and
/// [`Store::copy_local`]'s unfinished writes) in a `file://` store's
/// directory `root` that were last modified before `older_than`: a copy a
/// crash interrupted leaves one behind, and listings never show it. Removes
/// them, visiting at most `max_visit` directory entries; returns how many
/// were removed. Blocking.
pub fn sweep_local_staging(
    root: &std::path::Path,
    older_than: std::time::SystemTime,
    max_visit: usize,
) -> std::io::Result<usize> {
    fn is_staging(name: &std::ffi::OsStr) -> bool {
        let name = name.to_string_lossy();
        name.rsplit_once('#').is_some_and(|(object, digits)| {
            !object.is_empty() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        })
    }
    let mut removed = 0;
    let mut visited = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            visited += 1;
            if visited > max_visit {
                return Ok(removed);
            }
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file()
                && is_staging(&entry.file_name())
                && entry.metadata()?.modified()? < older_than
            {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::fault::{Fault, FaultStore, Op, Rule};
    use super::*;

    #[test]
    fn stale_staging_files_are_swept_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("wal/1/2");
        std::fs::create_dir_all(&sub).unwrap();
        let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000);
        let mk = |name: &str, aged: bool| {
            let p = sub.join(name);
            let f = std::fs::File::create(&p).unwrap();
            if aged {
                f.set_modified(old).unwrap();
            }
            p
        };
        let stale = mk("t-0-0-1-9.seg#123456", true);
        let fresh = mk("t-0-0-1-9.seg#654321", false);
        let object = mk("t-0-0-1-8.seg", true);
        let odd = mk("notes#draft", true);
        // Files made now are far younger than this; the aged ones older.
        let cutoff = std::time::UNIX_EPOCH + Duration::from_secs(2_000);
        assert_eq!(sweep_local_staging(dir.path(), cutoff, 1000).unwrap(), 1);
        assert!(!stale.exists());
        assert!(fresh.exists() && object.exists() && odd.exists());
        // Bounded: a pass that may visit nothing removes nothing.
        let again = mk("x.seg#1", true);
        assert_eq!(sweep_local_staging(dir.path(), cutoff, 0).unwrap(), 0);
        assert!(again.exists());
        // A missing root is not an error.
        assert_eq!(
            sweep_local_staging(&dir.path().join("gone"), cutoff, 10).unwrap(),
            0
        );
    }

    fn cfg(url: &str) -> StoreConfig {
        StoreConfig {
            url: url.into(),
            endpoint: None,
            region: None,
            path_style: true,
            request_timeout: Duration::from_secs(5),
        }
    }

    async fn list_all(s: &Store, sub: &str) -> Result<Vec<Listed>, StoreError> {
        let mut l = s.lister(sub);
        let mut out = Vec::new();
        while let Some(item) = l.next().await {
            out.push(item?);
        }
        Ok(out)
    }

    fn faulty(seed: u64) -> (Arc<FaultStore>, Store) {
        let fs = FaultStore::memory(seed);
        let s = Store::wrap(fs.clone(), "pfx", Duration::from_secs(1), "fault://");
        (fs, s)
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_put_response_is_success_after_reading_back() {
        let (fs, s) = faulty(1);
        fs.inject(Rule::new(Op::Put, "pfx/wal/", Fault::LostResponse).times(1));
        s.put_create_parts(
            "wal/a",
            vec![Bytes::from_static(b"he"), Bytes::from_static(b"llo")],
        )
        .await
        .unwrap();
        assert_eq!(&s.get("wal/a").await.unwrap()[..], b"hello");
        assert_eq!(fs.calls(Op::Put), 2, "one retry");
        assert_eq!(s.metrics.retries("put"), 1);
        assert_eq!(list_all(&s, "wal").await.unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_meeting_another_writers_object_stays_already_exists() {
        let (fs, s) = faulty(1);
        s.put_create("wal/b", Bytes::from_static(b"theirs"))
            .await
            .unwrap();
        // First attempt fails without applying: the retry meets the other
        // writer's object, whose bytes differ.
        fs.inject(Rule::new(Op::Put, "pfx/wal/", Fault::Error).times(1));
        let r = s.put_create("wal/b", Bytes::from_static(b"ours")).await;
        assert!(matches!(r, Err(StoreError::AlreadyExists { .. })), "{r:?}");
        assert_eq!(&s.get("wal/b").await.unwrap()[..], b"theirs");
        // Without a failure before it, AlreadyExists is returned at once.
        let r = s.put_create("wal/b", Bytes::from_static(b"theirs")).await;
        assert!(matches!(r, Err(StoreError::AlreadyExists { .. })), "{r:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn operations_retry_transient_errors_and_give_up_on_outages() {
        let (fs, s) = faulty(1);
        s.put_create("segments/x", Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        fs.inject(Rule::new(Op::Get, "pfx/segments/", Fault::Error).times(2));
        assert_eq!(&s.get_range("segments/x", 2..5).await.unwrap()[..], b"234");
        assert_eq!(s.metrics.retries("get"), 2);
        // A hang is cut by the request timeout and retried.
        fs.inject(Rule::new(Op::Head, "pfx/segments/", Fault::Hang).times(1));
        assert_eq!(s.head("segments/x").await.unwrap(), 10);
        // A permanent outage ends after max_attempts with the last error.
        fs.inject(Rule::new(Op::Delete, "pfx/segments/", Fault::Error));
        let before = fs.calls(Op::Delete);
        let r = s.delete("segments/x").await;
        assert!(matches!(r, Err(StoreError::Backend { .. })), "{r:?}");
        assert_eq!(fs.calls(Op::Delete) - before, 5);
        fs.heal();
        // A delete whose response was lost: the retry finds nothing, fine.
        fs.inject(Rule::new(Op::Delete, "pfx/segments/", Fault::LostResponse).times(1));
        s.delete("segments/x").await.unwrap();
        assert!(matches!(
            s.get("segments/x").await,
            Err(StoreError::NotFound { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn listings_stream_and_resume_after_a_partial_page() {
        let (fs, s) = faulty(1);
        for i in 0..10 {
            s.put_create(&format!("wal/1/1/{i:02}"), Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        fs.inject(Rule::new(Op::List, "pfx/wal", Fault::ListErrorAfter(3)).times(2));
        let keys: Vec<String> = list_all(&s, "wal")
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.key)
            .collect();
        let want: Vec<String> = (0..10).map(|i| format!("wal/1/1/{i:02}")).collect();
        assert_eq!(
            keys, want,
            "resumed after the last key: nothing lost, nothing twice"
        );
        assert_eq!(s.metrics.retries("list"), 2);
        // A listing that keeps failing at once ends with an error.
        fs.inject(Rule::new(Op::List, "pfx/wal", Fault::Error));
        let mut l = s.lister("wal");
        assert!(matches!(
            l.next().await,
            Some(Err(StoreError::Backend { .. }))
        ));
        assert!(l.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_body_is_cut_by_the_deadline() {
        let (fs, s) = faulty(1);
        s.put_create("segments/y", Bytes::from(vec![1u8; 4096]))
            .await
            .unwrap();
        fs.inject(Rule::new(
            Op::Get,
            "pfx/segments/",
            Fault::SlowBody {
                chunk: 64,
                delay: Duration::from_millis(100),
            },
        ));
        let started = tokio::time::Instant::now();
        let r = s.get_range("segments/y", 0..4096).await;
        assert!(matches!(r, Err(StoreError::Timeout { .. })), "{r:?}");
        assert_eq!(fs.calls(Op::Get), 5, "every attempt timed out");
        // 5 attempts of 1 s plus backoff, never the 6.4 s a body takes each.
        assert!(
            started.elapsed() < Duration::from_secs(5 + 2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn failed_multipart_uploads_are_aborted_then_retried() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let f = Arc::new(std::fs::File::open(&path).unwrap());
        let (fs, s) = faulty(1);
        let s = s.with_retry(RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            ..RetryPolicy::default()
        });
        fs.inject(Rule::new(Op::PutPart, "pfx/segments/", Fault::Error).times(1));
        s.put_file_with("segments/z.log", f.clone(), data.len() as u64, 1024)
            .await
            .unwrap();
        assert_eq!(&s.get("segments/z.log").await.unwrap()[..], &data[..]);
        let (started, completed, aborted) = fs.multipart_counts();
        assert_eq!((started, completed, aborted), (2, 1, 1));
        // A permanent failure aborts every attempt and leaves no object.
        fs.inject(Rule::new(Op::PutPart, "pfx/segments/", Fault::Error));
        let r = s
            .put_file_with("segments/w.log", f, data.len() as u64, 1024)
            .await;
        assert!(r.is_err());
        let (started, completed, aborted) = fs.multipart_counts();
        assert_eq!((started - 2, completed, aborted - 1), (5, 1, 5));
        assert!(matches!(
            s.head("segments/w.log").await,
            Err(StoreError::NotFound { .. })
        ));
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
        let listed = list_all(s, "wal").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, "wal/1/1/00000000000000000001.wal");
        s.delete("wal/1/1/00000000000000000001.wal").await.unwrap();
        s.delete("wal/1/1/00000000000000000001.wal").await.unwrap();
        assert!(matches!(
            s.get("wal/1/1/00000000000000000001.wal").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(list_all(s, "wal").await.unwrap().is_empty());
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
            // Create-only, and no staging file is ever listed.
            assert!(matches!(
                s.put_file("segments/small.log", f.clone(), 10).await,
                Err(StoreError::AlreadyExists { .. })
            ));
            assert_eq!(
                &s.get("segments/small.log").await.unwrap()[..1000],
                &data[..1000]
            );
            assert_eq!(list_all(&s, "segments").await.unwrap().len(), 2, "{url}");
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
