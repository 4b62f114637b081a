//! HTTP interface: health (`/healthz`), readiness (`/readyz`, 200 once the
//! Kafka listener serves), Prometheus metrics (`/metrics`), and the REST
//! produce/consume API on Confluent REST Proxy's shapes (see docs/http.md):
//!
//! - `produce`: v3 produce, single or streamed records, acks selectable;
//! - `admin`: v3 clusters, brokers, topics, configs, partitions, groups;
//! - `consumer`: v2 consumer instances on the real group coordinator, and a
//!   stateless partition read (Strata extension);
//! - `openapi`: the OpenAPI 3.1 document (`/openapi.json`), generated from
//!   the handlers' annotations, and an offline `/docs` page;
//! - `error`: every error as `{error_code, message}` with its HTTP status;
//! - `access`: authentication (`--http-auth`) and the ACL checks.
//!
//! Everything Kafka-side goes through `Broker::append` or
//! `kafka::dispatch`, exactly the paths Kafka clients take.

pub mod access;
pub mod admin;
pub mod codec;
pub mod consumer;
pub mod error;
pub mod openapi;
pub mod produce;
pub mod serve;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::broker::Broker;
use error::{ApiError, ApiResult, BodyLimit};

/// Concurrent REST API requests (streams included); more get 429.
const MAX_CONCURRENT_REQUESTS: usize = 1024;

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct HttpState {
    pub broker: Arc<Broker>,
    pub ready: Arc<AtomicBool>,
    /// The broker's security settings (authorizer, JWT validator).
    pub security: Arc<crate::auth::Security>,
}

/// State of the REST API routes.
pub struct Rest {
    pub broker: Arc<Broker>,
    pub ready: Arc<AtomicBool>,
    /// Largest JSON body (and largest record of a streamed produce).
    pub body_limit: usize,
    /// Round-robin partition of null-key records.
    pub round_robin: AtomicU32,
    pub consumers: consumer::Consumers,
    inflight: Arc<tokio::sync::Semaphore>,
}

impl Rest {
    pub fn new(broker: Arc<Broker>, ready: Arc<AtomicBool>) -> Arc<Rest> {
        let c = &broker.config;
        let rest = Arc::new(Rest {
            body_limit: c.http_max_body_bytes,
            consumers: consumer::Consumers::new(
                std::time::Duration::from_millis(c.http_consumer_idle_timeout_ms),
                c.http_max_consumer_instances,
            ),
            round_robin: AtomicU32::new(0),
            inflight: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_REQUESTS)),
            broker,
            ready,
        });
        consumer::start_reaper(&rest);
        rest
    }

    /// 404 unless `id` is this cluster's id.
    pub fn check_cluster(&self, id: &str) -> ApiResult<()> {
        if id == self.broker.cluster_id {
            Ok(())
        } else {
            Err(ApiError::with_code(
                StatusCode::NOT_FOUND,
                error::rest_code::CLUSTER_NOT_FOUND,
                format!("cluster not found: {id}"),
            ))
        }
    }

    /// A slot among the concurrent requests: 429 when all are taken, 503
    /// while starting or shutting down.
    pub fn permit(&self) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
        if !self.ready.load(Ordering::Acquire) || self.broker.is_shutting_down() {
            return Err(ApiError::unavailable("broker is starting or shutting down"));
        }
        self.inflight.clone().try_acquire_owned().map_err(|_| {
            ApiError::too_many(format!(
                "more than {MAX_CONCURRENT_REQUESTS} concurrent requests"
            ))
        })
    }
}

/// The router.
pub fn router(state: HttpState) -> Router {
    let c = &state.broker.config;
    let gate = Arc::new(access::Gate {
        auth: crate::auth::http::HttpAuth::new(
            crate::auth::config::http_auth(c).unwrap_or_default(),
            c.metrics_auth,
            c.http_tls_client_ca.is_some(),
            state.security.clone(),
        ),
        broker: state.broker.clone(),
    });
    let rest = Rest::new(state.broker.clone(), state.ready.clone());
    let limit = rest.body_limit;
    let (api, doc) = openapi::api_router().split_for_parts();
    let doc = Arc::new(doc);
    let api = api
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::Extension(BodyLimit(limit)))
        .with_state(rest);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/admin/drain", post(drain))
        .merge(crate::console::router(state.clone()))
        .with_state(state)
        .merge(openapi::doc_routes(doc))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(gate, access::gate))
}

/// What the HTTP port serves from the moment it is bound: until `app` is
/// set (the broker has opened, registered with the controllers and
/// recovered its partitions, which waits on them and on the object store)
/// `/healthz` answers 200, as the process runs, and every other path 503
/// with `{"status": "starting", ...}`, so probes and users see why instead
/// of a connection nobody answers; then every request goes to `app`.
pub fn starting_router(app: Arc<std::sync::OnceLock<Router>>) -> Router {
    use tower::ServiceExt;
    Router::new().fallback(move |req: axum::extract::Request| {
        let app = app.clone();
        async move {
            match app.get() {
                Some(r) => r
                    .clone()
                    .oneshot(req)
                    .await
                    .unwrap_or_else(|e| match e {}),
                None if req.uri().path() == "/healthz" => healthz().await.into_response(),
                None => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({
                        "status": "starting",
                        "error_code": 503,
                        "message": "the broker is starting: it serves once it has registered with the controllers and recovered its partitions",
                    })),
                )
                    .into_response(),
            }
        }
    })
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    if s.broker.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining: partitions handed to other brokers"})),
        );
    }
    if s.broker.wal().commit_stalled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "wal commits failing: the controller quorum is not committing"})),
        );
    }
    if !s.broker.wal().healthy() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"status": "wal uploads failing: the object store is not accepting writes"}),
            ),
        );
    }
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "starting"})),
        )
    }
}

/// `POST /admin/drain` (`strata drain`, a Kubernetes preStop hook): hand
/// this broker's partitions and group coordinators to the others now.
async fn drain(State(s): State<HttpState>) -> impl IntoResponse {
    let alone = !s
        .broker
        .meta()
        .brokers
        .values()
        .any(|b| b.broker_id != s.broker.broker_id && !b.fenced);
    let led = s.broker.drain().await;
    let status = match (led, alone) {
        (0, _) => "drained",
        (_, true) => "alone",
        _ => "incomplete",
    };
    Json(json!({
        "status": status,
        "broker_id": s.broker.broker_id,
        "partitions_led": led,
    }))
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    let body = s.broker.metrics.render(&s.broker);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error_code": 404, "message": "not found"})),
    )
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"error_code": 405, "message": "method not allowed"})),
    )
}

/// The router of a controller-only node: health, readiness (a controller
/// leader is known) and metrics.
pub fn controller_router(controller: Arc<crate::controller::Controller>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/readyz",
            get(
                |State(c): State<Arc<crate::controller::Controller>>| async move {
                    if c.has_leader() {
                        (StatusCode::OK, Json(json!({"status": "ready"})))
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(json!({"status": "no controller leader"})),
                        )
                    }
                },
            ),
        )
        .route(
            "/metrics",
            get(
                |State(c): State<Arc<crate::controller::Controller>>| async move {
                    let mut body = String::new();
                    c.render_metrics(&mut body);
                    crate::metrics::render_process(&mut body);
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        body,
                    )
                },
            ),
        )
        .with_state(controller)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}
