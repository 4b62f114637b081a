"""Consumer groups against the real binary: assignment across members,
rebalances on crash (session timeout) and graceful leave, cooperative-sticky,
static membership, committed offsets (auto, sync, async) surviving consumer
and broker restarts, two groups on one topic, the wire-level errors Kafka
returns, `strata group ...` and the lag metrics.

Consumers are confluent-kafka (librdkafka) unless the test says kafka-python.
The crash test runs its consumers as separate processes so one can be
SIGKILLed."""

from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, TopicPartition

import kproto
from cluster import wait_until
from conftest import child_env, http_get, strata_bin
from kclients import Rec, admin, create_topic, produce, producer, unique_topic

SESSION_MS = 6000  # the broker's group.min.session.timeout.ms
OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR = 8, 9, 10
JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS, DELETE_GROUPS = 15, 16, 42

# ----------------------------------------------------------------- wire codec
# Non-flexible versions only (JoinGroup v5, SyncGroup v3, Heartbeat v3,
# LeaveGroup v3, OffsetCommit v7, OffsetFetch v5, FindCoordinator v2), added
# to kproto's schema table at import.

A = kproto.A
kproto.SCHEMAS.update(
    {
        JOIN_GROUP: (
            [
                ("group_id", "string", 0, None),
                ("session_timeout_ms", "int32", 0, None),
                ("rebalance_timeout_ms", "int32", 1, None),
                ("member_id", "string", 0, None),
                ("group_instance_id", "nstring", 5, None),
                ("protocol_type", "string", 0, None),
                ("protocols", A([("name", "string", 0, None), ("metadata", "bytes", 0, None)]), 0, None),
            ],
            [
                ("throttle_time_ms", "int32", 2, None),
                ("error_code", "int16", 0, None),
                ("generation_id", "int32", 0, None),
                ("protocol_name", "string", 0, None),
                ("leader", "string", 0, None),
                ("member_id", "string", 0, None),
                ("members", A([("member_id", "string", 0, None), ("group_instance_id", "nstring", 5, None), ("metadata", "bytes", 0, None)]), 0, None),
            ],
            (0, 5),
        ),
        SYNC_GROUP: (
            [
                ("group_id", "string", 0, None),
                ("generation_id", "int32", 0, None),
                ("member_id", "string", 0, None),
                ("group_instance_id", "nstring", 3, None),
                ("assignments", A([("member_id", "string", 0, None), ("assignment", "bytes", 0, None)]), 0, None),
            ],
            [("throttle_time_ms", "int32", 1, None), ("error_code", "int16", 0, None), ("assignment", "bytes", 0, None)],
            (0, 3),
        ),
        HEARTBEAT: (
            [
                ("group_id", "string", 0, None),
                ("generation_id", "int32", 0, None),
                ("member_id", "string", 0, None),
                ("group_instance_id", "nstring", 3, None),
            ],
            [("throttle_time_ms", "int32", 1, None), ("error_code", "int16", 0, None)],
            (0, 3),
        ),
        LEAVE_GROUP: (
            [
                ("group_id", "string", 0, None),
                ("member_id", "string", 0, 2),
                ("members", A([("member_id", "string", 3, None), ("group_instance_id", "nstring", 3, None)]), 3, None),
            ],
            [
                ("throttle_time_ms", "int32", 1, None),
                ("error_code", "int16", 0, None),
                ("members", A([("member_id", "string", 3, None), ("group_instance_id", "nstring", 3, None), ("error_code", "int16", 3, None)]), 3, None),
            ],
            (0, 3),
        ),
        OFFSET_COMMIT: (
            [
                ("group_id", "string", 0, None),
                ("generation_id", "int32", 1, None),
                ("member_id", "string", 1, None),
                ("retention_time_ms", "int64", 2, 4),
                ("group_instance_id", "nstring", 7, None),
                (
                    "topics",
                    A(
                        [
                            ("name", "string", 0, None),
                            (
                                "partitions",
                                A(
                                    [
                                        ("partition_index", "int32", 0, None),
                                        ("committed_offset", "int64", 0, None),
                                        ("committed_leader_epoch", "int32", 6, None),
                                        ("committed_metadata", "nstring", 0, None),
                                    ]
                                ),
                                0,
                                None,
                            ),
                        ]
                    ),
                    0,
                    None,
                ),
            ],
            [
                ("throttle_time_ms", "int32", 3, None),
                ("topics", A([("name", "string", 0, None), ("partitions", A([("partition_index", "int32", 0, None), ("error_code", "int16", 0, None)]), 0, None)]), 0, None),
            ],
            (2, 7),
        ),
        OFFSET_FETCH: (
            [
                ("group_id", "string", 0, None),
                ("topics", kproto.NA([("name", "string", 0, None), ("partition_indexes", A("int32"), 0, None)]), 0, None),
            ],
            [
                ("throttle_time_ms", "int32", 3, None),
                (
                    "topics",
                    A(
                        [
                            ("name", "string", 0, None),
                            (
                                "partitions",
                                A(
                                    [
                                        ("partition_index", "int32", 0, None),
                                        ("committed_offset", "int64", 0, None),
                                        ("committed_leader_epoch", "int32", 5, None),
                                        ("metadata", "nstring", 0, None),
                                        ("error_code", "int16", 0, None),
                                    ]
                                ),
                                0,
                                None,
                            ),
                        ]
                    ),
                    0,
                    None,
                ),
                ("error_code", "int16", 2, None),
            ],
            (1, 5),
        ),
        FIND_COORDINATOR: (
            [("key", "string", 0, None), ("key_type", "int8", 1, None)],
            [
                ("throttle_time_ms", "int32", 1, None),
                ("error_code", "int16", 0, None),
                ("error_message", "nstring", 1, None),
                ("node_id", "int32", 0, None),
                ("host", "string", 0, None),
                ("port", "int32", 0, None),
            ],
            (0, 2),
        ),
    }
)
for _k, _n in [(JOIN_GROUP, "JoinGroup"), (SYNC_GROUP, "SyncGroup"), (HEARTBEAT, "Heartbeat"), (LEAVE_GROUP, "LeaveGroup"), (OFFSET_COMMIT, "OffsetCommit"), (OFFSET_FETCH, "OffsetFetch"), (FIND_COORDINATOR, "FindCoordinator")]:
    kproto.API_NAMES.setdefault(_k, _n)


def subscription(topics: list[str]) -> bytes:
    """ConsumerProtocolSubscription v0."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def assignment(parts: dict[str, list[int]]) -> bytes:
    """ConsumerProtocolAssignment v0."""
    out = struct.pack(">hi", 0, len(parts))
    for t, ps in parts.items():
        out += struct.pack(">h", len(t)) + t.encode() + struct.pack(">i", len(ps)) + b"".join(struct.pack(">i", p) for p in ps)
    return out + struct.pack(">i", -1)


def join(c: kproto.Conn, group: str, member_id: str = "", topics=("t",), instance: str | None = None, protocols=("range",), session_ms: int = SESSION_MS, version: int = 5) -> dict:
    return c.request(
        JOIN_GROUP,
        version,
        {
            "group_id": group,
            "session_timeout_ms": session_ms,
            "rebalance_timeout_ms": 30000,
            "member_id": member_id,
            "group_instance_id": instance,
            "protocol_type": "consumer",
            "protocols": [{"name": p, "metadata": subscription(list(topics))} for p in protocols],
        },
    )


def heartbeat(c: kproto.Conn, group: str, member_id: str, generation: int, instance: str | None = None) -> int:
    return c.request(HEARTBEAT, 3, {"group_id": group, "generation_id": generation, "member_id": member_id, "group_instance_id": instance})["error_code"]


def sync(c: kproto.Conn, group: str, member_id: str, generation: int, assignments: dict[str, bytes] | None = None, instance: str | None = None) -> dict:
    return c.request(
        SYNC_GROUP,
        3,
        {
            "group_id": group,
            "generation_id": generation,
            "member_id": member_id,
            "group_instance_id": instance,
            "assignments": [{"member_id": m, "assignment": a} for m, a in (assignments or {}).items()],
        },
    )


def commit(c: kproto.Conn, group: str, member_id: str, generation: int, offsets: dict[tuple[str, int], int], instance: str | None = None) -> dict[tuple[str, int], int]:
    topics: dict[str, list] = {}
    for (t, p), o in offsets.items():
        topics.setdefault(t, []).append({"partition_index": p, "committed_offset": o, "committed_leader_epoch": -1, "committed_metadata": "m"})
    r = c.request(
        OFFSET_COMMIT,
        7,
        {"group_id": group, "generation_id": generation, "member_id": member_id, "group_instance_id": instance, "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]},
    )
    return {(t["name"], p["partition_index"]): p["error_code"] for t in r["topics"] for p in t["partitions"]}


def fetch_committed(c: kproto.Conn, group: str, topic: str, partitions: list[int]) -> dict[int, tuple[int, str | None, int]]:
    r = c.request(OFFSET_FETCH, 5, {"group_id": group, "topics": [{"name": topic, "partition_indexes": partitions}]})
    assert r["error_code"] == 0, r
    return {p["partition_index"]: (p["committed_offset"], p["metadata"], p["error_code"]) for t in r["topics"] for p in t["partitions"]}


def conn(broker, timeout: float = 40.0) -> kproto.Conn:
    return kproto.Conn("127.0.0.1", broker.kafka_port, timeout=timeout)


# ------------------------------------------------------------ client helpers


def unique_group(prefix: str = "g") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def group_consumer(bootstrap: str, group: str, **conf) -> Consumer:
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": 500,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "socket.timeout.ms": 10000,
        "topic.metadata.refresh.interval.ms": 2000,
    }
    base.update(conf)
    return Consumer(base)


class Tracked:
    """A subscribed consumer that records what it receives and its rebalance events."""

    def __init__(self, bootstrap: str, group: str, topic: str, **conf):
        self.c = group_consumer(bootstrap, group, **conf)
        self.revoked: list[list[tuple[str, int]]] = []
        self.assigned: list[list[tuple[str, int]]] = []
        self.records: list[tuple[int, int, bytes]] = []
        self.c.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, c, parts):
        self.assigned.append([(p.topic, p.partition) for p in parts])

    def _on_revoke(self, c, parts):
        self.revoked.append([(p.topic, p.partition) for p in parts])

    def poll(self, timeout: float = 0.05) -> None:
        for m in self.c.consume(num_messages=500, timeout=timeout):
            if m.error() is not None:
                if m.error().code() in (KafkaError._PARTITION_EOF,):
                    continue
                raise AssertionError(f"consumer error: {m.error()}")
            self.records.append((m.partition(), m.offset(), m.value()))

    def partitions(self) -> set[int]:
        return {p.partition for p in self.c.assignment()}

    def close(self) -> None:
        self.c.close()


def poll_until(consumers, cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        for c in consumers:
            c.poll()
        if cond():
            return
        if time.monotonic() > deadline:
            state = [sorted(c.partitions()) for c in consumers]
            raise AssertionError(f"{what}: not reached within {timeout}s; assignments {state}")


def exactly_once_assignment(consumers, partitions: int) -> bool:
    sets = [c.partitions() for c in consumers]
    allp = [p for s in sets for p in s]
    return len(allp) == partitions and set(allp) == set(range(partitions))


def describe(bootstrap: str, group: str):
    a = admin(bootstrap)
    return a.describe_consumer_groups([group], request_timeout=15)[group].result(timeout=30)


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    c = group_consumer(bootstrap, group)
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def strata(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(strata_bin()), *args], capture_output=True, text=True, timeout=timeout, env=child_env(), stdin=subprocess.DEVNULL)


def strata_ok(*args: str) -> str:
    r = strata(*args)
    assert r.returncode == 0, f"`strata {' '.join(args)}` exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "panicked" not in r.stderr, r.stderr
    return r.stdout


def describe_rows(out: str) -> dict[tuple[str, int], dict[str, str]]:
    """Rows of the offsets table of `strata group describe`, keyed by (topic, partition)."""
    lines = out.splitlines()
    hdr = next(i for i, line in enumerate(lines) if line.startswith("GROUP ") and "LAG" in line)
    cols = lines[hdr].split()
    rows = {}
    for line in lines[hdr + 1 :]:
        if not line.strip():
            break
        vals = line.split()
        row = dict(zip(cols, vals))
        rows[(row["TOPIC"], int(row["PARTITION"]))] = row
    return rows


def metric_values(text: str, name: str, group: str, topic: str) -> dict[int, int]:
    out = {}
    pat = re.compile(rf'^{name}{{consumergroup="{re.escape(group)}",topic="{re.escape(topic)}",partition="(\d+)"}} (-?\d+)$')
    for line in text.splitlines():
        m = pat.match(line)
        if m:
            out[int(m.group(1))] = int(m.group(2))
    return out


def produce_n(bootstrap: str, topic: str, n: int, partitions: int, tag: str = "r") -> list[tuple[int, int]]:
    recs = [Rec(b"k%d" % i, b"%s-%d" % (tag.encode(), i), partition=i % partitions) for i in range(n)]
    return produce(producer(bootstrap), topic, recs)


# ----------------------------------------------------------------- assignment


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_three_members_six_partitions_each_partition_once(broker, strategy):
    topic, group = unique_topic("g3"), unique_group()
    create_topic(broker.bootstrap, topic, 6)
    cs = [Tracked(broker.bootstrap, group, topic, **{"partition.assignment.strategy": strategy}) for _ in range(3)]
    try:
        poll_until(cs, lambda: exactly_once_assignment(cs, 6) and all(len(c.partitions()) == 2 for c in cs), 45, "3 members share 6 partitions")
        d = describe(broker.bootstrap, group)
        assert len(d.members) == 3, d
        assert str(d.state).upper().endswith("STABLE"), d.state
        assert d.partition_assignor == strategy, d.partition_assignor
        # Every record reaches exactly one member.
        placed = produce_n(broker.bootstrap, topic, 120, 6)
        poll_until(cs, lambda: sum(len(c.records) for c in cs) >= len(placed), 30, "all records consumed")
        got = sorted((p, o) for c in cs for p, o, _ in c.records)
        assert got == sorted(placed), "each record consumed once across the group"
    finally:
        for c in cs:
            c.close()


def test_eight_members_six_partitions_two_idle(broker):
    topic, group = unique_topic("g8"), unique_group()
    create_topic(broker.bootstrap, topic, 6)
    cs = [Tracked(broker.bootstrap, group, topic) for _ in range(8)]
    try:

        def settled():
            if not exactly_once_assignment(cs, 6):
                return False
            return sorted(len(c.partitions()) for c in cs) == [0, 0, 1, 1, 1, 1, 1, 1]

        poll_until(cs, settled, 60, "8 members on 6 partitions")
        d = describe(broker.bootstrap, group)
        assert len(d.members) == 8
        idle = [m for m in d.members if not m.assignment.topic_partitions]
        assert len(idle) == 2, [(m.member_id, m.assignment.topic_partitions) for m in d.members]
    finally:
        for c in cs:
            c.close()


# ----------------------------------------------------------- crash and leave

WORKER = textwrap.dedent(
    """
    import os, sys, time
    from confluent_kafka import Consumer
    bootstrap, topic, group, out, stop = sys.argv[1:6]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": %d,
                  "heartbeat.interval.ms": 500, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "socket.timeout.ms": 10000})
    c.subscribe([topic])
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b"started\\n")
    while not os.path.exists(stop):
        msgs = [m for m in c.consume(num_messages=50, timeout=0.2) if m.error() is None]
        if not msgs:
            continue
        # Process (record durably), then commit: at-least-once.
        os.write(fd, "".join("%%d %%d\\n" %% (m.partition(), m.offset()) for m in msgs).encode())
        c.commit(asynchronous=False)
    c.close()
    """
    % SESSION_MS
)


def read_processed(paths: list[Path]) -> set[tuple[int, int]]:
    out = set()
    for p in paths:
        if not p.exists():
            continue
        for line in p.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                out.add((int(parts[0]), int(parts[1])))
    return out


def test_sigkill_member_partitions_move_after_session_timeout_at_least_once(broker, tmp_path):
    topic, group = unique_topic("kill"), unique_group()
    create_topic(broker.bootstrap, topic, 6)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    stop = tmp_path / "stop"
    outs = [tmp_path / f"w{i}.out" for i in range(3)]
    procs = [subprocess.Popen([sys.executable, str(script), broker.bootstrap, topic, group, str(o), str(stop)], stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"w{i}.err", "wb")) for i, o in enumerate(outs)]
    try:
        def stable():
            d = describe(broker.bootstrap, group)
            return len(d.members) == 3 and str(d.state).upper().endswith("STABLE") and all(m.assignment.topic_partitions for m in d.members)

        wait_until(stable, 60, "group stable with 3 members, each assigned", interval=0.3)
        placed1 = produce_n(broker.bootstrap, topic, 600, 6, "one")
        wait_until(lambda: set(placed1) <= read_processed(outs), 60, "first batch processed", interval=0.2)
        victim = procs[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed_at = time.monotonic()
        placed2 = produce_n(broker.bootstrap, topic, 600, 6, "two")
        wait_until(lambda: set(placed2) <= read_processed(outs[1:]), 60, "second batch processed by the survivors", interval=0.2)
        took = time.monotonic() - killed_at
        # The dead member's partitions moved only after its session expired.
        assert took >= SESSION_MS / 1000 - 1.5, f"partitions moved after {took:.1f}s, before the {SESSION_MS} ms session timeout"
        processed = read_processed(outs)
        missing = (set(placed1) | set(placed2)) - processed
        assert not missing, f"{len(missing)} records never processed (skipped), e.g. {sorted(missing)[:5]}"
        d = describe(broker.bootstrap, group)
        assert len(d.members) == 2
    finally:
        stop.write_text("stop")
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_graceful_leave_rebalances_at_once(broker):
    topic, group = unique_topic("leave"), unique_group()
    create_topic(broker.bootstrap, topic, 6)
    # A long session: only LeaveGroup can explain a quick rebalance.
    cs = [Tracked(broker.bootstrap, group, topic, **{"session.timeout.ms": 60000}) for _ in range(3)]
    try:
        poll_until(cs, lambda: exactly_once_assignment(cs, 6) and all(c.partitions() for c in cs), 45, "3 members stable")
        t0 = time.monotonic()
        cs[2].close()
        rest = cs[:2]
        poll_until(rest, lambda: exactly_once_assignment(rest, 6), 20, "survivors take over after LeaveGroup")
        took = time.monotonic() - t0
        assert took < 15, f"rebalance after a graceful leave took {took:.1f}s"
    finally:
        for c in cs[:2]:
            c.close()


def test_cooperative_sticky_keeps_unaffected_assignments(broker):
    topic, group = unique_topic("coop"), unique_group()
    create_topic(broker.bootstrap, topic, 6)
    conf = {"partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": 60000}
    cs = [Tracked(broker.bootstrap, group, topic, **conf) for _ in range(3)]
    try:
        poll_until(cs, lambda: exactly_once_assignment(cs, 6) and all(len(c.partitions()) == 2 for c in cs), 45, "3 members stable")
        before = [c.partitions() for c in cs[:2]]
        for c in cs[:2]:
            c.revoked.clear()
        cs[2].close()
        rest = cs[:2]
        poll_until(rest, lambda: exactly_once_assignment(rest, 6), 30, "survivors take the leaver's partitions")
        for c, b in zip(rest, before):
            assert b <= c.partitions(), f"cooperative-sticky moved a partition: had {sorted(b)}, now {sorted(c.partitions())}"
            assert all(not r for r in c.revoked), f"a survivor had partitions revoked: {c.revoked}"
    finally:
        for c in cs[:2]:
            c.close()


def test_static_member_restart_keeps_assignment_without_rebalance(broker):
    topic, group = unique_topic("static"), unique_group()
    create_topic(broker.bootstrap, topic, 4)
    conf = {"session.timeout.ms": 30000}
    a = Tracked(broker.bootstrap, group, topic, **{**conf, "group.instance.id": "inst-a"})
    b = Tracked(broker.bootstrap, group, topic, **{**conf, "group.instance.id": "inst-b"})
    try:
        poll_until([a, b], lambda: exactly_once_assignment([a, b], 4) and a.partitions() and b.partitions(), 45, "2 static members stable")
        had_a, had_b = a.partitions(), b.partitions()
        b.revoked.clear()
        a.close()  # static members do not send LeaveGroup
        a = Tracked(broker.bootstrap, group, topic, **{**conf, "group.instance.id": "inst-a"})
        poll_until([a, b], lambda: a.partitions() == had_a, 30, "restarted static member gets its partitions back")
        for _ in range(20):
            b.poll(0.1)
        assert b.partitions() == had_b
        assert all(not r for r in b.revoked), f"the other member saw a rebalance: {b.revoked}"
        d = describe(broker.bootstrap, group)
        assert sorted(m.group_instance_id for m in d.members) == ["inst-a", "inst-b"]
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------- committed offsets


def test_auto_commit_every_5s_then_restart_resumes(broker):
    topic, group = unique_topic("auto"), unique_group()
    create_topic(broker.bootstrap, topic, 3)
    produce_n(broker.bootstrap, topic, 90, 3, "first")
    c = Tracked(broker.bootstrap, group, topic, **{"enable.auto.commit": True, "auto.commit.interval.ms": 5000})
    try:
        poll_until([c], lambda: len(c.records) >= 90, 45, "first 90 records")
        # Within one auto-commit interval (plus slack) the position is committed.
        deadline = time.monotonic() + 12
        while committed(broker.bootstrap, group, topic, 3) != {0: 30, 1: 30, 2: 30}:
            c.poll(0.2)
            assert time.monotonic() < deadline, f"auto-commit did not commit: {committed(broker.bootstrap, group, topic, 3)}"
    finally:
        c.close()
    produce_n(broker.bootstrap, topic, 30, 3, "second")
    c2 = Tracked(broker.bootstrap, group, topic)
    try:
        poll_until([c2], lambda: len(c2.records) >= 30, 45, "records after restart")
        for _ in range(10):
            c2.poll(0.1)
        assert sorted((p, o) for p, o, _ in c2.records) == sorted((p, 30 + i) for p in range(3) for i in range(10)), "resumed at the committed offsets"
    finally:
        c2.close()


def test_manual_commit_sync_and_async_then_restart_resumes(broker):
    topic, group = unique_topic("manual"), unique_group()
    create_topic(broker.bootstrap, topic, 2)
    produce_n(broker.bootstrap, topic, 100, 2)
    results = []
    c = Tracked(broker.bootstrap, group, topic, **{"on_commit": lambda err, parts: results.append((err, [(p.partition, p.offset, p.error) for p in parts]))})
    try:
        poll_until([c], lambda: len(c.records) >= 100, 45, "100 records")
        # commitSync of explicit offsets, then commitAsync of other ones.
        c.c.commit(offsets=[TopicPartition(topic, 0, 20), TopicPartition(topic, 1, 25)], asynchronous=False)
        assert committed(broker.bootstrap, group, topic, 2) == {0: 20, 1: 25}
        c.c.commit(offsets=[TopicPartition(topic, 0, 40), TopicPartition(topic, 1, 35)], asynchronous=True)
        deadline = time.monotonic() + 15
        while not any(parts and all(o in (40, 35) for _, o, _ in parts) for _, parts in results):
            c.c.poll(0.1)
            assert time.monotonic() < deadline, f"async commit callback not called: {results}"
        assert all(err is None for err, _ in results), results
    finally:
        c.close()
    assert committed(broker.bootstrap, group, topic, 2) == {0: 40, 1: 35}
    c2 = Tracked(broker.bootstrap, group, topic)
    try:
        poll_until([c2], lambda: len(c2.records) >= 20, 45, "records after restart")
        firsts = {}
        for p, o, _ in c2.records:
            firsts.setdefault(p, o)
        assert firsts == {0: 40, 1: 35}, f"restarted consumer began at {firsts}"
    finally:
        c2.close()


def test_kafka_python_group_commit_sync_async_and_resume(broker):
    from kafka import KafkaConsumer, TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    topic, group = unique_topic("kpy"), unique_group()
    create_topic(broker.bootstrap, topic, 3)
    produce_n(broker.bootstrap, topic, 60, 3)

    def consumer():
        return KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=SESSION_MS, heartbeat_interval_ms=1000, consumer_timeout_ms=20000)

    kc = consumer()
    got = []
    try:
        for m in kc:
            got.append((m.partition, m.offset))
            if len(got) == 60:
                break
        assert len(got) == 60
        assert kc.assignment() == {KTP(topic, p) for p in range(3)}
        kc.commit({KTP(topic, 0): OffsetAndMetadata(10, "", -1), KTP(topic, 1): OffsetAndMetadata(12, "", -1), KTP(topic, 2): OffsetAndMetadata(14, "", -1)})
        assert committed(broker.bootstrap, group, topic, 3) == {0: 10, 1: 12, 2: 14}
        kc.commit_async({KTP(topic, 0): OffsetAndMetadata(15, "", -1)})
        deadline = time.monotonic() + 15
        while committed(broker.bootstrap, group, topic, 3).get(0) != 15:
            kc.poll(timeout_ms=100)
            assert time.monotonic() < deadline, "commit_async did not land"
    finally:
        kc.close(autocommit=False)
    kc = consumer()
    try:
        firsts = {}
        for m in kc:
            firsts.setdefault(m.partition, m.offset)
            if len(firsts) == 3:
                break
        assert firsts == {0: 15, 1: 12, 2: 14}, firsts
    finally:
        kc.close(autocommit=False)


def test_kafka_python_three_members_share_partitions(broker):
    from kafka import KafkaConsumer

    topic, group = unique_topic("kpy3"), unique_group()
    create_topic(broker.bootstrap, topic, 6)
    cs = [KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500) for _ in range(3)]
    try:
        deadline = time.monotonic() + 60
        while True:
            for c in cs:
                c.poll(timeout_ms=100)
            sets = [{tp.partition for tp in c.assignment()} for c in cs]
            allp = [p for s in sets for p in s]
            if len(allp) == 6 and set(allp) == set(range(6)) and all(len(s) == 2 for s in sets):
                break
            assert time.monotonic() < deadline, f"kafka-python members never shared the partitions: {sets}"
    finally:
        for c in cs:
            c.close(autocommit=False)


def test_two_groups_each_receive_every_record(broker):
    topic = unique_topic("two")
    create_topic(broker.bootstrap, topic, 3)
    placed = produce_n(broker.bootstrap, topic, 150, 3)
    groups = [[Tracked(broker.bootstrap, g, topic) for _ in range(2)] for g in (unique_group("a"), unique_group("b"))]
    try:
        everyone = [c for g in groups for c in g]
        poll_until(everyone, lambda: all(sum(len(c.records) for c in g) >= 150 for g in groups), 60, "both groups read the topic")
        for g in groups:
            got = sorted((p, o) for c in g for p, o, _ in c.records)
            assert got == sorted(placed), "a group missed or duplicated records"
    finally:
        for c in everyone:
            c.close()


def test_broker_sigkill_restart_keeps_offsets_and_group_resumes(broker):
    topic, group = unique_topic("crash"), unique_group()
    create_topic(broker.bootstrap, topic, 3)
    placed1 = produce_n(broker.bootstrap, topic, 90, 3, "before")
    c = Tracked(broker.bootstrap, group, topic, **{"reconnect.backoff.max.ms": 500})
    try:
        poll_until([c], lambda: len(c.records) >= 90, 45, "records before the crash")
        c.c.commit(asynchronous=False)
        assert committed(broker.bootstrap, group, topic, 3) == {0: 30, 1: 30, 2: 30}
        broker.kill()
        broker.start()
        assert committed(broker.bootstrap, group, topic, 3) == {0: 30, 1: 30, 2: 30}, "committed offsets lost in the crash"
        placed2 = produce_n(broker.bootstrap, topic, 60, 3, "after")
        # The same consumer rejoins the group on the restarted broker and
        # continues from its committed offsets: nothing skipped.
        poll_until([c], lambda: set(placed2) <= {(p, o) for p, o, _ in c.records}, 60, "records after the restart")
        assert set(placed1) | set(placed2) <= {(p, o) for p, o, _ in c.records}
    finally:
        c.close()
    # A new member of the group resumes where the group committed.
    c2 = Tracked(broker.bootstrap, group, topic)
    try:
        c2_first = {}
        deadline = time.monotonic() + 30
        while len(c2_first) < 3 and time.monotonic() < deadline:
            c2.poll(0.1)
            for p, o, _ in c2.records:
                c2_first.setdefault(p, o)
        # c's close() did not commit (auto-commit off): it resumes at the pre-crash commit.
        assert c2_first == {0: 30, 1: 30, 2: 30}, c2_first
    finally:
        c2.close()


# -------------------------------------------------------------- wire errors


def test_wire_member_id_required_generation_and_errors(broker):
    topic, group = unique_topic("wire"), unique_group()
    create_topic(broker.bootstrap, topic, 2)
    with conn(broker) as c1, conn(broker) as c2:
        fc = c1.request(FIND_COORDINATOR, 2, {"key": group, "key_type": 0})
        assert (fc["error_code"], fc["node_id"], fc["port"]) == (0, 1, broker.kafka_port), fc
        r = join(c1, group, topics=[topic])
        assert r["error_code"] == 79 and r["member_id"], f"expected MEMBER_ID_REQUIRED with an id: {r}"
        m1 = r["member_id"]
        t0 = time.monotonic()
        r = join(c1, group, m1, topics=[topic])
        assert r["error_code"] == 0, r
        assert time.monotonic() - t0 >= 2.5, "the first rebalance of an empty group waits group.initial.rebalance.delay.ms"
        gen = r["generation_id"]
        assert (gen, r["leader"], r["protocol_name"], len(r["members"])) == (1, m1, "range", 1), r
        s = sync(c1, group, m1, gen, {m1: assignment({topic: [0, 1]})})
        assert s["error_code"] == 0 and s["assignment"] == assignment({topic: [0, 1]}), s
        assert heartbeat(c1, group, m1, gen) == 0
        assert heartbeat(c1, group, m1, gen + 5) == 22, "ILLEGAL_GENERATION"
        assert heartbeat(c1, group, "nobody", gen) == 25, "UNKNOWN_MEMBER_ID"
        assert heartbeat(c1, "no-such-group", m1, gen) == 25
        assert commit(c1, group, m1, gen, {(topic, 0): 5}) == {(topic, 0): 0}
        assert commit(c1, group, m1, gen - 1, {(topic, 0): 6}) == {(topic, 0): 22}
        assert commit(c1, group, "nobody", gen, {(topic, 0): 6}) == {(topic, 0): 25}
        assert commit(c1, group, "", -1, {(topic, 0): 6}) == {(topic, 0): 25}, "only members commit to a live group"
        assert commit(c1, group, m1, gen, {("no-such-topic", 0): 1, (topic, 9): 1, (topic, 1): 7}) == {("no-such-topic", 0): 3, (topic, 9): 3, (topic, 1): 0}
        assert fetch_committed(c1, group, topic, [0, 1]) == {0: (5, "m", 0), 1: (7, "m", 0)}
        # A second member: the first learns of the rebalance by heartbeat.
        r2 = join(c2, group, topics=[topic])
        assert r2["error_code"] == 79
        m2 = r2["member_id"]
        c2.send_raw(kproto.frame(kproto.encode_request(JOIN_GROUP, 5, 99, {"group_id": group, "session_timeout_ms": SESSION_MS, "rebalance_timeout_ms": 30000, "member_id": m2, "group_instance_id": None, "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": subscription([topic])}]})))
        wait_until(lambda: heartbeat(c1, group, m1, gen) == 27, 5, "heartbeat says REBALANCE_IN_PROGRESS", interval=0.1)
        assert sync(c1, group, m1, gen)["error_code"] == 27
        r = join(c1, group, m1, topics=[topic])
        _, r2 = kproto.decode_response(JOIN_GROUP, 5, c2.recv_frame())
        assert r["error_code"] == 0 and r2["error_code"] == 0, (r, r2)
        assert r["generation_id"] == r2["generation_id"] == gen + 1
        assert len(r["members"]) == 2 and r2["members"] == [], "only the leader gets the member list"
        # Commits between join and sync: REBALANCE_IN_PROGRESS.
        assert commit(c2, group, m2, gen + 1, {(topic, 0): 8}) == {(topic, 0): 27}
        # LeaveGroup v3 with a batch, one unknown.
        lr = c1.request(LEAVE_GROUP, 3, {"group_id": group, "members": [{"member_id": m2, "group_instance_id": None}, {"member_id": "ghost", "group_instance_id": None}]})
        assert lr["error_code"] == 0 and [m["error_code"] for m in lr["members"]] == [0, 25], lr
        # Sessions outside the broker's bounds are refused.
        assert join(c2, group, session_ms=1000, topics=[topic])["error_code"] == 26, "INVALID_SESSION_TIMEOUT"
        # Incompatible assignors are refused.
        assert join(c2, group, topics=[topic], protocols=("roundrobin",))["error_code"] == 23, "INCONSISTENT_GROUP_PROTOCOL"
        assert join(c2, "", topics=[topic])["error_code"] == 24, "INVALID_GROUP_ID"


def test_wire_static_member_fenced(broker):
    topic, group = unique_topic("fence"), unique_group()
    create_topic(broker.bootstrap, topic, 1)
    with conn(broker) as c1, conn(broker) as c2:
        r = join(c1, group, topics=[topic], instance="inst-1")
        assert r["error_code"] == 0, "static members skip the member-id round"
        old, gen = r["member_id"], r["generation_id"]
        assert sync(c1, group, old, gen, {old: assignment({topic: [0]})}, instance="inst-1")["error_code"] == 0
        r = join(c2, group, topics=[topic], instance="inst-1")
        assert r["error_code"] == 0 and r["member_id"] != old and r["generation_id"] == gen, r
        new = r["member_id"]
        s = sync(c2, group, new, gen, instance="inst-1")
        assert s["error_code"] == 0 and s["assignment"] == assignment({topic: [0]}), "the new incarnation inherits the assignment"
        assert heartbeat(c1, group, old, gen, instance="inst-1") == 82, "FENCED_INSTANCE_ID"
        assert commit(c1, group, old, gen, {(topic, 0): 1}, instance="inst-1") == {(topic, 0): 82}
        assert heartbeat(c2, group, new, gen, instance="inst-1") == 0


def test_wire_session_timeout_removes_silent_member(broker):
    topic, group = unique_topic("sess"), unique_group()
    create_topic(broker.bootstrap, topic, 2)
    with conn(broker) as c1:
        m1 = join(c1, group, topics=[topic])["member_id"]
        r = join(c1, group, m1, topics=[topic])
        gen = r["generation_id"]
        sync(c1, group, m1, gen, {m1: assignment({topic: [0, 1]})})
        t0 = time.monotonic()
        # Stay silent past the session timeout: the member is removed (seen
        # through DescribeGroups on another connection, which is no
        # heartbeat).
        wait_until(lambda: len(describe(broker.bootstrap, group).members) == 0, SESSION_MS / 1000 + 10, "silent member removed", interval=0.2)
        assert time.monotonic() - t0 >= SESSION_MS / 1000, "removed before the session timeout"
        assert heartbeat(c1, group, m1, gen) == 25


def test_sigterm_with_parked_join_exits_promptly(broker):
    """A JoinGroup parked for the rebalance timeout (30 s) must not hold up a
    graceful shutdown: the coordinator answers it NOT_COORDINATOR."""
    topic, group = unique_topic("park"), unique_group()
    create_topic(broker.bootstrap, topic, 1)
    c1, c2 = conn(broker), conn(broker)
    try:
        m1 = join(c1, group, topics=[topic])["member_id"]
        gen = join(c1, group, m1, topics=[topic])["generation_id"]
        sync(c1, group, m1, gen, {m1: assignment({topic: [0]})})
        # A second member joins; m1 keeps quiet, so the join phase waits.
        m2 = join(c2, group, topics=[topic])["member_id"]
        c2.send_raw(kproto.frame(kproto.encode_request(JOIN_GROUP, 5, 7, {"group_id": group, "session_timeout_ms": 30000, "rebalance_timeout_ms": 30000, "member_id": m2, "group_instance_id": None, "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": subscription([topic])}]})))
        # The join is parked: the group waits in PreparingRebalance.
        wait_until(lambda: "PREPARING_REBALANC" in str(describe(broker.bootstrap, group).state), 10, "group preparing a rebalance")
        t0 = time.monotonic()
        rc = broker.stop(signal.SIGTERM)
        took = time.monotonic() - t0
        assert rc == 0 and took < 8, f"exit {rc} after {took:.1f}s with a JoinGroup parked"
        try:
            _, r = kproto.decode_response(JOIN_GROUP, 5, c2.recv_frame())
            assert r["error_code"] in (15, 16), r
        except kproto.ConnectionClosed:
            pass
    finally:
        c1.close()
        c2.close()


# ------------------------------------------------------------ CLI and metrics


def test_cli_describe_shows_lag_and_metrics_agree(broker):
    topic, group = unique_topic("lag"), unique_group()
    create_topic(broker.bootstrap, topic, 3)
    produce_n(broker.bootstrap, topic, 300, 3)
    commit_at = {0: 10, 1: 55, 2: 100}
    c = Tracked(broker.bootstrap, group, topic)
    try:
        poll_until([c], lambda: len(c.partitions()) == 3, 45, "consumer assigned")
        c.c.commit(offsets=[TopicPartition(topic, p, o) for p, o in commit_at.items()], asynchronous=False)
        expected = {p: 100 - o for p, o in commit_at.items()}
        out = strata_ok("group", "describe", group, "-b", broker.bootstrap)
        assert "State: Stable" in out, out
        rows = describe_rows(out)
        for p, o in commit_at.items():
            row = rows[(topic, p)]
            assert (int(row["CURRENT-OFFSET"]), int(row["LOG-END-OFFSET"]), int(row["LAG"])) == (o, 100, expected[p]), out
            assert row["CONSUMER-ID"] != "-", f"partition {p} shows no owner:\n{out}"
        _, text, _ = http_get(broker.http_url + "/metrics")
        assert metric_values(text, "kafka_consumergroup_lag", group, topic) == expected, text[-3000:]
        assert metric_values(text, "kafka_consumergroup_current_offset", group, topic) == commit_at
        assert f'kafka_consumergroup_members{{consumergroup="{group}"}} 1' in text
    finally:
        c.close()
    listed = strata_ok("group", "list", "-b", broker.bootstrap)
    assert re.search(rf"^{re.escape(group)}\s+Empty\s+consumer", listed, re.M), listed


def test_cli_reset_offsets_and_delete(broker):
    topic, group = unique_topic("reset"), unique_group()
    create_topic(broker.bootstrap, topic, 2)
    produce_n(broker.bootstrap, topic, 40, 2)
    c = group_consumer(broker.bootstrap, group)
    c.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    c.commit(offsets=[TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 6)], asynchronous=False)
    c.close()
    out = strata_ok("group", "reset-offsets", group, "--topic", topic, "--to-latest", "-b", broker.bootstrap)
    assert "dry run" in out and committed(broker.bootstrap, group, topic, 2) == {0: 5, 1: 6}, out
    strata_ok("group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute", "-b", broker.bootstrap)
    assert committed(broker.bootstrap, group, topic, 2) == {0: 0, 1: 0}
    strata_ok("group", "reset-offsets", group, "--topic", f"{topic}:1", "--to-offset", "999", "--execute", "-b", broker.bootstrap)
    assert committed(broker.bootstrap, group, topic, 2) == {0: 0, 1: 20}, "clamped to the log end"
    strata_ok("group", "reset-offsets", group, "--all-topics", "--shift-by", "-5", "--execute", "-b", broker.bootstrap)
    assert committed(broker.bootstrap, group, topic, 2) == {0: 0, 1: 15}
    # An active group cannot be reset or deleted.
    t = Tracked(broker.bootstrap, group, topic)
    try:
        poll_until([t], lambda: len(t.partitions()) == 2, 45, "member joined")
        r = strata("group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute", "-b", broker.bootstrap)
        assert r.returncode != 0 and "stop its consumers" in r.stderr, r
        r = strata("group", "delete", group, "-b", broker.bootstrap)
        assert r.returncode != 0 and "NON_EMPTY_GROUP" in r.stderr, r
    finally:
        t.close()
    strata_ok("group", "delete", group, "-b", broker.bootstrap)
    assert group not in strata_ok("group", "list", "-b", broker.bootstrap)
    r = strata("group", "describe", group, "-b", broker.bootstrap)
    assert r.returncode != 0 and "does not exist" in r.stderr, r
    r = strata("group", "delete", group, "-b", broker.bootstrap)
    assert r.returncode != 0 and "GROUP_ID_NOT_FOUND" in r.stderr, r


def test_admin_client_lists_describes_and_deletes_groups(broker):
    topic, group = unique_topic("adm"), unique_group()
    create_topic(broker.bootstrap, topic, 1)
    c = group_consumer(broker.bootstrap, group)
    c.assign([TopicPartition(topic, 0)])
    c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    c.close()
    a = admin(broker.bootstrap)
    listed = a.list_consumer_groups(request_timeout=15).result(timeout=30)
    assert group in {g.group_id for g in listed.valid}, listed.valid
    offs = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    assert [(tp.topic, tp.partition, tp.offset) for tp in offs.topic_partitions] == [(topic, 0, 0)]
    a.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=30)
    listed = a.list_consumer_groups(request_timeout=15).result(timeout=30)
    assert group not in {g.group_id for g in listed.valid}


def test_both_group_protocols_are_advertised(broker):
    """The classic group APIs and KIP-848's ConsumerGroupHeartbeat and
    ConsumerGroupDescribe (v0-1; tests in test_kip848.py)."""
    with conn(broker) as c:
        versions = c.api_versions()
    assert versions[68] == (0, 1) and versions[69] == (0, 1), versions
    for key in (FIND_COORDINATOR, JOIN_GROUP, SYNC_GROUP, HEARTBEAT, LEAVE_GROUP, OFFSET_COMMIT, OFFSET_FETCH, DESCRIBE_GROUPS, LIST_GROUPS, DELETE_GROUPS, 47):
        assert key in versions, key
