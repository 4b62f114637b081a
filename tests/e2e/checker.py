"""One checker for every failure test: what was acknowledged must be read back.

A test makes each value with ``Checker.next_value()`` (unique per checker:
``<run>-<seq>``), passes ``Checker.on_delivery`` as the confluent-kafka
delivery callback (or calls ``ack()`` itself), and after the failure reads
every partition of the topics from the log start to the high watermark with
``consume_all()`` (or feeds ``read()`` itself). ``report()`` then counts:

- ``lost``: acknowledged values that were not read anywhere;
- ``duplicated``: values of this run read at more than one offset;
- ``mismatched``: acknowledged offsets that hold a different value (or two
  values were acknowledged, or read, at one offset), and acknowledged values
  read at another offset than the one acknowledged;
- ``non_monotonic``: offsets of a partition that did not strictly increase in
  the order they were read.

``assert_clean()`` fails with the counts and a few examples of each, and also
when nothing was acknowledged at all (a check of nothing cannot fail).

``ProduceLoop`` is a background thread producing values of a checker to one
topic until stopped, so a test can fail something while records are in flight.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

EXAMPLES = 5


class Checker:
    def __init__(self, run: str | None = None):
        self.run = run or uuid.uuid4().hex[:8]
        self._prefix = f"{self.run}-".encode()
        self._lock = threading.Lock()
        self._seq = 0
        # value -> list of (topic, partition, offset) it was acknowledged at
        self._acked: dict[bytes, list[tuple[str, int, int]]] = {}
        self._ack_order: list[tuple[str, int, int, bytes]] = []
        self._failed: list[tuple[bytes | None, str]] = []
        # (topic, partition) -> [(offset, value)] in the order read
        self._read: dict[tuple[str, int], list[tuple[int, bytes | None]]] = defaultdict(list)

    # ------------------------------------------------------------ producing

    def next_value(self, pad: int = 0) -> bytes:
        """A value no other call of this checker returns."""
        with self._lock:
            seq = self._seq
            self._seq += 1
        v = f"{self.run}-{seq}".encode()
        return v + b"." * pad if pad else v

    @property
    def sent(self) -> int:
        with self._lock:
            return self._seq

    def on_delivery(self, err, msg) -> None:
        """confluent-kafka delivery callback (``on_delivery=checker.on_delivery``)."""
        if err is not None:
            self.fail(msg.value() if msg is not None else None, err)
        else:
            self.ack(msg.topic(), msg.partition(), msg.offset(), msg.value())

    def ack(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        with self._lock:
            self._acked.setdefault(value, []).append((topic, partition, offset))
            self._ack_order.append((topic, partition, offset, value))

    def fail(self, value: bytes | None, err) -> None:
        """A delivery error: the record may or may not be in the log."""
        with self._lock:
            self._failed.append((value, str(err)))

    def acked_count(self) -> int:
        with self._lock:
            return len(self._ack_order)

    def failed(self) -> list[tuple[bytes | None, str]]:
        with self._lock:
            return list(self._failed)

    def acked(self) -> list[tuple[str, int, int, bytes]]:
        """(topic, partition, offset, value) in acknowledgement order."""
        with self._lock:
            return list(self._ack_order)

    def topics(self) -> set[str]:
        with self._lock:
            return {t for t, _, _, _ in self._ack_order}

    # ------------------------------------------------------------ reading

    def read(self, topic: str, partition: int, offset: int, value: bytes | None) -> None:
        with self._lock:
            self._read[(topic, partition)].append((offset, value))

    def consume_all(self, bootstrap: str, topics=None, timeout: float = 60.0, **conf) -> int:
        """Read every partition of ``topics`` (default: every topic with an
        acknowledged record) from its log start to its high watermark, as
        they are now, replacing what earlier reads of those topics recorded.
        Returns the number of records read."""
        from kclients import consumer  # confluent-kafka helpers of this suite

        topics = sorted(topics if topics is not None else self.topics())
        if not topics:
            return 0
        c = consumer(bootstrap, **{"group.id": f"checker-{self.run}", "auto.offset.reset": "earliest", **conf})
        n = 0
        try:
            ends: dict[tuple[str, int], int] = {}
            md = c.list_topics(timeout=10)
            for t in topics:
                tm = md.topics.get(t)
                assert tm is not None and tm.error is None, f"checker: topic {t} not in metadata: {tm and tm.error}"
                for p in tm.partitions:
                    lo, hi = c.get_watermark_offsets(TopicPartition(t, p), timeout=10, cached=False)
                    if hi > lo:
                        ends[(t, p)] = hi
            with self._lock:
                for key in [k for k in self._read if k[0] in topics]:
                    del self._read[key]
            if not ends:
                return 0
            c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for (t, p) in sorted(ends)])
            todo = set(ends)
            last: dict[tuple[str, int], int] = {}
            deadline = time.monotonic() + timeout
            while todo:
                for m in c.consume(num_messages=10000, timeout=0.2):
                    if m.error() is not None:
                        raise AssertionError(f"checker: consumer error: {m.error()}")
                    key = (m.topic(), m.partition())
                    self.read(m.topic(), m.partition(), m.offset(), m.value())
                    n += 1
                    last[key] = m.offset()
                    if m.offset() >= ends.get(key, 0) - 1:
                        todo.discard(key)
                if todo:
                    # Offsets without a record (e.g. control batches) end a
                    # partition too: its position reached the end.
                    for tp in c.position([TopicPartition(t, p) for (t, p) in sorted(todo)]):
                        if tp.offset >= ends[(tp.topic, tp.partition)]:
                            todo.discard((tp.topic, tp.partition))
                if todo and time.monotonic() > deadline:
                    progress = {f"{t}/{p}": (last.get((t, p)), ends[(t, p)]) for (t, p) in sorted(todo)}
                    raise AssertionError(f"checker: reading timed out after {timeout}s; partition -> (last offset read, high watermark): {progress}")
        finally:
            c.close()
        return n

    # ------------------------------------------------------------ verdict

    def report(self) -> dict:
        with self._lock:
            acked = {v: list(places) for v, places in self._acked.items()}
            reads = {tp: list(rows) for tp, rows in self._read.items()}
            failed = list(self._failed)
            sent = self._seq

        non_monotonic = []
        at_offset: dict[tuple[str, int, int], set] = defaultdict(set)  # every value read at an offset
        value_places: dict[bytes, set] = defaultdict(set)  # value of this run -> offsets it was read at
        for (t, p), rows in sorted(reads.items()):
            prev = None
            for off, v in rows:
                if prev is not None and off <= prev:
                    non_monotonic.append({"topic": t, "partition": p, "offset": off, "after": prev})
                prev = off
                at_offset[(t, p, off)].add(v)
                if v is not None and v.startswith(self._prefix):
                    value_places[v].add((t, p, off))

        mismatched = []
        seen_mismatch = set()

        def mismatch(where, **kw):
            if where in seen_mismatch:
                return
            seen_mismatch.add(where)
            mismatched.append({"topic": where[0], "partition": where[1], "offset": where[2], **kw})

        for where, values in sorted(at_offset.items(), key=lambda kv: kv[0]):
            if len(values) > 1:
                mismatch(where, read=sorted(values, key=repr))
        acked_at: dict[tuple[str, int, int], set] = defaultdict(set)
        for v, places in acked.items():
            for where in places:
                acked_at[where].add(v)
        for where, values in sorted(acked_at.items()):
            if len(values) > 1:
                mismatch(where, acked=sorted(values))

        lost = []
        for v, places in acked.items():
            read_at = value_places.get(v)
            if not read_at:
                for where in places:
                    lost.append({"topic": where[0], "partition": where[1], "offset": where[2], "value": v})
                    got = at_offset.get(where)
                    if got:
                        mismatch(where, acked=v, read=sorted(got, key=repr))
                continue
            for where in places:
                got = at_offset.get(where)
                if where in read_at:
                    continue
                mismatch(where, acked=v, read=sorted(got, key=repr) if got else None, value_read_at=sorted(read_at))

        duplicated = [{"value": v, "read_at": sorted(places)} for v, places in value_places.items() if len(places) > 1]

        lost.sort(key=lambda r: (r["topic"], r["partition"], r["offset"]))
        duplicated.sort(key=lambda r: r["read_at"][0])
        read_count = sum(len(rows) for rows in reads.values())
        ours_read = len(value_places)
        return {
            "run": self.run,
            "sent": sent,
            "acked": sum(len(p) for p in acked.values()),
            "delivery_failures": len(failed),
            "read": read_count,
            "read_of_this_run": ours_read,
            "unacked_but_read": sum(1 for v in value_places if v not in acked),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "mismatched": len(mismatched),
            "non_monotonic": len(non_monotonic),
            "examples": {
                "lost": lost[:EXAMPLES],
                "duplicated": duplicated[:EXAMPLES],
                "mismatched": mismatched[:EXAMPLES],
                "non_monotonic": non_monotonic[:EXAMPLES],
                "delivery_failures": failed[:EXAMPLES],
            },
        }

    def anomalies(self) -> dict[str, int]:
        r = self.report()
        return {k: r[k] for k in ("lost", "duplicated", "mismatched", "non_monotonic")}

    def assert_clean(self, min_acked: int = 1) -> dict:
        """Fail unless nothing acknowledged was lost, duplicated, moved or
        reordered, and at least ``min_acked`` records were acknowledged."""
        r = self.report()
        problems = {k: r[k] for k in ("lost", "duplicated", "mismatched", "non_monotonic") if r[k]}
        if problems or r["acked"] < min_acked:
            lines = [
                f"checker {r['run']}: " + (", ".join(f"{n} {k}" for k, n in problems.items()) if problems else f"only {r['acked']} records acknowledged, want at least {min_acked}"),
                f"  sent {r['sent']}, acked {r['acked']}, delivery failures {r['delivery_failures']}, read {r['read']} ({r['read_of_this_run']} of this run, {r['unacked_but_read']} never acked)",
            ]
            for kind, rows in r["examples"].items():
                if rows and (kind in problems or kind == "delivery_failures"):
                    lines.append(f"  {kind}, first {len(rows)}:")
                    lines.extend(f"    {row}" for row in rows)
            raise AssertionError("\n".join(lines))
        return r


class ProduceLoop(threading.Thread):
    """Produce values of ``checker`` to ``topic`` until ``stop()``.

    Each record is handed to the producer as soon as the previous ``interval``
    passed; delivery reports are served by this thread. ``stop()`` flushes
    (up to ``flush_timeout``) and returns the number of records still not
    reported. Errors raised by ``produce()`` other than a full queue end the
    loop and are re-raised by ``stop()``."""

    def __init__(self, checker: Checker, producer, topic: str, interval: float = 0.005, partitions: int | None = None, pad: int = 0):
        super().__init__(daemon=True, name=f"produce-{topic}")
        self.checker = checker
        self.producer = producer
        self.topic = topic
        self.interval = interval
        self.partitions = partitions
        self.pad = pad
        self._stop_ev = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        i = 0
        try:
            while not self._stop_ev.is_set():
                kwargs = {"value": self.checker.next_value(self.pad), "on_delivery": self.checker.on_delivery}
                if self.partitions:
                    kwargs["partition"] = i % self.partitions
                while True:
                    try:
                        self.producer.produce(self.topic, **kwargs)
                        break
                    except BufferError:
                        self.producer.poll(0.05)
                        if self._stop_ev.is_set():
                            return
                i += 1
                self.producer.poll(self.interval)
        except BaseException as e:  # surfaced by stop()
            self.error = e

    def stop(self, flush_timeout: float = 60.0) -> int:
        self._stop_ev.set()
        self.join(timeout=30)
        assert not self.is_alive(), f"producer thread for {self.topic} did not stop"
        if self.error is not None:
            raise AssertionError(f"producer thread for {self.topic} failed: {self.error!r}") from self.error
        return self.producer.flush(flush_timeout)
