"""Produce and consume round trips: confluent-kafka, kafka-python, kcat."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP

from cluster import wait_until
from kclients import (
    Got,
    Rec,
    consume_range,
    consumer,
    create_topic,
    first_mismatch,
    produce,
    producer,
    unique_topic,
    watermarks,
)

BIG_N = 100_000
PARTITIONS = 3


def make_records(n: int, seed: int, base_ts: int, null_header_values: bool = True) -> list[Rec]:
    """Keys, values of varying size (empty, null, small, compressible, random,
    a few large), headers (duplicates, empty and null values, non-ASCII keys)
    and explicit timestamps that are not monotonic."""
    rng = random.Random(seed)
    blob = rng.randbytes(1 << 20)
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.01:
            value = None  # tombstone
        elif r < 0.02:
            value = b""
        elif r < 0.60:
            value = (b"value-%d-" % i) * rng.randint(1, 20)  # compressible
        elif r < 0.995:
            size = rng.randint(1, 400)
            off = rng.randrange(0, len(blob) - size)
            value = blob[off : off + size]
        else:
            size = rng.randint(10_000, 120_000)
            off = rng.randrange(0, len(blob) - size)
            value = blob[off : off + size]
        key = b"" if i % 997 == 0 else b"key-%d" % rng.randrange(500)
        if i % 3 == 0:
            headers = [("seq", b"%d" % i), ("dup", b"1"), ("dup", b"2"), ("empty", b""), ("ключ", "значение".encode())]
            if null_header_values:
                headers.append(("null", None))
        elif i % 3 == 1:
            headers = [("bin", blob[i % 1000 : i % 1000 + 17])]
        else:
            headers = None
        # Non-monotonic create times: negative deltas inside a batch.
        ts = base_ts + ((i * 7919) % 100_000)
        out.append(Rec(key, value, headers, ts))
    return out


def expected_by_partition(recs: list[Rec], placed: list[tuple[int, int]]) -> dict[int, list[tuple]]:
    """partition -> [(offset, key, value, headers, ts)] in produce order."""
    exp: dict[int, list[tuple]] = {}
    for r, (p, off) in zip(recs, placed):
        exp.setdefault(p, []).append((off, r.key, r.value, r.headers or [], r.timestamp))
    return exp


def check_round_trip(exp: dict[int, list[tuple]], got: dict[int, list[Got]]) -> None:
    for p, rows in exp.items():
        offsets = [row[0] for row in rows]
        # Produce order within a partition is offset order, contiguous from 0.
        assert offsets == list(range(len(rows))), first_mismatch(list(range(len(rows))), offsets, f"partition {p} delivered offsets")
        msgs = got[p]
        got_rows = [(m.offset, m.key, m.value, m.headers, m.timestamp) for m in msgs]
        problem = first_mismatch(rows, got_rows, f"partition {p} records (offset, key, value, headers, timestamp)")
        assert problem is None, problem
        bad_ts_type = [m.offset for m in msgs if m.ts_type != TIMESTAMP_CREATE_TIME]
        assert not bad_ts_type, f"partition {p}: timestamp type is not CreateTime at offsets {bad_ts_type[:10]}"


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_confluent_round_trip_100k(broker, compression):
    topic = unique_topic(f"rt-{compression}")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    base_ts = int(time.time() * 1000) - 3_600_000
    recs = make_records(BIG_N, seed=sum(compression.encode()), base_ts=base_ts)

    t0 = time.monotonic()
    p = producer(broker.bootstrap, **{"compression.type": compression, "linger.ms": 20, "batch.num.messages": 5000})
    placed = produce(p, topic, recs, timeout=120)
    t_produce = time.monotonic() - t0

    exp = expected_by_partition(recs, placed)
    assert len(exp) == PARTITIONS, f"records landed in partitions {sorted(exp)} only"
    ends = {pp: len(rows) for pp, rows in exp.items()}
    assert watermarks(broker.bootstrap, topic, range(PARTITIONS)) == {pp: (0, ends[pp]) for pp in range(PARTITIONS)}

    t0 = time.monotonic()
    got = consume_range(broker.bootstrap, topic, ends, timeout=120)
    t_consume = time.monotonic() - t0
    check_round_trip(exp, got)
    print(f"{compression}: produce {t_produce:.1f}s, consume {t_consume:.1f}s")


def test_kafka_python_round_trip(broker):
    topic = unique_topic("kp")
    create_topic(broker.bootstrap, topic, 2)
    base_ts = int(time.time() * 1000) - 60_000
    # kafka-python cannot send null header values.
    recs = make_records(3000, seed=7, base_ts=base_ts, null_header_values=False)
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5, compression_type="gzip", max_request_size=4 << 20)
    try:
        futs = [kp.send(topic, key=r.key, value=r.value, headers=r.headers or [], timestamp_ms=r.timestamp) for r in recs]
        kp.flush(timeout=60)
        placed = []
        for f in futs:
            md = f.get(timeout=30)
            placed.append((md.partition, md.offset))
    finally:
        kp.close(timeout=10)
    exp = expected_by_partition(recs, placed)
    ends = {pp: len(rows) for pp, rows in exp.items()}

    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="none")
    try:
        tps = [KTP(topic, pp) for pp in sorted(ends)]
        kc.assign(tps)
        for tp in tps:
            kc.seek(tp, 0)
        assert kc.end_offsets(tps) == {KTP(topic, pp): ends[pp] for pp in ends}
        got: dict[int, list[Got]] = {pp: [] for pp in ends}
        deadline = time.monotonic() + 60
        while any(len(got[pp]) < ends[pp] for pp in ends):
            assert time.monotonic() < deadline, f"kafka-python consumer stuck: {({pp: len(got[pp]) for pp in got})} of {ends}"
            for tp, batch in kc.poll(timeout_ms=500, max_records=5000).items():
                for m in batch:
                    got[tp.partition].append(Got(tp.partition, m.offset, m.key, m.value, [(k, v) for k, v in m.headers], m.timestamp_type, m.timestamp))
    finally:
        kc.close()
    for msgs in got.values():
        for m in msgs:
            m.ts_type += 1  # kafka-python: 0 = CreateTime; confluent: 1
    check_round_trip(exp, got)

    # Cross-client: what kafka-python wrote, librdkafka reads the same.
    got2 = consume_range(broker.bootstrap, topic, ends)
    check_round_trip(exp, got2)


def run(cmd: list[str], stdin: bytes | None = None, timeout: float = 60) -> str:
    """Run a command; on failure show its exit code and stderr."""
    r = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}\nstderr:\n{r.stderr.decode(errors='replace')[-3000:]}"
    return r.stdout.decode()


def test_kcat_round_trip(broker, kcat):
    topic = unique_topic("kcat")
    create_topic(broker.bootstrap, topic, 1)
    lines = [f"k{i % 7}:line {i} {'x' * (i % 50)}" for i in range(2000)]
    run([kcat, "-b", broker.bootstrap, "-P", "-t", topic, "-K", ":", "-X", "acks=all"], stdin=("\n".join(lines) + "\n").encode())
    assert watermarks(broker.bootstrap, topic, [0]) == {0: (0, len(lines))}
    out = run([kcat, "-b", broker.bootstrap, "-C", "-t", topic, "-e", "-o", "beginning", "-f", "%k:%s\n", "-q"])
    got = out.splitlines()
    problem = first_mismatch(lines, got, "kcat lines")
    assert problem is None, problem

    # kcat's metadata listing knows the topic and the broker.
    meta = run([kcat, "-b", broker.bootstrap, "-L", "-t", topic])
    assert f'topic "{topic}" with 1 partitions' in meta, meta
    assert f"127.0.0.1:{broker.kafka_port}" in meta, meta


def test_acks_zero(broker):
    topic = unique_topic("acks0")
    create_topic(broker.bootstrap, topic, 1)
    p = producer(broker.bootstrap, acks="0")
    n = 2000
    for i in range(n):
        p.produce(topic, value=b"v%d" % i, key=b"k", partition=0)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    # acks=0 gives no ack to wait on: poll the high watermark.
    wait_until(lambda: watermarks(broker.bootstrap, topic, [0])[0][1] >= n, 15, f"high watermark {n} after acks=0 produce")
    assert watermarks(broker.bootstrap, topic, [0]) == {0: (0, n)}
    got = consume_range(broker.bootstrap, topic, {0: n})
    assert [m.value for m in got[0]] == [b"v%d" % i for i in range(n)]
    assert [m.offset for m in got[0]] == list(range(n))


def test_empty_partition_fetch_waits_and_returns_new_data(broker):
    """A consumer positioned at the end gets records produced later (long
    poll / repeated fetches at the high watermark must not error)."""
    topic = unique_topic("tail")
    create_topic(broker.bootstrap, topic, 1)
    c = consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        assert c.consume(num_messages=10, timeout=1.0) == []
        produce(producer(broker.bootstrap), topic, [Rec(b"k", b"late", partition=0)])
        deadline = time.monotonic() + 15
        got = []
        while not got:
            assert time.monotonic() < deadline, "record produced after the consumer reached the end never arrived"
            for m in c.consume(num_messages=10, timeout=0.5):
                assert m.error() is None, m.error()
                got.append(m)
        assert [(m.offset(), m.value()) for m in got] == [(0, b"late")]
    finally:
        c.close()


def test_large_record_near_limit(broker):
    topic = unique_topic("big")
    create_topic(broker.bootstrap, topic, 1)
    value = os.urandom(900_000)
    placed = produce(producer(broker.bootstrap), topic, [Rec(b"big", value, partition=0)])
    assert placed == [(0, 0)]
    got = consume_range(broker.bootstrap, topic, {0: 1})
    assert got[0][0].value == value


def test_concurrent_producers_one_partition(broker):
    """Four producers racing on one partition: every record gets its own
    offset, offsets are contiguous, nothing lost or doubled."""
    topic = unique_topic("race")
    create_topic(broker.bootstrap, topic, 1)
    n_each, n_prod = 5000, 4
    placed: dict[int, list] = {}
    errors = []

    def run(k: int) -> None:
        try:
            p = producer(broker.bootstrap, **{"linger.ms": 1})
            placed[k] = produce(p, topic, [Rec(b"p%d" % k, b"%d-%d" % (k, i), partition=0) for i in range(n_each)])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_prod)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    offsets = sorted(off for k in placed for _p, off in placed[k])
    assert offsets == list(range(n_each * n_prod)), first_mismatch(list(range(n_each * n_prod)), offsets, "acked offsets")
    for k in placed:
        own = [off for _p, off in placed[k]]
        assert own == sorted(own), f"producer {k}: its records were not appended in order"
    got = consume_range(broker.bootstrap, topic, {0: n_each * n_prod})
    by_offset = {m.offset: m.value for m in got[0]}
    for k in placed:
        for i, (_p, off) in enumerate(placed[k]):
            assert by_offset[off] == b"%d-%d" % (k, i), f"offset {off}: {by_offset[off]!r}, acked for {k}-{i}"
