"""Per-topic cost metering: object-store requests and bytes attributed to
topics (a shared WAL object by each topic's share of its bytes), exposed in
/metrics, the HTTP topic resource and `strata topic describe`, priced by a
configurable price sheet."""

from __future__ import annotations

import json
import urllib.request
import uuid

from cluster import wait_until
from conftest import http_get
from kclients import create_topic, producer, unique_topic
from test_cli import ok
from test_tier import S3_ENV, moto, s3_args  # noqa: F401  (moto: fixture)


def metric_rows(broker, name: str) -> dict[tuple, float]:
    """{(label values...): value} of one metric family."""
    _, body, _ = http_get(broker.http_url + "/metrics")
    out = {}
    for line in body.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line[len(name) + 1 :].rpartition("} ")
            kv = dict(p.split("=", 1) for p in labels.split(","))
            out[tuple(v.strip('"') for v in kv.values())] = float(value)
    return out


def topic_resource(broker, topic: str) -> dict:
    _, body, _ = http_get(broker.http_url + "/v3/clusters")
    cluster = json.loads(body)["data"][0]["cluster_id"]
    with urllib.request.urlopen(f"{broker.http_url}/v3/clusters/{cluster}/topics/{topic}", timeout=5) as r:
        return json.loads(r.read())


def test_shared_wal_objects_are_charged_by_each_topics_share(broker_factory, moto, tmp_path):  # noqa: F811
    sheet = tmp_path / "prices.toml"
    sheet.write_text("put-per-1000 = 0.01\nstorage-gb-month = 0.1\n")
    b = broker_factory(
        extra_args=[*s3_args(moto, uuid.uuid4().hex[:8]), "--wal-flush-ms", "50", "--price-sheet", str(sheet)],
        env=S3_ENV,
    )
    big, small = unique_topic("big"), unique_topic("small")
    for t in (big, small):
        create_topic(b.bootstrap, t, 2)
    p = producer(b.bootstrap, acks="all", **{"linger.ms": 2})
    # Interleaved in time, so they share WAL objects; 3:1 by bytes.
    failed = []
    for i in range(1500):
        for t, v in ((big, b"B" * 900), (small, b"s" * 300)):
            p.produce(t, v, on_delivery=lambda err, msg: err and failed.append(err))
        if i % 100 == 99:
            p.poll(0.01)
    assert p.flush(60) == 0 and not failed, failed

    put_bytes = metric_rows(b, "strata_topic_object_store_bytes_total")
    up_big, up_small = put_bytes[(big, "put")], put_bytes[(small, "put")]
    assert up_big > 1500 * 900 and up_small > 1500 * 300, put_bytes
    ratio = up_big / up_small
    assert 2.5 < ratio < 3.5, f"PUT bytes big/small {ratio:.2f}, expected about 3 ({put_bytes})"
    reqs = metric_rows(b, "strata_topic_object_store_requests_total")
    put_big, put_small = reqs[(big, "put")], reqs[(small, "put")]
    assert put_big > 0 and put_small > 0, reqs
    # Shares of shared objects: fractions, the big topic paying more.
    assert put_big > put_small, reqs
    # Every WAL PUT is someone's: the topics' shares add up to the store's count.
    _, body, _ = http_get(b.http_url + "/metrics")
    total_puts = next(
        float(line.split()[-1]) for line in body.splitlines() if line.startswith('strata_object_store_requests_total{operation="put",status="ok"}')
    )
    charged = sum(v for (topic, op), v in reqs.items() if op == "put")
    assert abs(charged - total_puts) < 0.01 * total_puts + 1, (charged, total_puts)

    # The HTTP topic resource and the estimate at the sheet's prices.
    res = topic_resource(b, big)
    cost = res["cost"]
    assert cost["requests"]["put"] == put_big or abs(cost["requests"]["put"] - put_big) < 5
    assert cost["stored_bytes"] >= 1500 * 900
    est = cost["estimated_monthly"]
    assert est["storage_usd"] == cost["stored_bytes"] / 2**30 * 0.1
    assert est["total_usd"] > est["storage_usd"] > 0
    assert abs(est["total_usd"] - est["requests_usd"] - est["storage_usd"]) < 1e-9

    # `strata topic describe` prints the same from the broker's HTTP listener.
    out = ok("topic", "describe", big, "--bootstrap-server", b.bootstrap, "--http", b.http_url.removeprefix("http://"))
    assert "EstimatedMonthlyCost: $" in out and "ObjectStore: PUT" in out, out


def test_a_bad_price_sheet_stops_startup_naming_the_file(broker_factory, tmp_path):
    sheet = tmp_path / "bad-prices.toml"
    sheet.write_text("put-per-1000 = -3\n")
    b = broker_factory(extra_args=["--price-sheet", str(sheet)], start=False)
    b.start(wait=False)
    assert b.proc.wait(timeout=60) != 0
    wait_until(lambda: "bad-prices.toml" in b.log_text(), 10, "the error names the file")
    assert ">= 0" in b.log_text(), b.log_tail()
