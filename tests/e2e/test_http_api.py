"""The HTTP produce/consume API (REST Proxy shapes): produce over HTTP and
consume with librdkafka and the reverse, murmur2 placement agreement,
streamed produce, v2 consumer instances in a group with a Kafka consumer
seeing their commits, admin, every error path, and the OpenAPI document."""

from __future__ import annotations

import base64
import json
import socket
import time

import pytest
import requests
from openapi_spec_validator import validate as validate_openapi

from cluster import wait_until
from kclients import Rec, consume_range, consumer, create_topic, produce, producer, unique_topic, watermarks

V2 = "application/vnd.kafka.v2+json"
BIN = "application/vnd.kafka.binary.v2+json"
JSONV2 = "application/vnd.kafka.json.v2+json"


def b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode()


def unb64(s: str | None) -> bytes | None:
    return None if s is None else base64.b64decode(s)


def cluster_id(url: str) -> str:
    r = requests.get(url + "/v3/clusters", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["cluster_id"]


def records_url(broker, topic: str) -> str:
    return f"{broker.http_url}/v3/clusters/{cluster_id(broker.http_url)}/topics/{topic}/records"


def http_record(r: Rec) -> dict:
    out: dict = {
        "key": {"type": "BINARY", "data": b64(r.key)} if r.key is not None else None,
        "value": {"type": "BINARY", "data": b64(r.value)},
    }
    if out["key"] is None:
        del out["key"]
    if r.headers:
        out["headers"] = [{"name": k, "value": b64(v)} for k, v in r.headers]
    if r.partition is not None:
        out["partition_id"] = r.partition
    if r.timestamp is not None:
        out["timestamp"] = r.timestamp
    return out


def assert_error(resp: requests.Response, status: int) -> dict:
    assert resp.status_code == status, f"want {status}, got {resp.status_code}: {resp.text[:300]}"
    body = resp.json()
    assert set(body) >= {"error_code", "message"}, body
    assert isinstance(body["error_code"], int) and body["message"], body
    return body


def sample_records(n: int, partitions: int) -> list[Rec]:
    # Recent timestamps: older ones would fall to the 7-day time retention.
    now = int(time.time() * 1000)
    recs = []
    for i in range(n):
        key = None if i % 7 == 0 else f"key-{i}".encode()
        value = bytes([i % 256, 0, 255]) + f"value-{i}".encode() * (1 + i % 3)
        headers = [("h1", f"v{i}".encode()), ("bin", bytes([0, 1, 2, i % 256]))] if i % 2 == 0 else None
        part = i % partitions if i % 5 == 0 else None
        recs.append(Rec(key, value, headers, now - 100_000 + i, part))
    return recs


def test_produce_http_consume_kafka(broker):
    topic = unique_topic("http-p")
    create_topic(broker.bootstrap, topic, 3)
    url = records_url(broker, topic)
    recs = sample_records(60, 3)
    s = requests.Session()
    placed = []
    for r in recs:
        resp = s.post(url, json=http_record(r), timeout=30)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["error_code"] == 200 and body["topic_name"] == topic
        assert body["timestamp_ms"] == r.timestamp
        if r.partition is not None:
            assert body["partition_id"] == r.partition
        placed.append((body["partition_id"], body["offset"]))
    ends = {p: max([o for q, o in placed if q == p], default=-1) + 1 for p in range(3)}
    got = consume_range(broker.bootstrap, topic, ends)
    by_pos = {(p, g.offset): g for p, gs in got.items() for g in gs}
    for r, pos in zip(recs, placed):
        g = by_pos[pos]
        assert g.key == r.key and g.value == r.value, (r, g)
        assert (g.headers or []) == (r.headers or []), (r.headers, g.headers)
        assert g.timestamp == r.timestamp


def test_produce_kafka_consume_http(broker):
    topic = unique_topic("http-c")
    create_topic(broker.bootstrap, topic, 2)
    recs = sample_records(40, 2)
    placed = produce(producer(broker.bootstrap), topic, recs)
    base = f"{broker.http_url}/v3/clusters/{cluster_id(broker.http_url)}/topics/{topic}/partitions"
    got = {}
    for p in range(2):
        r = requests.get(f"{base}/{p}/records", params={"offset": 0, "max_records": 1000}, timeout=30)
        assert r.status_code == 200, r.text
        for rec in r.json()["records"]:
            got[(p, rec["offset"])] = rec
    assert len(got) == len(recs)
    for r, pos in zip(recs, placed):
        g = got[pos]
        assert unb64(g["key"]) == r.key and unb64(g["value"]) == r.value
        assert [(h["key"], unb64(h["value"])) for h in g["headers"]] == (r.headers or [])
        assert g["timestamp"] == r.timestamp
    # max_records and next_offset page through a partition.
    r = requests.get(f"{base}/0/records", params={"offset": 0, "max_records": 3}, timeout=30).json()
    assert [x["offset"] for x in r["records"]] == [0, 1, 2] and r["next_offset"] == 3
    # The same through a v2 consumer instance with a manual assignment.
    s = requests.Session()
    g = unique_topic("g")
    inst = s.post(f"{broker.http_url}/consumers/{g}", data=json.dumps({"name": "i1", "format": "binary", "auto.offset.reset": "earliest"}), headers={"Content-Type": V2}, timeout=10)
    assert inst.status_code == 200, inst.text
    iu = inst.json()["base_uri"]
    r = s.post(iu + "/assignments", json={"partitions": [{"topic": topic, "partition": 0}, {"topic": topic, "partition": 1}]}, timeout=10)
    assert r.status_code == 204, r.text
    seen = {}
    deadline = time.monotonic() + 30
    while len(seen) < len(recs) and time.monotonic() < deadline:
        r = s.get(iu + "/records", headers={"Accept": BIN}, params={"timeout": 500}, timeout=30)
        assert r.status_code == 200, r.text
        for x in r.json():
            seen[(x["partition"], x["offset"])] = x
    assert len(seen) == len(recs)
    for r_, pos in zip(recs, placed):
        assert unb64(seen[pos]["value"]) == r_.value and unb64(seen[pos]["key"]) == r_.key
    assert s.delete(iu, timeout=10).status_code == 204


def test_same_key_same_partition_as_librdkafka(broker):
    topic = unique_topic("http-key")
    create_topic(broker.bootstrap, topic, 7)
    keys = [f"user-{i}".encode() for i in range(60)] + [b"", b"a", b"abc", bytes(range(17))]
    p = producer(broker.bootstrap, partitioner="murmur2_random")
    kafka_placed = produce(p, topic, [Rec(k, b"x") for k in keys])
    url = records_url(broker, topic)
    s = requests.Session()
    for k, (kp, _) in zip(keys, kafka_placed):
        r = s.post(url, json={"key": {"type": "BINARY", "data": b64(k)}, "value": {"type": "STRING", "data": "y"}}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["partition_id"] == kp, f"key {k!r}: HTTP chose {r.json()['partition_id']}, librdkafka {kp}"


def test_streamed_produce_one_line_per_record(broker):
    topic = unique_topic("http-stream")
    create_topic(broker.bootstrap, topic, 3)
    n = 3000

    def body():
        for i in range(n):
            rec = {"key": {"type": "STRING", "data": f"k{i % 50}"}, "value": {"type": "JSON", "data": {"i": i, "pad": "z" * (i % 100)}}}
            yield (json.dumps(rec) + "\n").encode()

    r = requests.post(records_url(broker, topic) + "?acks=all", data=body(), headers={"Content-Type": "application/json"}, timeout=120)
    assert r.status_code == 200, r.text[:300]
    lines = [json.loads(x) for x in r.text.splitlines() if x.strip()]
    assert len(lines) == n
    assert all(x["error_code"] == 200 for x in lines), [x for x in lines if x["error_code"] != 200][:3]
    per = {}
    for x in lines:
        per.setdefault(x["partition_id"], []).append(x["offset"])
    for p, offs in per.items():
        assert offs == list(range(len(offs))), f"partition {p}: offsets not consecutive in order"
    ends = {p: len(o) for p, o in per.items()}
    got = consume_range(broker.bootstrap, topic, ends)
    values = sorted(json.loads(g.value)["i"] for gs in got.values() for g in gs)
    assert values == list(range(n))
    # Large chunks: many records of a partition in one batch.
    blob = b"".join((json.dumps({"key": {"type": "STRING", "data": f"k{i % 9}"}, "value": {"type": "BINARY", "data": b64(bytes([i % 256]) * 1024)}}) + "\n").encode() for i in range(500))
    r = requests.post(records_url(broker, topic), data=iter([blob, blob]), headers={"Content-Type": "application/json"}, timeout=120)
    lines = [json.loads(x) for x in r.text.splitlines() if x.strip()]
    assert len(lines) == 1000 and all(x["error_code"] == 200 for x in lines), [x for x in lines if x["error_code"] != 200][:3]
    # A streamed body with one bad record: its line carries the error, the others go on.
    bad = b'{"value":{"type":"STRING","data":"a"}}\n{"value":{"type":"BINARY","data":"!!"}}\n{"value":{"type":"STRING","data":"b"}}\n'
    r = requests.post(records_url(broker, topic), data=iter([bad]), headers={"Content-Type": "application/json"}, timeout=30)
    lines = [json.loads(x) for x in r.text.splitlines() if x.strip()]
    assert [x["error_code"] for x in lines] == [200, 400, 200], lines


def test_json_format_instance_and_acks_1(broker):
    topic = unique_topic("http-json")
    create_topic(broker.bootstrap, topic, 1)
    url = records_url(broker, topic)
    docs = [{"a": i, "b": [1, 2, {"c": None}], "s": "é"} for i in range(5)]
    for d in docs:
        r = requests.post(url + "?acks=1", json={"key": {"type": "JSON", "data": {"id": d["a"]}}, "value": {"type": "JSON", "data": d}}, timeout=30)
        assert r.status_code == 200, r.text
    s = requests.Session()
    g = unique_topic("gj")
    iu = s.post(f"{broker.http_url}/consumers/{g}", json={"format": "json", "auto.offset.reset": "earliest"}, headers={"Content-Type": V2}, timeout=10).json()["base_uri"]
    assert s.post(iu + "/subscription", json={"topics": [topic]}, headers={"Content-Type": V2}, timeout=10).status_code == 204
    got = []
    deadline = time.monotonic() + 30
    while len(got) < len(docs) and time.monotonic() < deadline:
        r = s.get(iu + "/records", headers={"Accept": JSONV2}, params={"timeout": 1000}, timeout=40)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith(JSONV2)
        got.extend(r.json())
    assert [x["value"] for x in got] == docs
    assert [x["key"] for x in got] == [{"id": i} for i in range(5)]
    # Wrong Accept for a json instance.
    assert_error(s.get(iu + "/records", headers={"Accept": BIN}, timeout=10), 406)
    assert s.delete(iu, timeout=10).status_code == 204


def poll_instance(s: requests.Session, iu: str, seen: dict, owner: str) -> None:
    r = s.get(iu + "/records", headers={"Accept": BIN}, params={"timeout": 300}, timeout=40)
    assert r.status_code == 200, r.text
    for x in r.json():
        seen[(x["partition"], x["offset"])] = owner


def test_group_of_two_http_instances_splits_and_commits(broker):
    topic = unique_topic("http-grp")
    create_topic(broker.bootstrap, topic, 4)
    recs = [Rec(f"k{i}".encode(), f"v{i}".encode(), partition=i % 4) for i in range(80)]
    produce(producer(broker.bootstrap), topic, recs)
    group = unique_topic("grp")
    s = requests.Session()
    urls = {}
    for name in ("a", "b"):
        r = s.post(f"{broker.http_url}/consumers/{group}", json={"name": name, "format": "binary", "auto.offset.reset": "earliest"}, headers={"Content-Type": V2}, timeout=10)
        assert r.status_code == 200, r.text
        urls[name] = r.json()["base_uri"]
    assert_error(s.post(f"{broker.http_url}/consumers/{group}", json={"name": "a"}, headers={"Content-Type": V2}, timeout=10), 409)
    for name, iu in urls.items():
        assert s.post(iu + "/subscription", json={"topics": [topic]}, headers={"Content-Type": V2}, timeout=10).status_code == 204
    seen: dict = {}
    deadline = time.monotonic() + 60
    while len(seen) < len(recs) and time.monotonic() < deadline:
        for name, iu in urls.items():
            poll_instance(s, iu, seen, name)
    assert len(seen) == len(recs), f"consumed {len(seen)} of {len(recs)}"
    parts = {name: {p for (p, _), o in seen.items() if o == name} for name in urls}
    assert parts["a"] and parts["b"] and not (parts["a"] & parts["b"]), parts
    assert parts["a"] | parts["b"] == {0, 1, 2, 3}
    assign = {n: {(x["topic"], x["partition"]) for x in s.get(iu + "/assignments", timeout=10).json()["partitions"]} for n, iu in urls.items()}
    assert {p for _, p in assign["a"]} == parts["a"] and {p for _, p in assign["b"]} == parts["b"]
    # Admin view: two members, their assignments.
    cid = cluster_id(broker.http_url)
    g = s.get(f"{broker.http_url}/v3/clusters/{cid}/consumer-groups/{group}/consumers", timeout=10).json()["data"]
    assert len(g) == 2 and sorted(len(m["assignments"]) for m in g) == sorted(len(v) for v in parts.values())
    # a commits explicit offsets (last consumed, as REST Proxy), b its positions.
    last = {}
    for (p, o), owner in seen.items():
        if owner == "a":
            last[p] = max(last.get(p, -1), o)
    r = s.post(urls["a"] + "/offsets", json={"offsets": [{"topic": topic, "partition": p, "offset": o} for p, o in last.items()]}, headers={"Content-Type": V2}, timeout=10)
    assert r.status_code == 204, r.text
    r = s.post(urls["b"] + "/offsets", timeout=10)
    assert r.status_code == 204, r.text
    r = s.get(urls["a"] + "/offsets", json={"partitions": [{"topic": topic, "partition": p} for p in last]}, timeout=10)
    assert {x["partition"]: x["offset"] for x in r.json()["offsets"]} == {p: 20 for p in last}
    lags = s.get(f"{broker.http_url}/v3/clusters/{cid}/consumer-groups/{group}/lags", timeout=10).json()["data"]
    assert sorted((x["partition_id"], x["current_offset"], x["lag"]) for x in lags) == [(p, 20, 0) for p in range(4)]
    for iu in urls.values():
        assert s.delete(iu, timeout=10).status_code == 204
    assert_error(s.get(urls["a"] + "/records", timeout=10), 404)
    # A Kafka consumer in the same group sees the commits.
    from confluent_kafka import TopicPartition
    c = consumer(broker.bootstrap, **{"group.id": group})
    try:
        committed = c.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
        assert {tp.partition: tp.offset for tp in committed} == {p: 20 for p in range(4)}
    finally:
        c.close()


def test_instance_expires_when_idle(broker_factory):
    b = broker_factory(["--http-consumer-idle-timeout-ms", "1500"])
    s = requests.Session()
    iu = s.post(f"{b.http_url}/consumers/gx", json={"name": "idle"}, headers={"Content-Type": V2}, timeout=10).json()["base_uri"]
    assert s.get(iu + "/assignments", timeout=10).status_code == 200
    t0 = time.monotonic()
    # Expired after the idle timeout (1.5 s), checked by the sweep.
    # (Watched in the broker's log: a request would keep it alive.)
    wait_until(lambda: "HTTP consumer instance expired" in b.log_text(), 15, "idle instance expired", interval=0.2)
    assert time.monotonic() - t0 >= 1.0, "expired before the idle timeout"
    assert_error(s.get(iu + "/assignments", timeout=10), 404)


def test_admin_topics_configs_partitions(broker):
    s = requests.Session()
    base = broker.http_url
    cid = cluster_id(base)
    assert s.get(f"{base}/v3/clusters/{cid}", timeout=10).json()["cluster_id"] == cid
    brokers = s.get(f"{base}/v3/clusters/{cid}/brokers", timeout=10).json()["data"]
    assert len(brokers) == 1 and brokers[0]["port"] == broker.kafka_port
    topic = unique_topic("http-adm")
    r = s.post(f"{base}/v3/clusters/{cid}/topics", json={"topic_name": topic, "partitions_count": 3, "configs": [{"name": "retention.ms", "value": "3600000"}]}, timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["partitions_count"] == 3
    assert_error(s.post(f"{base}/v3/clusters/{cid}/topics", json={"topic_name": topic, "partitions_count": 3}, timeout=30), 409)
    names = [t["topic_name"] for t in s.get(f"{base}/v3/clusters/{cid}/topics", timeout=10).json()["data"]]
    assert topic in names
    t = s.get(f"{base}/v3/clusters/{cid}/topics/{topic}", timeout=10).json()
    assert t["partitions_count"] == 3 and t["replication_factor"] == 1
    cfg = {c["name"]: c for c in s.get(f"{base}/v3/clusters/{cid}/topics/{topic}/configs", timeout=10).json()["data"]}
    assert cfg["retention.ms"]["value"] == "3600000" and not cfg["retention.ms"]["is_default"]
    r = s.post(f"{base}/v3/clusters/{cid}/topics/{topic}/configs:alter", json={"data": [{"name": "retention.ms", "value": "7200000"}, {"name": "cleanup.policy", "value": "compact"}]}, timeout=10)
    assert r.status_code == 204, r.text
    assert s.get(f"{base}/v3/clusters/{cid}/topics/{topic}/configs/cleanup.policy", timeout=10).json()["value"] == "compact"
    assert s.put(f"{base}/v3/clusters/{cid}/topics/{topic}/configs/retention.ms", json={"value": "1000"}, timeout=10).status_code == 204
    assert s.get(f"{base}/v3/clusters/{cid}/topics/{topic}/configs/retention.ms", timeout=10).json()["value"] == "1000"
    assert s.delete(f"{base}/v3/clusters/{cid}/topics/{topic}/configs/retention.ms", timeout=10).status_code == 204
    assert s.get(f"{base}/v3/clusters/{cid}/topics/{topic}/configs/retention.ms", timeout=10).json()["is_default"]
    assert_error(s.post(f"{base}/v3/clusters/{cid}/topics/{topic}/configs:alter", json={"data": [{"name": "no.such.config", "value": "1"}]}, timeout=10), 400)
    # Partitions carry start and end offsets.
    # Keyed: the topic is compacted now, so keyless records are refused.
    produce(producer(broker.bootstrap), topic, [Rec(b"k", b"v", partition=1) for _ in range(5)])
    parts = s.get(f"{base}/v3/clusters/{cid}/topics/{topic}/partitions", timeout=10).json()["data"]
    assert [(p["partition_id"], p["start_offset"], p["end_offset"]) for p in parts] == [(0, 0, 0), (1, 0, 5), (2, 0, 0)]
    assert s.get(f"{base}/v3/clusters/{cid}/topics/{topic}/partitions/1", timeout=10).json()["end_offset"] == 5
    assert s.delete(f"{base}/v3/clusters/{cid}/topics/{topic}", timeout=30).status_code == 204
    assert_error(s.get(f"{base}/v3/clusters/{cid}/topics/{topic}", timeout=10), 404)
    assert_error(s.delete(f"{base}/v3/clusters/{cid}/topics/{topic}", timeout=10), 404)


def raw_http(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        out = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def test_error_paths_return_status_and_json(broker_factory):
    b = broker_factory(["--http-max-body-bytes", "4096", "--http-max-consumer-instances", "2"])
    s = requests.Session()  # one keep-alive connection: bad requests must not hurt the next
    cid = cluster_id(b.http_url)
    topic = unique_topic("http-err")
    create_topic(b.bootstrap, topic, 2)
    url = f"{b.http_url}/v3/clusters/{cid}/topics/{topic}/records"
    good = {"value": {"type": "STRING", "data": "ok"}}

    def ok():
        r = s.post(url, json=good, timeout=30)
        assert r.status_code == 200, r.text

    cases = [
        (lambda: s.post(url, data=b'{"value": {"type": "STRING", "data": ', headers={"Content-Type": "application/json"}, timeout=10), 400),
        (lambda: s.post(url, data=b"not json at all", headers={"Content-Type": "application/json"}, timeout=10), 400),
        (lambda: s.post(url, data=b"", headers={"Content-Type": "application/json"}, timeout=10), 400),
        (lambda: s.post(url, json={"value": {"type": "BINARY", "data": "%%%"}}, timeout=10), 400),
        (lambda: s.post(url, json={"value": {"type": "STRING", "data": 5}}, timeout=10), 400),
        (lambda: s.post(url, json={"value": {"type": "NOPE", "data": "x"}}, timeout=10), 400),
        (lambda: s.post(url, json={"value": {"type": "STRING", "data": "x"}, "timestamp": "yesterday"}, timeout=10), 400),
        (lambda: s.post(url + "?acks=2", json=good, timeout=10), 400),
        (lambda: s.post(url, json={"partition_id": 9, "value": {"type": "STRING", "data": "x"}}, timeout=10), 404),
        (lambda: s.post(f"{b.http_url}/v3/clusters/{cid}/topics/no-such-topic/records", json=good, timeout=10), 404),
        (lambda: s.post(f"{b.http_url}/v3/clusters/wrong-cluster/topics/{topic}/records", json=good, timeout=10), 404),
        (lambda: s.post(url, json={"value": {"type": "STRING", "data": "x" * 10000}}, timeout=10), 413),
        (lambda: s.post(url, data=b'{"value":{"type":"STRING","data":"' + b"x" * 100_000, headers={"Content-Type": "application/json"}, timeout=10), 413),
        (lambda: s.post(url, data=json.dumps(good), headers={"Content-Type": "text/plain"}, timeout=10), 415),
        (lambda: s.post(url, data=json.dumps(good), timeout=10), 415),
        (lambda: s.post(f"{b.http_url}/v3/clusters/{cid}/topics", data=b"{" + b" " * 10000 + b"}", headers={"Content-Type": "application/json"}, timeout=10), 413),
        (lambda: s.post(f"{b.http_url}/v3/clusters/{cid}/topics", data=b"{", headers={"Content-Type": "application/json"}, timeout=10), 400),
        (lambda: s.post(f"{b.http_url}/v3/clusters/{cid}/topics", json={"partitions_count": 1}, timeout=10), 400),
        (lambda: s.post(f"{b.http_url}/consumers/g1", data=b"{}", headers={"Content-Type": "text/plain"}, timeout=10), 415),
        (lambda: s.post(f"{b.http_url}/consumers/g1", json={"format": "avro"}, headers={"Content-Type": V2}, timeout=10), 400),
        (lambda: s.get(f"{b.http_url}/consumers/g1/instances/nobody/records", timeout=10), 404),
        (lambda: s.get(f"{b.http_url}/v3/clusters/{cid}/topics/{topic}/partitions/0/records", params={"offset": 100}, timeout=10), 416),
        (lambda: s.get(f"{b.http_url}/v3/clusters/{cid}/topics/{topic}/partitions/5/records", timeout=10), 404),
        (lambda: s.get(f"{b.http_url}/v3/clusters/{cid}/consumer-groups/no-such-group", timeout=10), 404),
        (lambda: s.get(f"{b.http_url}/no/such/path", timeout=10), 404),
    ]
    for i, (call, status) in enumerate(cases):
        assert_error(call(), status)
        ok()  # the next request on the same connection is unaffected
    # 429: more instances than --http-max-consumer-instances.
    for n in ("i1", "i2"):
        assert s.post(f"{b.http_url}/consumers/g1", json={"name": n}, headers={"Content-Type": V2}, timeout=10).status_code == 200
    assert_error(s.post(f"{b.http_url}/consumers/g1", json={"name": "i3"}, headers={"Content-Type": V2}, timeout=10), 429)
    ok()
    # A streamed body with an oversized record: earlier records are answered, then a 413 line.
    big = b'{"value":{"type":"STRING","data":"a"}}\n{"value":{"type":"STRING","data":"' + b"x" * 9000 + b'"}}\n'
    r = s.post(url, data=iter([big]), headers={"Content-Type": "application/json"}, timeout=30)
    lines = [json.loads(x) for x in r.text.splitlines() if x.strip()]
    assert lines[0]["error_code"] == 200 and lines[-1]["error_code"] == 413, lines
    ok()
    # A client that lies about Content-Length and goes away, and one that sends garbage.
    with socket.create_connection(("127.0.0.1", b.http_port), timeout=5) as sock:
        sock.sendall(f"POST /v3/clusters/{cid}/topics/{topic}/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{{".encode())
    resp = raw_http(b.http_port, b"\x00\x01garbage\r\n\r\n")
    assert resp == b"" or resp.startswith(b"HTTP/1.1 4"), resp[:100]
    ok()
    rss = b.proc_status()["VmRSS"]
    assert rss < 500_000, f"RSS {rss} kB"


def test_openapi_document_validates_and_docs_page(broker):
    r = requests.get(broker.http_url + "/openapi.json", timeout=10)
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    validate_openapi(doc)
    paths = doc["paths"]
    for p in [
        "/v3/clusters/{cluster_id}/topics/{topic_name}/records",
        "/v3/clusters/{cluster_id}/topics",
        "/v3/clusters/{cluster_id}/topics/{topic_name}/configs:alter",
        "/v3/clusters/{cluster_id}/consumer-groups/{group_id}/lags",
        "/consumers/{group_name}",
        "/consumers/{group_name}/instances/{instance}/records",
        "/v3/clusters/{cluster_id}/topics/{topic_name}/partitions/{partition_id}/records",
    ]:
        assert p in paths, p
    d = requests.get(broker.http_url + "/docs", timeout=10)
    assert d.status_code == 200 and d.headers["Content-Type"].startswith("text/html")
    assert "/consumers/{group_name}/instances/{instance}/records" in d.text and "<script" not in d.text
