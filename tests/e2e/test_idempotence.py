"""Idempotent producer: librdkafka end to end, and duplicate / out-of-order
batches sent by hand."""

from __future__ import annotations

import collections
import time

import kproto
from kclients import consume_range, create_topic, producer, unique_topic, watermarks


def test_confluent_idempotent_producer_exactly_once(broker):
    topic = unique_topic("idem")
    create_topic(broker.bootstrap, topic, 3)
    n = 20_000
    p = producer(broker.bootstrap, **{"enable.idempotence": True, "linger.ms": 5, "max.in.flight.requests.per.connection": 5})
    results = []

    def on_delivery(err, msg):
        results.append((err, msg.partition(), msg.offset(), msg.value()))

    for i in range(n):
        while True:
            try:
                p.produce(topic, key=b"k%d" % (i % 97), value=b"%08d" % i, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    errors = [r for r in results if r[0] is not None]
    assert not errors, f"{len(errors)} delivery errors, first {errors[0]}"
    assert len(results) == n, f"{len(results)} delivery reports for {n} records"
    positions = collections.Counter((part, off) for _, part, off, _ in results)
    dup_pos = [k for k, c in positions.items() if c > 1]
    assert not dup_pos, f"two records acked at the same offset: {dup_pos[:5]}"

    ends = {part: hi for part, (_lo, hi) in watermarks(broker.bootstrap, topic, range(3)).items()}
    assert sum(ends.values()) == n, f"logs hold {sum(ends.values())} records ({ends}), produced {n}"
    got = consume_range(broker.bootstrap, topic, ends)
    values = collections.Counter(m.value for ms in got.values() for m in ms)
    dups = [v for v, c in values.items() if c > 1]
    assert not dups, f"duplicates in the log: {dups[:10]}"
    assert set(values) == {b"%08d" % i for i in range(n)}
    # Per key, produce order is log order.
    for part, ms in got.items():
        last = {}
        for m in ms:
            i = int(m.value)
            assert last.get(m.key, -1) < i, f"partition {part}: record {i} for key {m.key!r} after {last[m.key]}"
            last[m.key] = i


def _batch(pid: int, epoch: int, seq: int, values: list[bytes]) -> bytes:
    ts = int(time.time() * 1000)
    return kproto.record_batch([kproto.Record(b"k", v, timestamp=ts) for v in values], producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def test_raw_duplicate_and_out_of_order_sequences(broker):
    topic = unique_topic("seq")
    create_topic(broker.bootstrap, topic, 1)
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        pid, epoch = c.init_producer_id()
        assert pid >= 0 and epoch >= 0, (pid, epoch)
        pid2, _ = c.init_producer_id()
        assert pid2 != pid, "InitProducerId handed out the same producer id twice"

        first = _batch(pid, epoch, 0, [b"a0", b"a1", b"a2"])
        r = c.produce(topic, 0, first)
        assert r["error_code"] == 0, r
        base = r["base_offset"]
        assert base == 0

        # The very same batch again (a retry after a lost response): no
        # error, same base offset, not appended twice.
        r = c.produce(topic, 0, first)
        assert r["error_code"] == 0, f"duplicate batch: {r}"
        assert r["base_offset"] == base, f"duplicate batch got base offset {r['base_offset']}, first copy {base}"
        assert c.list_offset(topic, 0, -1)["offset"] == 3

        # A gap in the sequence: OUT_OF_ORDER_SEQUENCE_NUMBER, nothing written.
        r = c.produce(topic, 0, _batch(pid, epoch, 10, [b"gap"]))
        assert r["error_code"] == kproto.OUT_OF_ORDER_SEQUENCE_NUMBER, f"sequence 10 after 0..2: {r}"
        assert c.list_offset(topic, 0, -1)["offset"] == 3

        # The next sequence in order is accepted.
        r = c.produce(topic, 0, _batch(pid, epoch, 3, [b"a3", b"a4"]))
        assert (r["error_code"], r["base_offset"]) == (0, 3), r

        # An older batch that is no longer the last one is still recognised
        # as a duplicate (Kafka remembers the last 5 batches per producer).
        r = c.produce(topic, 0, first)
        assert r["error_code"] in (0, kproto.DUPLICATE_SEQUENCE_NUMBER), r
        if r["error_code"] == 0:
            assert r["base_offset"] == 0, r

        # A second producer id has its own sequence space.
        r = c.produce(topic, 0, _batch(pid2, 0, 0, [b"b0"]))
        assert (r["error_code"], r["base_offset"]) == (0, 5), r

        recs = c.fetch_all(topic, 0)
        assert [(x.offset, x.value) for x in recs] == [(0, b"a0"), (1, b"a1"), (2, b"a2"), (3, b"a3"), (4, b"a4"), (5, b"b0")]

    # The log as a real client sees it.
    got = consume_range(broker.bootstrap, topic, {0: 6})
    assert [m.value for m in got[0]] == [b"a0", b"a1", b"a2", b"a3", b"a4", b"b0"]


def test_raw_idempotent_state_survives_restart(broker):
    """After a graceful restart, a retried batch is still a duplicate."""
    topic = unique_topic("seqrestart")
    create_topic(broker.bootstrap, topic, 1)
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        pid, epoch = c.init_producer_id()
        first = _batch(pid, epoch, 0, [b"x0", b"x1"])
        assert c.produce(topic, 0, first)["error_code"] == 0
    assert broker.restart() == 0
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        r = c.produce(topic, 0, first)
        assert (r["error_code"], r["base_offset"]) == (0, 0), f"retry after restart: {r}"
        r = c.produce(topic, 0, _batch(pid, epoch, 2, [b"x2"]))
        assert (r["error_code"], r["base_offset"]) == (0, 2), r
        assert [x.value for x in c.fetch_all(topic, 0)] == [b"x0", b"x1", b"x2"]
