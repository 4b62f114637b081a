"""HTTP health, readiness and Prometheus metrics."""

from prometheus_client.parser import text_string_to_metric_families

from conftest import http_get
from kclients import Rec, create_topic, produce, producer, unique_topic


def test_healthz_and_readyz(broker):
    for path in ("/healthz", "/readyz"):
        status, body, _ = http_get(broker.http_url + path)
        assert status == 200, f"GET {path}: HTTP {status}: {body[:300]}"


def test_unknown_path_is_404(broker):
    status, _, _ = http_get(broker.http_url + "/no-such-endpoint")
    assert status == 404


def test_metrics_parse_and_have_strata_metrics(broker):
    # Some traffic first, so request/produce counters have something to say.
    topic = unique_topic("metrics")
    create_topic(broker.bootstrap, topic, 1)
    produce(producer(broker.bootstrap), topic, [Rec(b"k", b"v")])

    status, text, headers = http_get(broker.http_url + "/metrics")
    assert status == 200, f"GET /metrics: HTTP {status}: {text[:300]}"
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    assert ctype.startswith("text/plain") or "openmetrics" in ctype, f"unexpected Content-Type {ctype!r}"
    families = list(text_string_to_metric_families(text))
    names = sorted(f.name for f in families)
    strata = [n for n in names if n.startswith("strata_")]
    assert strata, f"no strata_ metric among {names[:50]}"
    samples = [s for f in families if f.name.startswith("strata_") for s in f.samples]
    assert samples, "strata_ metric families have no samples"
