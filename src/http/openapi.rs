//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the request/response types' `ToSchema` derives. The API
//! routes are registered through the same `OpenApiRouter`, so a route
//! cannot exist without its documentation (or the reverse). `/docs` is a
//! small self-contained HTML page rendered from the same document: no
//! JavaScript bundle, no network.

use std::sync::Arc;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{admin, consumer, produce, Rest};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Strata HTTP API",
        description = "Produce, consume and administer Strata over HTTP, on the shapes of Confluent's REST Proxy (v3 produce and admin, v2 consumer instances), plus Strata extensions marked as such. Errors are JSON {error_code, message}.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(schemas(super::error::ErrorBody)),
    tags(
        (name = "Records (v3)", description = "Produce; stateless partition reads (Strata extension)"),
        (name = "Admin (v3)", description = "Clusters, brokers, topics, configs, partitions, consumer groups"),
        (name = "Consumers (v2)", description = "Consumer instances backed by the group coordinator")
    )
)]
struct ApiDoc;

/// Every REST API route, with its documentation.
pub fn api_router() -> OpenApiRouter<Arc<Rest>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(produce::produce))
        .routes(routes!(consumer::read_partition))
        .routes(routes!(admin::list_clusters))
        .routes(routes!(admin::get_cluster))
        .routes(routes!(admin::list_brokers))
        .routes(routes!(admin::get_broker))
        .routes(routes!(admin::list_topics, admin::create_topic))
        .routes(routes!(admin::get_topic, admin::delete_topic))
        .routes(routes!(admin::list_configs))
        .routes(routes!(admin::alter_configs))
        .routes(routes!(
            admin::get_config,
            admin::update_config,
            admin::reset_config
        ))
        .routes(routes!(admin::list_partitions))
        .routes(routes!(admin::get_partition))
        .routes(routes!(admin::list_groups))
        .routes(routes!(admin::get_group))
        .routes(routes!(admin::list_group_consumers))
        .routes(routes!(admin::list_group_lags))
        .routes(routes!(admin::list_transactions))
        .routes(routes!(admin::get_transaction))
        .routes(routes!(consumer::create_instance))
        .routes(routes!(consumer::delete_instance))
        .routes(routes!(
            consumer::subscribe,
            consumer::get_subscription,
            consumer::unsubscribe
        ))
        .routes(routes!(
            consumer::assign_partitions,
            consumer::get_assignments
        ))
        .routes(routes!(consumer::seek))
        .routes(routes!(consumer::seek_beginning))
        .routes(routes!(consumer::seek_end))
        .routes(routes!(consumer::commit, consumer::get_committed))
        .routes(routes!(consumer::records))
}

/// `/openapi.json` and `/docs`.
pub fn doc_routes(doc: Arc<utoipa::openapi::OpenApi>) -> Router {
    let json = Arc::new(doc.to_pretty_json().unwrap_or_else(|_| "{}".into()));
    let html = Arc::new(render_html(&doc));
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        (*json).clone(),
                    )
                }
            }),
        )
        .route(
            "/docs",
            get(move || {
                let html = html.clone();
                async move { Html((*html).clone()).into_response() }
            }),
        )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A plain HTML listing of every operation, rendered from the document.
fn render_html(doc: &utoipa::openapi::OpenApi) -> String {
    let mut rows = String::new();
    let value = serde_json::to_value(doc).unwrap_or_default();
    if let Some(paths) = value.get("paths").and_then(|p| p.as_object()) {
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let summary = op
                    .get("summary")
                    .or_else(|| op.get("description"))
                    .and_then(|s| s.as_str())
                    .unwrap_or("");
                let tag = op
                    .get("tags")
                    .and_then(|t| t.get(0))
                    .and_then(|t| t.as_str())
                    .unwrap_or("");
                let statuses = op
                    .get("responses")
                    .and_then(|r| r.as_object())
                    .map(|r| r.keys().cloned().collect::<Vec<_>>().join(" "))
                    .unwrap_or_default();
                rows.push_str(&format!(
                    "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n",
                    esc(tag),
                    esc(&method.to_uppercase()),
                    esc(path),
                    esc(summary),
                    esc(&statuses)
                ));
            }
        }
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style>\
</head><body><h1>{title} {version}</h1><p>{desc}</p>\
<p>The machine-readable OpenAPI 3.1 document: <a href=\"/openapi.json\">/openapi.json</a>. See also docs/http.md.</p>\
<table><tr><th>group</th><th>method</th><th>path</th><th>summary</th><th>statuses</th></tr>\n{rows}</table></body></html>",
        title = esc(&doc.info.title),
        version = esc(&doc.info.version),
        desc = esc(doc.info.description.as_deref().unwrap_or("")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_route() {
        let (_, doc) = api_router().split_for_parts();
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["openapi"], "3.1.0");
        let paths = v["paths"].as_object().unwrap();
        assert!(paths.contains_key("/v3/clusters/{cluster_id}/topics/{topic_name}/records"));
        assert!(paths.contains_key("/consumers/{group_name}/instances/{instance}/records"));
        assert!(paths.len() >= 20, "{}", paths.len());
        let html = render_html(&doc);
        assert!(html.contains("/consumers/{group_name}"));
    }
}
