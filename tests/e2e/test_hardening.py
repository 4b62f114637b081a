"""Reads that race local trimming, and timestamp lookups of data that is
only in object storage.

- A consumer far behind, with auto.offset.reset=latest, while the broker
  uploads and trims its local copy as fast as it can: every fetch that
  loses the race with trimming is served from object storage, so the
  consumer is never reset (it reads every offset, in order, with no gap).
- ListOffsets by timestamp for a time whose records are no longer on local
  disk answers the exact first record from object storage (not the first
  local one, which is too late).
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

import kproto
from cluster import wait_until
from conftest import http_get
from kclients import create_topic, unique_topic

TRIM_ARGS = [
    "--segment-bytes",
    "16384",
    "--upload-interval-ms",
    "100",
    "--local-retention-bytes",
    "0",
    "--tier-tick-ms",
    "20",
    "--wal-flush-ms",
    "20",
]


def metric(b, name: str) -> float:
    code, body, _ = http_get(b.http_url + "/metrics", timeout=5)
    assert code == 200
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def earliest_local(b, topic: str) -> int:
    with kproto.Conn("127.0.0.1", b.kafka_port) as c:
        r = c.list_offset(topic, 0, -4)
    assert r["error_code"] == 0, r
    return r["offset"]


def test_a_consumer_far_behind_is_never_reset_by_trimming(broker_factory):
    b = broker_factory(extra_args=TRIM_ARGS)
    topic = unique_topic("trim-race")
    create_topic(b.bootstrap, topic, 1)
    total = 6000
    stop = threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
        for i in range(total):
            p.produce(topic, f"{i:08d}".encode() + b"x" * 200, partition=0)
            if i % 200 == 0:
                p.poll(0)
                time.sleep(0.01)  # pacing the load, not waiting for a condition
            if stop.is_set():
                break
        p.flush(60)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    # Let trimming get ahead of the consumer.
    wait_until(lambda: earliest_local(b, topic) > 0, 60, "local trimming past offset 0")
    c = Consumer(
        {
            "bootstrap.servers": b.bootstrap,
            "group.id": unique_topic("far-behind"),
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
            # Small fetches: many round trips, each a chance to race.
            "fetch.max.bytes": 4096,
            "message.max.bytes": 4096,
            "max.partition.fetch.bytes": 4096,
        }
    )
    c.assign([TopicPartition(topic, 0, 0)])
    expect = 0
    deadline = time.monotonic() + 120
    try:
        while expect < total and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None or m.error().code() == KafkaError._PARTITION_EOF, m.error()
            if m.error():
                continue
            assert m.offset() == expect, f"consumer jumped from {expect} to {m.offset()} (reset by OFFSET_OUT_OF_RANGE?)"
            assert m.value()[:8] == f"{expect:08d}".encode()
            expect += 1
    finally:
        stop.set()
        c.close()
        t.join(60)
    assert expect == total, f"read {expect} of {total}"
    print(f"fetches that lost the race with trimming and went to object storage: {metric(b, 'strata_fetch_trim_races_total'):.0f}")


def test_list_offsets_by_timestamp_reads_object_storage(broker_factory):
    b = broker_factory(extra_args=TRIM_ARGS)
    topic = unique_topic("ts-remote")
    create_topic(b.bootstrap, topic, 1)
    base = int(time.time() * 1000) - 3_600_000
    n = 2000
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(n):
        p.produce(topic, b"v" * 200, partition=0, timestamp=base + i * 10)
    assert p.flush(60) == 0
    # Keep producing newer data until offset 500 is no longer local.
    more = 0
    while earliest_local(b, topic) <= 500:
        for _ in range(200):
            p.produce(topic, b"w" * 200, partition=0, timestamp=base + (n + more) * 10)
            more += 1
        assert p.flush(60) == 0
        assert more < 200_000, "local trimming never passed offset 500"
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique_topic("ts")})
    for want in (0, 123, 500):
        (got,) = c.offsets_for_times([TopicPartition(topic, 0, base + want * 10)], timeout=15)
        assert got.error is None and got.offset == want, f"timestamp of offset {want}: got offset {got.offset} ({got.error})"
        # A time between two records: the next one.
        (got,) = c.offsets_for_times([TopicPartition(topic, 0, base + want * 10 + 5)], timeout=15)
        assert got.offset == want + 1, f"between {want} and {want + 1}: got {got.offset}"
    c.close()


def test_request_bytes_are_bounded_broker_wide_with_back_pressure(broker_factory):
    """Several producers sending ~1 MiB requests (acks=all holds each until
    its WAL commit) to a broker allowed 2 MiB of requests at once: their
    connections wait instead of the broker allocating, the bytes held never
    exceed the budget, and every acknowledged record reads back intact."""
    budget = 2 * 1024 * 1024
    b = broker_factory(extra_args=["--request-max-bytes", str(1024 * 1024), "--queued-max-request-bytes", str(budget)])
    topic = unique_topic("budget")
    create_topic(b.bootstrap, topic, 3)
    threads, per_thread, size = 4, 20, 200_000
    acked: dict[bytes, int] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def run(t: int) -> None:
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 20, "batch.size": 900_000, "message.max.bytes": 950_000})

        def done(err, msg):
            with lock:
                if err is not None:
                    errors.append(str(err))
                else:
                    acked[msg.value()[:16]] = len(msg.value())

        for i in range(per_thread):
            head = f"{t:04d}-{i:011d}".encode()
            p.produce(topic, head + bytes([t + 1]) * (size - len(head)), partition=i % 3, on_delivery=done)
            p.poll(0)
        assert p.flush(120) == 0

    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]
    assert len(acked) == threads * per_thread
    assert metric(b, "strata_request_queue_waits_total") > 0
    peak = metric(b, "strata_request_queued_bytes_peak")
    assert 0 < peak <= budget, peak
    # Everything acknowledged reads back, byte for byte.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique_topic("g"), "auto.offset.reset": "earliest", "fetch.max.bytes": 900_000, "message.max.bytes": 900_000})
    c.assign([TopicPartition(topic, q, 0) for q in range(3)])
    seen: dict[bytes, int] = {}
    deadline = time.monotonic() + 60
    while len(seen) < len(acked) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error() is not None:
            continue
        v = m.value()
        t = int(v[:4])
        assert v[16:] == bytes([t + 1]) * (size - 16), v[:16]
        assert v[:16] not in seen, f"duplicate {v[:16]!r}"
        seen[v[:16]] = len(v)
    c.close()
    assert seen == acked
    assert metric(b, "strata_request_queued_bytes") <= budget
