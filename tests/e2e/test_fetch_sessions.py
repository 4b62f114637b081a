"""Incremental fetch sessions (KIP-227): kafka-python (which opens sessions
by itself) reads many partitions through incremental fetches, a tiny
session cache evicts sessions without losing records, and the raw protocol
gets Kafka's session errors and incremental responses."""

import threading
import time

from kafka import KafkaConsumer, TopicPartition

import kproto
from conftest import http_get
from kclients import Rec, create_topic, produce, producer, unique_topic

FETCH_V = 12  # the test codec's last Fetch version (topics by name)


def metric(broker, name: str) -> float:
    status, text, _ = http_get(broker.http_url + "/metrics")
    assert status == 200, text[:300]
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def fill(broker, topic: str, partitions: int, per_partition: int, rounds: int = 1, pause: float = 0.0) -> dict[int, list[bytes]]:
    """Produce ``rounds`` rounds of records to every partition, ``pause``
    seconds apart (a consumer running meanwhile sees the data arrive)."""
    want: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    prod = producer(broker.bootstrap)
    for r in range(rounds):
        if r:
            time.sleep(pause)
        batch = {p: [f"{topic}-{p}-{r}-{i}".encode() for i in range(per_partition)] for p in range(partitions)}
        produce(prod, topic, [Rec(None, v, partition=p) for p, vals in batch.items() for v in vals])
        for p, vals in batch.items():
            want[p].extend(vals)
    return want


def read_all(broker, topic: str, want: dict[int, list[bytes]], client_id: str, timeout: float = 60.0) -> dict[int, list[bytes]]:
    c = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=4096,
    )
    try:
        c.assign([TopicPartition(topic, p) for p in want])
        for p in want:
            c.seek(TopicPartition(topic, p), 0)
        got: dict[int, list[bytes]] = {p: [] for p in want}
        deadline = time.monotonic() + timeout
        while any(len(got[p]) < len(want[p]) for p in want):
            assert time.monotonic() < deadline, f"{client_id}: timed out; have { {p: len(v) for p, v in got.items()} }"
            for tp, msgs in c.poll(timeout_ms=200).items():
                got[tp.partition].extend(m.value for m in msgs)
        return got
    finally:
        c.close()


def test_many_partitions_arrive_in_order_through_incremental_sessions(broker):
    topic = unique_topic("sess")
    create_topic(broker.bootstrap, topic, 64)
    rounds, per = 8, 5
    expect = {p: [f"{topic}-{p}-{r}-{i}".encode() for r in range(rounds) for i in range(per)] for p in range(64)}
    result: dict[str, object] = {}

    def reader():
        try:
            result["got"] = read_all(broker, topic, expect, "sess-reader")
        except BaseException as e:  # surfaced below
            result["got"] = e

    t = threading.Thread(target=reader)
    t.start()
    # The data arrives while the consumer fetches incrementally.
    want = fill(broker, topic, 64, per, rounds=rounds, pause=0.3)
    assert want == expect
    t.join(90)
    got = result.get("got")
    assert isinstance(got, dict), f"reader failed: {got!r}"
    for p in want:
        assert got[p] == want[p], f"partition {p}: records differ (first 3 got {got[p][:3]})"
    # The reads went through a session, incrementally.
    assert metric(broker, "strata_fetch_sessions_created_total") >= 1
    assert metric(broker, "strata_fetch_session_incremental_total") >= rounds
    assert metric(broker, "strata_fetch_session_partitions") == 64


def test_tiny_session_cache_evicts_and_still_delivers_everything(broker_factory):
    # One slot, and sessions idle for 50 ms are evictable: two consumers
    # keep evicting each other's sessions while data keeps arriving.
    b = broker_factory(["--max-incremental-fetch-session-cache-slots", "1", "--fetch-session-eviction-ms", "50"])
    topics = [unique_topic("evict-a"), unique_topic("evict-b")]
    sizes = (8, 16)
    rounds, per = 6, 10
    expects = []
    for t, n in zip(topics, sizes):
        create_topic(b.bootstrap, t, n)
        expects.append({p: [f"{t}-{p}-{r}-{i}".encode() for r in range(rounds) for i in range(per)] for p in range(n)})
    results: dict[str, object] = {}

    def run(i):
        try:
            results[topics[i]] = read_all(b, topics[i], expects[i], f"evict-{i}")
        except BaseException as e:  # surfaced below
            results[topics[i]] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for r in range(rounds):
        time.sleep(0.3)
        prod = producer(b.bootstrap)
        for t, n in zip(topics, sizes):
            produce(prod, t, [Rec(None, f"{t}-{p}-{r}-{i}".encode(), partition=p) for p in range(n) for i in range(per)])
    for t in threads:
        t.join(120)
    for t, want in zip(topics, expects):
        got = results.get(t)
        assert isinstance(got, dict), f"{t}: {got!r}"
        for p in want:
            assert got[p] == want[p], f"{t}-{p}: records differ"
    assert metric(b, "strata_fetch_sessions") <= 1
    assert metric(b, "strata_fetch_session_evictions_total") >= 1


def fetch(conn, topic, parts: dict[int, int], session_id: int, epoch: int, forgotten=None) -> dict:
    return conn.request(
        kproto.FETCH,
        FETCH_V,
        {
            "replica_id": -1,
            "max_wait_ms": 0,
            "min_bytes": 0,
            "max_bytes": 1 << 20,
            "isolation_level": 0,
            "session_id": session_id,
            "session_epoch": epoch,
            "topics": [
                {
                    "topic": topic,
                    "partitions": [
                        {"partition": p, "current_leader_epoch": -1, "fetch_offset": o, "last_fetched_epoch": -1, "log_start_offset": -1, "partition_max_bytes": 1 << 20}
                        for p, o in parts.items()
                    ],
                }
            ]
            if parts
            else [],
            "forgotten_topics_data": [{"topic": topic, "partitions": forgotten}] if forgotten else [],
            "rack_id": "",
        },
    )


def returned(body) -> dict[int, list[bytes]]:
    out = {}
    for t in body["responses"]:
        for p in t["partitions"]:
            out[p["partition_index"]] = [r.value for b in kproto.parse_batches(p["records"]) for r in b.records]
    return out


def test_session_protocol_errors_and_incremental_responses(broker):
    topic = unique_topic("raw")
    create_topic(broker.bootstrap, topic, 3)
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        for p in range(3):
            assert c.produce(topic, p, kproto.record_batch([kproto.Record(None, f"a{p}".encode())]))["error_code"] == 0
        full = fetch(c, topic, {0: 0, 1: 0, 2: 0}, 0, 0)
        assert full["error_code"] == 0
        sid = full["session_id"]
        assert sid > 0, "a full fetch with epoch 0 opens a session"
        assert returned(full) == {0: [b"a0"], 1: [b"a1"], 2: [b"a2"]}
        # Positions move to 1; nothing new: the incremental answer is empty.
        inc = fetch(c, topic, {0: 1, 1: 1, 2: 1}, sid, 1)
        assert (inc["error_code"], inc["session_id"]) == (0, sid)
        assert returned(inc) == {}
        # New data on partition 1 only: only it is in the response.
        assert c.produce(topic, 1, kproto.record_batch([kproto.Record(None, b"b1")]))["error_code"] == 0
        inc = fetch(c, topic, {}, sid, 2)
        assert returned(inc) == {1: [b"b1"]}
        # Forget partition 2; data there is no longer reported.
        assert c.produce(topic, 2, kproto.record_batch([kproto.Record(None, b"b2")]))["error_code"] == 0
        inc = fetch(c, topic, {1: 2}, sid, 3, forgotten=[2])
        assert returned(inc) == {}
        # Kafka's errors: a stale epoch, an unknown session.
        stale = fetch(c, topic, {}, sid, 3)
        assert (stale["error_code"], stale["session_id"], stale["responses"]) == (71, 0, [])
        unknown = fetch(c, topic, {}, sid + 1 if sid < 2**31 - 1 else 1, 1)
        assert unknown["error_code"] == 70
        # The session still works at its epoch; a FINAL_EPOCH fetch closes it.
        assert fetch(c, topic, {}, sid, 4)["error_code"] == 0
        closing = fetch(c, topic, {0: 1}, sid, -1)
        assert (closing["error_code"], closing["session_id"]) == (0, 0)
        assert fetch(c, topic, {}, sid, 5)["error_code"] == 70
