"""Time and size retention, DeleteRecords (API and `strata topic truncate`),
and garbage collection of a deleted topic's objects."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, OFFSET_BEGINNING, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from cluster import wait_until
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
    wait_until(lambda: files_under(objects, tid), 20, "segments of the topic uploaded")

    # New data keeps arriving; the old data expires.
    def expired():
        produce(b, "timed", 50)
        return watermarks(b, "timed")[0] >= 2000

    wait_until(expired, 30, "log start advanced past the expired data", interval=0.5)
    # A reader from the beginning starts at the log start (which may move on
    # while it reads: the data produced above expires too).
    lo, hi = watermarks(b, "timed")
    first = first_offset_from_beginning(b, "timed")
    assert first is not None and lo <= first <= watermarks(b, "timed")[0], (lo, first)
    # A consumer below the start is out of range and resets to earliest.
    # With a 3 s retention the start moves every half second, faster than a
    # client's reset cycle; a long retention holds it still from here on.
    inc = ConfigResource(ConfigResource.Type.TOPIC, "timed", incremental_configs=[ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([inc])[inc].result(timeout=30)
    produce(b, "timed", 50)
    lo, _ = watermarks(b, "timed")
    assert lo >= 2000, lo
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
    # Old objects are gone from the bucket (after GC), old local segments
    # from disk.
    def reclaimed():
        _, body, _ = http_get(b.http_url + "/metrics")
        lines = [l for l in body.splitlines() if l.startswith("strata_retention_bytes_reclaimed_total ")]
        return float(lines[0].split()[1]) if lines else 0.0

    wait_until(lambda: reclaimed() > 1_500_000, 20, "strata_retention_bytes_reclaimed_total > 1.5 MB")

    def seg_bytes():
        return sum(p.stat().st_size for p in files_under(objects, tid) if p.suffix == ".log")

    wait_until(lambda: seg_bytes() < 1_000_000, 20, f"expired segment objects deleted (now {seg_bytes()} bytes)")

    # Locally, no segment lies wholly below the log start (at most the one
    # that holds it starts before it).
    def below_start():
        bases = [int(p.stem) for p in files_under(b.data_dir, "logs") if p.suffix == ".log"]
        return [x for x in bases if x < lo]

    wait_until(lambda: len(below_start()) <= 1, 20, f"expired local segments deleted (below the start: {below_start()})")


def test_size_retention_stays_within_one_segment(broker_factory, tmp_path):
    b, _ = start(broker_factory, tmp_path)
    limit, seg = 200_000, 65_536
    create(b, "sized", config={"retention.bytes": str(limit), "segment.bytes": str(seg), "retention.ms": "-1"})
    rec = 1000
    per_record = rec + 70  # value plus record and batch overhead
    rounds_of = 200
    round_bytes = rounds_of * per_record
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
    samples = []  # (time, log start, high watermark) after each round
    t0 = time.monotonic()
    while time.monotonic() < t0 + 8:
        for _ in range(rounds_of):
            p.produce("sized", value=os.urandom(rec), partition=0)
        assert p.flush(30) == 0
        lo, hi = watermarks(b, "sized")
        samples.append((time.monotonic(), lo, hi))
    # The bound while producing. Retention drops whole extents, oldest
    # first, while what is left stays >= the limit, so right after a pass
    # the log holds < limit + its oldest extent (a segment, or one WAL flush
    # of this partition: at most one round here, as acks=all waits for each
    # round's commit). Passes run every tier tick (100 ms here) after the
    # segment upload and commit through the controller; allowing them to lag
    # production by LAG_S (10 ticks), the log holds at most
    #   limit + max(segment, round) + what was produced in the last LAG_S.
    # Without retention the log would grow by the whole 8 s of production.
    lag_s = 1.0
    base = limit + max(seg, round_bytes)
    worst, worst_excess = 0, None
    for t, lo, hi in samples:
        before = [h for (u, _, h) in samples if u <= t - lag_s]
        recent = (hi - (before[-1] if before else 0)) * per_record
        retained = (hi - lo) * per_record
        worst = max(worst, retained)
        excess = retained - (base + recent)
        worst_excess = excess if worst_excess is None else max(worst_excess, excess)
    print(f"size retention: {len(samples)} rounds of {round_bytes} bytes, worst retained {worst} bytes (limit {limit}), worst margin to the bound {-worst_excess} bytes")
    assert len(samples) >= 2 * 8 / lag_s, f"only {len(samples)} rounds in 8 s: the bound says nothing"
    assert worst_excess <= 0, f"retained {worst_excess} bytes more than limit + one extent + {lag_s}s of production"
    produced = samples[-1][2] * per_record
    assert worst <= produced / 4, f"retention does not keep up: retained up to {worst} of {produced} bytes produced"

    # Once production stops, the job catches up to within one segment (plus
    # one batch) of the limit.
    def caught_up():
        lo, hi = watermarks(b, "sized")
        return lo > 0 and (hi - lo) * per_record <= limit + seg + 20_000

    wait_until(caught_up, 20, f"retained bytes within one segment of the limit (now {watermarks(b, 'sized')})")


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
    wait_until(lambda: files_under(objects, tid), 20, "segments of the topic uploaded before the delete")
    for f in admin.delete_topics(["doomed"]).values():
        f.result(30)
    wait_until(lambda: files_under(objects, tid) == [], 20, "objects of the deleted topic deleted")
    wait_until(lambda: files_under(objects, "/wal/") == [], 20, "WAL objects holding only the deleted topic deleted")
