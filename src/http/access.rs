//! Authentication and authorization of HTTP requests: a middleware that
//! names the request's principal (`auth::http`), answers 401 (with
//! `WWW-Authenticate`) or 403 as JSON, and runs the handler as that
//! principal, so the in-process Kafka calls are authorized by the same ACL
//! authorizer as Kafka clients; and the checks of the routes that read the
//! metadata or append directly (produce needs WRITE on the topic, topic
//! reads DESCRIBE, configs DESCRIBE_CONFIGS / ALTER_CONFIGS, groups
//! DESCRIBE).
//!
//! `/healthz` and `/readyz` are always open; `/metrics` unless
//! `--metrics-auth`. Without `--http-auth` requests run as `User:ANONYMOUS`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ApiResult};
use crate::auth::acl::{op, resource, CLUSTER_NAME};
use crate::auth::http::{HttpAuth, HttpAuthError};
use crate::auth::Session;
use crate::broker::Broker;

/// The principal of a verified client certificate (HTTPS with a client CA).
#[derive(Debug, Clone)]
pub struct ClientCert(pub String);

/// State of the middleware.
pub struct Gate {
    pub auth: HttpAuth,
    pub broker: Arc<Broker>,
}

fn open(path: &str, metrics_auth: bool) -> bool {
    path == "/healthz" || path == "/readyz" || (path == "/metrics" && !metrics_auth)
}

/// The cluster operation a non-Kafka route needs, if any.
fn cluster_operation(method: &Method, path: &str) -> Option<i8> {
    if path == "/admin/drain" {
        return Some(op::CLUSTER_ACTION);
    }
    if path == "/ui" || path.starts_with("/ui/") {
        return (method == Method::GET).then_some(op::DESCRIBE);
    }
    None
}

/// The middleware.
pub async fn gate(State(g): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if open(&path, g.auth.metrics_auth) {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let security = g.auth.security.clone();
    let principal = if g.auth.required() {
        let cert = req.extensions().get::<ClientCert>().map(|c| c.0.clone());
        let meta = g.broker.meta();
        let result = g
            .auth
            .authenticate(
                req.headers()
                    .get(header::AUTHORIZATION)
                    .map(|v| v.as_bytes()),
                cert.as_deref(),
                peer.map(|p| p.ip()),
                |u, m| meta.security.credential(u, m).cloned(),
            )
            .await;
        match result {
            Ok(p) => p,
            Err(HttpAuthError::Throttled) => {
                return ApiError::too_many(HttpAuthError::Throttled.to_string()).into_response()
            }
            Err(e) => {
                let mut r = ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()).into_response();
                if let Ok(v) = HeaderValue::from_str(&g.auth.challenge()) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                return r;
            }
        }
    } else {
        "User:ANONYMOUS".to_string()
    };
    let session = Session::http(&principal, peer, security);
    if let Some(operation) = cluster_operation(req.method(), &path) {
        if !crate::auth::session_allowed(
            &session,
            &g.broker,
            operation,
            resource::CLUSTER,
            CLUSTER_NAME,
        ) {
            return forbidden(&session, "the cluster").into_response();
        }
    }
    crate::auth::http::scope(session, next.run(req)).await
}

fn forbidden(session: &Session, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "{} is not authorized to access {what}",
            session.principal().unwrap_or_default()
        ),
    )
}

/// May the request's principal do `operation` on the resource? (Always,
/// outside an HTTP request scope or with `--authorizer none`.)
pub fn can(b: &Broker, operation: i8, resource_type: i8, name: &str) -> bool {
    match crate::auth::http::current() {
        Some(s) => crate::auth::session_allowed(&s, b, operation, resource_type, name),
        None => true,
    }
}

/// 403 unless [`can`].
pub fn check(b: &Broker, operation: i8, resource_type: i8, name: &str) -> ApiResult<()> {
    let Some(s) = crate::auth::http::current() else {
        return Ok(());
    };
    if crate::auth::session_allowed(&s, b, operation, resource_type, name) {
        return Ok(());
    }
    let what = match resource_type {
        resource::TOPIC => format!("topic {name}"),
        resource::GROUP => format!("group {name}"),
        resource::TRANSACTIONAL_ID => format!("transactional id {name}"),
        _ => "the cluster".to_string(),
    };
    Err(forbidden(&s, &what))
}

/// The connection-level gate of the Kafka APIs (`auth::api_allowed`):
/// an API without per-resource checks needs `ALL` on the cluster, over
/// HTTP as over Kafka.
pub fn check_api(b: &Broker, api: kafka_protocol::messages::ApiKey) -> ApiResult<()> {
    let Some(s) = crate::auth::http::current() else {
        return Ok(());
    };
    if !s.security.authorizer.enabled
        || crate::auth::checked_per_resource(api)
        || crate::auth::session_allowed(&s, b, op::ALL, resource::CLUSTER, CLUSTER_NAME)
    {
        return Ok(());
    }
    Err(forbidden(&s, "the cluster"))
}

/// [`check`] on a topic.
pub fn check_topic(b: &Broker, operation: i8, topic: &str) -> ApiResult<()> {
    check(b, operation, resource::TOPIC, topic)
}

/// Spawn `f` as the current request's principal (a task that outlives
/// the request, e.g. a consumer instance's membership).
pub fn spawn<F>(f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match crate::auth::http::current() {
        Some(s) => tokio::spawn(crate::auth::http::scope(s, f)),
        None => tokio::spawn(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_routes_and_cluster_routes() {
        assert!(open("/healthz", true) && open("/readyz", true));
        assert!(open("/metrics", false) && !open("/metrics", true));
        assert!(!open("/v3/clusters", false));
        assert_eq!(
            cluster_operation(&Method::POST, "/admin/drain"),
            Some(op::CLUSTER_ACTION)
        );
        assert_eq!(
            cluster_operation(&Method::GET, "/ui/topics"),
            Some(op::DESCRIBE)
        );
        assert_eq!(cluster_operation(&Method::GET, "/v3/clusters"), None);
    }
}
