"""Time and size retention, DeleteRecords (API and `strata topic truncate`),
and garbage collection of a deleted topic's objects."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, OFFSET_BEGINNING, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import http_get, strata_bin

FAST = ["--upload-interval-ms", "300", "--gc-grace-ms", "0", "--tier-tick-ms", "100", "--wal-flush-ms", "50"]


def start(broker_factory, tmp_path: Path, extra=()):
    objects = tmp_path / ("objects-" + uuid.uuid4().hex[:6])
    b = broker_factory(extra_args=["--object-store", f"file://{objects}", *FAST, *extra])
    return b, objects


def create(b, topic, partitions=1, config=None):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic(topic, num_partitions=partitions, config=config or {})]).values():
        f.result(30)
    md = a.list_topics(topic, timeout=10)
    return a, md.topics[topic]


def topic_id(admin, topic) -> str:
    from confluent_kafka import TopicCollection

    d = admin.describe_topics(TopicCollection([topic]))[topic].result(30)
    u = d.topic_id
    mask = (1 << 64) - 1
    return f"{u.get_most_significant_bits() & mask:016x}{u.get_least_significant_bits() & mask:016x}"


def watermarks(b, topic, p=0):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
    finally:
        c.close()


def first_offset_from_beginning(b, topic, p=0, timeout=20):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "r-" + uuid.uuid4().hex, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                return m.offset()
        return None
    finally:
        c.close()


def files_under(root: Path, part: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and part in str(p)]


def produce(b, topic, n, size=1000, partition=0):
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=os.urandom(size), partition=partition)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def test_time_retention_drops_old_data_everywhere(broker_factory, tmp_path):
    b, objects = start(broker_factory, tmp_path)
    admin, _ = create(b, "timed", config={"retention.ms": "3000", "segment.bytes": "65536"})
    tid = topic_id(admin, "timed")
    produce(b, "timed", 2000)
    lo, hi = watermarks(b, "timed")
    assert (lo, hi) == (0, 2000)
    time.sleep(1.5)
    assert files_under(objects, tid), "segments were uploaded"
    local_before = len(files_under(b.data_dir, "logs"))
    # New data keeps arriving; the old data expires.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        produce(b, "timed", 50)
        lo, hi = watermarks(b, "timed")
        if lo >= 2000:
            break
        time.sleep(0.5)
    assert lo >= 2000, f"log start did not advance past the expired data: {lo}"
    assert first_offset_from_beginning(b, "timed") == lo
    # A consumer below the start is out of range and resets to earliest.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "oor", "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition("timed", 0, 5)])
    got = None
    deadline = time.monotonic() + 20
    while got is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got = m.offset()
    c.close()
    assert got is not None and got >= lo
    # Old objects are gone from the bucket, old local segments from disk.
    time.sleep(1.5)
    status, body, _ = http_get(b.http_url + "/metrics")
    assert "strata_retention_bytes_reclaimed_total" in body
    reclaimed = [l for l in body.splitlines() if l.startswith("strata_retention_bytes_reclaimed_total ")]
    assert float(reclaimed[0].split()[1]) > 1_500_000
    seg_bytes = sum(p.stat().st_size for p in files_under(objects, tid) if p.suffix == ".log")
    assert seg_bytes < 1_000_000, f"expired segment objects remain: {seg_bytes} bytes"
    assert len(files_under(b.data_dir, "logs")) <= local_before


def test_size_retention_stays_within_one_segment(broker_factory, tmp_path):
    b, _ = start(broker_factory, tmp_path)
    limit, seg = 200_000, 65_536
    create(b, "sized", config={"retention.bytes": str(limit), "segment.bytes": str(seg), "retention.ms": "-1"})
    rec = 1000
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
    worst = 0
    end = time.monotonic() + 8
    while time.monotonic() < end:
        for _ in range(200):
            p.produce("sized", value=os.urandom(rec), partition=0)
        p.flush(30)
        time.sleep(0.05)
        lo, hi = watermarks(b, "sized")
        worst = max(worst, (hi - lo) * (rec + 70))
    time.sleep(1.5)
    lo, hi = watermarks(b, "sized")
    assert lo > 0, "size retention never advanced the log start"
    # Within one segment (plus one batch) of the limit once the job caught up.
    assert (hi - lo) * (rec + 70) <= limit + seg + 20_000, (lo, hi)


def test_delete_records_and_truncate_cli(broker_factory, tmp_path):
    b, _ = start(broker_factory, tmp_path)
    admin, _ = create(b, "trunc", partitions=2)
    produce(b, "trunc", 300, partition=0)
    produce(b, "trunc", 300, partition=1)
    res = admin.delete_records([TopicPartition("trunc", 0, 120)])
    for f in res.values():
        assert f.result(30).low_watermark == 120
    assert watermarks(b, "trunc", 0) == (120, 300)
    assert first_offset_from_beginning(b, "trunc", 0) == 120
    # Beyond the high watermark is refused.
    bad = admin.delete_records([TopicPartition("trunc", 0, 1000)])
    for f in bad.values():
        try:
            f.result(30)
            raise AssertionError("delete_records past the high watermark must fail")
        except Exception as e:  # noqa: BLE001 - KafkaException
            assert "OFFSET_OUT_OF_RANGE" in str(e) or "out of range" in str(e).lower()
    out = subprocess.run(
        [str(strata_bin()), "topic", "truncate", "trunc", "--partition", "1", "--before", "-1", "--bootstrap-server", b.bootstrap],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "log start offset 300" in out.stdout
    assert watermarks(b, "trunc", 1) == (300, 300)
    # Survives a restart.
    b.restart()
    assert watermarks(b, "trunc", 0) == (120, 300)


def test_deleted_topic_objects_are_garbage_collected(broker_factory, tmp_path):
    b, objects = start(broker_factory, tmp_path)
    admin, _ = create(b, "doomed", partitions=3)
    tid = topic_id(admin, "doomed")
    for p in range(3):
        produce(b, "doomed", 500, partition=p)
    time.sleep(1.5)
    assert files_under(objects, tid), "segments of the topic exist before the delete"
    for f in admin.delete_topics(["doomed"]).values():
        f.result(30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (files_under(objects, tid) or files_under(objects, "/wal/")):
        time.sleep(0.3)
    assert files_under(objects, tid) == [], "objects of the deleted topic remain"
    assert files_under(objects, "/wal/") == [], "WAL objects holding only the deleted topic remain"
