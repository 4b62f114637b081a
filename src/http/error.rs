//! Errors of the REST API: one JSON shape, `{"error_code", "message"}`, as
//! Confluent's REST Proxy answers, with the HTTP status that fits. The
//! `error_code` is the HTTP status, or a REST Proxy code (status × 100 + n)
//! where REST Proxy has a more precise one (40401 unknown topic, 40402 unknown
//! partition, 40403 unknown consumer instance, 40902 instance exists).

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// REST Proxy's specific error codes used here.
pub mod rest_code {
    pub const TOPIC_NOT_FOUND: i32 = 40401;
    pub const PARTITION_NOT_FOUND: i32 = 40402;
    pub const CONSUMER_INSTANCE_NOT_FOUND: i32 = 40403;
    pub const CLUSTER_NOT_FOUND: i32 = 40404;
    pub const GROUP_NOT_FOUND: i32 = 40405;
    pub const CONSUMER_ALREADY_EXISTS: i32 = 40902;
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// HTTP status, or a REST Proxy code (status × 100 + n).
    pub error_code: i32,
    /// What went wrong, with the values at fault.
    pub message: String,
}

/// An error answered as JSON with its HTTP status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: i32,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: status.as_u16() as i32,
            message: message.into(),
        }
    }
    pub fn with_code(status: StatusCode, code: i32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, m)
    }
    pub fn unknown_topic(topic: &str) -> ApiError {
        ApiError::with_code(
            StatusCode::NOT_FOUND,
            rest_code::TOPIC_NOT_FOUND,
            format!("topic not found: {topic}"),
        )
    }
    pub fn unknown_partition(topic: &str, p: i32) -> ApiError {
        ApiError::with_code(
            StatusCode::NOT_FOUND,
            rest_code::PARTITION_NOT_FOUND,
            format!("partition not found: {topic}-{p}"),
        )
    }
    pub fn conflict(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, m)
    }
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than the limit of {limit} bytes (--http-max-body-bytes)"),
        )
    }
    pub fn unsupported_media(got: &str, want: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Type {got:?}, expected {want}"),
        )
    }
    pub fn too_many(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, m)
    }
    pub fn unavailable(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m)
    }
    pub fn internal(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error_code: self.code,
            message: self.message.clone(),
        }
    }

    /// Map a Kafka error code returned by a handler to an HTTP error.
    pub fn from_kafka(code: i16, what: &str) -> ApiError {
        use StatusCode as S;
        let (status, name) = match code {
            1 => (S::BAD_REQUEST, "OFFSET_OUT_OF_RANGE"),
            3 => (S::NOT_FOUND, "UNKNOWN_TOPIC_OR_PARTITION"),
            7 => (S::SERVICE_UNAVAILABLE, "REQUEST_TIMED_OUT"),
            10 => (S::PAYLOAD_TOO_LARGE, "MESSAGE_TOO_LARGE"),
            14..=16 => (S::SERVICE_UNAVAILABLE, "COORDINATOR_NOT_AVAILABLE"),
            17 => (S::BAD_REQUEST, "INVALID_TOPIC_EXCEPTION"),
            22 => (S::CONFLICT, "ILLEGAL_GENERATION"),
            25 => (S::CONFLICT, "UNKNOWN_MEMBER_ID"),
            27 => (S::CONFLICT, "REBALANCE_IN_PROGRESS"),
            28 => (S::BAD_REQUEST, "INVALID_COMMIT_OFFSET_SIZE"),
            29 => (S::FORBIDDEN, "TOPIC_AUTHORIZATION_FAILED"),
            30 => (S::FORBIDDEN, "GROUP_AUTHORIZATION_FAILED"),
            31 => (S::FORBIDDEN, "CLUSTER_AUTHORIZATION_FAILED"),
            53 => (S::FORBIDDEN, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"),
            36 => (S::CONFLICT, "TOPIC_ALREADY_EXISTS"),
            37 => (S::BAD_REQUEST, "INVALID_PARTITIONS"),
            38 => (S::BAD_REQUEST, "INVALID_REPLICATION_FACTOR"),
            40 => (S::BAD_REQUEST, "INVALID_CONFIG"),
            42 => (S::BAD_REQUEST, "INVALID_REQUEST"),
            56 => (S::SERVICE_UNAVAILABLE, "KAFKA_STORAGE_ERROR"),
            68 => (S::CONFLICT, "NON_EMPTY_GROUP"),
            69 => (S::NOT_FOUND, "GROUP_ID_NOT_FOUND"),
            87 => (S::BAD_REQUEST, "INVALID_RECORD"),
            _ => (S::INTERNAL_SERVER_ERROR, "KAFKA_ERROR"),
        };
        ApiError::new(status, format!("{what}: {name} (kafka error {code})"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A refused body may not have been read to its end: close the
        // connection explicitly so the client does not reuse it and race
        // the server closing it.
        let unread_body = matches!(
            self.status,
            StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::UNSUPPORTED_MEDIA_TYPE
                | StatusCode::REQUEST_TIMEOUT
        );
        let mut r = (self.status, Json(self.body())).into_response();
        if unread_body {
            r.headers_mut().insert(
                header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        r
    }
}

/// Result of a REST handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// Whether a Content-Type is a JSON one this API accepts: `application/json`
/// or any of REST Proxy's `application/vnd.kafka[...]+json` types.
pub fn is_json_content_type(ct: &str) -> bool {
    let base = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    base == "application/json"
        || (base.starts_with("application/vnd.kafka") && base.ends_with("+json"))
}

/// Check the Content-Type of a request with a body.
pub fn check_json_content_type(headers: &HeaderMap) -> ApiResult<()> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if is_json_content_type(ct) {
        Ok(())
    } else {
        Err(ApiError::unsupported_media(
            ct,
            "application/json or application/vnd.kafka.v2+json",
        ))
    }
}

/// A JSON body: Content-Type checked (415), size bounded by the router's
/// body limit (413), parse errors answered 400, never a panic. An empty body
/// is `None` (allowed for a few REST Proxy calls, e.g. commit of all
/// fetched offsets).
pub struct JsonBody<T>(pub Option<T>);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_ct = req.headers().contains_key(header::CONTENT_TYPE);
        let ct_ok = check_json_content_type(req.headers());
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(0);
        let bytes = tokio::time::timeout(
            BODY_READ_TIMEOUT,
            axum::body::Bytes::from_request(req, state),
        )
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("body not received within {BODY_READ_TIMEOUT:?}"),
            )
        })?
        .map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(limit)
            } else {
                ApiError::bad_request(format!("cannot read body: {r}"))
            }
        })?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(JsonBody(None));
        }
        if has_ct || !bytes.is_empty() {
            ct_ok?;
        }
        serde_json::from_slice(&bytes)
            .map(|v| JsonBody(Some(v)))
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Longest time to receive a JSON body: a client that stalls mid-body
/// cannot hold the request forever.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The configured body limit, put into request extensions so rejections can
/// name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("application/json; charset=utf-8"));
        assert!(is_json_content_type("application/vnd.kafka.v2+json"));
        assert!(is_json_content_type("application/vnd.kafka.binary.v2+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type(""));
    }

    #[test]
    fn kafka_codes_map_to_statuses() {
        assert_eq!(ApiError::from_kafka(3, "x").status, StatusCode::NOT_FOUND);
        assert_eq!(ApiError::from_kafka(27, "x").status, StatusCode::CONFLICT);
        assert_eq!(
            ApiError::from_kafka(7, "x").status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
