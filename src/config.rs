//! Broker configuration: one flat serde tree, loaded from a TOML file, then
//! environment variables `STRATA_*`, then command-line flags (each later
//! source wins), and validated once at start.
//!
//! Every flag of `strata serve` is also a key of the TOML file with the same
//! name (`--segment-bytes` ⇔ `segment-bytes = ...`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Configuration errors name the key or flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid value for {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Where acks=all durability comes from (`--wal-mode`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WalMode {
    /// `local` when the object store is a `file://` directory on the data
    /// directory's filesystem, else `object`.
    Auto,
    /// WAL objects in the object store.
    Object,
    /// The fsynced hot segments, linked into a `file://` store.
    Local,
}

/// The resolved configuration of `strata serve`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Where logs, metadata and the cluster id live. Local disk holds the
    /// hot segments; losing it loses unflushed acks=1 data only.
    pub data_dir: PathBuf,
    /// Where the metadata (controller state: command log, snapshots, cluster
    /// id) lives. Default: `<data-dir>/meta`. The broker's own data
    /// directory is a cache: it can be wiped without losing acked data as
    /// long as this directory and the object store survive.
    pub meta_dir: Option<PathBuf>,
    /// This node's id (Kafka `node.id`): its broker id and, when it is a
    /// controller, its Raft node id. Never reuse the id of a removed
    /// controller.
    pub broker_id: i32,
    /// Let the controllers hand out this broker's id (`--node-id auto`): a
    /// broker-only process with no stable identity (a Kubernetes
    /// Deployment's pod) gets an id above 1000, new at every start.
    pub node_id_auto: bool,
    /// Roles of this process: `controller`, `broker` or both
    /// (comma-separated). Controllers hold the only state that matters (the
    /// Raft log); brokers are stateless and scale freely.
    pub roles: String,
    /// The controller voters, `ID@HOST:PORT,...` (Kafka's
    /// `controller.quorum.voters`). Default for a controller: itself alone,
    /// at its `controller-advertised` address. Brokers use it to find the
    /// controllers. 3 voters survive 1 failure, 5 survive 2.
    pub controller_quorum: Option<String>,
    /// Listener of the controller API (Raft RPCs, metadata for brokers).
    pub controller_listen: SocketAddr,
    /// Address other nodes reach this controller at [default:
    /// advertised-host:controller-listen port].
    pub controller_advertised: Option<String>,
    /// Start as a new controller that waits to be added with
    /// `strata controller add-learner` instead of initializing a quorum.
    pub controller_join: bool,
    /// Raft log entries between snapshots of the metadata (and entries kept
    /// behind one for lagging followers). Smaller: faster restarts, more
    /// snapshot writes; each snapshot writes the whole metadata.
    pub controller_snapshot_every: u64,
    /// How long a metadata write waits for a leader and a commit before the
    /// client gets a retriable error (quorum loss).
    pub controller_request_timeout_ms: u64,
    /// Broker lease: a broker that has not heartbeated the controller leader
    /// for this long is fenced and its partitions move to live brokers.
    /// Failover takes about this long plus a second; shorter leases fail
    /// over faster but fence brokers that pause (GC, a slow disk) sooner.
    pub broker_lease_ms: u64,
    /// Rack / zone reported to clients.
    pub rack: Option<String>,
    /// Kafka listener.
    pub kafka_listen: SocketAddr,
    /// HTTP listener (health, readiness, metrics).
    pub http_listen: SocketAddr,
    /// Host clients are told to connect to.
    pub advertised_host: String,
    /// Port clients are told to connect to (default: the listener's port).
    pub advertised_port: Option<u16>,
    /// Create unknown topics on first produce / metadata request.
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics and default for CreateTopics(-1).
    pub num_partitions: i32,
    /// Default `segment.bytes`: bigger segments mean fewer files and index
    /// entries, smaller ones let retention reclaim space sooner.
    pub segment_bytes: u64,
    /// Default `segment.ms`: roll a segment at least this often.
    pub segment_ms: i64,
    /// Default `retention.ms` (-1 keeps forever).
    pub retention_ms: i64,
    /// Default `retention.bytes` per partition (-1 unlimited).
    pub retention_bytes: i64,
    /// Default `message.timestamp.type` (CreateTime or LogAppendTime).
    pub message_timestamp_type: String,
    /// Default `cleanup.policy` (delete, compact or "compact,delete").
    pub cleanup_policy: String,
    /// Bytes per second background jobs (compaction) may read, so they
    /// never starve produce and fetch. 0 = unlimited.
    pub job_io_bytes_per_sec: u64,
    /// Largest request frame accepted (`socket.request.max.bytes`); a bigger
    /// length prefix closes the connection before anything is allocated.
    pub request_max_bytes: usize,
    /// Request bytes held by the broker at once, over all connections
    /// (`queued.max.request.bytes`): a connection whose next frame does not
    /// fit waits, without reading its socket, until earlier requests finish.
    pub queued_max_request_bytes: usize,
    /// Concurrent client connections; more are refused at accept.
    pub max_connections: usize,
    /// Requests decoded ahead of their responses per connection.
    pub max_inflight_per_connection: usize,
    /// Close connections idle (or stalled mid-frame) this long.
    pub connections_max_idle_ms: u64,
    /// Upper bound of one fetch response (`fetch.max.bytes`).
    pub fetch_max_bytes: usize,
    /// Incremental fetch sessions (KIP-227) held at once
    /// (`max.incremental.fetch.session.cache.slots`); 0 disables them.
    /// Each costs about 100 bytes per partition it holds.
    pub max_incremental_fetch_session_cache_slots: usize,
    /// Partitions one fetch session holds at most; a consumer of more
    /// sends full fetches.
    pub max_fetch_session_partitions: usize,
    /// A fetch session unused this long may be evicted by any new one;
    /// younger ones only by more valuable (bigger) sessions.
    pub fetch_session_eviction_ms: i64,
    /// Samples of a client quota's rate window (`quota.window.num`).
    pub quota_window_num: usize,
    /// Length of one quota sample (`quota.window.size.seconds`, in ms):
    /// the rate is measured over `num × size`.
    pub quota_window_size_ms: i64,
    /// HTTP connections idle (or slow to send request headers) this long
    /// are closed.
    pub http_idle_timeout_ms: u64,
    /// Where acknowledged data is durable: `file:///path`,
    /// `s3://bucket/prefix` or `memory://` (tests only: nothing survives a
    /// restart). Default: `file://<data-dir>/objects`.
    pub object_store: Option<String>,
    /// Endpoint of an S3-compatible server (MinIO, Ceph, R2, moto).
    pub s3_endpoint: Option<String>,
    /// S3 region (default: from the AWS config chain, else us-east-1).
    pub s3_region: Option<String>,
    /// Path-style S3 addressing (most S3-compatible servers need it).
    pub s3_path_style: bool,
    /// Timeout of one object store request.
    pub object_store_timeout_ms: u64,
    /// WAL flush interval: acks=all latency ≈ this + one PUT; each flush is
    /// one PUT (100 ms ≈ 26 M PUTs/month per broker).
    pub wal_flush_ms: u64,
    /// Flush the WAL early once this many bytes are queued.
    pub wal_flush_bytes: usize,
    /// Queued + uploading WAL bytes before producers are slowed down.
    pub wal_max_buffered_bytes: usize,
    /// Concurrent WAL uploads (local mode: concurrent group commits).
    pub wal_max_inflight_uploads: usize,
    /// Cut a WAL object early once nothing has arrived for this long
    /// (0: never), but never more often than one per `wal-flush-ms`:
    /// low-load acks=all latency drops without adding PUTs.
    pub wal_flush_idle_ms: u64,
    /// Where acks=all durability comes from. `local`: the fsynced hot
    /// segment files, linked into a `file://` store on the same filesystem
    /// (one write per byte, acks=all in milliseconds); `object`: WAL objects
    /// (a copy of every byte, acks=all after `wal-flush-ms` plus a PUT);
    /// `auto`: `local` when the store allows it.
    pub wal_mode: WalMode,
    /// Prices of object-store requests and storage for the per-topic cost
    /// estimates (TOML, see docs/cost.md); default: S3 Standard list prices.
    pub price_sheet: Option<PathBuf>,
    /// Block cache for reads from object storage (bytes).
    pub cache_bytes: u64,
    /// Upload a partition's active segment once its oldest data is this old
    /// (WAL objects are deleted once all their extents are in segments).
    pub upload_interval_ms: i64,
    /// Grace period before unreferenced objects are deleted.
    pub gc_grace_ms: i64,
    /// How often tier jobs (segment upload, GC) run.
    pub tier_tick_ms: u64,
    /// Largest JSON body of the HTTP API, and largest single record of a
    /// streamed produce: bigger ones are refused with 413 before they are
    /// buffered, so a request can make the server hold at most about this.
    pub http_max_body_bytes: usize,
    /// HTTP (REST Proxy v2) consumer instances unused this long are closed
    /// and leave their group; each live instance keeps a heartbeat task.
    pub http_consumer_idle_timeout_ms: u64,
    /// HTTP consumer instances at most (more are refused with 429).
    pub http_max_consumer_instances: usize,
    /// `group.consumer.session.timeout.ms`: a `group.protocol=consumer`
    /// member silent this long leaves its group (its partitions move).
    /// Shorter detects dead consumers sooner; longer survives longer pauses.
    pub group_consumer_session_timeout_ms: u64,
    /// `group.consumer.heartbeat.interval.ms`: heartbeat period of those
    /// members; a lower value speeds rebalances up at more requests/s.
    pub group_consumer_heartbeat_interval_ms: u64,
    /// Uploaded sealed segments kept on local disk per partition, in bytes
    /// (-1 keeps everything). Older reads come from object storage.
    pub local_retention_bytes: i64,
    /// OTLP/HTTP collector base URL (e.g. `http://127.0.0.1:4318`); spans
    /// are exported to `<url>/v1/traces` when set.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of exported spans.
    pub otlp_service_name: String,
    /// Kafka listeners, `NAME://HOST:PORT,...` (Kafka's `listeners`); when
    /// set it replaces `kafka-listen`. See docs/security.md.
    pub listeners: Option<String>,
    /// What clients are told per listener, `NAME://HOST:PORT,...`.
    pub advertised_listeners: Option<String>,
    /// Listener names that are not protocol names, `NAME:PROTOCOL,...`.
    pub listener_security_protocol_map: Option<String>,
    /// PEM certificate chain of the TLS listeners (reloaded on change).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls-cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: TLS clients must present a certificate it signed.
    pub tls_client_ca: Option<PathBuf>,
    /// Node certificate, key and CA of the controller API (node TLS).
    pub controller_tls_cert: Option<PathBuf>,
    pub controller_tls_key: Option<PathBuf>,
    pub controller_tls_ca: Option<PathBuf>,
    /// SASL mechanisms offered on SASL listeners.
    pub sasl_enabled_mechanisms: String,
    /// Session lifetime of a SASL login (Kafka's
    /// `connections.max.reauth.ms`): the client re-authenticates before it
    /// ends or the connection is closed. 0 = unlimited.
    pub sasl_session_lifetime_ms: u64,
    /// `acl` enforces ACLs on every request; `none` (the default) allows
    /// every authenticated principal everything.
    pub authorizer: String,
    /// Principals allowed everything, `User:admin;User:ops` (Kafka's `super.users`).
    pub super_users: Option<String>,
    /// With the ACL authorizer, a resource without any ACL is open to all
    /// (Kafka's `allow.everyone.if.no.acl.found`).
    pub allow_everyone_if_no_acl_found: bool,
    /// JWKS of OAUTHBEARER and HTTP bearer tokens: a file, or an http(s)
    /// URL (Kafka's `sasl.oauthbearer.jwks.endpoint.url`).
    pub sasl_oauthbearer_jwks: Option<String>,
    /// How often the JWKS is read again (a URL costs one GET each time).
    pub sasl_oauthbearer_jwks_refresh_ms: u64,
    /// The `iss` tokens must carry (not checked when unset).
    pub sasl_oauthbearer_expected_issuer: Option<String>,
    /// Audiences, comma-separated; a token's `aud` must name one.
    pub sasl_oauthbearer_expected_audience: Option<String>,
    /// The claim that names the principal.
    pub sasl_oauthbearer_sub_claim_name: String,
    /// Authentication of the HTTP API: `none`, `basic`, `bearer`, `basic,bearer`.
    pub http_auth: String,
    /// `/metrics` needs the HTTP authentication too.
    pub metrics_auth: bool,
    /// PEM certificate chain of the HTTP listener (HTTPS when set).
    pub http_tls_cert: Option<PathBuf>,
    /// PEM private key of `http-tls-cert`.
    pub http_tls_key: Option<PathBuf>,
    /// PEM CA bundle: HTTPS clients must present a certificate it signed.
    pub http_tls_client_ca: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./strata-data"),
            meta_dir: None,
            broker_id: 1,
            node_id_auto: false,
            roles: "controller,broker".into(),
            controller_quorum: None,
            controller_listen: "0.0.0.0:9093".parse().expect("static addr"),
            controller_advertised: None,
            controller_join: false,
            controller_snapshot_every: 1024,
            controller_request_timeout_ms: 5_000,
            broker_lease_ms: 4_000,
            rack: None,
            kafka_listen: "0.0.0.0:9092".parse().expect("static addr"),
            http_listen: "0.0.0.0:8080".parse().expect("static addr"),
            advertised_host: "localhost".into(),
            advertised_port: None,
            auto_create_topics: true,
            num_partitions: 1,
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            message_timestamp_type: "CreateTime".into(),
            cleanup_policy: "delete".into(),
            job_io_bytes_per_sec: 64 * 1024 * 1024,
            request_max_bytes: 100 * 1024 * 1024,
            queued_max_request_bytes: 512 * 1024 * 1024,
            max_connections: 4096,
            max_inflight_per_connection: 4096,
            connections_max_idle_ms: 600_000,
            fetch_max_bytes: 55 * 1024 * 1024,
            max_incremental_fetch_session_cache_slots: 1000,
            max_fetch_session_partitions: 10_000,
            fetch_session_eviction_ms: 120_000,
            quota_window_num: 11,
            quota_window_size_ms: 1000,
            http_idle_timeout_ms: 60_000,
            object_store: None,
            s3_endpoint: None,
            s3_region: None,
            s3_path_style: false,
            object_store_timeout_ms: 30_000,
            wal_flush_ms: 100,
            wal_flush_bytes: 8 * 1024 * 1024,
            wal_max_buffered_bytes: 128 * 1024 * 1024,
            wal_max_inflight_uploads: 4,
            wal_flush_idle_ms: 5,
            wal_mode: WalMode::Auto,
            price_sheet: None,
            cache_bytes: 256 * 1024 * 1024,
            upload_interval_ms: 60_000,
            gc_grace_ms: 300_000,
            tier_tick_ms: 1_000,
            http_max_body_bytes: 16 * 1024 * 1024,
            http_consumer_idle_timeout_ms: 300_000,
            http_max_consumer_instances: 1_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            local_retention_bytes: 1 << 30,
            otlp_endpoint: None,
            otlp_service_name: "strata".into(),
            listeners: None,
            advertised_listeners: None,
            listener_security_protocol_map: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            controller_tls_cert: None,
            controller_tls_key: None,
            controller_tls_ca: None,
            sasl_enabled_mechanisms: "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".into(),
            sasl_session_lifetime_ms: 0,
            authorizer: "none".into(),
            super_users: None,
            allow_everyone_if_no_acl_found: false,
            sasl_oauthbearer_jwks: None,
            sasl_oauthbearer_jwks_refresh_ms: 3_600_000,
            sasl_oauthbearer_expected_issuer: None,
            sasl_oauthbearer_expected_audience: None,
            sasl_oauthbearer_sub_claim_name: "sub".into(),
            http_auth: "none".into(),
            metrics_auth: false,
            http_tls_cert: None,
            http_tls_key: None,
            http_tls_client_ca: None,
        }
    }
}

impl Config {
    /// Parse a TOML file into a config (missing keys take defaults).
    pub fn from_toml(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Port advertised to clients.
    pub fn advertised_port(&self) -> u16 {
        self.advertised_port.unwrap_or(self.kafka_listen.port())
    }

    /// Does this process run the controller role?
    pub fn is_controller(&self) -> bool {
        self.roles.split(',').any(|r| r.trim() == "controller")
    }

    /// Does this process run the broker role?
    pub fn is_broker(&self) -> bool {
        self.roles.split(',').any(|r| r.trim() == "broker")
    }

    /// Where other nodes reach this controller.
    pub fn controller_address(&self) -> String {
        self.controller_advertised.clone().unwrap_or_else(|| {
            format!("{}:{}", self.advertised_host, self.controller_listen.port())
        })
    }

    /// The controller voters: `--controller-quorum`, or this node alone.
    pub fn voters(&self) -> Result<BTreeMap<u64, String>, ConfigError> {
        match &self.controller_quorum {
            Some(q) => crate::controller::parse_quorum(q).map_err(|message| ConfigError::Invalid {
                key: "--controller-quorum",
                message,
            }),
            None => Ok(BTreeMap::from([(
                self.broker_id as u64,
                self.controller_address(),
            )])),
        }
    }

    /// The controller settings of this node.
    /// The node TLS flags of this config.
    pub fn node_tls(&self) -> crate::controller::tls::NodeTlsArgs {
        crate::controller::tls::NodeTlsArgs {
            controller_tls_cert: self.controller_tls_cert.clone(),
            controller_tls_key: self.controller_tls_key.clone(),
            controller_tls_ca: self.controller_tls_ca.clone(),
        }
    }

    pub fn controller_config(&self) -> Result<crate::controller::ControllerConfig, ConfigError> {
        Ok(crate::controller::ControllerConfig {
            node_id: self.broker_id as u64,
            dir: self.meta_dir().join("raft"),
            meta_dir: self.meta_dir(),
            listen: self.controller_listen,
            voters: self.voters()?,
            join: self.controller_join,
            snapshot_every: self.controller_snapshot_every,
            request_timeout: std::time::Duration::from_millis(self.controller_request_timeout_ms),
            broker_lease: std::time::Duration::from_millis(self.broker_lease_ms),
        })
    }

    /// The metadata directory.
    pub fn meta_dir(&self) -> PathBuf {
        self.meta_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("meta"))
    }

    /// The object store URL, defaulting to a directory under the data dir.
    pub fn object_store_url(&self) -> String {
        match &self.object_store {
            Some(u) => u.clone(),
            None => {
                let dir = std::path::absolute(self.data_dir.join("objects"))
                    .unwrap_or_else(|_| self.data_dir.join("objects"));
                format!("file://{}", dir.display())
            }
        }
    }

    /// Object store settings.
    pub fn store_config(&self) -> crate::objstore::StoreConfig {
        crate::objstore::StoreConfig {
            url: self.object_store_url(),
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            path_style: self.s3_path_style,
            request_timeout: std::time::Duration::from_millis(self.object_store_timeout_ms),
        }
    }

    /// Fetch session cache bounds.
    pub fn fetch_session_limits(&self) -> crate::kafka::fetch_session::Limits {
        crate::kafka::fetch_session::Limits {
            slots: self.max_incremental_fetch_session_cache_slots,
            max_partitions: self.max_fetch_session_partitions,
            eviction_ms: self.fetch_session_eviction_ms,
        }
    }

    /// Client quota rate window.
    pub fn quota_window(&self) -> crate::quotas::WindowConfig {
        crate::quotas::WindowConfig {
            samples: self.quota_window_num,
            window_ms: self.quota_window_size_ms,
        }
    }

    /// WAL settings.
    pub fn wal_config(&self) -> crate::wal::WalConfig {
        crate::wal::WalConfig {
            flush_ms: self.wal_flush_ms,
            flush_bytes: self.wal_flush_bytes,
            max_buffered_bytes: self.wal_max_buffered_bytes,
            max_inflight_uploads: self.wal_max_inflight_uploads,
            flush_idle_ms: self.wal_flush_idle_ms,
            local: false,
        }
    }

    /// Tier job settings.
    pub fn tier_config(&self) -> crate::tier::TierConfig {
        crate::tier::TierConfig {
            upload_interval_ms: self.upload_interval_ms,
            tick_ms: self.tier_tick_ms,
            gc_grace_ms: self.gc_grace_ms,
            max_upload_bytes: (self.segment_bytes * 2).max(1 << 30),
            local_retention_bytes: self.local_retention_bytes,
        }
    }

    /// Check cross-field rules once at start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, message: String| Err(ConfigError::Invalid { key, message });
        if let Some(u) = &self.otlp_endpoint {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
                return bad(
                    "--otlp-endpoint",
                    format!("must be an http:// or https:// URL, got {u:?}"),
                );
            }
        }
        if self.otlp_service_name.is_empty() {
            return bad("--otlp-service-name", "must not be empty".into());
        }
        let max_id = crate::meta::state::RESERVED_BROKER_MAX_ID;
        if !(0..=max_id).contains(&self.broker_id) {
            return bad(
                "--node-id",
                format!(
                    "must be in 0..={max_id} (ids above are handed out by --node-id auto), got {}",
                    self.broker_id
                ),
            );
        }
        let roles: Vec<&str> = self.roles.split(',').map(str::trim).collect();
        if roles.is_empty() || roles.iter().any(|r| !matches!(*r, "controller" | "broker")) {
            return bad(
                "--roles",
                format!(
                    "must be controller, broker or controller,broker, got {:?}",
                    self.roles
                ),
            );
        }
        if self.node_id_auto && self.is_controller() {
            return bad(
                "--node-id",
                "auto is for broker-only nodes (--roles broker); a controller needs a stable id"
                    .into(),
            );
        }
        let voters = self.voters()?;
        if !self.is_controller() && self.controller_quorum.is_none() {
            return bad(
                "--controller-quorum",
                "a broker-only node needs the controllers' addresses (ID@HOST:PORT,...)".into(),
            );
        }
        if self.is_controller()
            && !self.controller_join
            && !voters.contains_key(&(self.broker_id as u64))
        {
            return bad(
                "--controller-quorum",
                format!(
                    "node {} is a controller but not one of the voters; list it, or start it with --controller-join to be added later",
                    self.broker_id
                ),
            );
        }
        if !(1..=1_000_000).contains(&self.controller_snapshot_every) {
            return bad(
                "--controller-snapshot-every",
                format!(
                    "must be in 1..=1000000, got {}",
                    self.controller_snapshot_every
                ),
            );
        }
        if !(1_000..=600_000).contains(&self.broker_lease_ms) {
            return bad(
                "--broker-lease-ms",
                format!("must be in 1000..=600000, got {}", self.broker_lease_ms),
            );
        }
        if !(100..=600_000).contains(&self.controller_request_timeout_ms) {
            return bad(
                "--controller-request-timeout-ms",
                format!(
                    "must be in 100..=600000, got {}",
                    self.controller_request_timeout_ms
                ),
            );
        }
        if !(1..=10_000).contains(&self.num_partitions) {
            return bad(
                "--num-partitions",
                format!("must be 1..=10000, got {}", self.num_partitions),
            );
        }
        if self.segment_bytes < 1024 || self.segment_bytes > i32::MAX as u64 {
            return bad(
                "--segment-bytes",
                format!("must be 1024..={}, got {}", i32::MAX, self.segment_bytes),
            );
        }
        if self.segment_ms < 1 {
            return bad(
                "--segment-ms",
                format!("must be >= 1, got {}", self.segment_ms),
            );
        }
        if !(1024..=1 << 30).contains(&self.request_max_bytes) {
            return bad(
                "--request-max-bytes",
                format!("must be 1024..=1073741824, got {}", self.request_max_bytes),
            );
        }
        if self.queued_max_request_bytes < self.request_max_bytes
            || self.queued_max_request_bytes > 1 << 40
        {
            return bad(
                "--queued-max-request-bytes",
                format!(
                    "must be at least --request-max-bytes ({}) and at most 1099511627776, got {}",
                    self.request_max_bytes, self.queued_max_request_bytes
                ),
            );
        }
        if self.http_idle_timeout_ms < 100 {
            return bad(
                "--http-idle-timeout-ms",
                format!("must be >= 100, got {}", self.http_idle_timeout_ms),
            );
        }
        if self.max_connections == 0 {
            return bad("--max-connections", "must be >= 1".into());
        }
        if self.max_inflight_per_connection == 0 || self.max_inflight_per_connection > 65_536 {
            return bad("--max-inflight-per-connection", "must be 1..=65536".into());
        }
        if self.wal_flush_idle_ms > 60_000 {
            return bad(
                "--wal-flush-idle-ms",
                format!("must be 0..=60000, got {}", self.wal_flush_idle_ms),
            );
        }
        if self.max_incremental_fetch_session_cache_slots > 100_000 {
            return bad(
                "--max-incremental-fetch-session-cache-slots",
                "must be 0..=100000".into(),
            );
        }
        if !(1..=1_000_000).contains(&self.max_fetch_session_partitions) {
            return bad(
                "--max-fetch-session-partitions",
                "must be 1..=1000000".into(),
            );
        }
        if !(1..=86_400_000).contains(&self.fetch_session_eviction_ms) {
            return bad("--fetch-session-eviction-ms", "must be 1..=86400000".into());
        }
        if !(2..=100).contains(&self.quota_window_num) {
            return bad("--quota-window-num", "must be 2..=100".into());
        }
        if !(10..=3_600_000).contains(&self.quota_window_size_ms) {
            return bad("--quota-window-size-ms", "must be 10..=3600000".into());
        }
        if !(1..=60_000).contains(&self.wal_flush_ms) {
            return bad(
                "--wal-flush-ms",
                format!("must be 1..=60000, got {}", self.wal_flush_ms),
            );
        }
        if self.wal_flush_bytes < 1024 || self.wal_flush_bytes > 1 << 30 {
            return bad(
                "--wal-flush-bytes",
                format!("must be 1024..=1073741824, got {}", self.wal_flush_bytes),
            );
        }
        if self.wal_max_buffered_bytes < self.wal_flush_bytes
            || self.wal_max_buffered_bytes > u32::MAX as usize
        {
            return bad(
                "--wal-max-buffered-bytes",
                format!(
                    "must be >= --wal-flush-bytes and <= 4294967295, got {}",
                    self.wal_max_buffered_bytes
                ),
            );
        }
        if !(1..=64).contains(&self.wal_max_inflight_uploads) {
            return bad(
                "--wal-max-inflight-uploads",
                format!("must be 1..=64, got {}", self.wal_max_inflight_uploads),
            );
        }
        if self.upload_interval_ms < 100 {
            return bad(
                "--upload-interval-ms",
                format!("must be >= 100, got {}", self.upload_interval_ms),
            );
        }
        if self.gc_grace_ms < 0 {
            return bad(
                "--gc-grace-ms",
                format!("must be >= 0, got {}", self.gc_grace_ms),
            );
        }
        if self.object_store_timeout_ms < 100 {
            return bad(
                "--object-store-timeout-ms",
                format!("must be >= 100, got {}", self.object_store_timeout_ms),
            );
        }
        if !(1024..=1 << 30).contains(&self.http_max_body_bytes) {
            return bad(
                "--http-max-body-bytes",
                format!(
                    "must be 1024..=1073741824, got {}",
                    self.http_max_body_bytes
                ),
            );
        }
        if self.http_consumer_idle_timeout_ms < 1000 {
            return bad(
                "--http-consumer-idle-timeout-ms",
                format!(
                    "must be >= 1000, got {}",
                    self.http_consumer_idle_timeout_ms
                ),
            );
        }
        if !(1_000..=1_800_000).contains(&self.group_consumer_session_timeout_ms) {
            return bad(
                "--group-consumer-session-timeout-ms",
                format!(
                    "must be 1000..=1800000, got {}",
                    self.group_consumer_session_timeout_ms
                ),
            );
        }
        if !(100..self.group_consumer_session_timeout_ms)
            .contains(&self.group_consumer_heartbeat_interval_ms)
        {
            return bad(
                "--group-consumer-heartbeat-interval-ms",
                format!(
                    "must be >= 100 and below the session timeout, got {}",
                    self.group_consumer_heartbeat_interval_ms
                ),
            );
        }
        if !(1..=100_000).contains(&self.http_max_consumer_instances) {
            return bad(
                "--http-max-consumer-instances",
                format!(
                    "must be 1..=100000, got {}",
                    self.http_max_consumer_instances
                ),
            );
        }
        let url = self.object_store_url();
        if !(url.starts_with("file:///")
            || url.starts_with("s3://")
            || url.starts_with("memory://"))
        {
            return bad(
                "--object-store",
                format!("expected file:///path, s3://bucket/prefix or memory://, got {url}"),
            );
        }
        if self.advertised_host.is_empty() {
            return bad("--advertised-host", "must not be empty".into());
        }
        crate::auth::config::validate(self)
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        for (k, v) in self.topic_defaults() {
            crate::meta::topic_config::validate(&k, &v).map_err(|e| ConfigError::Invalid {
                key: "topic default",
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Broker-level defaults of topic configs.
    pub fn topic_defaults(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("segment.bytes".into(), self.segment_bytes.to_string());
        m.insert("segment.ms".into(), self.segment_ms.to_string());
        m.insert("retention.ms".into(), self.retention_ms.to_string());
        m.insert("retention.bytes".into(), self.retention_bytes.to_string());
        m.insert(
            "message.timestamp.type".into(),
            self.message_timestamp_type.clone(),
        );
        m.insert("cleanup.policy".into(), self.cleanup_policy.clone());
        m
    }
}

/// Flags of `strata serve`. Every flag can also come from the environment
/// (`STRATA_<FLAG>` in upper snake case) or from the `--config` TOML file;
/// precedence: flag > environment > file > built-in default.
/// `--node-id`: a number, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NodeIdArg {
    Id(i32),
    Auto,
}

impl std::str::FromStr for NodeIdArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(NodeIdArg::Auto);
        }
        s.parse()
            .map(NodeIdArg::Id)
            .map_err(|_| format!("expected a node id (0..=1000) or `auto`, got {s:?}"))
    }
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML file with any of the keys below (kebab-case, e.g. `data-dir`).
    #[arg(long, env = "STRATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory for logs and metadata [default: ./strata-data].
    #[arg(long, env = "STRATA_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Metadata (controller state) directory [default: <data-dir>/meta].
    #[arg(long, env = "STRATA_META_DIR", value_name = "DIR")]
    pub meta_dir: Option<PathBuf>,
    /// Node id of this broker [default: 1].
    #[arg(
        long,
        env = "STRATA_BROKER_ID",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub broker_id: Option<i32>,
    /// Node id (broker id and Raft node id; same as --broker-id), 0..=1000, or `auto` for a broker-only node: the controllers hand one out [default: 1].
    #[arg(
        long,
        env = "STRATA_NODE_ID",
        value_name = "N|auto",
        allow_negative_numbers = true
    )]
    pub node_id: Option<NodeIdArg>,
    /// Roles: controller, broker or controller,broker [default: controller,broker].
    #[arg(long, env = "STRATA_ROLES", value_name = "ROLES")]
    pub roles: Option<String>,
    /// Controller voters, ID@HOST:PORT,... [default: this node alone].
    #[arg(long, env = "STRATA_CONTROLLER_QUORUM", value_name = "VOTERS")]
    pub controller_quorum: Option<String>,
    /// Controller API listener [default: 0.0.0.0:9093].
    #[arg(long, env = "STRATA_CONTROLLER_LISTEN", value_name = "ADDR")]
    pub controller_listen: Option<SocketAddr>,
    /// Address other nodes reach this controller at [default: advertised-host:controller port].
    #[arg(long, env = "STRATA_CONTROLLER_ADVERTISED", value_name = "HOST:PORT")]
    pub controller_advertised: Option<String>,
    /// Join an existing quorum (wait for `strata controller add-learner`) instead of initializing one.
    #[arg(long, env = "STRATA_CONTROLLER_JOIN", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub controller_join: Option<bool>,
    /// Raft log entries between metadata snapshots [default: 1024].
    #[arg(long, env = "STRATA_CONTROLLER_SNAPSHOT_EVERY", value_name = "N")]
    pub controller_snapshot_every: Option<u64>,
    /// Metadata writes fail with a retriable error after this long without a quorum [default: 5000].
    #[arg(long, env = "STRATA_CONTROLLER_REQUEST_TIMEOUT_MS", value_name = "MS")]
    pub controller_request_timeout_ms: Option<u64>,
    /// Broker lease; failover waits this long for a silent broker [default: 4000].
    #[arg(long, env = "STRATA_BROKER_LEASE_MS", value_name = "MS")]
    pub broker_lease_ms: Option<u64>,
    /// Rack / availability zone reported in metadata.
    #[arg(long, env = "STRATA_RACK", value_name = "RACK")]
    pub rack: Option<String>,
    /// Kafka protocol listener address [default: 0.0.0.0:9092].
    #[arg(long, env = "STRATA_KAFKA_LISTEN", value_name = "ADDR")]
    pub kafka_listen: Option<SocketAddr>,
    /// HTTP listener for /healthz, /readyz and /metrics [default: 0.0.0.0:8080].
    #[arg(long, env = "STRATA_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// Host name clients are told to connect to [default: localhost].
    #[arg(long, env = "STRATA_ADVERTISED_HOST", value_name = "HOST")]
    pub advertised_host: Option<String>,
    /// Port clients are told to connect to [default: the Kafka listener's port].
    #[arg(long, env = "STRATA_ADVERTISED_PORT", value_name = "PORT")]
    pub advertised_port: Option<u16>,
    /// Export tracing spans over OTLP/HTTP (protobuf) to this collector base
    /// URL, e.g. http://127.0.0.1:4318 [default: off].
    #[arg(long, env = "STRATA_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// service.name attribute of exported spans [default: strata].
    #[arg(long, env = "STRATA_OTLP_SERVICE_NAME", value_name = "NAME")]
    pub otlp_service_name: Option<String>,
    /// Create unknown topics when a client first uses them (Kafka's
    /// auto.create.topics.enable) [default: true].
    #[arg(long, env = "STRATA_AUTO_CREATE_TOPICS", value_name = "BOOL")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of auto-created topics (Kafka's num.partitions) [default: 1].
    #[arg(
        long,
        env = "STRATA_NUM_PARTITIONS",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub num_partitions: Option<i32>,
    /// Default segment.bytes: roll the active segment past this size [default: 1073741824].
    #[arg(long, env = "STRATA_SEGMENT_BYTES", value_name = "BYTES")]
    pub segment_bytes: Option<u64>,
    /// Default segment.ms: roll the active segment after this age [default: 604800000].
    #[arg(
        long,
        env = "STRATA_SEGMENT_MS",
        value_name = "MS",
        allow_negative_numbers = true
    )]
    pub segment_ms: Option<i64>,
    /// Default retention.ms of topics, -1 = forever [default: 604800000].
    #[arg(
        long,
        env = "STRATA_RETENTION_MS",
        value_name = "MS",
        allow_negative_numbers = true
    )]
    pub retention_ms: Option<i64>,
    /// Default retention.bytes per partition, -1 = unlimited [default: -1].
    #[arg(
        long,
        env = "STRATA_RETENTION_BYTES",
        value_name = "BYTES",
        allow_negative_numbers = true
    )]
    pub retention_bytes: Option<i64>,
    /// Default message.timestamp.type: CreateTime or LogAppendTime [default: CreateTime].
    #[arg(long, env = "STRATA_MESSAGE_TIMESTAMP_TYPE", value_name = "TYPE")]
    pub message_timestamp_type: Option<String>,
    /// Default cleanup.policy of topics: delete, compact or compact,delete [default: delete].
    #[arg(long, env = "STRATA_CLEANUP_POLICY", value_name = "POLICY")]
    pub cleanup_policy: Option<String>,
    /// Read rate limit of background jobs (compaction), bytes/s, 0 = unlimited [default: 67108864].
    #[arg(long, env = "STRATA_JOB_IO_BYTES_PER_SEC", value_name = "BYTES")]
    pub job_io_bytes_per_sec: Option<u64>,
    /// Largest request accepted (socket.request.max.bytes) [default: 104857600].
    #[arg(long, env = "STRATA_REQUEST_MAX_BYTES", value_name = "BYTES")]
    pub request_max_bytes: Option<usize>,
    /// Request bytes in flight over all connections (queued.max.request.bytes); beyond it sockets are not read [default: 536870912].
    #[arg(long, env = "STRATA_QUEUED_MAX_REQUEST_BYTES", value_name = "BYTES")]
    pub queued_max_request_bytes: Option<usize>,
    /// Maximum concurrent client connections [default: 4096].
    #[arg(long, env = "STRATA_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Requests processed ahead of their responses per connection [default: 128].
    #[arg(long, env = "STRATA_MAX_INFLIGHT_PER_CONNECTION", value_name = "N")]
    pub max_inflight_per_connection: Option<usize>,
    /// Close connections idle or stalled mid-request this long (connections.max.idle.ms) [default: 600000].
    #[arg(long, env = "STRATA_CONNECTIONS_MAX_IDLE_MS", value_name = "MS")]
    pub connections_max_idle_ms: Option<u64>,
    /// Upper bound of one fetch response (fetch.max.bytes) [default: 57671680].
    #[arg(long, env = "STRATA_FETCH_MAX_BYTES", value_name = "BYTES")]
    pub fetch_max_bytes: Option<usize>,
    /// Incremental fetch sessions held at once (max.incremental.fetch.session.cache.slots); 0 disables them [default: 1000].
    #[arg(
        long,
        env = "STRATA_MAX_INCREMENTAL_FETCH_SESSION_CACHE_SLOTS",
        value_name = "N"
    )]
    pub max_incremental_fetch_session_cache_slots: Option<usize>,
    /// Partitions one fetch session holds at most [default: 10000].
    #[arg(long, env = "STRATA_MAX_FETCH_SESSION_PARTITIONS", value_name = "N")]
    pub max_fetch_session_partitions: Option<usize>,
    /// A fetch session unused this long may be evicted by any new one [default: 120000].
    #[arg(long, env = "STRATA_FETCH_SESSION_EVICTION_MS", value_name = "MS")]
    pub fetch_session_eviction_ms: Option<i64>,
    /// Samples of a client quota's rate window (quota.window.num) [default: 11].
    #[arg(long, env = "STRATA_QUOTA_WINDOW_NUM", value_name = "N")]
    pub quota_window_num: Option<usize>,
    /// Length of one quota sample in ms (quota.window.size.seconds × 1000) [default: 1000].
    #[arg(long, env = "STRATA_QUOTA_WINDOW_SIZE_MS", value_name = "MS")]
    pub quota_window_size_ms: Option<i64>,
    /// Close HTTP connections idle or slow to send headers this long [default: 60000].
    #[arg(long, env = "STRATA_HTTP_IDLE_TIMEOUT_MS", value_name = "MS")]
    pub http_idle_timeout_ms: Option<u64>,
    /// Object store for durable data: file:///path, s3://bucket/prefix or memory:// [default: file://<data-dir>/objects].
    #[arg(long, env = "STRATA_OBJECT_STORE", value_name = "URL")]
    pub object_store: Option<String>,
    /// Endpoint of an S3-compatible server, e.g. http://127.0.0.1:9000.
    #[arg(long, env = "STRATA_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: from the AWS config chain, else us-east-1].
    #[arg(long, env = "STRATA_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Use path-style S3 addressing (MinIO, Ceph, moto) [default: false].
    #[arg(long, env = "STRATA_S3_PATH_STYLE", value_name = "BOOL")]
    pub s3_path_style: Option<bool>,
    /// Timeout of one object store request [default: 30000].
    #[arg(long, env = "STRATA_OBJECT_STORE_TIMEOUT_MS", value_name = "MS")]
    pub object_store_timeout_ms: Option<u64>,
    /// WAL flush interval; acks=all waits about this plus one PUT [default: 100].
    #[arg(long, env = "STRATA_WAL_FLUSH_MS", value_name = "MS")]
    pub wal_flush_ms: Option<u64>,
    /// Flush the WAL early once this many bytes are queued [default: 8388608].
    #[arg(long, env = "STRATA_WAL_FLUSH_BYTES", value_name = "BYTES")]
    pub wal_flush_bytes: Option<usize>,
    /// Queued + uploading WAL bytes before producers are slowed [default: 134217728].
    #[arg(long, env = "STRATA_WAL_MAX_BUFFERED_BYTES", value_name = "BYTES")]
    pub wal_max_buffered_bytes: Option<usize>,
    /// Concurrent WAL uploads [default: 4].
    #[arg(long, env = "STRATA_WAL_MAX_INFLIGHT_UPLOADS", value_name = "N")]
    pub wal_max_inflight_uploads: Option<usize>,
    /// Cut a WAL object early once nothing arrived for this long, at most one per --wal-flush-ms; 0 never [default: 5].
    #[arg(long, env = "STRATA_WAL_FLUSH_IDLE_MS", value_name = "MS")]
    pub wal_flush_idle_ms: Option<u64>,
    /// acks=all durability: local (fsynced segments linked into a file:// store on the same filesystem), object (WAL objects), auto [default: auto].
    #[arg(long, env = "STRATA_WAL_MODE", value_name = "MODE")]
    pub wal_mode: Option<WalMode>,
    /// TOML price sheet for per-topic cost estimates [default: S3 Standard list prices].
    #[arg(long, env = "STRATA_PRICE_SHEET", value_name = "FILE")]
    pub price_sheet: Option<PathBuf>,
    /// Block cache for reads from object storage, bytes [default: 268435456].
    #[arg(long, env = "STRATA_CACHE_BYTES", value_name = "BYTES")]
    pub cache_bytes: Option<u64>,
    /// Upload a partition's active segment once its oldest data is this old [default: 60000].
    #[arg(
        long,
        env = "STRATA_UPLOAD_INTERVAL_MS",
        value_name = "MS",
        allow_negative_numbers = true
    )]
    pub upload_interval_ms: Option<i64>,
    /// Grace period before unreferenced objects are deleted [default: 300000].
    #[arg(
        long,
        env = "STRATA_GC_GRACE_MS",
        value_name = "MS",
        allow_negative_numbers = true
    )]
    pub gc_grace_ms: Option<i64>,
    /// Uploaded segments kept on local disk per partition, bytes; -1 keeps all [default: 1073741824].
    #[arg(
        long,
        env = "STRATA_LOCAL_RETENTION_BYTES",
        value_name = "BYTES",
        allow_negative_numbers = true
    )]
    pub local_retention_bytes: Option<i64>,
    /// How often segment upload and GC run [default: 1000].
    #[arg(long, env = "STRATA_TIER_TICK_MS", value_name = "MS")]
    pub tier_tick_ms: Option<u64>,
    /// Largest HTTP API body, and largest record of a streamed produce [default: 16777216].
    #[arg(long, env = "STRATA_HTTP_MAX_BODY_BYTES", value_name = "BYTES")]
    pub http_max_body_bytes: Option<usize>,
    /// Close HTTP consumer instances idle this long (they leave their group) [default: 300000].
    #[arg(long, env = "STRATA_HTTP_CONSUMER_IDLE_TIMEOUT_MS", value_name = "MS")]
    pub http_consumer_idle_timeout_ms: Option<u64>,
    /// HTTP consumer instances at most [default: 1000].
    #[arg(long, env = "STRATA_HTTP_MAX_CONSUMER_INSTANCES", value_name = "N")]
    pub http_max_consumer_instances: Option<usize>,
    /// Session of group.protocol=consumer members (group.consumer.session.timeout.ms) [default: 45000].
    #[arg(
        long,
        env = "STRATA_GROUP_CONSUMER_SESSION_TIMEOUT_MS",
        value_name = "MS"
    )]
    pub group_consumer_session_timeout_ms: Option<u64>,
    /// Heartbeat interval of group.protocol=consumer members (group.consumer.heartbeat.interval.ms) [default: 5000].
    #[arg(
        long,
        env = "STRATA_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS",
        value_name = "MS"
    )]
    pub group_consumer_heartbeat_interval_ms: Option<u64>,
    #[command(flatten)]
    pub security: crate::auth::config::SecurityArgs,
    #[command(flatten)]
    pub node_tls: crate::controller::tls::NodeTlsArgs,
}

impl ServeArgs {
    /// Resolve: flags/env (already merged by clap) over the file over defaults.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(p) => Config::from_toml(p)?,
            None => Config::default(),
        };
        macro_rules! over {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { c.$f = v; } )* };
        }
        over!(
            data_dir,
            broker_id,
            roles,
            controller_listen,
            controller_join,
            controller_snapshot_every,
            controller_request_timeout_ms,
            broker_lease_ms,
            kafka_listen,
            http_listen,
            advertised_host,
            auto_create_topics,
            num_partitions,
            segment_bytes,
            segment_ms,
            retention_ms,
            retention_bytes,
            message_timestamp_type,
            cleanup_policy,
            job_io_bytes_per_sec,
            request_max_bytes,
            queued_max_request_bytes,
            max_connections,
            max_inflight_per_connection,
            connections_max_idle_ms,
            fetch_max_bytes,
            max_incremental_fetch_session_cache_slots,
            max_fetch_session_partitions,
            fetch_session_eviction_ms,
            quota_window_num,
            quota_window_size_ms,
            http_idle_timeout_ms,
            s3_path_style,
            object_store_timeout_ms,
            wal_flush_ms,
            wal_flush_bytes,
            wal_max_buffered_bytes,
            wal_max_inflight_uploads,
            wal_flush_idle_ms,
            wal_mode,
            cache_bytes,
            upload_interval_ms,
            gc_grace_ms,
            tier_tick_ms,
            http_max_body_bytes,
            http_consumer_idle_timeout_ms,
            http_max_consumer_instances,
            group_consumer_session_timeout_ms,
            group_consumer_heartbeat_interval_ms,
            local_retention_bytes,
            otlp_service_name
        );
        for (dst, src) in [
            (&mut c.object_store, &self.object_store),
            (&mut c.s3_endpoint, &self.s3_endpoint),
            (&mut c.s3_region, &self.s3_region),
            (&mut c.otlp_endpoint, &self.otlp_endpoint),
        ] {
            if src.is_some() {
                *dst = src.clone();
            }
        }
        for (dst, src) in [
            (&mut c.meta_dir, &self.meta_dir),
            (&mut c.price_sheet, &self.price_sheet),
        ] {
            if src.is_some() {
                *dst = src.clone();
            }
        }
        if self.rack.is_some() {
            c.rack = self.rack.clone();
        }
        // An empty rack (a downward-API label that is not set) is no rack.
        if c.rack.as_deref().is_some_and(|r| r.trim().is_empty()) {
            c.rack = None;
        }
        for (dst, src) in [
            (&mut c.controller_quorum, &self.controller_quorum),
            (&mut c.controller_advertised, &self.controller_advertised),
        ] {
            if src.is_some() {
                *dst = src.clone();
            }
        }
        match self.node_id {
            Some(NodeIdArg::Id(n)) => {
                if self.broker_id.is_some_and(|b| b != n) {
                    return Err(ConfigError::Invalid {
                        key: "--node-id",
                        message: format!("--node-id {n} and --broker-id {} differ", c.broker_id),
                    });
                }
                c.broker_id = n;
            }
            Some(NodeIdArg::Auto) => {
                if self.broker_id.is_some() {
                    return Err(ConfigError::Invalid {
                        key: "--node-id",
                        message: "--node-id auto and --broker-id both given".into(),
                    });
                }
                c.node_id_auto = true;
            }
            None => {}
        }
        if self.advertised_port.is_some() {
            c.advertised_port = self.advertised_port;
        }
        self.security.apply(&mut c);
        self.node_tls.apply(&mut c);
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(
            &p,
            "data-dir = \"/from/file\"\nnum-partitions = 3\nsegment-bytes = 4096\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(p),
            num_partitions: Some(6),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.num_partitions, 6);
        assert_eq!(c.segment_bytes, 4096);
        assert_eq!(c.kafka_listen.port(), 9092);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let args = ServeArgs {
            num_partitions: Some(0),
            ..Default::default()
        };
        let e = args.resolve().unwrap_err().to_string();
        assert!(e.contains("--num-partitions"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, "no-such-key = 1\n").unwrap();
        let e = ServeArgs {
            config: Some(p),
            ..Default::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(e.contains("no-such-key"), "{e}");
    }

    #[test]
    fn node_id_auto_is_for_brokers_and_fixed_ids_stay_reserved() {
        assert_eq!("auto".parse::<NodeIdArg>(), Ok(NodeIdArg::Auto));
        assert_eq!("7".parse::<NodeIdArg>(), Ok(NodeIdArg::Id(7)));
        assert!("seven".parse::<NodeIdArg>().unwrap_err().contains("auto"));
        let quorum = Some("1@127.0.0.1:9093".to_string());
        let c = ServeArgs {
            node_id: Some(NodeIdArg::Auto),
            roles: Some("broker".into()),
            controller_quorum: quorum.clone(),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert!(c.node_id_auto);
        let e = ServeArgs {
            node_id: Some(NodeIdArg::Auto),
            ..Default::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--node-id") && e.contains("broker-only"), "{e}");
        let e = ServeArgs {
            node_id: Some(NodeIdArg::Id(1001)),
            roles: Some("broker".into()),
            controller_quorum: quorum,
            ..Default::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--node-id") && e.contains("0..=1000"), "{e}");
    }
}
