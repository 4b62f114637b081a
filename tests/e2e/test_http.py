"""HTTP health, readiness and Prometheus metrics."""

import time

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


def test_idle_and_stalled_http_connections_are_closed(broker_factory):
    """No client holds an HTTP connection forever: an idle keep-alive
    connection and one that never finishes its request headers are closed."""
    import socket

    b = broker_factory(["--http-idle-timeout-ms", "800"])
    idle = socket.create_connection(("127.0.0.1", b.http_port), timeout=10)
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = idle.recv(4096)
    assert first.startswith(b"HTTP/1.1 200"), first[:40]
    stalled = socket.create_connection(("127.0.0.1", b.http_port), timeout=10)
    stalled.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never end
    t0 = time.monotonic()
    for s in (idle, stalled):
        rest = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        assert time.monotonic() - t0 < 8, "connection held open"
        s.close()
    status, _, _ = http_get(b.http_url + "/healthz")
    assert status == 200
