//! The controller's HTTP endpoints on `--controller-listen` (default :9093).
//!
//! - `POST /raft/append`, `/raft/vote`, `/raft/snapshot`: openraft RPCs
//! - `POST /meta/submit`: a command from a broker; forwarded to the leader
//! - `GET /meta/log?after=N&wait_ms=M`: committed commands after index `N`
//!   (long-poll up to `M` ms), or the whole state when `N` is too old
//! - `GET /controller/status`, `POST /controller/membership`
//!
//! Bodies are JSON and bounded ([`super::network::MAX_BODY_BYTES`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::{Deserialize, Serialize};

use super::{Controller, MembershipChange, NodeId, TypeConfig};
use crate::meta::{Command, MetaState};

/// Most commands one `/meta/log` answer carries.
pub const MAX_LOG_BATCH: usize = 1024;
/// Longest long-poll of `/meta/log`.
pub const MAX_LOG_WAIT_MS: u64 = 10_000;

/// An answer of `GET /meta/log`.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum LogBatch {
    /// Commands `(index, command)` in order; the follower's applied index
    /// is `applied` after applying them.
    Commands {
        commands: Vec<(u64, Arc<Command>)>,
        applied: u64,
    },
    /// The whole state (the follower was too far behind).
    State(Arc<MetaState>),
}

#[derive(Deserialize)]
struct LogQuery {
    after: u64,
    #[serde(default)]
    wait_ms: u64,
}

#[derive(Deserialize)]
struct SubmitQuery {
    #[serde(default)]
    forwarded: Option<u8>,
}

type Ctl = State<Arc<Controller>>;

/// Serves the endpoints until `shutdown` turns true: over TLS with the
/// node certificate when node TLS is installed, else plain HTTP.
pub fn serve(
    controller: Arc<Controller>,
    listener: tokio::net::TcpListener,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/meta/submit", post(submit))
        .route("/meta/log", get(log))
        .route("/meta/heartbeat", post(heartbeat))
        .route("/controller/status", get(status))
        .route("/controller/membership", post(membership))
        .layer(DefaultBodyLimit::max(super::network::MAX_BODY_BYTES))
        .with_state(controller);
    match super::tls::get() {
        Some(tls) => {
            let listener =
                super::tls::TlsListener::new(listener, tls.server.clone(), shutdown.clone())?;
            tokio::spawn(run(listener, app, shutdown));
        }
        None => {
            tokio::spawn(run(listener, app, shutdown));
        }
    }
    Ok(())
}

async fn run<L>(listener: L, app: Router, mut shutdown: tokio::sync::watch::Receiver<bool>)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "controller API stopped");
    }
}

async fn append(State(c): Ctl, Json(req): Json<AppendEntriesRequest<TypeConfig>>) -> Response {
    Json(c.raft.append_entries(req).await).into_response()
}

async fn vote(State(c): Ctl, Json(req): Json<VoteRequest<NodeId>>) -> Response {
    Json(c.raft.vote(req).await).into_response()
}

async fn snapshot(State(c): Ctl, Json(req): Json<InstallSnapshotRequest<TypeConfig>>) -> Response {
    Json(c.raft.install_snapshot(req).await).into_response()
}

async fn submit(State(c): Ctl, Query(q): Query<SubmitQuery>, Json(cmd): Json<Command>) -> Response {
    Json(c.submit_inner(cmd, q.forwarded.is_none()).await).into_response()
}

async fn heartbeat(
    State(c): Ctl,
    Query(q): Query<SubmitQuery>,
    Json(hb): Json<super::placement::Heartbeat>,
) -> Response {
    Json(c.heartbeat(hb, q.forwarded.is_none()).await).into_response()
}

async fn log(State(c): Ctl, Query(q): Query<LogQuery>) -> Response {
    let wait = Duration::from_millis(q.wait_ms.min(MAX_LOG_WAIT_MS));
    if q.after >= c.shared.view.borrow().applied_index && !wait.is_zero() {
        let mut rx = c.shared.view.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|v| v.applied_index > q.after)).await;
    }
    let batch = match c.shared.commands_after(q.after, MAX_LOG_BATCH) {
        Some((commands, applied)) => LogBatch::Commands { commands, applied },
        None => LogBatch::State(c.shared.view.borrow().clone()),
    };
    Json(batch).into_response()
}

async fn status(State(c): Ctl) -> Response {
    Json(c.status()).into_response()
}

async fn membership(State(c): Ctl, Json(change): Json<MembershipChange>) -> Response {
    // The refusal travels in the body (`Err`), like every other answer.
    (StatusCode::OK, Json(c.change_membership(change).await)).into_response()
}
