//! The built-in web console at `/ui`: server-rendered HTML pages over the
//! same code paths as the REST API and `/metrics`, served by every broker
//! from the binary (templates, CSS and the small page script are compiled in
//! with `include_str!`; nothing is loaded from elsewhere).
//!
//! - `html`: escaping, the page frame, formats, SVG charts;
//! - `sampler`: a bounded ring buffer of `/metrics` samples for the charts;
//! - `pages`: overview, topics, a topic, the record browser, consumer
//!   groups, brokers and controllers, object-store cost;
//! - this file: routes, security headers (a strict Content-Security-Policy:
//!   no inline script or style anywhere), CSRF checks of the forms, errors
//!   as HTML pages.
//!
//! State changes (create, delete, alter configs) go through the REST admin
//! handlers (`http::admin`), which go through the Kafka handlers: the
//! validation and errors are those of Kafka clients.

pub mod html;
pub mod pages;
pub mod sampler;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::broker::Broker;
use crate::http::error::ApiError;
use crate::http::{HttpState, Rest};

/// The Content-Security-Policy of every console response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// Errors of the console, shown as an HTML page with their status.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    /// An error of the REST/Kafka code path, with its status.
    #[error("{}", .0.message)]
    Api(ApiError),
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Api(e)
    }
}

impl ConsoleError {
    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::Api(e) => e.status,
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "console request failed");
        } else {
            tracing::debug!(error = %self, %status, "console request refused");
        }
        let title = status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<p class=\"error\" role=\"alert\"><strong>{} {}</strong>: {}</p>\n<p><a href=\"/ui\">Back to the overview</a></p>",
            status.as_u16(),
            html::esc(title),
            html::esc(&self.to_string())
        );
        (status, HtmlPage(html::page(title, "", false, &body))).into_response()
    }
}

/// Result of a console handler.
pub type ConsoleResult<T> = Result<T, ConsoleError>;

/// An HTML response body.
pub struct HtmlPage(pub String);

impl IntoResponse for HtmlPage {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], self.0).into_response()
    }
}

/// State of the console routes.
pub struct Console {
    pub broker: Arc<Broker>,
    pub rest: Arc<Rest>,
    pub sampler: Arc<sampler::Sampler>,
    /// Per-process token every form carries (CSRF).
    pub csrf_token: String,
}

impl Console {
    /// Checks a state-changing form: the token must match and, when the
    /// browser names the origin (Origin, else Referer), it must be this
    /// host.
    pub fn check_form(&self, headers: &HeaderMap, token: &str) -> ConsoleResult<()> {
        if !same_origin(headers) {
            return Err(ConsoleError::Forbidden(
                "cross-origin form submission refused".into(),
            ));
        }
        if !constant_time_eq(token.as_bytes(), self.csrf_token.as_bytes()) {
            return Err(ConsoleError::Forbidden(
                "missing or stale form token: reload the page and try again".into(),
            ));
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `host[:port]` of an `http(s)://host[:port]/...` URL.
fn url_authority(u: &str) -> Option<&str> {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))?;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(""))
}

/// Whether Origin (or, without it, Referer) names the Host the request was
/// sent to. A request with neither (not a browser) passes; the token still
/// has to match.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let named = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    match named {
        None => true,
        Some(v) => {
            !host.is_empty() && url_authority(v).is_some_and(|a| a.eq_ignore_ascii_case(host))
        }
    }
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        JS,
    )
}

async fn not_found(uri: axum::http::Uri) -> ConsoleError {
    ConsoleError::NotFound(format!("no console page at {}", uri.path()))
}

/// The console's routes under `/ui`, for `http::router` to merge. Starts the
/// sampler.
pub fn router<S: Clone + Send + Sync + 'static>(state: HttpState) -> Router<S> {
    let sampler = Arc::new(sampler::Sampler::new(sampler::POINTS, sampler::MAX_SERIES));
    sampler::start(&state.broker, sampler.clone());
    let console = Arc::new(Console {
        rest: Rest::new(state.broker.clone(), state.ready.clone()),
        broker: state.broker,
        sampler,
        csrf_token: uuid::Uuid::new_v4().simple().to_string(),
    });
    Router::new()
        .route("/ui", get(pages::overview))
        .route("/ui/", get(pages::overview))
        .route("/ui/topics", get(pages::topics).post(pages::create_topic))
        .route("/ui/topics/{name}", get(pages::topic))
        .route("/ui/topics/{name}/records", get(pages::records))
        .route(
            "/ui/topics/{name}/delete",
            get(pages::delete_confirm).post(pages::delete_topic),
        )
        .route(
            "/ui/topics/{name}/configs",
            axum::routing::post(pages::alter_config),
        )
        .route("/ui/groups", get(pages::groups))
        .route("/ui/group", get(pages::group))
        .route("/ui/brokers", get(pages::brokers))
        .route("/ui/cost", get(pages::cost))
        .route("/ui/assets/console.css", get(css))
        .route("/ui/assets/console.js", get(js))
        .route("/ui/{*rest}", get(not_found))
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origin_checks() {
        let host = (header::HOST, "127.0.0.1:8080");
        assert!(same_origin(&hdrs(std::slice::from_ref(&host))));
        assert!(same_origin(&hdrs(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&hdrs(&[
            host.clone(),
            (header::ORIGIN, "http://evil.example")
        ])));
        assert!(!same_origin(&hdrs(&[
            host.clone(),
            (header::ORIGIN, "null")
        ])));
        assert!(same_origin(&hdrs(&[
            host.clone(),
            (header::REFERER, "http://127.0.0.1:8080/ui/topics?x=1")
        ])));
        assert!(!same_origin(&hdrs(&[
            host.clone(),
            (header::REFERER, "http://127.0.0.1:8080.evil.example/ui")
        ])));
        assert!(!same_origin(&hdrs(&[(header::ORIGIN, "http://a")])));
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn error_pages_escape_and_keep_status() {
        let r = ConsoleError::NotFound("topic <x> not found".into()).into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let e = ConsoleError::Api(ApiError::bad_request("bad"));
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.to_string(), "bad");
    }
}
