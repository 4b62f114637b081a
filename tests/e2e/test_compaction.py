"""Log compaction: latest value per key survives, deleted keys vanish after
delete.retention.ms, offsets strictly increase, the log gets smaller, and a
SIGKILL mid-compaction leaves a readable log that is compacted after the
restart."""

from __future__ import annotations

import random
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import http_get

FAST = ["--upload-interval-ms", "300", "--gc-grace-ms", "0", "--tier-tick-ms", "100", "--wal-flush-ms", "50"]
CONFIG = {
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "1000",
    "min.cleanable.dirty.ratio": "0.01",
    "segment.bytes": "1048576",
}


def metric(b, name):
    _, body, _ = http_get(b.http_url + "/metrics")
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def read_all(b, topic, timeout=60):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "c-" + uuid.uuid4().hex, "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    c.assign([TopicPartition(topic, 0, 0)])
    hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ms = c.consume(5000, 0.5)
        for m in ms:
            assert m.error() is None, m.error()
            out.append((m.offset(), m.key(), m.value()))
        if out and out[-1][0] >= hi - 1:
            break
    c.close()
    return out, hi


def produce_updates(b, topic, n=100_000, keys=1000, seed=7):
    rnd = random.Random(seed)
    latest = {}
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 20, "compression.type": "zstd"})
    for i in range(n):
        k = f"key-{rnd.randrange(keys):04d}".encode()
        if rnd.random() < 0.05:
            p.produce(topic, key=k, value=None, partition=0)
            latest[k] = None
        else:
            v = f"{k.decode()}={i}".encode() + b"." * 60
            p.produce(topic, key=k, value=v, partition=0)
            latest[k] = v
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    return latest


def wait_compacted(b, topic, latest, timeout=90):
    live = {k: v for k, v in latest.items() if v is not None}
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        recs, hi = read_all(b, topic)
        got = {}
        for _, k, v in recs:
            got[k] = v
        keys_seen = [k for _, k, _ in recs]
        last = (len(recs), len(keys_seen) - len(set(keys_seen)), sum(1 for _, _, v in recs if v is None))
        if len(keys_seen) == len(set(keys_seen)) and all(v is not None for _, _, v in recs) and got == live:
            return recs
        time.sleep(1)
    raise AssertionError(f"not compacted in {timeout}s: (records, duplicate keys, tombstones) = {last}")


def test_compaction_keeps_latest_value_per_key(broker_factory, tmp_path):
    b = broker_factory(extra_args=["--object-store", f"file://{tmp_path / 'objects'}", *FAST])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic("compacted", num_partitions=1, config=CONFIG)]).values():
        f.result(30)
    latest = produce_updates(b, "compacted")
    recs = wait_compacted(b, "compacted", latest)
    offsets = [o for o, _, _ in recs]
    assert offsets == sorted(set(offsets)), "offsets strictly increasing"
    assert len(recs) < 1000, "the log got smaller"
    assert metric(b, "strata_compaction_runs_total") >= 1
    assert metric(b, "strata_compaction_bytes_written_total") < metric(b, "strata_compaction_bytes_read_total")
    # New writes after compaction keep their offsets after the compacted range.
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    p.produce("compacted", key=b"key-0001", value=b"after", partition=0)
    p.flush(10)
    recs2, hi = read_all(b, "compacted")
    assert recs2[-1][2] == b"after" and recs2[-1][0] == hi - 1 == 100_000


def test_sigkill_mid_compaction_then_finishes(broker_factory, tmp_path):
    b = broker_factory(extra_args=["--object-store", f"file://{tmp_path / 'objects'}", *FAST])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic("ck", num_partitions=1, config=CONFIG)]).values():
        f.result(30)
    latest = produce_updates(b, "ck", n=60_000, keys=500, seed=11)
    # Kill as soon as compaction has started reading.
    deadline = time.monotonic() + 30
    while metric(b, "strata_compaction_runs_total") < 1 and metric(b, "strata_segments_uploaded_total") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    b.kill()
    b.start()
    recs, _ = read_all(b, "ck")
    assert recs, "log readable after the kill"
    wait_compacted(b, "ck", latest)
