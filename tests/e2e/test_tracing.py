"""Spans: OTLP/HTTP export to a collector (a local HTTP server decoding the
protobuf with the OpenTelemetry protocol package), and RUST_LOG filtering."""

import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from cluster import wait_until
from conftest import child_env, free_port, strata_bin
from kclients import Rec, consume_range, create_topic, produce, producer, unique_topic


class Collector:
    """Accepts POST /v1/traces and keeps the decoded requests."""

    def __init__(self):
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.bad: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ctype = self.headers.get("Content-Type", "")
                if self.path != "/v1/traces" or ctype != "application/x-protobuf":
                    outer.bad.append(f"{self.path} {ctype}")
                else:
                    req = trace_service_pb2.ExportTraceServiceRequest()
                    req.ParseFromString(body)
                    outer.requests.append(req)
                out = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self):
        """(service name, span name, attributes) of every span received."""
        out = []
        for req in self.requests:
            for rs in req.resource_spans:
                service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), None)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        attrs = {}
                        for a in s.attributes:
                            v = a.value
                            attrs[a.key] = v.string_value if v.HasField("string_value") else v.int_value
                        out.append((service, s.name, attrs, s))
        return out


def test_spans_are_exported_over_otlp_with_api_topic_and_partition(broker_factory):
    collector = Collector()
    try:
        b = broker_factory(["--otlp-endpoint", collector.url, "--otlp-service-name", "strata-e2e"])
        topic = unique_topic("traced")
        create_topic(b.bootstrap, topic, 2)
        recs = [Rec(f"k{i}".encode(), b"v" * 200, partition=i % 2) for i in range(50)]
        produce(producer(b.bootstrap, **{"acks": "all"}), topic, recs)
        got = consume_range(b.bootstrap, topic, {0: 25, 1: 25})
        assert sum(len(v) for v in got.values()) == 50
        # SIGTERM flushes the spans still queued.
        assert b.stop() == 0, b.log_tail()
        b.assert_no_panic()
    finally:
        collector.server.shutdown()
    assert not collector.bad, f"requests to the wrong path or with the wrong type: {collector.bad}"
    spans = collector.spans()
    assert spans, "no spans exported"
    assert {s[0] for s in spans} == {"strata-e2e"}, {s[0] for s in spans}
    requests = [s for s in spans if s[1] == "request"]
    apis = {s[2].get("api") for s in requests}
    assert {"Produce", "Fetch", "Metadata", "CreateTopics"} <= apis, apis
    appends = [s for s in spans if s[1] == "append" and s[2].get("topic") == topic]
    assert {s[2]["partition"] for s in appends} == {0, 1}, appends[:3]
    reads = [s for s in spans if s[1] == "read" and s[2].get("topic") == topic]
    assert {s[2]["partition"] for s in reads} == {0, 1}
    # Each append span is a child of a Produce request span.
    by_id = {s[3].span_id: s for s in requests}
    for a in appends:
        parent = by_id.get(a[3].parent_span_id)
        assert parent is not None and parent[2]["api"] == "Produce", a


def test_rust_log_filters_and_a_bad_filter_is_refused(tmp_path):
    port, http = free_port(), free_port()
    args = [str(strata_bin()), "serve", "--data-dir", str(tmp_path / "d"),
            "--kafka-listen", f"127.0.0.1:{port}", "--http-listen", f"127.0.0.1:{http}"]
    bad = subprocess.run(args, env=child_env({"RUST_LOG": "strata=notalevel"}),
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0
    assert "RUST_LOG" in bad.stderr and "notalevel" in bad.stderr, bad.stderr[-500:]
    bad_otlp = subprocess.run(args + ["--otlp-endpoint", "collector:4318"], env=child_env(),
                              capture_output=True, text=True, timeout=30)
    assert bad_otlp.returncode != 0 and "--otlp-endpoint" in bad_otlp.stderr, bad_otlp.stderr[-500:]

    # RUST_LOG=warn hides the info start-up line; debug for one module shows it.
    for level, expect in (("warn", False), ("info,strata::server=debug", True)):
        log = tmp_path / f"log-{level.replace(',', '_').replace(':', '_')}"
        with open(log, "w") as out:
            p = subprocess.Popen(args, env=child_env({"RUST_LOG": level}), stdout=out, stderr=subprocess.STDOUT)
        try:
            # "strata started" (info, strata::server) is logged right after
            # "strata listening" and before the broker handles SIGTERM, so
            # the whole log is there once the process has exited.
            wait_until(lambda: "strata listening" in log.read_text(), 20, "strata listening")
        finally:
            p.terminate()
            p.wait(timeout=30)
        text = log.read_text()
        assert "strata listening" in text, text[-500:]
        assert ("strata started" in text) == expect, (level, text[-800:])
