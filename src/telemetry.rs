//! Logs and spans: text on stderr filtered by `RUST_LOG` (default
//! `info,openraft=warn`),
//! and, with `--otlp-endpoint`, spans exported over OTLP/HTTP (protobuf)
//! filtered by `STRATA_OTLP_FILTER` (default `info,strata=debug`, which
//! includes the per-partition spans of produce and fetch).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Default filter of exported spans.
pub const DEFAULT_OTLP_FILTER: &str = "info,strata=debug";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("{var}: {message}")]
    Filter { var: &'static str, message: String },
    #[error("--otlp-endpoint {endpoint}: cannot build the OTLP exporter: {message}")]
    Exporter { endpoint: String, message: String },
    #[error("cannot install the tracing subscriber: {0}")]
    Install(String),
}

/// Where spans go besides stderr.
pub struct Otlp<'a> {
    /// Collector base URL; `/v1/traces` is appended unless the URL already
    /// names a path.
    pub endpoint: &'a str,
    pub service_name: &'a str,
}

/// Keeps the exporter alive; dropping it flushes the spans still queued.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("warning: flushing spans to the OTLP collector failed: {e}");
            }
        }
    }
}

fn filter(var: &'static str, default: &str) -> Result<EnvFilter, TelemetryError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(&v).map_err(|e| TelemetryError::Filter {
                var,
                message: format!("invalid filter {v:?}: {e}"),
            })
        }
        _ => Ok(EnvFilter::new(default)),
    }
}

/// The traces URL of a collector base URL.
pub fn traces_url(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    let has_path = e
        .split_once("://")
        .map(|(_, rest)| rest.contains('/'))
        .unwrap_or(false);
    if has_path {
        e.to_string()
    } else {
        format!("{e}/v1/traces")
    }
}

/// Install the global subscriber. Call once, before the runtime starts.
pub fn init(otlp: Option<Otlp<'_>>) -> Result<Telemetry, TelemetryError> {
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter("RUST_LOG", "info,openraft=warn")?);
    let Some(o) = otlp else {
        tracing_subscriber::registry()
            .with(fmt)
            .try_init()
            .map_err(|e| TelemetryError::Install(e.to_string()))?;
        return Ok(Telemetry { provider: None });
    };
    let url = traces_url(o.endpoint);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: url.clone(),
            message: e.to_string(),
        })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(o.service_name.to_string())
                .build(),
        )
        .build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("strata"))
        .with_filter(filter("STRATA_OTLP_FILTER", DEFAULT_OTLP_FILTER)?);
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::Install(e.to_string()))?;
    Ok(Telemetry {
        provider: Some(provider),
    })
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn traces_url_appends_the_signal_path_only_to_a_base_url() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example/custom/traces"),
            "https://otel.example/custom/traces"
        );
    }
}
