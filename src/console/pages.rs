//! The console's pages. Reads come from the metadata snapshot, the REST
//! admin handlers (`http::admin`), `groups::lag::group_lag` (the function
//! behind the `kafka_consumergroup_lag` metric) and the broker's metrics
//! exposition; writes go through the REST admin handlers, which go through
//! the Kafka handlers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use kafka_protocol::messages::{self as km, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::html::{self, esc, pct, Shown};
use super::sampler::{self, series_key, Snapshot};
use super::{Console, ConsoleError, ConsoleResult, HtmlPage};
use crate::http::admin;
use crate::http::codec;
use crate::http::consumer::{self, Format};
use crate::http::error::JsonBody;
use crate::meta::topic_config::TopicConfig;

/// Records the browser shows at most.
pub const MAX_RECORDS: usize = 500;
/// Record bytes (keys, values, headers) the browser reads at most per page.
pub const MAX_READ_BYTES: usize = 4 << 20;
/// Bytes of one key, value or header shown at most.
pub const MAX_SHOWN_BYTES: usize = 4096;
/// Partitions the browser reads at once ("all partitions") at most.
pub const MAX_BROWSE_PARTITIONS: usize = 64;
/// Rows of the group list at most.
const MAX_GROUP_ROWS: usize = 1000;
/// Per-partition lag charts on a group's page at most.
const MAX_LAG_CHARTS: usize = 8;

type Params = Query<HashMap<String, String>>;

fn param<'a>(q: &'a HashMap<String, String>, k: &str) -> Option<&'a str> {
    q.get(k).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn cluster(c: &Console) -> String {
    c.broker.cluster_id.clone()
}

fn csrf_field(c: &Console) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&c.csrf_token)
    )
}

/// Fresh exposition of this broker, as `/metrics` renders it now.
async fn snapshot(c: &Console) -> Snapshot {
    Snapshot::parse(&sampler::render_metrics(&c.broker).await)
}

fn table_wrap(id: &str, live: bool, caption: &str, head: &[&str], rows: &str) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<div class=\"table-wrap\" id=\"{}\"{}><table>\n<caption>{}</caption>\n<thead><tr>",
        esc(id),
        if live { " data-live" } else { "" },
        caption
    );
    for h in head {
        let _ = write!(o, "<th scope=\"col\">{h}</th>");
    }
    let _ = write!(o, "</tr></thead>\n<tbody>\n{rows}</tbody></table></div>\n");
    o
}

// ---------------------------------------------------------------- overview

/// Controller quorum status: in-process when this node is a controller,
/// else asked from the configured voters (first that answers).
async fn controller_status(c: &Console) -> Option<crate::controller::Status> {
    if let Some(ctl) = c.broker.metadata().controller() {
        return Some(ctl.status());
    }
    let quorum = c.broker.config.controller_quorum.as_deref()?;
    let voters = crate::controller::parse_quorum(quorum).ok()?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(1))
        .build()
        .ok()?;
    for addr in voters.values() {
        let url = format!("http://{addr}/controller/status");
        let Ok(r) = client.get(&url).send().await else {
            continue;
        };
        let Ok(text) = r.text().await else { continue };
        if let Ok(s) = serde_json::from_str::<crate::controller::Status>(&text) {
            return Some(s);
        }
    }
    None
}

/// Roles, addresses and states of one node.
type NodeRow<'a> = (BTreeSet<&'a str>, Vec<String>, Vec<String>);

/// `GET /ui`: the cluster at a glance.
pub async fn overview(State(c): State<Arc<Console>>) -> ConsoleResult<HtmlPage> {
    let meta = c.broker.meta();
    let status = controller_status(&c).await;
    let live = meta.brokers.values().filter(|b| !b.fenced).count();
    let partitions: usize = meta.topics.values().map(|t| t.partitions.len()).sum();
    let leader = status
        .as_ref()
        .and_then(|s| s.leader)
        .map_or_else(|| "unknown".to_string(), |l| format!("node {l}"));
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<dl class=\"facts\">\
         <div><dt>Cluster id</dt><dd><code>{}</code></dd></div>\
         <div><dt>This node</dt><dd>{} ({})</dd></div>\
         <div><dt>Controller leader</dt><dd>{}</dd></div>\
         <div><dt>Live brokers</dt><dd>{live} of {}</dd></div>\
         <div><dt>Topics</dt><dd><a href=\"/ui/topics\">{}</a> ({partitions} partitions)</dd></div>\
         <div><dt>Consumer groups</dt><dd><a href=\"/ui/groups\">{}</a></dd></div>\
         </dl>",
        esc(&cluster(&c)),
        c.broker.broker_id,
        esc(&c.broker.config.roles),
        esc(&leader),
        meta.brokers.len(),
        meta.topics.len(),
        meta.groups.groups.len(),
    );
    // Nodes: brokers from the metadata, controllers from the quorum.
    let mut nodes: BTreeMap<i64, NodeRow> = BTreeMap::new();
    for b in meta.brokers.values() {
        let e = nodes.entry(i64::from(b.broker_id)).or_default();
        e.0.insert("broker");
        e.1.push(format!("{}:{}", b.host, b.port));
        e.2.push(if b.fenced { "fenced" } else { "live" }.to_string());
    }
    if let Some(s) = &status {
        for n in &s.nodes {
            let e = nodes.entry(n.id as i64).or_default();
            e.0.insert("controller");
            e.1.push(n.address.clone());
            let role = if s.leader == Some(n.id) {
                "controller leader"
            } else if s.voters.contains(&n.id) {
                "voter"
            } else {
                "learner"
            };
            e.2.push(role.to_string());
        }
    }
    let mut rows = String::new();
    for (id, (roles, addrs, states)) in &nodes {
        let roles: Vec<&str> = roles.iter().copied().collect();
        let _ = writeln!(
            rows,
            "<tr><td>{id}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&roles.join(", ")),
            esc(&addrs.join(", ")),
            esc(&states.join(", "))
        );
    }
    body.push_str("<h2>Nodes</h2>\n");
    body.push_str(&table_wrap(
        "nodes",
        true,
        "Nodes with their roles",
        &["Node", "Roles", "Addresses", "State"],
        &rows,
    ));
    if status.is_none() {
        body.push_str("<p class=\"note\">The controller quorum did not answer; controllers are not listed.</p>\n");
    }
    body.push_str("<h2>Traffic of this broker</h2>\n<div class=\"charts\">\n");
    let s = &c.sampler;
    body.push_str(&html::chart(
        "chart-produce",
        "Produce",
        &s.rate_sum("strata_bytes_in_total"),
        &html::mbps,
    ));
    body.push_str(&html::chart(
        "chart-consume",
        "Consume",
        &s.rate_sum("strata_bytes_out_total"),
        &html::mbps,
    ));
    body.push_str(&html::chart(
        "chart-requests",
        "Kafka requests",
        &s.rate_sum("strata_requests_total{"),
        &html::per_sec,
    ));
    body.push_str(&html::chart(
        "chart-records",
        "Records in",
        &s.rate_sum("strata_records_in_total"),
        &html::per_sec,
    ));
    body.push_str("</div>\n");
    Ok(HtmlPage(html::page("Overview", "/ui", true, &body)))
}

// ------------------------------------------------------------------ topics

/// Bytes of a topic in object storage (committed extents) and on this
/// broker's disk (local segments).
fn topic_sizes(c: &Console, t: &crate::meta::Topic) -> (Vec<u64>, Vec<u64>) {
    let remote = t
        .partitions
        .iter()
        .map(|p| p.extents.iter().map(|e| e.byte_len).sum())
        .collect();
    let handle = c.broker.topic(&t.name);
    let local = (0..t.partitions.len())
        .map(|i| {
            handle
                .as_ref()
                .and_then(|h| h.partition(i as i32))
                .map_or(0, |p| p.log.size_bytes())
        })
        .collect();
    (remote, local)
}

fn retention(cfg: &TopicConfig) -> String {
    let bytes = if cfg.retention_bytes < 0 {
        "unlimited".to_string()
    } else {
        html::bytes(cfg.retention_bytes as f64)
    };
    format!("{} / {}", html::duration_ms(cfg.retention_ms), bytes)
}

fn cleanup(cfg: &TopicConfig) -> &'static str {
    match (cfg.cleanup_policy_delete, cfg.cleanup_policy_compact) {
        (true, true) => "compact,delete",
        (false, true) => "compact",
        (true, false) => "delete",
        (false, false) => "none",
    }
}

/// Values of the create form, kept when it is shown again with an error.
#[derive(Default)]
struct CreateForm {
    name: String,
    partitions: String,
    configs: String,
}

fn topics_page(c: &Console, error: Option<(StatusCode, String)>, form: &CreateForm) -> Response {
    let meta = c.broker.meta();
    let defaults = c.broker.broker_defaults();
    let mut rows = String::new();
    for t in meta.topics.values() {
        let (remote, local) = topic_sizes(c, t);
        let cfg = TopicConfig::resolve(&t.configs, defaults);
        let _ = writeln!(
            rows,
            "<tr><th scope=\"row\"><a href=\"/ui/topics/{}\">{}</a></th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            pct(&t.name),
            esc(&t.name),
            t.partitions.len(),
            html::bytes(remote.iter().sum::<u64>() as f64),
            html::bytes(local.iter().sum::<u64>() as f64),
            esc(&retention(&cfg)),
            cleanup(&cfg),
        );
    }
    if meta.topics.is_empty() {
        rows.push_str("<tr><td colspan=\"6\">No topics yet.</td></tr>\n");
    }
    let mut body = String::new();
    if let Some((status, msg)) = &error {
        let _ = writeln!(
            body,
            "<p class=\"error\" role=\"alert\" id=\"form-error\"><strong>{} {}</strong>: {}</p>",
            status.as_u16(),
            esc(status.canonical_reason().unwrap_or("")),
            esc(msg)
        );
    }
    body.push_str(&table_wrap(
        "topics",
        true,
        "Topics (local disk: this broker)",
        &[
            "Topic",
            "Partitions",
            "Object storage",
            "Local disk",
            "Retention (time / size)",
            "Cleanup policy",
        ],
        &rows,
    ));
    let _ = write!(
        body,
        "<h2 id=\"create\">Create a topic</h2>\n\
         <form method=\"post\" action=\"/ui/topics\" class=\"form\">\n{}\n\
         <p><label for=\"topic-name\">Name</label>\
         <input id=\"topic-name\" name=\"name\" required maxlength=\"249\" pattern=\"[a-zA-Z0-9._\\-]+\" value=\"{}\" autocomplete=\"off\"></p>\n\
         <p><label for=\"topic-partitions\">Partitions</label>\
         <input id=\"topic-partitions\" name=\"partitions\" inputmode=\"numeric\" value=\"{}\" placeholder=\"broker default ({})\"></p>\n\
         <p><label for=\"topic-configs\">Configs, one <code>name=value</code> per line</label>\
         <textarea id=\"topic-configs\" name=\"configs\" rows=\"3\" placeholder=\"retention.ms=86400000\">{}</textarea></p>\n\
         <p><button type=\"submit\">Create topic</button></p>\n</form>\n",
        csrf_field(c),
        esc(&form.name),
        esc(&form.partitions),
        c.broker.config.num_partitions,
        esc(&form.configs),
    );
    let status = error.map_or(StatusCode::OK, |e| e.0);
    (
        status,
        HtmlPage(html::page("Topics", "/ui/topics", true, &body)),
    )
        .into_response()
}

/// `GET /ui/topics`.
pub async fn topics(State(c): State<Arc<Console>>) -> Response {
    topics_page(&c, None, &CreateForm::default())
}

/// Parses `name=value` lines of the create form.
pub fn parse_config_lines(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.push((k.trim().to_string(), v.trim().to_string()))
            }
            _ => return Err(format!("config line {} is not name=value: {line:?}", i + 1)),
        }
        if out.len() > 100 {
            return Err("more than 100 configs".into());
        }
    }
    Ok(out)
}

/// `POST /ui/topics`: create through the REST handler (CreateTopics).
pub async fn create_topic(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    c.check_form(&headers, f.get("csrf").map_or("", |s| s.as_str()))?;
    let form = CreateForm {
        name: f
            .get("name")
            .cloned()
            .unwrap_or_default()
            .trim()
            .to_string(),
        partitions: f
            .get("partitions")
            .cloned()
            .unwrap_or_default()
            .trim()
            .to_string(),
        configs: f.get("configs").cloned().unwrap_or_default(),
    };
    let bad = |m: String| Ok(topics_page(&c, Some((StatusCode::BAD_REQUEST, m)), &form));
    let partitions = if form.partitions.is_empty() {
        None
    } else {
        match form.partitions.parse::<i32>() {
            Ok(n) => Some(n),
            Err(_) => {
                return bad(format!(
                    "partitions must be a whole number, got {:?}",
                    form.partitions
                ))
            }
        }
    };
    let configs = match parse_config_lines(&form.configs) {
        Ok(c) => c,
        Err(e) => return bad(e),
    };
    let body = admin::CreateTopic {
        topic_name: form.name.clone(),
        partitions_count: partitions,
        replication_factor: None,
        configs: configs
            .into_iter()
            .map(|(name, value)| admin::ConfigEntry {
                name,
                value: Some(value),
            })
            .collect(),
        validate_only: false,
    };
    let r = admin::create_topic(
        State(c.rest.clone()),
        Path(cluster(&c)),
        HeaderMap::new(),
        JsonBody(Some(body)),
    )
    .await;
    match r {
        Ok(_) => {
            tracing::info!(topic = %form.name, "topic created from the console");
            Ok(Redirect::to(&format!("/ui/topics/{}?created=1", pct(&form.name))).into_response())
        }
        Err(e) => Ok(topics_page(&c, Some((e.status, e.message)), &form)),
    }
}

fn unknown_topic(name: &str) -> ConsoleError {
    ConsoleError::NotFound(format!("topic not found: {name}"))
}

/// `GET /ui/topics/{name}`.
pub async fn topic(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    Query(q): Params,
) -> ConsoleResult<HtmlPage> {
    let meta = c.broker.meta();
    let t = meta.topic(&name).ok_or_else(|| unknown_topic(&name))?;
    let (remote, local) = topic_sizes(&c, t);
    let cfg = TopicConfig::resolve(&t.configs, c.broker.broker_defaults());
    let mut body = String::new();
    if param(&q, "created").is_some() {
        body.push_str("<p class=\"ok\" role=\"status\">Topic created.</p>\n");
    }
    if let Some(k) = param(&q, "altered") {
        let _ = writeln!(
            body,
            "<p class=\"ok\" role=\"status\">Config <code>{}</code> updated.</p>",
            esc(k)
        );
    }
    let _ = write!(
        body,
        "<dl class=\"facts\">\
         <div><dt>Topic id</dt><dd><code>{}</code></dd></div>\
         <div><dt>Partitions</dt><dd>{}</dd></div>\
         <div><dt>Object storage</dt><dd>{}</dd></div>\
         <div><dt>Local disk (this broker)</dt><dd>{}</dd></div>\
         <div><dt>Retention (time / size)</dt><dd>{}</dd></div>\
         <div><dt>Cleanup policy</dt><dd>{}</dd></div>\
         </dl>\n<p class=\"actions\"><a class=\"button\" href=\"/ui/topics/{}/records\">Browse records</a> \
         <a class=\"button danger\" href=\"/ui/topics/{}/delete\">Delete topic…</a></p>\n",
        t.topic_id,
        t.partitions.len(),
        html::bytes(remote.iter().sum::<u64>() as f64),
        html::bytes(local.iter().sum::<u64>() as f64),
        esc(&retention(&cfg)),
        cleanup(&cfg),
        pct(&name),
        pct(&name),
    );
    body.push_str("<h2>Throughput on this broker</h2>\n<div class=\"charts\">\n");
    let k_in = series_key("strata_topic_bytes_in_total", &[("topic", &name)]);
    let k_out = series_key("strata_topic_bytes_out_total", &[("topic", &name)]);
    let k_rec = series_key("strata_topic_records_in_total", &[("topic", &name)]);
    body.push_str(&html::chart(
        "chart-topic-in",
        "Produce",
        &c.sampler.rate_sum(&k_in),
        &html::mbps,
    ));
    body.push_str(&html::chart(
        "chart-topic-out",
        "Consume",
        &c.sampler.rate_sum(&k_out),
        &html::mbps,
    ));
    body.push_str(&html::chart(
        "chart-topic-records",
        "Records in",
        &c.sampler.rate_sum(&k_rec),
        &html::per_sec,
    ));
    body.push_str("</div>\n<h2>Partitions</h2>\n");
    let mut rows = String::new();
    for (i, p) in t.partitions.iter().enumerate() {
        let _ = writeln!(
            rows,
            "<tr><th scope=\"row\">{i}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            p.leader,
            p.leader_epoch,
            p.log_start_offset,
            p.committed_end,
            html::bytes(remote[i] as f64),
            html::bytes(local[i] as f64),
        );
    }
    body.push_str(&table_wrap(
        "partitions",
        true,
        "Partitions",
        &[
            "Partition",
            "Leader",
            "Leader epoch",
            "Start offset",
            "End offset",
            "Object storage",
            "Local disk",
        ],
        &rows,
    ));
    // Configs through the REST handler (DescribeConfigs).
    let configs = admin::list_configs(
        State(c.rest.clone()),
        Path((cluster(&c), name.clone())),
        HeaderMap::new(),
    )
    .await?
    .0
    .data;
    let mut rows = String::new();
    let mut names = String::new();
    for e in &configs {
        let _ = writeln!(
            rows,
            "<tr><th scope=\"row\"><code>{}</code></th><td>{}</td><td>{}</td></tr>",
            esc(&e.name),
            esc(e.value.as_deref().unwrap_or("")),
            esc(&e.source)
        );
        let _ = write!(names, "<option value=\"{}\"></option>", esc(&e.name));
    }
    body.push_str("<h2>Configs</h2>\n");
    body.push_str(&table_wrap(
        "configs",
        false,
        "Configs",
        &["Name", "Value", "Source"],
        &rows,
    ));
    let _ = write!(
        body,
        "<h3>Alter a config</h3>\n<form method=\"post\" action=\"/ui/topics/{}/configs\" class=\"form\">\n{}\n\
         <p><label for=\"cfg-name\">Name</label><input id=\"cfg-name\" name=\"config\" list=\"cfg-names\" required autocomplete=\"off\"><datalist id=\"cfg-names\">{names}</datalist></p>\n\
         <p><label for=\"cfg-value\">Value</label><input id=\"cfg-value\" name=\"value\" autocomplete=\"off\"></p>\n\
         <fieldset><legend>Operation</legend>\
         <label><input type=\"radio\" name=\"operation\" value=\"SET\" checked> Set</label> \
         <label><input type=\"radio\" name=\"operation\" value=\"DELETE\"> Reset to default</label></fieldset>\n\
         <p><button type=\"submit\">Apply</button></p>\n</form>\n",
        pct(&name),
        csrf_field(&c),
    );
    body.push_str(&browse_form(&name, t.partitions.len(), &HashMap::new()));
    Ok(HtmlPage(html::page(
        &format!("Topic {name}"),
        "/ui/topics",
        true,
        &body,
    )))
}

/// `POST /ui/topics/{name}/configs`: IncrementalAlterConfigs through the REST
/// handler.
pub async fn alter_config(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    c.check_form(&headers, f.get("csrf").map_or("", |s| s.as_str()))?;
    let config = param(&f, "config")
        .ok_or_else(|| ConsoleError::BadRequest("config name is empty".into()))?
        .to_string();
    let op = param(&f, "operation").unwrap_or("SET").to_ascii_uppercase();
    let value = f.get("value").map(|v| v.trim().to_string());
    let change = admin::AlterConfig {
        name: config.clone(),
        value: if op == "DELETE" { None } else { value },
        operation: Some(op),
    };
    admin::alter_configs(
        State(c.rest.clone()),
        Path((cluster(&c), name.clone())),
        JsonBody(Some(admin::AlterConfigs {
            data: vec![change],
            validate_only: false,
        })),
    )
    .await?;
    tracing::info!(topic = %name, config = %config, "topic config altered from the console");
    Ok(Redirect::to(&format!(
        "/ui/topics/{}?altered={}",
        pct(&name),
        pct(&config)
    ))
    .into_response())
}

/// `GET /ui/topics/{name}/delete`: the confirmation form.
pub async fn delete_confirm(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
) -> ConsoleResult<HtmlPage> {
    if c.broker.meta().topic(&name).is_none() {
        return Err(unknown_topic(&name));
    }
    let body = format!(
        "<p class=\"warning\">Deleting <strong>{}</strong> removes all its records for every client. This cannot be undone.</p>\n\
         <form method=\"post\" action=\"/ui/topics/{}/delete\" class=\"form\">\n{}\n\
         <p><label for=\"confirm\">Type the topic name to confirm</label>\
         <input id=\"confirm\" name=\"confirm\" required autocomplete=\"off\"></p>\n\
         <p><button type=\"submit\" class=\"danger\">Delete topic</button> <a href=\"/ui/topics/{}\">Cancel</a></p>\n</form>\n",
        esc(&name),
        pct(&name),
        csrf_field(&c),
        pct(&name),
    );
    Ok(HtmlPage(html::page(
        &format!("Delete topic {name}"),
        "/ui/topics",
        false,
        &body,
    )))
}

/// `POST /ui/topics/{name}/delete`: DeleteTopics through the REST handler,
/// once the typed name matches.
pub async fn delete_topic(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    c.check_form(&headers, f.get("csrf").map_or("", |s| s.as_str()))?;
    if f.get("confirm").map(|s| s.trim()) != Some(name.as_str()) {
        return Err(ConsoleError::BadRequest(format!(
            "the typed name does not match: type {name} to delete the topic"
        )));
    }
    admin::delete_topic(State(c.rest.clone()), Path((cluster(&c), name.clone()))).await?;
    tracing::info!(topic = %name, "topic deleted from the console");
    Ok(Redirect::to("/ui/topics").into_response())
}

// ---------------------------------------------------------- record browser

fn browse_form(name: &str, partitions: usize, q: &HashMap<String, String>) -> String {
    let sel = |k: &str, v: &str, default: bool| {
        let on = match param(q, k) {
            Some(x) => x == v,
            None => default,
        };
        if on {
            " selected"
        } else {
            ""
        }
    };
    let chk = |k: &str, v: &str, default: bool| {
        let on = match param(q, k) {
            Some(x) => x == v,
            None => default,
        };
        if on {
            " checked"
        } else {
            ""
        }
    };
    let mut parts = format!(
        "<option value=\"all\"{}>all</option>",
        sel("partition", "all", true)
    );
    for p in 0..partitions.min(10_000) {
        let _ = write!(
            parts,
            "<option value=\"{p}\"{}>{p}</option>",
            sel("partition", &p.to_string(), false)
        );
    }
    let val = |k: &str| esc(param(q, k).unwrap_or(""));
    format!(
        "<h2 id=\"browse\">Record browser</h2>\n<form method=\"get\" action=\"/ui/topics/{}/records\" class=\"form browse\">\n\
         <p><label for=\"rb-partition\">Partition</label><select id=\"rb-partition\" name=\"partition\">{parts}</select></p>\n\
         <fieldset><legend>From</legend>\
         <label><input type=\"radio\" name=\"mode\" value=\"newest\"{}> newest</label> \
         <label><input type=\"radio\" name=\"mode\" value=\"offset\"{}> offset</label> \
         <label><input type=\"radio\" name=\"mode\" value=\"timestamp\"{}> timestamp</label></fieldset>\n\
         <p><label for=\"rb-n\">Records (at most {MAX_RECORDS})</label><input id=\"rb-n\" name=\"n\" inputmode=\"numeric\" value=\"{}\"></p>\n\
         <p><label for=\"rb-offset\">Offset</label><input id=\"rb-offset\" name=\"offset\" inputmode=\"numeric\" value=\"{}\"></p>\n\
         <p><label for=\"rb-ts\">Timestamp (ms since the epoch or UTC date-time)</label><input id=\"rb-ts\" name=\"timestamp\" value=\"{}\" placeholder=\"2024-05-01T12:00:00Z\"></p>\n\
         <p><label for=\"rb-format\">Show as</label><select id=\"rb-format\" name=\"format\">\
         <option value=\"text\"{}>text</option><option value=\"json\"{}>JSON</option><option value=\"hex\"{}>hex</option></select></p>\n\
         <p><button type=\"submit\">Show records</button></p>\n</form>\n",
        pct(name),
        chk("mode", "newest", true),
        chk("mode", "offset", false),
        chk("mode", "timestamp", false),
        esc(param(q, "n").unwrap_or("20")),
        val("offset"),
        val("timestamp"),
        sel("format", "text", true),
        sel("format", "json", false),
        sel("format", "hex", false),
    )
}

/// Parses a timestamp: milliseconds since the epoch, RFC 3339, or a UTC
/// date-time without zone (`2024-05-01T12:00` from a datetime input).
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    codec::parse_rfc3339_ms(s).or_else(|| match s.len() {
        16 => codec::parse_rfc3339_ms(&format!("{s}:00Z")),
        19 => codec::parse_rfc3339_ms(&format!("{s}Z")),
        _ => None,
    })
}

/// Where to start reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum From {
    Newest,
    Offset(i64),
    Timestamp(i64),
}

/// A browse request after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Browse {
    /// None: all partitions.
    pub partition: Option<i32>,
    pub from: From,
    pub n: usize,
    pub shown: Shown,
}

/// Validates the record browser's query (4xx messages, never a panic).
pub fn parse_browse(q: &HashMap<String, String>, partitions: usize) -> Result<Browse, String> {
    let partition = match param(q, "partition") {
        None | Some("all") => None,
        Some(p) => match p.parse::<i32>() {
            Ok(p) if p >= 0 && (p as usize) < partitions => Some(p),
            _ => {
                return Err(format!(
                    "partition must be all or 0..{} (the topic has {partitions}), got {p:?}",
                    partitions.saturating_sub(1)
                ))
            }
        },
    };
    let n = match param(q, "n") {
        None => 20,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_RECORDS).contains(&n) => n,
            _ => {
                return Err(format!(
                    "n must be a number from 1 to {MAX_RECORDS}, got {s:?}"
                ))
            }
        },
    };
    let from = match param(q, "mode").unwrap_or("newest") {
        "newest" => From::Newest,
        "offset" => {
            let s = param(q, "offset").unwrap_or("");
            match s.parse::<i64>() {
                Ok(o) if o >= 0 => From::Offset(o),
                _ => return Err(format!("offset must be a number >= 0, got {s:?}")),
            }
        }
        "timestamp" => {
            let s = param(q, "timestamp").unwrap_or("");
            match parse_time(s) {
                Some(t) => From::Timestamp(t),
                None => {
                    return Err(format!(
                        "timestamp must be milliseconds since the epoch or a UTC date-time like 2024-05-01T12:00:00Z, got {s:?}"
                    ))
                }
            }
        }
        m => {
            return Err(format!(
                "mode must be newest, offset or timestamp, got {m:?}"
            ))
        }
    };
    let shown = Shown::parse(param(q, "format")).ok_or_else(|| {
        format!(
            "format must be text, json or hex, got {:?}",
            param(q, "format").unwrap_or("")
        )
    })?;
    if partition.is_none() && partitions > MAX_BROWSE_PARTITIONS {
        return Err(format!(
            "the topic has {partitions} partitions: choose one (all is offered up to {MAX_BROWSE_PARTITIONS})"
        ));
    }
    Ok(Browse {
        partition,
        from,
        n,
        shown,
    })
}

/// One record read for the browser.
pub struct Row {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

fn unb64(v: &serde_json::Value) -> Option<Vec<u8>> {
    v.as_str().and_then(|s| codec::b64_decode(s).ok())
}

/// Offsets of the first records at or after `ts`, per partition (ListOffsets
/// through the Kafka handler); -1 where there is none.
async fn offsets_for_time(
    c: &Console,
    topic: &str,
    parts: &[i32],
    ts: i64,
) -> ConsoleResult<BTreeMap<i32, i64>> {
    let req = km::ListOffsetsRequest::default()
        .with_replica_id(km::BrokerId(-1))
        .with_topics(vec![km::list_offsets_request::ListOffsetsTopic::default()
            .with_name(km::TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                parts
                    .iter()
                    .map(|p| {
                        km::list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(ts)
                    })
                    .collect(),
            )]);
    let Some(ResponseKind::ListOffsets(r)) =
        consumer::call(&c.broker, 4, RequestKind::ListOffsets(req)).await
    else {
        return Err(crate::http::error::ApiError::internal("ListOffsets gave no answer").into());
    };
    let mut out = BTreeMap::new();
    for t in r.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                return Err(crate::http::error::ApiError::from_kafka(
                    p.error_code,
                    &format!("offset for time in {topic}-{}", p.partition_index),
                )
                .into());
            }
            out.insert(p.partition_index, p.offset);
        }
    }
    Ok(out)
}

/// Reads up to `n` records of one partition from `offset` (Fetch through the
/// Kafka handler, as the REST partition read does), within `budget` bytes.
async fn read_partition(
    c: &Console,
    topic: &str,
    partition: i32,
    mut offset: i64,
    end: i64,
    n: usize,
    budget: &mut usize,
) -> ConsoleResult<Vec<Row>> {
    let mut out: Vec<Row> = Vec::new();
    while out.len() < n && offset < end && *budget > 0 {
        let f = consumer::fetch(
            &c.broker,
            &[(topic.to_string(), partition, offset)],
            (*budget).min(1 << 20),
            0,
            n - out.len(),
            Format::Binary,
        )
        .await?;
        let Some(f) = f.into_iter().next() else { break };
        match f.error {
            0 => {}
            1 => {
                return Err(ConsoleError::BadRequest(format!(
                    "offset {offset} is out of range for {topic}-{partition}"
                )))
            }
            code => {
                return Err(crate::http::error::ApiError::from_kafka(code, "Fetch").into());
            }
        }
        if f.records.is_empty() && f.next <= offset {
            break;
        }
        offset = f.next;
        for r in f.records {
            let key = unb64(&r.key);
            let value = unb64(&r.value);
            let headers: Vec<(String, Option<Vec<u8>>)> = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.key.clone(),
                        h.value.as_deref().and_then(|v| codec::b64_decode(v).ok()),
                    )
                })
                .collect();
            let size = key.as_ref().map_or(0, Vec::len)
                + value.as_ref().map_or(0, Vec::len)
                + headers
                    .iter()
                    .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                    .sum::<usize>();
            *budget = budget.saturating_sub(size.max(1));
            out.push(Row {
                partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key,
                value,
                headers,
            });
        }
    }
    Ok(out)
}

/// `GET /ui/topics/{name}/records`: the record browser.
pub async fn records(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    Query(q): Params,
) -> ConsoleResult<Response> {
    let meta = c.broker.meta();
    let t = meta.topic(&name).ok_or_else(|| unknown_topic(&name))?;
    let nparts = t.partitions.len();
    let form = browse_form(&name, nparts, &q);
    let b = match parse_browse(&q, nparts) {
        Ok(b) => b,
        Err(m) => {
            let body = format!(
                "<p class=\"error\" role=\"alert\"><strong>400 Bad Request</strong>: {}</p>\n{form}",
                esc(&m)
            );
            let page = html::page(&format!("Records of {name}"), "/ui/topics", false, &body);
            return Ok((StatusCode::BAD_REQUEST, HtmlPage(page)).into_response());
        }
    };
    let _permit = c.rest.permit()?;
    let parts: Vec<i32> = match b.partition {
        Some(p) => vec![p],
        None => (0..nparts as i32).collect(),
    };
    let by_time = match b.from {
        From::Timestamp(ts) => Some(offsets_for_time(&c, &name, &parts, ts).await?),
        _ => None,
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut notes = Vec::new();
    let mut budget = MAX_READ_BYTES;
    for p in &parts {
        let pm = &t.partitions[*p as usize];
        let (start, end) = (pm.log_start_offset, pm.committed_end);
        let from = match b.from {
            From::Newest => end.saturating_sub(b.n as i64).max(start),
            From::Offset(o) => {
                if o > end {
                    return Err(ConsoleError::BadRequest(format!(
                        "offset {o} is beyond the end offset {end} of partition {p}"
                    )));
                }
                if o < start {
                    notes.push(format!(
                        "partition {p} starts at offset {start}: reading from there"
                    ));
                }
                o.max(start)
            }
            From::Timestamp(_) => {
                let o = by_time
                    .as_ref()
                    .and_then(|m| m.get(p))
                    .copied()
                    .unwrap_or(-1);
                if o < 0 {
                    end
                } else {
                    o.max(start)
                }
            }
        };
        rows.extend(read_partition(&c, &name, *p, from, end, b.n, &mut budget).await?);
        if budget == 0 {
            notes.push(format!(
                "stopped after {} of record bytes",
                html::bytes(MAX_READ_BYTES as f64)
            ));
            break;
        }
    }
    match b.from {
        From::Newest => rows.sort_by(|a, b| {
            (b.timestamp, b.partition, b.offset).cmp(&(a.timestamp, a.partition, a.offset))
        }),
        _ => rows.sort_by_key(|r| (r.timestamp, r.partition, r.offset)),
    }
    rows.truncate(b.n);
    let mut body = String::new();
    for n in &notes {
        let _ = writeln!(body, "<p class=\"note\">{}</p>", esc(n));
    }
    let mut trs = String::new();
    for r in &rows {
        let mut hs = String::new();
        for (k, v) in &r.headers {
            let _ = write!(
                hs,
                "<li><span class=\"hkey\">{}</span>: <span class=\"hval\">{}</span></li>",
                esc(k),
                html::record_bytes(v.as_deref(), b.shown, MAX_SHOWN_BYTES)
            );
        }
        let _ = writeln!(
            trs,
            "<tr data-partition=\"{}\" data-offset=\"{}\"><td class=\"num\">{}</td><td class=\"num\">{}</td><td><time datetime=\"{ts}\">{ts}</time><br><span class=\"note\">{}</span></td>\
             <td><pre class=\"key\">{}</pre></td><td><pre class=\"value\">{}</pre></td><td>{}</td></tr>",
            r.partition,
            r.offset,
            r.partition,
            r.offset,
            r.timestamp,
            html::record_bytes(r.key.as_deref(), b.shown, MAX_SHOWN_BYTES),
            html::record_bytes(r.value.as_deref(), b.shown, MAX_SHOWN_BYTES),
            if hs.is_empty() {
                String::new()
            } else {
                format!("<ul class=\"headers\">{hs}</ul>")
            },
            ts = codec::format_rfc3339_ms(r.timestamp),
        );
    }
    if rows.is_empty() {
        trs.push_str("<tr><td colspan=\"6\">No records.</td></tr>\n");
    }
    let what = match b.from {
        From::Newest => format!("Newest {} records", rows.len()),
        From::Offset(o) => format!("{} records from offset {o}", rows.len()),
        From::Timestamp(ts) => format!(
            "{} records from {}",
            rows.len(),
            codec::format_rfc3339_ms(ts)
        ),
    };
    body.push_str(&table_wrap(
        "records",
        false,
        &format!("{} (shown as {})", esc(&what), b.shown.name()),
        &[
            "Partition",
            "Offset",
            "Timestamp",
            "Key",
            "Value",
            "Headers",
        ],
        &trs,
    ));
    let _ = write!(
        body,
        "<p><a href=\"/ui/topics/{}\">Back to topic {}</a></p>\n{form}",
        pct(&name),
        esc(&name)
    );
    Ok(HtmlPage(html::page(
        &format!("Records of {name}"),
        "/ui/topics",
        false,
        &body,
    ))
    .into_response())
}

// ------------------------------------------------------------------ groups

/// `GET /ui/groups`: ListGroups through the REST handler, lag from
/// `group_lag`.
pub async fn groups(State(c): State<Arc<Console>>) -> ConsoleResult<HtmlPage> {
    let mut list = admin::list_groups(State(c.rest.clone()), Path(cluster(&c)), HeaderMap::new())
        .await?
        .0
        .data;
    list.sort_by(|a, b| a.consumer_group_id.cmp(&b.consumer_group_id));
    let total = list.len();
    let mut rows = String::new();
    for g in list.iter().take(MAX_GROUP_ROWS) {
        let lag = crate::groups::lag::group_lag(&c.broker, &g.consumer_group_id);
        let known: Vec<i64> = lag.iter().filter(|l| l.lag >= 0).map(|l| l.lag).collect();
        let _ = writeln!(
            rows,
            "<tr><th scope=\"row\"><a href=\"/ui/group?id={}\">{}</a></th><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\" data-lag>{}</td></tr>",
            pct(&g.consumer_group_id),
            esc(&g.consumer_group_id),
            esc(&g.state),
            if g.is_simple { "simple" } else { "consumer" },
            lag.len(),
            if known.is_empty() { "-".to_string() } else { known.iter().sum::<i64>().to_string() },
        );
    }
    if list.is_empty() {
        rows.push_str("<tr><td colspan=\"5\">No consumer groups.</td></tr>\n");
    }
    let mut body = String::new();
    if total > MAX_GROUP_ROWS {
        let _ = writeln!(
            body,
            "<p class=\"note\">First {MAX_GROUP_ROWS} of {total} groups.</p>"
        );
    }
    body.push_str(&table_wrap(
        "groups",
        true,
        "Consumer groups",
        &["Group", "State", "Type", "Committed partitions", "Lag"],
        &rows,
    ));
    Ok(HtmlPage(html::page(
        "Consumer groups",
        "/ui/groups",
        true,
        &body,
    )))
}

/// `GET /ui/group?id=G`: members, assignment and lag per partition (as
/// `strata group describe` prints them).
pub async fn group(State(c): State<Arc<Console>>, Query(q): Params) -> ConsoleResult<HtmlPage> {
    let id = q
        .get("id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConsoleError::BadRequest("which group? (?id=GROUP)".into()))?
        .clone();
    let path = Path((cluster(&c), id.clone()));
    let g = admin::get_group(State(c.rest.clone()), path, HeaderMap::new())
        .await?
        .0;
    let members = admin::list_group_consumers(
        State(c.rest.clone()),
        Path((cluster(&c), id.clone())),
        HeaderMap::new(),
    )
    .await?
    .0
    .data;
    let lag = crate::groups::lag::group_lag(&c.broker, &id);
    let meta = c.broker.meta();
    // Owner of each assigned partition.
    let mut owner: BTreeMap<(String, i32), usize> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        for a in &m.assignments {
            owner.insert((a.topic_name.clone(), a.partition_id), i);
        }
    }
    let committed: BTreeMap<(String, i32), &crate::groups::lag::PartitionLag> = lag
        .iter()
        .map(|l| ((l.topic.clone(), l.partition), l))
        .collect();
    let keys: BTreeSet<(String, i32)> = committed.keys().chain(owner.keys()).cloned().collect();
    let mut rows = String::new();
    let mut total = 0i64;
    for k in &keys {
        let l = committed.get(k);
        let end = match l {
            Some(l) if l.end >= 0 => Some(l.end),
            Some(_) => None,
            None => meta
                .topics
                .get(&k.0)
                .and_then(|t| t.partitions.get(k.1 as usize))
                .map(|p| p.committed_end),
        };
        let lag_v = l.filter(|l| l.lag >= 0).map(|l| l.lag);
        total += lag_v.unwrap_or(0);
        let m = owner.get(k).map(|i| &members[*i]);
        let _ = writeln!(
            rows,
            "<tr data-topic=\"{}\" data-partition=\"{}\"><td><a href=\"/ui/topics/{}\">{}</a></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\" data-lag>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&k.0),
            k.1,
            pct(&k.0),
            esc(&k.0),
            k.1,
            l.map_or("-".into(), |l| l.committed.to_string()),
            end.map_or("-".into(), |e| e.to_string()),
            lag_v.map_or("-".into(), |v| v.to_string()),
            esc(m.map_or("-", |m| m.consumer_id.as_str())),
            esc(m.map_or("-", |m| m.client_id.as_str())),
        );
    }
    if keys.is_empty() {
        rows.push_str("<tr><td colspan=\"7\">No committed offsets and no assignment.</td></tr>\n");
    }
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<dl class=\"facts\" id=\"group-facts\" data-live>\
         <div><dt>State</dt><dd id=\"group-state\">{}</dd></div>\
         <div><dt>Assignor</dt><dd>{}</dd></div>\
         <div><dt>Members</dt><dd>{}</dd></div>\
         <div><dt>Total lag</dt><dd id=\"group-lag\">{total}</dd></div>\
         </dl>",
        esc(&g.state),
        esc(if g.partition_assignor.is_empty() {
            "-"
        } else {
            &g.partition_assignor
        }),
        members.len(),
    );
    body.push_str("<div class=\"charts\">\n");
    let prefix = {
        let k = series_key("kafka_consumergroup_lag", &[("consumergroup", &id)]);
        format!("{},", &k[..k.len() - 1])
    };
    body.push_str(&html::chart(
        "chart-group-lag",
        "Total lag (records)",
        &c.sampler.values_sum(&prefix),
        &|v| html::num(v, 0),
    ));
    for (i, l) in lag.iter().take(MAX_LAG_CHARTS).enumerate() {
        let p = l.partition.to_string();
        let k = series_key(
            "kafka_consumergroup_lag",
            &[
                ("consumergroup", &id),
                ("topic", &l.topic),
                ("partition", &p),
            ],
        );
        body.push_str(&html::chart(
            &format!("chart-lag-{i}"),
            &format!("Lag {}-{}", l.topic, l.partition),
            &c.sampler.values(&k),
            &|v| html::num(v, 0),
        ));
    }
    body.push_str("</div>\n<h2>Lag per partition</h2>\n");
    body.push_str(&table_wrap(
        "lag",
        true,
        "Committed offset, log end offset and lag per partition",
        &[
            "Topic",
            "Partition",
            "Current offset",
            "Log end offset",
            "Lag",
            "Consumer id",
            "Client id",
        ],
        &rows,
    ));
    let mut mrows = String::new();
    for m in &members {
        let a: Vec<String> = m
            .assignments
            .iter()
            .map(|a| format!("{}-{}", a.topic_name, a.partition_id))
            .collect();
        let _ = writeln!(
            mrows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.consumer_id),
            esc(m.instance_id.as_deref().unwrap_or("-")),
            esc(&m.client_id),
            esc(&a.join(" ")),
        );
    }
    if members.is_empty() {
        mrows.push_str("<tr><td colspan=\"4\">No members.</td></tr>\n");
    }
    body.push_str("<h2>Members</h2>\n");
    body.push_str(&table_wrap(
        "members",
        true,
        "Members and their assignment",
        &["Consumer id", "Instance id", "Client id", "Assignment"],
        &mrows,
    ));
    Ok(HtmlPage(html::page(
        &format!("Group {id}"),
        "/ui/groups",
        true,
        &body,
    )))
}

// ----------------------------------------------------------------- brokers

/// `GET /ui/brokers`: brokers with leases and leadership counts,
/// controllers, WAL commit latency and object-store errors.
pub async fn brokers(State(c): State<Arc<Console>>) -> ConsoleResult<HtmlPage> {
    let meta = c.broker.meta();
    let snap = snapshot(&c).await;
    let status = controller_status(&c).await;
    let mut led: BTreeMap<i32, usize> = BTreeMap::new();
    for t in meta.topics.values() {
        for p in &t.partitions {
            *led.entry(p.leader).or_default() += 1;
        }
    }
    let mut rows = String::new();
    for b in meta.brokers.values() {
        let me = b.broker_id == c.broker.broker_id;
        let lease = if b.fenced {
            "fenced (lease expired or shut down)".to_string()
        } else if me {
            if c.broker.has_lease() {
                "held (valid on this broker)".to_string()
            } else {
                "registered, lease not valid here".to_string()
            }
        } else {
            "held".to_string()
        };
        let _ = writeln!(
            rows,
            "<tr><th scope=\"row\">{}{}</th><td>{}:{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            b.broker_id,
            if me { " (this)" } else { "" },
            esc(&b.host),
            b.port,
            esc(b.rack.as_deref().unwrap_or("-")),
            b.epoch,
            esc(&lease),
            led.get(&b.broker_id).copied().unwrap_or(0),
        );
    }
    let mut body = String::from("<h2>Brokers</h2>\n");
    body.push_str(&table_wrap(
        "brokers",
        true,
        "Registered brokers",
        &[
            "Broker",
            "Address",
            "Rack",
            "Epoch",
            "Lease",
            "Partitions led",
        ],
        &rows,
    ));
    body.push_str("<h2>Controllers</h2>\n");
    match &status {
        Some(s) => {
            let mut rows = String::new();
            for n in &s.nodes {
                let role = if s.leader == Some(n.id) {
                    "leader"
                } else if s.voters.contains(&n.id) {
                    "voter"
                } else {
                    "learner"
                };
                let _ = writeln!(
                    rows,
                    "<tr><th scope=\"row\">{}</th><td>{}</td><td>{role}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    n.id,
                    esc(&n.address),
                    n.matched_index.map_or("-".into(), |m| m.to_string()),
                    n.lag.map_or("-".into(), |m| m.to_string()),
                );
            }
            let _ = writeln!(
                body,
                "<p>Term {}, applied index {} (as node {} sees it, {}).</p>",
                s.term,
                s.applied_index,
                s.node_id,
                esc(&s.state)
            );
            body.push_str(&table_wrap(
                "controllers",
                true,
                "Controller quorum",
                &["Node", "Address", "Role", "Matched index", "Lag (entries)"],
                &rows,
            ));
        }
        None => body.push_str("<p class=\"note\">The controller quorum did not answer.</p>\n"),
    }
    let commits = snap
        .get("strata_wal_commit_duration_seconds_count", &[])
        .unwrap_or(0.0);
    let commit_sum = snap
        .get("strata_wal_commit_duration_seconds_sum", &[])
        .unwrap_or(0.0);
    let store_errors = snap.sum("strata_object_store_requests_total", &[("status", "error")]);
    let _ = write!(
        body,
        "<h2>This broker</h2>\n<dl class=\"facts\" id=\"broker-facts\" data-live>\
         <div><dt>Lease valid</dt><dd>{}</dd></div>\
         <div><dt>Partitions led</dt><dd>{}</dd></div>\
         <div><dt>WAL commits</dt><dd>{}</dd></div>\
         <div><dt>Mean WAL commit latency</dt><dd>{} ms</dd></div>\
         <div><dt>Object-store errors</dt><dd id=\"store-errors\">{}</dd></div>\
         </dl>\n<div class=\"charts\">\n",
        if snap.get("strata_broker_lease_valid", &[]) == Some(1.0) {
            "yes"
        } else {
            "no"
        },
        html::num(snap.get("strata_partitions_led", &[]).unwrap_or(0.0), 0),
        html::num(commits, 0),
        html::num(
            if commits > 0.0 {
                commit_sum / commits * 1000.0
            } else {
                0.0
            },
            2
        ),
        html::num(store_errors, 0),
    );
    body.push_str(&html::chart(
        "chart-wal-commit",
        "WAL commit latency (mean per interval)",
        &c.sampler.mean_per_interval(
            "strata_wal_commit_duration_seconds_sum",
            "strata_wal_commit_duration_seconds_count",
        ),
        &|v| format!("{} ms", html::num(v * 1000.0, 2)),
    ));
    body.push_str(&html::chart(
        "chart-store-errors",
        "Object-store errors",
        &store_error_rate(&c, &snap),
        &html::per_sec,
    ));
    body.push_str("</div>\n");
    let mut erows = String::new();
    for (op, ok, err) in store_ops(&snap) {
        let _ = writeln!(
            erows,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&op),
            html::num(ok, 0),
            html::num(err, 0)
        );
    }
    body.push_str(&table_wrap(
        "store-requests",
        true,
        "Object-store requests of this broker",
        &["Operation", "OK", "Errors"],
        &erows,
    ));
    Ok(HtmlPage(html::page(
        "Brokers and controllers",
        "/ui/brokers",
        true,
        &body,
    )))
}

/// Error rate of the object store: every `status="error"` series.
fn store_error_rate(c: &Console, snap: &Snapshot) -> sampler::Points {
    let mut total: BTreeMap<i64, f64> = BTreeMap::new();
    for (op, _, _) in store_ops(snap) {
        let k = series_key(
            "strata_object_store_requests_total",
            &[("operation", &op), ("status", "error")],
        );
        for (t, v) in c.sampler.rate_sum(&k) {
            *total.entry(t).or_default() += v;
        }
    }
    total.into_iter().collect()
}

/// (operation, ok, errors) of `strata_object_store_requests_total`, in the
/// exposition's order.
fn store_ops(snap: &Snapshot) -> Vec<(String, f64, f64)> {
    let mut out: Vec<(String, f64, f64)> = Vec::new();
    for s in snap.find("strata_object_store_requests_total", &[]) {
        let op = s.label("operation").unwrap_or("").to_string();
        let i = match out.iter().position(|o| o.0 == op) {
            Some(i) => i,
            None => {
                out.push((op, 0.0, 0.0));
                out.len() - 1
            }
        };
        if s.label("status") == Some("error") {
            out[i].2 += s.value;
        } else {
            out[i].1 += s.value;
        }
    }
    out
}

// -------------------------------------------------------------------- cost

/// `GET /ui/cost`: object-store requests and bytes (what drives the bill),
/// and per-topic traffic.
pub async fn cost(State(c): State<Arc<Console>>) -> ConsoleResult<HtmlPage> {
    let snap = snapshot(&c).await;
    let mut body = String::from(
        "<p class=\"note\">Counts of this broker since it started, as <a href=\"/metrics\">/metrics</a> reports them \
         (<code>strata_object_store_requests_total</code>, <code>strata_object_store_bytes_total</code>, \
         <code>strata_topic_bytes_in_total</code>). Attribution of object-store requests to topics comes with cost \
         metering; until then requests are shown per operation only, and no prices are applied.</p>\n",
    );
    let mut rows = String::new();
    let mut total = 0.0;
    for (op, ok, err) in store_ops(&snap) {
        total += ok + err;
        let _ = writeln!(
            rows,
            "<tr><th scope=\"row\">{}</th><td class=\"num\" data-metric=\"ok\">{}</td><td class=\"num\" data-metric=\"error\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&op),
            html::num(ok, 0),
            html::num(err, 0),
            html::num(ok + err, 0)
        );
    }
    let _ = writeln!(
        rows,
        "<tr class=\"total\"><th scope=\"row\">all</th><td></td><td></td><td class=\"num\">{}</td></tr>",
        html::num(total, 0)
    );
    body.push_str("<h2>Object-store requests</h2>\n");
    body.push_str(&table_wrap(
        "cost-requests",
        true,
        "Requests by operation",
        &["Operation", "OK", "Errors", "Total"],
        &rows,
    ));
    let up = snap
        .get("strata_object_store_bytes_total", &[("direction", "up")])
        .unwrap_or(0.0);
    let down = snap
        .get("strata_object_store_bytes_total", &[("direction", "down")])
        .unwrap_or(0.0);
    let _ = write!(
        body,
        "<h2>Object-store bytes</h2>\n<dl class=\"facts\" id=\"cost-bytes\" data-live>\
         <div><dt>Uploaded</dt><dd data-bytes=\"{up}\">{}</dd></div>\
         <div><dt>Downloaded</dt><dd data-bytes=\"{down}\">{}</dd></div></dl>\n",
        html::bytes(up),
        html::bytes(down),
    );
    body.push_str("<div class=\"charts\">\n");
    for (op, _, _) in store_ops(&snap) {
        let prefix = {
            let k = series_key("strata_object_store_requests_total", &[("operation", &op)]);
            format!("{},", &k[..k.len() - 1])
        };
        body.push_str(&html::chart(
            &format!("chart-store-{}", op),
            &format!("{op} requests"),
            &c.sampler.rate_sum(&prefix),
            &html::per_sec,
        ));
    }
    body.push_str(&html::chart(
        "chart-store-up",
        "Bytes uploaded",
        &c.sampler
            .rate_sum("strata_object_store_bytes_total{direction=\"up\"}"),
        &html::mbps,
    ));
    body.push_str("</div>\n<h2>Traffic by topic</h2>\n");
    let mut rows = String::new();
    let mut topics: BTreeMap<String, [f64; 3]> = BTreeMap::new();
    for (i, name) in [
        "strata_topic_bytes_in_total",
        "strata_topic_bytes_out_total",
        "strata_topic_records_in_total",
    ]
    .iter()
    .enumerate()
    {
        for s in snap.find(name, &[]) {
            if let Some(t) = s.label("topic") {
                topics.entry(t.to_string()).or_default()[i] = s.value;
            }
        }
    }
    for (t, v) in &topics {
        let _ = writeln!(
            rows,
            "<tr data-topic=\"{}\"><th scope=\"row\"><a href=\"/ui/topics/{}\">{}</a></th><td class=\"num\" data-bytes-in=\"{}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(t),
            pct(t),
            esc(t),
            v[0],
            html::bytes(v[0]),
            html::bytes(v[1]),
            html::num(v[2], 0),
        );
    }
    if topics.is_empty() {
        rows.push_str("<tr><td colspan=\"4\">No topics.</td></tr>\n");
    }
    body.push_str(&table_wrap(
        "cost-topics",
        true,
        "Bytes and records by topic (this broker)",
        &["Topic", "Bytes in", "Bytes out", "Records in"],
        &rows,
    ));
    Ok(HtmlPage(html::page("Cost", "/ui/cost", true, &body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn browse_queries() {
        let b = parse_browse(&q(&[]), 3).unwrap();
        assert_eq!(
            b,
            Browse {
                partition: None,
                from: From::Newest,
                n: 20,
                shown: Shown::Text
            }
        );
        let b = parse_browse(
            &q(&[
                ("partition", "2"),
                ("mode", "offset"),
                ("offset", "7"),
                ("n", "500"),
                ("format", "hex"),
            ]),
            3,
        )
        .unwrap();
        assert_eq!(b.partition, Some(2));
        assert_eq!(b.from, From::Offset(7));
        assert_eq!(b.n, 500);
        assert_eq!(b.shown, Shown::Hex);
        let b = parse_browse(
            &q(&[("mode", "timestamp"), ("timestamp", "2024-05-01T00:00")]),
            1,
        )
        .unwrap();
        assert_eq!(b.from, From::Timestamp(1_714_521_600_000));
        for bad in [
            q(&[("n", "501")]),
            q(&[("n", "0")]),
            q(&[("n", "99999999999999999999999")]),
            q(&[("partition", "3")]),
            q(&[("partition", "-1")]),
            q(&[("mode", "offset"), ("offset", "-5")]),
            q(&[("mode", "offset"), ("offset", "x")]),
            q(&[("mode", "offset")]),
            q(&[("mode", "timestamp"), ("timestamp", "yesterday")]),
            q(&[("mode", "sideways")]),
            q(&[("format", "xml")]),
        ] {
            assert!(parse_browse(&bad, 3).is_err(), "{bad:?}");
        }
        assert!(parse_browse(&q(&[]), MAX_BROWSE_PARTITIONS + 1).is_err());
        assert!(parse_browse(&q(&[("partition", "0")]), MAX_BROWSE_PARTITIONS + 1).is_ok());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1714521600000"), Some(1_714_521_600_000));
        assert_eq!(parse_time("2024-05-01T00:00:00Z"), Some(1_714_521_600_000));
        assert_eq!(parse_time("2024-05-01T00:00:01"), Some(1_714_521_601_000));
        assert_eq!(parse_time("2024-05-01T00:00"), Some(1_714_521_600_000));
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("99999999999999999999999"), None);
        assert_eq!(parse_time("2024-13-01T00:00"), None);
    }

    #[test]
    fn config_lines() {
        assert_eq!(
            parse_config_lines("retention.ms=100\n\n# c\n cleanup.policy = compact \n").unwrap(),
            vec![
                ("retention.ms".to_string(), "100".to_string()),
                ("cleanup.policy".to_string(), "compact".to_string())
            ]
        );
        assert!(parse_config_lines("novalue").is_err());
        assert!(parse_config_lines("=x").is_err());
    }

    #[test]
    fn store_ops_by_operation() {
        let s = Snapshot::parse(
            "strata_object_store_requests_total{operation=\"put\",status=\"ok\"} 3\n\
             strata_object_store_requests_total{operation=\"put\",status=\"error\"} 1\n\
             strata_object_store_requests_total{operation=\"get\",status=\"ok\"} 5\n",
        );
        assert_eq!(
            store_ops(&s),
            vec![("put".to_string(), 3.0, 1.0), ("get".to_string(), 5.0, 0.0)]
        );
    }
}
