"""ListOffsets (earliest, latest, by timestamp) and seeking."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KTP

import kproto
from kclients import Rec, consumer, consume_range, create_topic, produce, producer, unique_topic, watermarks

N = 100
STEP_MS = 1000


@pytest.fixture
def timed_topic(broker):
    """One partition with N records at t0 + i*1000 ms, written in 10 batches
    (so lookups have to find records both at batch edges and inside batches),
    plus an empty second partition."""
    topic = unique_topic("ts")
    create_topic(broker.bootstrap, topic, 2)
    t0 = (int(time.time() * 1000) // 1000) * 1000 - 10 * 60 * 1000
    p = producer(broker.bootstrap, **{"linger.ms": 50, "compression.type": "lz4"})
    for b in range(10):
        produce(p, topic, [Rec(b"k", b"v%d" % i, timestamp=t0 + i * STEP_MS, partition=0) for i in range(b * 10, b * 10 + 10)])
    return topic, t0


def test_watermarks_confluent(broker, timed_topic):
    topic, _ = timed_topic
    assert watermarks(broker.bootstrap, topic, [0, 1]) == {0: (0, N), 1: (0, 0)}


def test_watermarks_kafka_python(broker, timed_topic):
    topic, _ = timed_topic
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [KTP(topic, 0), KTP(topic, 1)]
        assert kc.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
        assert kc.end_offsets(tps) == {tps[0]: N, tps[1]: 0}
    finally:
        kc.close()


@pytest.mark.parametrize(
    "delta_ms,expected",
    [
        (0, 0),  # exactly the first timestamp
        (-5000, 0),  # before everything
        (37 * STEP_MS, 37),  # exact, inside a batch
        (37 * STEP_MS - 500, 37),  # between 36 and 37: first ts >= target
        (50 * STEP_MS, 50),  # first record of a batch
        (49 * STEP_MS + 1, 50),  # just after the last record of a batch
        (99 * STEP_MS, 99),  # the last record
    ],
)
def test_offsets_for_times(broker, timed_topic, delta_ms, expected):
    topic, t0 = timed_topic
    c = consumer(broker.bootstrap)
    try:
        (tp,) = c.offsets_for_times([TopicPartition(topic, 0, t0 + delta_ms)], timeout=10)
        assert tp.error is None, tp.error
        assert tp.offset == expected, f"confluent offsets_for_times(t0{delta_ms:+d}ms) = {tp.offset}, want {expected}"
    finally:
        c.close()
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        res = kc.offsets_for_times({KTP(topic, 0): t0 + delta_ms})
        got = res[KTP(topic, 0)]
        assert got is not None and got.offset == expected, f"kafka-python offsets_for_times(t0{delta_ms:+d}ms) = {got}, want {expected}"
        assert got.timestamp == t0 + expected * STEP_MS, f"returned timestamp {got.timestamp}, record {expected} has {t0 + expected * STEP_MS}"
    finally:
        kc.close()


def test_offsets_for_times_past_the_end(broker, timed_topic):
    topic, t0 = timed_topic
    target = t0 + N * STEP_MS  # one step after the last record
    c = consumer(broker.bootstrap)
    try:
        tps = c.offsets_for_times([TopicPartition(topic, 0, target), TopicPartition(topic, 1, t0)], timeout=10)
        assert [tp.offset for tp in tps] == [-1, -1], f"past the end / empty partition: {tps}"
    finally:
        c.close()
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        res = kc.offsets_for_times({KTP(topic, 0): target, KTP(topic, 1): t0})
        assert res == {KTP(topic, 0): None, KTP(topic, 1): None}
    finally:
        kc.close()
    # On the wire: offset -1 and timestamp -1.
    with kproto.Conn("127.0.0.1", broker.kafka_port) as conn:
        r = conn.list_offset(topic, 0, target)
        assert (r["error_code"], r["offset"], r["timestamp"]) == (0, -1, -1), r
        r = conn.list_offset(topic, 0, -2)  # earliest
        assert (r["error_code"], r["offset"]) == (0, 0), r
        r = conn.list_offset(topic, 0, -1)  # latest
        assert (r["error_code"], r["offset"]) == (0, N), r
        r = conn.list_offset(topic, 7, -1)  # no such partition
        assert r["error_code"] == kproto.UNKNOWN_TOPIC_OR_PARTITION, r


@pytest.mark.parametrize("offset", [0, 37, 50, 99])
def test_seek_confluent(broker, timed_topic, offset):
    topic, t0 = timed_topic
    got = consume_range(broker.bootstrap, topic, {0: N}, start=offset)
    first = got[0][0]
    assert (first.offset, first.value, first.timestamp) == (offset, b"v%d" % offset, t0 + offset * STEP_MS)
    assert [m.offset for m in got[0]] == list(range(offset, N))


def test_seek_kafka_python(broker, timed_topic):
    topic, _ = timed_topic
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="none")
    try:
        tp = KTP(topic, 0)
        kc.assign([tp])
        for target in (63, 5, 99):
            kc.seek(tp, target)
            deadline = time.monotonic() + 15
            recs = []
            while not recs:
                assert time.monotonic() < deadline, f"nothing fetched after seek to {target}"
                recs = kc.poll(timeout_ms=500, max_records=1).get(tp, [])
            assert (recs[0].offset, recs[0].value) == (target, b"v%d" % target)
    finally:
        kc.close()


def test_fetch_past_end_is_out_of_range(broker, timed_topic):
    topic, _ = timed_topic
    # librdkafka resets an out-of-range position to earliest...
    c = consumer(broker.bootstrap, **{"auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, N + 1000)])
        deadline = time.monotonic() + 15
        msgs = []
        while not msgs:
            assert time.monotonic() < deadline, "consumer positioned past the end never reset to earliest"
            msgs = c.consume(num_messages=1, timeout=0.5)
        assert msgs[0].error() is None, msgs[0].error()
        assert msgs[0].offset() == 0, f"OFFSET_OUT_OF_RANGE should have reset the consumer to earliest, got offset {msgs[0].offset()}"
    finally:
        c.close()
    # ...because the broker says OFFSET_OUT_OF_RANGE; at the high watermark
    # itself, a fetch is simply empty.
    with kproto.Conn("127.0.0.1", broker.kafka_port) as conn:
        r = conn.fetch(topic, 0, N + 1000)
        assert r["error_code"] == kproto.OFFSET_OUT_OF_RANGE, r
        r = conn.fetch(topic, 0, N)
        assert r["error_code"] == 0 and not kproto.parse_batches(r["records"]), r
        assert r["high_watermark"] == N
        r = conn.fetch(topic, 0, -5)
        assert r["error_code"] == kproto.OFFSET_OUT_OF_RANGE, r
