"""Helpers around confluent-kafka (librdkafka) and kafka-python used by the
end-to-end tests: topic setup, producing with delivery tracking, consuming
whole partitions with assign() (exact offsets, no group), and comparing records
without letting pytest diff 100,000-element lists."""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

DEFAULT_TIMEOUT = 30.0


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def admin(bootstrap: str, **conf) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000, **conf})


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict | None = None) -> None:
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})], operation_timeout=10, request_timeout=15)
    fs[name].result(timeout=DEFAULT_TIMEOUT)
    wait_topic(bootstrap, name, partitions)


def wait_topic(bootstrap: str, name: str, partitions: int, timeout: float = 10.0) -> None:
    """Poll metadata until the topic shows ``partitions`` partitions, each with a leader."""
    a = admin(bootstrap)
    deadline = time.monotonic() + timeout
    last = None
    while True:
        md = a.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(p.leader >= 0 for p in t.partitions.values()):
            return
        last = t and (t.error, {p.id: p.leader for p in t.partitions.values()})
        if time.monotonic() > deadline:
            raise AssertionError(f"topic {name}: metadata still {last} after {timeout}s, want {partitions} partitions with leaders")
        time.sleep(0.05)


def producer(bootstrap: str, **conf) -> Producer:
    base = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 30000,
        "socket.timeout.ms": 10000,
    }
    base.update(conf)
    return Producer(base)


@dataclass
class Rec:
    key: bytes | None
    value: bytes | None
    headers: list | None = None  # [(str, bytes|None)]
    timestamp: int | None = None  # ms; None = let the client set it
    partition: int | None = None  # None = let the partitioner choose


def produce(p: Producer, topic: str, recs: list[Rec], timeout: float = 60.0) -> list[tuple[int, int]]:
    """Produce ``recs`` and flush. Returns (partition, offset) per record, in
    input order; fails on any delivery error."""
    results: list = [None] * len(recs)

    def on_delivery(i, err, msg):
        results[i] = err if err is not None else (msg.partition(), msg.offset())

    for i, r in enumerate(recs):
        kwargs = {"key": r.key, "value": r.value, "on_delivery": functools.partial(on_delivery, i)}
        if r.headers:
            kwargs["headers"] = r.headers
        if r.timestamp is not None:
            kwargs["timestamp"] = r.timestamp
        if r.partition is not None:
            kwargs["partition"] = r.partition
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(timeout)
    assert left == 0, f"{left} of {len(recs)} records not delivered within {timeout}s"
    errors = [(i, e) for i, e in enumerate(results) if not isinstance(e, tuple)]
    assert not errors, f"{len(errors)} delivery failures, first: record {errors[0][0]}: {errors[0][1]}"
    return results


def consumer(bootstrap: str, **conf) -> Consumer:
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": "strata-e2e",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": False,
        "socket.timeout.ms": 10000,
    }
    base.update(conf)
    return Consumer(base)


@dataclass
class Got:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list
    ts_type: int
    timestamp: int


def consume_range(bootstrap: str, topic: str, ends: dict[int, int], start: int | dict = 0, timeout: float = 60.0, **conf) -> dict[int, list[Got]]:
    """Consume partitions ``ends`` (partition -> end offset, exclusive) from
    ``start`` via assign(). Fails on any consumer error or on timeout."""
    starts = start if isinstance(start, dict) else {p: start for p in ends}
    out: dict[int, list[Got]] = {p: [] for p in ends}
    todo = {p for p in ends if ends[p] > starts[p]}
    if not todo:
        return out
    c = consumer(bootstrap, **conf)
    try:
        c.assign([TopicPartition(topic, p, starts[p]) for p in sorted(todo)])
        deadline = time.monotonic() + timeout
        while todo:
            for m in c.consume(num_messages=10000, timeout=0.2):
                err = m.error()
                if err is not None:
                    raise AssertionError(f"consumer error on {topic}: {err}")
                p = m.partition()
                hdrs = m.headers() or []
                out[p].append(Got(p, m.offset(), m.key(), m.value(), list(hdrs), m.timestamp()[0], m.timestamp()[1]))
                if m.offset() >= ends[p] - 1:
                    todo.discard(p)
            if todo and time.monotonic() > deadline:
                progress = {p: (out[p][-1].offset if out[p] else None, ends[p]) for p in sorted(todo)}
                raise AssertionError(f"consume {topic}: timed out after {timeout}s; partition -> (last offset seen, end): {progress}")
    finally:
        c.close()
    return out


def watermarks(bootstrap: str, topic: str, partitions) -> dict[int, tuple[int, int]]:
    c = consumer(bootstrap)
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False) for p in partitions}
    finally:
        c.close()


def first_mismatch(expected: list, got: list, what: str) -> str | None:
    """Describe the first difference between two lists, or None."""
    for i, (e, g) in enumerate(zip(expected, got)):
        if e != g:
            return f"{what}[{i}] differs:\n  expected {short(e)}\n  got      {short(g)}"
    if len(expected) != len(got):
        return f"{what}: expected {len(expected)} items, got {len(got)}"
    return None


def short(x, limit: int = 400) -> str:
    s = repr(x)
    return s if len(s) <= limit else s[:limit] + f"... ({len(s)} chars)"


def kafka_error_code(exc: BaseException) -> int | None:
    """Code of a KafkaException raised by an admin future."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].code()
    return None


def expect_admin_error(future, code: int, what: str, timeout: float = DEFAULT_TIMEOUT):
    try:
        res = future.result(timeout=timeout)
    except KafkaException as e:
        got = kafka_error_code(e)
        assert got == code, f"{what}: expected error {KafkaError(code).name()} ({code}), got {e}"
        return e
    raise AssertionError(f"{what}: expected error {KafkaError(code).name()} ({code}), but it succeeded: {res!r}")
