//! Strata: a Kafka-compatible streaming broker whose durable home is object
//! storage.
//!
//! # Layout
//! - [`config`]: the serde configuration tree and the `serve` flags.
//! - [`meta`]: the metadata state machine: commands, pure `apply`, local
//!   durable store (command log + snapshots). Raft replicates these commands.
//! - [`log`]: partition logs of RecordBatch v2 bytes: validation, segments,
//!   sparse offset/time indexes, recovery, idempotent-producer state.
//! - [`broker`]: ties metadata and logs together for the handlers.
//! - [`auth`]: listeners, TLS, SASL (PLAIN, SCRAM) and the credentials.
//! - [`kafka`]: the wire protocol: listener, framing, one handler per API, and
//!   a small client for the CLI.
//! - [`groups`]: consumer group coordinator.
//! - [`jobs`]: time and size retention.
//! - [`http`]: health, readiness and Prometheus metrics.
//! - [`console`]: the built-in web console at `/ui`.
//! - [`server`]: starts and stops everything (`strata serve`).
//! - [`cli`]: `strata topic ...` admin commands.
//! - [`objstore`]: object store by URL, create-only puts, metrics.
//! - [`wal`]: the WAL in object storage (acks=all durability).
//! - [`tier`]: segment upload, remote reads through the block cache, GC.
//! - [`group_cli`]: `strata group ...` consumer group admin commands.
//! - [`clock`], [`metrics`]: injected time and the metrics registry.

pub mod auth;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod controller;
pub mod cost;
#[doc(hidden)]
pub mod fuzzing;
pub mod group_cli;
pub mod groups;
pub mod http;
pub mod jobs;
pub mod kafka;
pub mod log;
pub mod meta;
pub mod metrics;
pub mod objstore;
pub mod quotas;
pub mod server;
pub mod telemetry;
pub mod tier;
pub mod txn;
pub mod wal;
