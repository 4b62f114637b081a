"""Durability across restarts: graceful (SIGTERM) and crash (SIGKILL)."""

from __future__ import annotations

import signal
import time

import pytest
from confluent_kafka.admin import ConfigResource

import kproto
from cluster import wait_until
from conftest import http_get
from kclients import (
    Rec,
    admin,
    consume_range,
    create_topic,
    first_mismatch,
    produce,
    producer,
    unique_topic,
    wait_topic,
    watermarks,
)

PARTITIONS = 3


def metric(broker, name: str) -> float:
    _, body, _ = http_get(broker.http_url + "/metrics")
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")
TOPIC_CONFIG = ConfigResource.Type.TOPIC if hasattr(ConfigResource, "Type") else ConfigResource.ResourceType.TOPIC


def records(n: int, tag: str) -> list[Rec]:
    base = int(time.time() * 1000)
    return [Rec(b"k%d" % (i % 40), b"%s-%d-" % (tag.encode(), i) + b"x" * (i % 300), [("i", b"%d" % i)], base + i) for i in range(n)]


def check_log(bootstrap: str, topic: str, expected: dict[int, list[tuple]]) -> None:
    """``expected``: partition -> [(offset, key, value)], every offset from 0."""
    ends = {p: len(rows) for p, rows in expected.items()}
    got = consume_range(bootstrap, topic, ends)
    for p, rows in expected.items():
        have = [(m.offset, m.key, m.value) for m in got[p]]
        problem = first_mismatch(rows, have, f"partition {p} after restart")
        assert problem is None, problem


def by_partition(recs: list[Rec], placed: list[tuple[int, int]]) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {p: [] for p in range(PARTITIONS)}
    for r, (p, off) in zip(recs, placed):
        out[p].append((off, r.key, r.value))
    for rows in out.values():
        rows.sort()
    return out


def produce_after_restart_continues(bootstrap: str, topic: str, ends: dict[int, int]) -> None:
    new = [Rec(b"after", b"after-restart-%d" % p, partition=p) for p in range(PARTITIONS)]
    placed = produce(producer(bootstrap), topic, new)
    assert placed == [(p, ends[p]) for p in range(PARTITIONS)], f"offsets after restart {placed}, expected to continue at {ends}"


def test_sigterm_keeps_acks_all_records(broker):
    topic = unique_topic("term")
    create_topic(broker.bootstrap, topic, PARTITIONS, config={"retention.ms": "123456789"})
    recs = records(5000, "term")
    placed = produce(producer(broker.bootstrap, acks="all"), topic, recs)
    expected = by_partition(recs, placed)
    ends = {p: len(rows) for p, rows in expected.items()}

    rc = broker.restart(signal.SIGTERM)
    assert rc == 0

    wait_topic(broker.bootstrap, topic, PARTITIONS)
    assert watermarks(broker.bootstrap, topic, range(PARTITIONS)) == {p: (0, ends[p]) for p in range(PARTITIONS)}
    check_log(broker.bootstrap, topic, expected)
    produce_after_restart_continues(broker.bootstrap, topic, ends)
    # Topic configs survive as well.
    a = admin(broker.bootstrap)
    res = ConfigResource(TOPIC_CONFIG, topic)
    cfg = a.describe_configs([res])[res].result(timeout=30)
    assert cfg["retention.ms"].value == "123456789"


def test_sigkill_after_acks_all_keeps_every_acked_record(broker):
    topic = unique_topic("kill")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    recs = records(5000, "kill")
    placed = produce(producer(broker.bootstrap, acks="all"), topic, recs)
    expected = by_partition(recs, placed)
    ends = {p: len(rows) for p, rows in expected.items()}

    broker.kill()  # right after the last ack: no chance to flush
    broker.start()

    wait_topic(broker.bootstrap, topic, PARTITIONS)
    assert watermarks(broker.bootstrap, topic, range(PARTITIONS)) == {p: (0, ends[p]) for p in range(PARTITIONS)}
    check_log(broker.bootstrap, topic, expected)
    produce_after_restart_continues(broker.bootstrap, topic, ends)


def test_sigkill_mid_stream_keeps_every_acked_record(broker):
    """Kill the broker while an acks=all producer is busy: whatever was
    acknowledged before the kill must be there, at the acknowledged offset."""
    topic = unique_topic("midkill")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    p = producer(broker.bootstrap, acks="all", **{"linger.ms": 2, "message.timeout.ms": 5000, "retries": 0})
    acked: dict[tuple[int, int], bytes] = {}

    def on_delivery(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()

    i = 0
    deadline = time.monotonic() + 30
    while len(acked) < 3000:
        assert time.monotonic() < deadline, f"only {len(acked)} acks in 30 s"
        try:
            p.produce(topic, key=b"k%d" % (i % 40), value=b"mid-%d" % i, on_delivery=on_delivery)
            i += 1
        except BufferError:
            pass
        p.poll(0)
    # Keep records in flight while the broker dies.
    for _ in range(2000):
        try:
            p.produce(topic, key=b"k%d" % (i % 40), value=b"mid-%d" % i, on_delivery=on_delivery)
            i += 1
        except BufferError:
            break
    p.poll(0)
    broker.kill()
    p.purge()
    p.flush(10)
    snapshot = dict(acked)
    del p

    broker.start()
    wait_topic(broker.bootstrap, topic, PARTITIONS)
    marks = watermarks(broker.bootstrap, topic, range(PARTITIONS))
    need = {pp: 0 for pp in range(PARTITIONS)}
    for pp, off in snapshot:
        need[pp] = max(need[pp], off + 1)
    short = {pp: (marks[pp][1], need[pp]) for pp in range(PARTITIONS) if marks[pp][1] < need[pp]}
    assert not short, f"high watermark below the highest acked offset (partition: (hw, needed)): {short}"
    got = consume_range(broker.bootstrap, topic, need)
    have = {(m.partition, m.offset): m.value for ms in got.values() for m in ms}
    missing = [(k, v) for k, v in sorted(snapshot.items()) if have.get(k) != v]
    assert not missing, f"{len(missing)} of {len(snapshot)} acked records missing or different after SIGKILL, first: {missing[:5]} (log has {[have.get(k) for k, _ in missing[:5]]})"


def test_sigterm_keeps_acks_1_records(broker):
    topic = unique_topic("acks1")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    recs = records(3000, "acks1")
    placed = produce(producer(broker.bootstrap, acks="1"), topic, recs)
    expected = by_partition(recs, placed)
    ends = {p: len(rows) for p, rows in expected.items()}

    assert broker.restart(signal.SIGTERM) == 0

    wait_topic(broker.bootstrap, topic, PARTITIONS)
    check_log(broker.bootstrap, topic, expected)
    produce_after_restart_continues(broker.bootstrap, topic, ends)


def test_restart_keeps_topics_and_partition_counts(broker):
    names = {unique_topic("keep"): n for n in (1, 2, 5)}
    for name, n in names.items():
        create_topic(broker.bootstrap, name, n)
    deleted = unique_topic("gone")
    create_topic(broker.bootstrap, deleted, 1)
    a = admin(broker.bootstrap)
    a.delete_topics([deleted], operation_timeout=10)[deleted].result(timeout=30)
    assert broker.restart(signal.SIGTERM) == 0
    for name, n in names.items():
        wait_topic(broker.bootstrap, name, n)
    assert deleted not in admin(broker.bootstrap).list_topics(timeout=10).topics, "deleted topic came back after restart"


def test_sigterm_exits_zero_promptly_with_idle_clients(broker):
    """Open client connections must not hold up a graceful shutdown."""
    topic = unique_topic("idle")
    create_topic(broker.bootstrap, topic, 1)
    p = producer(broker.bootstrap)
    produce(p, topic, [Rec(b"k", b"v")])
    t0 = time.monotonic()
    rc = broker.stop(signal.SIGTERM)
    took = time.monotonic() - t0
    assert rc == 0, f"exit code {rc} on SIGTERM"
    assert took < 10, f"graceful shutdown took {took:.1f}s"
    del p


def test_small_segments_round_trip_and_restart(broker_factory):
    """Tiny segments force many rolls: reads across segment edges, offset
    lookups in old segments and recovery of many segments must all hold."""
    broker = broker_factory(["--segment-bytes", "16384"])
    topic = unique_topic("seg")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    recs = records(6000, "seg")  # ~1 MB per partition: dozens of segments
    p = producer(broker.bootstrap, acks="all", **{"linger.ms": 0, "batch.num.messages": 50})
    placed = produce(p, topic, recs)
    expected = by_partition(recs, placed)
    ends = {pp: len(rows) for pp, rows in expected.items()}
    check_log(broker.bootstrap, topic, expected)
    # Start reading in the middle of the log (an older segment).
    mid = {pp: ends[pp] // 3 for pp in ends}
    got = consume_range(broker.bootstrap, topic, ends, start=mid)
    for pp in ends:
        have = [(m.offset, m.key, m.value) for m in got[pp]]
        problem = first_mismatch(expected[pp][mid[pp]:], have, f"partition {pp} from offset {mid[pp]}")
        assert problem is None, problem

    assert broker.restart(signal.SIGTERM) == 0
    assert watermarks(broker.bootstrap, topic, range(PARTITIONS)) == {pp: (0, ends[pp]) for pp in range(PARTITIONS)}
    check_log(broker.bootstrap, topic, expected)
    broker.kill()
    broker.start()
    check_log(broker.bootstrap, topic, expected)
    produce_after_restart_continues(broker.bootstrap, topic, ends)


@pytest.mark.parametrize("client_gone", [False, True], ids=["client-connected", "client-gone"])
def test_sigterm_with_pending_long_poll_fetch(broker, client_gone):
    """A Fetch long-polling an empty partition (max_wait_ms 60 s) must not
    hold up a graceful shutdown, whether its client is still connected or
    already gone; nor must a connection halfway through a request."""
    topic = unique_topic("longpoll")
    create_topic(broker.bootstrap, topic, 1)
    accepted = metric(broker, "strata_connections_accepted_total")
    c = kproto.Conn("127.0.0.1", broker.kafka_port)
    req = kproto.encode_request(
        kproto.FETCH,
        c.pick(kproto.FETCH),
        99,
        {
            "replica_id": -1,
            "max_wait_ms": 60_000,
            "min_bytes": 1,
            "max_bytes": 1 << 20,
            "session_epoch": -1,
            "topics": [{"topic": topic, "partitions": [{"partition": 0, "fetch_offset": 0, "current_leader_epoch": -1, "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
        },
    )
    c.send_raw(kproto.frame(req))
    # A second connection stuck in the middle of a request frame.
    half = kproto.Conn("127.0.0.1", broker.kafka_port)
    half.send_raw(kproto.frame(req)[:20])
    # Both connections accepted (the frames are read as soon as they are).
    wait_until(lambda: metric(broker, "strata_connections_accepted_total") >= accepted + 2, 10, "both connections accepted")
    if client_gone:
        c.close()
    try:
        t0 = time.monotonic()
        rc = broker.stop(signal.SIGTERM)
        took = time.monotonic() - t0
    finally:
        c.close()
        half.close()
    assert rc == 0, f"exit code {rc} on SIGTERM"
    assert took < 10, f"graceful shutdown took {took:.1f}s with a long-poll Fetch pending"
