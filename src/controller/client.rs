//! [`Metadata`]: the one seam between a broker and the metadata.
//!
//! Submit a command and get `(log index, output or refusal)`, read the
//! current view, wait until an index is applied, watch the view change.
//! Two backends: in-process (this process is a controller too; its state
//! machine's view is the broker's copy) and remote (a broker-only process
//! that sends commands to any controller and keeps its own copy by applying
//! the committed commands it streams from `/meta/log`, as KRaft brokers
//! follow `__cluster_metadata`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::api::LogBatch;
use super::network::JsonClient;
use super::Controller;
use crate::meta::command::ApplyResult;
use crate::meta::{Command, CommandOutput, MetaError, MetaState};

/// How long one `/meta/log` long-poll waits for news.
const FOLLOW_WAIT_MS: u64 = 2_000;
/// Extra time a long-poll may take before the controller counts as stuck.
const FOLLOW_SLACK: Duration = Duration::from_secs(2);

enum Backend {
    Local(Arc<Controller>),
    Remote(Arc<Remote>),
}

/// The broker's handle on the metadata (cheap to clone).
#[derive(Clone)]
pub struct Metadata {
    backend: Arc<Backend>,
    view: watch::Receiver<Arc<MetaState>>,
    timeout: Duration,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metadata")
            .field("applied_index", &self.view.borrow().applied_index)
            .finish()
    }
}

fn unavailable(reason: impl std::fmt::Display) -> MetaError {
    MetaError::Unavailable {
        reason: reason.to_string(),
    }
}

impl Metadata {
    /// The in-process backend over this process's controller.
    pub fn local(controller: Arc<Controller>) -> Metadata {
        let view = controller.shared.view.subscribe();
        let timeout = controller.request_timeout;
        Metadata {
            backend: Arc::new(Backend::Local(controller)),
            view,
            timeout,
        }
    }

    /// The remote backend: follows the committed log of `controllers`
    /// (`host:port` of their controller API) until `shutdown`.
    pub fn remote(
        controllers: Vec<String>,
        timeout: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Metadata {
        let remote = Arc::new(Remote {
            controllers,
            client: JsonClient::controller(),
            next: AtomicUsize::new(0),
            timeout,
            want: std::sync::atomic::AtomicU64::new(0),
        });
        let (tx, view) = watch::channel(Arc::new(MetaState::new()));
        tokio::spawn(remote.clone().follow(tx, shutdown));
        Metadata {
            backend: Arc::new(Backend::Remote(remote)),
            view,
            timeout,
        }
    }

    /// The controller of this process, if it is one.
    pub fn controller(&self) -> Option<&Arc<Controller>> {
        match &*self.backend {
            Backend::Local(c) => Some(c),
            Backend::Remote(_) => None,
        }
    }

    /// The current view (structurally shared; cheap).
    pub fn view(&self) -> Arc<MetaState> {
        self.view.borrow().clone()
    }

    /// A receiver that sees every new view.
    pub fn watch(&self) -> watch::Receiver<Arc<MetaState>> {
        self.view.clone()
    }

    /// Submits `cmd` and waits until this process's view has applied it.
    /// `Err` only when the quorum did not answer in time
    /// ([`MetaError::Unavailable`], retriable); a refusal is `Ok((index,
    /// Err(refusal)))`.
    pub async fn submit(&self, cmd: Command) -> Result<(u64, ApplyResult), MetaError> {
        let (index, result) = match &*self.backend {
            Backend::Local(c) => c.submit(cmd).await?,
            Backend::Remote(r) => r.submit(&cmd).await?,
        };
        self.wait_applied(index).await?;
        Ok((index, result))
    }

    /// [`Metadata::submit`] with the refusal folded into the error.
    pub async fn apply(&self, cmd: Command) -> Result<CommandOutput, MetaError> {
        self.submit(cmd).await?.1
    }

    /// Sends a broker heartbeat to the controller leader.
    pub async fn heartbeat(
        &self,
        hb: super::placement::Heartbeat,
    ) -> Result<super::placement::HeartbeatReply, MetaError> {
        match &*self.backend {
            Backend::Local(c) => c.heartbeat(hb, true).await,
            Backend::Remote(r) => r.heartbeat(&hb).await,
        }
    }

    /// Waits until the view has applied `index`.
    pub async fn wait_applied(&self, index: u64) -> Result<(), MetaError> {
        let mut rx = self.view.clone();
        let r = tokio::time::timeout(self.timeout, rx.wait_for(|v| v.applied_index >= index))
            .await
            .map(|r| r.is_ok());
        match r {
            Ok(true) => Ok(()),
            Ok(false) => Err(unavailable("metadata follower stopped")),
            Err(_) => Err(unavailable(format!(
                "metadata index {index} not applied here within {:?}",
                self.timeout
            ))),
        }
    }
}

/// A broker-only process's connection to the controllers.
struct Remote {
    controllers: Vec<String>,
    client: JsonClient,
    /// Which controller to try first (the last one that answered).
    next: AtomicUsize,
    timeout: Duration,
    /// Highest index a submit here was committed at: a controller whose
    /// log stays behind it is stale (cut off from the leader), so the
    /// follower moves to another one.
    want: std::sync::atomic::AtomicU64,
}

impl Remote {
    fn addr(&self, attempt: usize) -> &str {
        let n = self.controllers.len().max(1);
        &self.controllers[(self.next.load(Ordering::Relaxed) + attempt) % n]
    }

    async fn submit(&self, cmd: &Command) -> Result<(u64, ApplyResult), MetaError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut attempt = 0usize;
        let mut last = String::from("no controller answered");
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(unavailable(last));
            }
            let addr = self.addr(attempt).to_string();
            let r: Result<Result<(u64, ApplyResult), MetaError>, _> = self
                .client
                .call(&addr, "/meta/submit", Some(cmd), left)
                .await;
            match r {
                Ok(Ok(done)) => {
                    self.want.fetch_max(done.0, Ordering::Relaxed);
                    self.next.store(
                        self.controllers
                            .iter()
                            .position(|a| *a == addr)
                            .unwrap_or(0),
                        Ordering::Relaxed,
                    );
                    return Ok(done);
                }
                // The controller itself could not get it committed in its
                // whole deadline: ours is spent too.
                Ok(Err(e)) => return Err(e),
                Err(e) => {
                    last = e.to_string();
                    attempt += 1;
                    if attempt.is_multiple_of(self.controllers.len().max(1)) {
                        tokio::time::sleep(Duration::from_millis(100).min(left)).await;
                    }
                }
            }
        }
    }

    async fn heartbeat(
        &self,
        hb: &super::placement::Heartbeat,
    ) -> Result<super::placement::HeartbeatReply, MetaError> {
        let mut last = String::from("no controller answered");
        for attempt in 0..self.controllers.len().max(1) {
            let addr = self.addr(attempt).to_string();
            let r: Result<Result<super::placement::HeartbeatReply, MetaError>, _> = self
                .client
                .call(&addr, "/meta/heartbeat", Some(hb), Duration::from_secs(1))
                .await;
            match r {
                Ok(r) => return r,
                Err(e) => last = e.to_string(),
            }
        }
        Err(unavailable(last))
    }

    async fn follow(
        self: Arc<Self>,
        tx: watch::Sender<Arc<MetaState>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut state = MetaState::new();
        let mut attempt = 0usize;
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let addr = self.addr(attempt).to_string();
            let path = format!(
                "/meta/log?after={}&wait_ms={FOLLOW_WAIT_MS}",
                state.applied_index
            );
            let call = self.client.call::<(), LogBatch>(
                &addr,
                &path,
                None,
                Duration::from_millis(FOLLOW_WAIT_MS) + FOLLOW_SLACK,
            );
            let r = tokio::select! {
                r = call => r,
                _ = shutdown.changed() => return,
            };
            match r {
                Ok(LogBatch::Commands { commands, applied }) => {
                    failures = 0;
                    let before = state.applied_index;
                    for (index, cmd) in commands {
                        if index > state.applied_index {
                            // Refusals are outputs, identical on every copy.
                            let _ = state.apply_entry(index, (*cmd).clone());
                        }
                    }
                    state.applied_index = state.applied_index.max(applied);
                    if state.applied_index != before {
                        tx.send_replace(Arc::new(state.clone()));
                    } else if state.applied_index < self.want.load(Ordering::Relaxed) {
                        // This controller is behind what was committed.
                        tracing::info!(
                            controller = addr,
                            applied = state.applied_index,
                            "controller is behind the committed log; following another one"
                        );
                        attempt += 1;
                    }
                }
                Ok(LogBatch::State(s)) => {
                    failures = 0;
                    tracing::info!(
                        index = s.applied_index,
                        controller = addr,
                        "loaded metadata state from controller"
                    );
                    state = (*s).clone();
                    tx.send_replace(s);
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(50) {
                        tracing::warn!(controller = addr, error = %e, "cannot follow the metadata log; trying another controller");
                    }
                    attempt += 1;
                    let pause = Duration::from_millis(100 * u64::from(failures.min(10)));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }
}
