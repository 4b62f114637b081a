"""KIP-848 consumer groups (`group.protocol=consumer`) against the real
binary with confluent-kafka (librdkafka): join, leave, a SIGKILLed member
whose partitions move after the session timeout, a static member restart
that keeps its assignment, a regex subscription picking up a new topic,
partition growth, server-side assignors, offsets committed with member
epochs resuming after a broker restart (members keep their epochs), the
classic/consumer protocol boundary, and `strata group describe` / HTTP.

kafka-python (2.3) has no KIP-848 support; it is used here only as a
classic member (docs/compatibility.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewPartitions

from cluster import cluster_factory, wait_until  # noqa: F401,F811 - cluster_factory is a fixture
from conftest import child_env, http_get, strata_bin
from kclients import Rec, admin, create_topic, produce, producer, unique_topic

SESSION_MS = 6000
HEARTBEAT_MS = 500
BROKER_ARGS = [
    "--group-consumer-session-timeout-ms",
    str(SESSION_MS),
    "--group-consumer-heartbeat-interval-ms",
    str(HEARTBEAT_MS),
]


@pytest.fixture
def kbroker(broker_factory):
    return broker_factory(extra_args=BROKER_ARGS)


def unique_group(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_consumer(bootstrap: str, group: str, **conf) -> Consumer:
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "socket.timeout.ms": 10000,
        "topic.metadata.refresh.interval.ms": 1000,
    }
    base.update(conf)
    return Consumer(base)


class Member:
    """A subscribed consumer that records what it reads."""

    def __init__(self, bootstrap: str, group: str, topics: list[str], commit: bool = False, **conf):
        self.c = new_consumer(bootstrap, group, **conf)
        self.records: list[tuple[str, int, int, bytes]] = []
        self.commit = commit
        self.c.subscribe(topics)

    def poll(self, timeout: float = 0.05) -> None:
        msgs = self.c.consume(num_messages=500, timeout=timeout)
        got = False
        for m in msgs:
            if m.error() is not None:
                raise AssertionError(f"consumer error: {m.error()}")
            self.records.append((m.topic(), m.partition(), m.offset(), m.value()))
            got = True
        if got and self.commit:
            self.c.commit(asynchronous=False)

    def parts(self) -> set[tuple[str, int]]:
        return {(p.topic, p.partition) for p in self.c.assignment()}

    def close(self) -> None:
        self.c.close()


def poll_until(members, cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for m in members:
            m.poll()
        if cond():
            return
        if time.monotonic() > deadline:
            state = [sorted(m.parts()) for m in members]
            raise AssertionError(f"{what}: not reached within {timeout}s; assignments {state}")


def covered_once(members, expected: set[tuple[str, int]]) -> bool:
    """Every expected partition in exactly one member's assignment()."""
    allp = [p for m in members for p in m.parts()]
    return len(allp) == len(expected) and set(allp) == expected


def all_parts(topic: str, n: int) -> set[tuple[str, int]]:
    return {(topic, p) for p in range(n)}


def produce_n(bootstrap: str, topic: str, n: int, partitions: int, tag: str) -> list[tuple[int, int]]:
    recs = [Rec(b"k%d" % i, b"%s-%d" % (tag.encode(), i), partition=i % partitions) for i in range(n)]
    return produce(producer(bootstrap), topic, recs)


def strata(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(strata_bin()), *args], capture_output=True, text=True, timeout=timeout, env=child_env(), stdin=subprocess.DEVNULL)


def describe_json(bootstrap: str, group: str) -> dict:
    r = strata("group", "describe", group, "--bootstrap-server", bootstrap, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# ---------------------------------------------------------------- membership


def test_join_leave_cover_every_partition_once_and_consume_all(kbroker):
    topic, group = unique_topic("j"), unique_group()
    create_topic(kbroker.bootstrap, topic, 6)
    placed = produce_n(kbroker.bootstrap, topic, 600, 6, "a")
    expected = all_parts(topic, 6)
    ms = [Member(kbroker.bootstrap, group, [topic], commit=True)]
    try:
        poll_until(ms, lambda: covered_once(ms, expected), 30, "one member owns all")
        ms.append(Member(kbroker.bootstrap, group, [topic], commit=True))
        ms.append(Member(kbroker.bootstrap, group, [topic], commit=True))
        poll_until(ms, lambda: covered_once(ms, expected) and all(len(m.parts()) == 2 for m in ms), 30, "3 members, 2 partitions each")
        d = describe_json(kbroker.bootstrap, group)
        assert d["protocol_type"] == "consumer" and d["state"] == "Stable", d
        assert len(d["members"]) == 3 and all(m["member_epoch"] == d["group_epoch"] for m in d["members"]), d
        assert d["assignor"] == "uniform"
        # The admin client's view (ConsumerGroupDescribe).
        a = admin(kbroker.bootstrap)
        desc = a.describe_consumer_groups([group], request_timeout=15)[group].result(timeout=30)
        assert len(desc.members) == 3
        assert "CONSUMER" in str(desc.type).upper(), desc.type
        got = {tp.partition for m in desc.members for tp in m.assignment.topic_partitions}
        assert got == set(range(6))
        # Read everything, then one member leaves: the others take over at once.
        poll_until(ms, lambda: sum(len(m.records) for m in ms) >= 600, 30, "all records read")
        t0 = time.monotonic()
        ms[2].close()
        rest = ms[:2]
        poll_until(rest, lambda: covered_once(rest, expected), 20, "2 members after a leave")
        assert time.monotonic() - t0 < SESSION_MS / 1000, "leave waited for the session timeout"
        read = [(p, o) for m in ms for (_, p, o, _) in m.records]
        assert sorted(set(read)) == sorted(placed), "records lost"
        # At-least-once: a record is read again only by the member a
        # partition moved to (never twice by one member).
        for m in ms:
            mine = [(p, o) for (_, p, o, _) in m.records]
            assert len(mine) == len(set(mine)), "a member read a record twice"
    finally:
        for m in ms:
            try:
                m.close()
            except Exception:  # noqa: BLE001 - already closed
                pass


def test_range_assignor_gives_contiguous_ranges(kbroker):
    topic, group = unique_topic("r"), unique_group()
    create_topic(kbroker.bootstrap, topic, 5)
    ms = [Member(kbroker.bootstrap, group, [topic], **{"group.remote.assignor": "range"}) for _ in range(2)]
    try:
        poll_until(ms, lambda: covered_once(ms, all_parts(topic, 5)) and all(m.parts() for m in ms), 30, "2 range members")
        sets = sorted(sorted(p for _, p in m.parts()) for m in ms)
        assert sets == [[0, 1, 2], [3, 4]], sets
        assert describe_json(kbroker.bootstrap, group)["assignor"] == "range"
    finally:
        for m in ms:
            m.close()


WORKER = textwrap.dedent(
    """
    import os, sys
    from confluent_kafka import Consumer
    bootstrap, topic, group, out, stop = sys.argv[1:6]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "socket.timeout.ms": 10000})
    c.subscribe([topic])
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    last = None
    while not os.path.exists(stop):
        msgs = [m for m in c.consume(num_messages=50, timeout=0.2) if m.error() is None]
        a = ",".join(str(p.partition) for p in sorted(c.assignment(), key=lambda p: p.partition))
        if a != last:
            os.write(fd, ("A %s\\n" % a).encode())
            last = a
        if not msgs:
            continue
        # Process (record durably), then commit: at-least-once.
        os.write(fd, "".join("R %d %d\\n" % (m.partition(), m.offset()) for m in msgs).encode())
        c.commit(asynchronous=False)
    c.close()
    """
)


def worker_state(path: Path) -> tuple[set[int], list[tuple[int, int]]]:
    """(latest assignment, records processed) of a worker's output."""
    assigned: set[int] = set()
    recs = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split(" ")
            if parts[0] == "A":
                assigned = {int(x) for x in parts[1].split(",") if x}
            elif parts[0] == "R" and len(parts) == 3:
                recs.append((int(parts[1]), int(parts[2])))
    return assigned, recs


def test_sigkill_member_partitions_move_after_session_timeout(kbroker, tmp_path):
    topic, group = unique_topic("kill"), unique_group()
    create_topic(kbroker.bootstrap, topic, 6)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    stop = tmp_path / "stop"
    outs = [tmp_path / f"w{i}.out" for i in range(3)]
    procs = [
        subprocess.Popen([sys.executable, str(script), kbroker.bootstrap, topic, group, str(o), str(stop)], stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"w{i}.err", "wb"))
        for i, o in enumerate(outs)
    ]
    try:

        def assignments(paths):
            return [worker_state(p)[0] for p in paths]

        def cover(paths):
            a = assignments(paths)
            flat = [p for s in a for p in s]
            return len(flat) == 6 and set(flat) == set(range(6)) and all(a)

        wait_until(lambda: cover(outs), 60, "3 workers share 6 partitions", interval=0.2)
        placed1 = produce_n(kbroker.bootstrap, topic, 600, 6, "one")
        wait_until(lambda: set(placed1) <= {r for o in outs for r in worker_state(o)[1]}, 60, "first batch processed", interval=0.2)
        victim_parts = worker_state(outs[0])[0]
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        killed_at = time.monotonic()
        placed2 = produce_n(kbroker.bootstrap, topic, 600, 6, "two")
        wait_until(lambda: cover(outs[1:]), 60, "survivors own all 6 partitions", interval=0.1)
        took = time.monotonic() - killed_at
        assert took >= SESSION_MS / 1000 - 1.0, f"partitions moved after {took:.1f}s, before the session timeout"
        wait_until(lambda: set(placed2) <= {r for o in outs[1:] for r in worker_state(o)[1]}, 60, "second batch processed", interval=0.2)
        processed = [r for o in outs for r in worker_state(o)[1]]
        missing = (set(placed1) | set(placed2)) - set(processed)
        assert not missing, f"{len(missing)} records skipped, e.g. {sorted(missing)[:5]}"
        # At-least-once: duplicates only on the victim's partitions.
        dups = {r for r in processed if processed.count(r) > 1}
        assert {p for p, _ in dups} <= victim_parts, f"duplicates outside the killed member's partitions: {sorted(dups)[:5]}"
    finally:
        stop.write_text("stop")
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_static_member_restart_keeps_its_assignment(kbroker):
    topic, group = unique_topic("st"), unique_group()
    create_topic(kbroker.bootstrap, topic, 4)
    expected = all_parts(topic, 4)
    a = Member(kbroker.bootstrap, group, [topic], **{"group.instance.id": "inst-a"})
    b = Member(kbroker.bootstrap, group, [topic], **{"group.instance.id": "inst-b"})
    try:
        poll_until([a, b], lambda: covered_once([a, b], expected) and a.parts() and b.parts(), 30, "2 static members")
        before_a, before_b = a.parts(), b.parts()
        epoch = describe_json(kbroker.bootstrap, group)["group_epoch"]
        a.close()
        # Away (static leave): its partitions stay with it, b is untouched.
        d = describe_json(kbroker.bootstrap, group)
        assert len(d["members"]) == 2, d
        a = Member(kbroker.bootstrap, group, [topic], **{"group.instance.id": "inst-a"})
        poll_until([a, b], lambda: a.parts() == before_a, 30, "restarted static member gets its partitions back")
        assert b.parts() == before_b
        assert describe_json(kbroker.bootstrap, group)["group_epoch"] == epoch, "the restart rebalanced the group"
    finally:
        a.close()
        b.close()


def test_regex_subscription_picks_up_new_topic(kbroker):
    prefix = f"rx{uuid.uuid4().hex[:6]}"
    group = unique_group()
    create_topic(kbroker.bootstrap, f"{prefix}-1", 2)
    create_topic(kbroker.bootstrap, "unrelated-" + prefix, 2)
    m = Member(kbroker.bootstrap, group, [f"^{prefix}-.*"])
    try:
        poll_until([m], lambda: m.parts() == all_parts(f"{prefix}-1", 2), 30, "regex matches the first topic")
        create_topic(kbroker.bootstrap, f"{prefix}-2", 3)
        want = all_parts(f"{prefix}-1", 2) | all_parts(f"{prefix}-2", 3)
        poll_until([m], lambda: m.parts() == want, 30, "regex picks up the new topic")
        placed = produce_n(kbroker.bootstrap, f"{prefix}-2", 30, 3, "n")
        poll_until([m], lambda: len([r for r in m.records if r[0] == f"{prefix}-2"]) >= 30, 30, "records of the new topic")
        got = sorted((p, o) for t, p, o, _ in m.records if t == f"{prefix}-2")
        assert got == sorted(placed)
    finally:
        m.close()


def test_partition_growth_rebalances(kbroker):
    topic, group = unique_topic("grow"), unique_group()
    create_topic(kbroker.bootstrap, topic, 2)
    ms = [Member(kbroker.bootstrap, group, [topic]) for _ in range(2)]
    try:
        poll_until(ms, lambda: covered_once(ms, all_parts(topic, 2)) and all(m.parts() for m in ms), 30, "2 members, 2 partitions")
        a = admin(kbroker.bootstrap)
        a.create_partitions([NewPartitions(topic, 6)])[topic].result(timeout=30)
        poll_until(ms, lambda: covered_once(ms, all_parts(topic, 6)) and all(len(m.parts()) == 3 for m in ms), 30, "6 partitions shared after growth")
        placed = produce_n(kbroker.bootstrap, topic, 60, 6, "g")
        poll_until(ms, lambda: sum(len(m.records) for m in ms) >= 60, 30, "records of all 6 partitions")
        assert sorted((p, o) for m in ms for (_, p, o, _) in m.records) == sorted(placed)
    finally:
        for m in ms:
            m.close()


# ------------------------------------------------------- offsets and restarts


def test_committed_offsets_resume_and_members_keep_epochs_across_broker_restart(kbroker):
    topic, group = unique_topic("rs"), unique_group()
    create_topic(kbroker.bootstrap, topic, 3)
    placed1 = produce_n(kbroker.bootstrap, topic, 90, 3, "x")
    m = Member(kbroker.bootstrap, group, [topic], commit=True)
    try:
        poll_until([m], lambda: len(m.records) >= 90, 30, "first batch read and committed")
        before = describe_json(kbroker.bootstrap, group)
        member = before["members"][0]
        # The coordinator's broker restarts; the member keeps heartbeating.
        kbroker.restart()
        after = describe_json(kbroker.bootstrap, group)
        assert after["group_epoch"] == before["group_epoch"], (before, after)
        assert [x["member_id"] for x in after["members"]] == [member["member_id"]]
        placed2 = produce_n(kbroker.bootstrap, topic, 90, 3, "y")
        poll_until([m], lambda: len(m.records) >= 180, 60, "second batch after the restart")
        again = describe_json(kbroker.bootstrap, group)
        assert again["members"][0]["member_id"] == member["member_id"]
        assert again["members"][0]["member_epoch"] == member["member_epoch"], "the member was fenced and rejoined"
        read = [(p, o) for (_, p, o, _) in m.records]
        assert sorted(read) == sorted(placed1 + placed2), "records lost or read twice"
    finally:
        m.close()
    # A new member resumes from the committed offsets: nothing left to read.
    placed3 = produce_n(kbroker.bootstrap, topic, 30, 3, "z")
    n = Member(kbroker.bootstrap, group, [topic])
    try:
        poll_until([n], lambda: len(n.records) >= 30, 30, "third batch")
        for _ in range(10):
            n.poll(0.1)
        assert sorted((p, o) for (_, p, o, _) in n.records) == sorted(placed3)
    finally:
        n.close()


def test_group_moves_with_its_coordinator_and_members_keep_epochs(cluster_factory):
    """SIGKILL the coordinator's broker of a live group in a 2-broker pool:
    the group moves (rendezvous placement), the new coordinator loads it from
    the metadata, and the member carries on with the same id, epoch and
    assignment, reading everything exactly once."""
    lease = ["--broker-lease-ms", "3000", "--wal-flush-ms", "20"]
    cl = cluster_factory(controllers=1, brokers=2, broker_args=BROKER_ARGS + lease, controller_args=lease)
    boot = ",".join(n.bootstrap for n in cl.brokers())
    topic, group = unique_topic("mv"), unique_group()
    create_topic(boot, topic, 4)
    ack_all = {"enable.idempotence": True, "acks": "all", "message.timeout.ms": 90000}
    placed1 = produce(producer(boot, **ack_all), topic, [Rec(b"k", b"a-%d" % i, partition=i % 4) for i in range(100)])
    m = Member(boot, group, [topic], commit=True)
    try:
        poll_until([m], lambda: len(m.records) >= 100, 60, "first batch")
        before = describe_json(cl.brokers()[0].bootstrap, group)
        a = admin(boot)
        coord = a.describe_consumer_groups([group])[group].result(timeout=30).coordinator.id
        cl.kill(coord)
        rest = [n for n in cl.brokers() if n.alive()]
        placed2 = produce(producer(rest[0].bootstrap, **ack_all), topic, [Rec(b"k", b"b-%d" % i, partition=i % 4) for i in range(100)], timeout=120)
        poll_until([m], lambda: len(m.records) >= 200, 90, "second batch after the coordinator died")
        after = describe_json(rest[0].bootstrap, group)
        a2 = admin(rest[0].bootstrap)
        new_coord = a2.describe_consumer_groups([group])[group].result(timeout=30).coordinator.id
        assert new_coord != coord, (coord, new_coord)
        assert after["group_epoch"] == before["group_epoch"], (before, after)
        assert [(x["member_id"], x["member_epoch"]) for x in after["members"]] == [(x["member_id"], x["member_epoch"]) for x in before["members"]]
        read = [(p, o) for (_, p, o, _) in m.records]
        assert sorted(read) == sorted(placed1 + placed2), "records lost or read twice"
    finally:
        m.close()


def test_classic_and_consumer_members_do_not_mix(kbroker):
    from kafka import KafkaConsumer
    from kafka.errors import InconsistentGroupProtocolError

    topic, group = unique_topic("mix"), unique_group()
    create_topic(kbroker.bootstrap, topic, 2)
    m = Member(kbroker.bootstrap, group, [topic])
    try:
        poll_until([m], lambda: m.parts() == all_parts(topic, 2), 30, "consumer member assigned")
        k = KafkaConsumer(topic, bootstrap_servers=kbroker.bootstrap, group_id=group, consumer_timeout_ms=3000, request_timeout_ms=20000)
        try:
            with pytest.raises(InconsistentGroupProtocolError):
                for _ in range(20):
                    k.poll(timeout_ms=500)
        finally:
            k.close()
        # The consumer member was not disturbed.
        for _ in range(5):
            m.poll(0.1)
        assert m.parts() == all_parts(topic, 2)
    finally:
        m.close()
    # Once empty, a classic member may take the group over (as in Kafka).
    def empty_or_gone() -> bool:
        # An empty group without committed offsets is dropped soon after.
        r = strata("group", "describe", group, "--bootstrap-server", kbroker.bootstrap, "--json")
        return "does not exist" in r.stderr or (r.returncode == 0 and json.loads(r.stdout)["state"] == "Empty")

    wait_until(empty_or_gone, 15, "consumer group empty")
    k = KafkaConsumer(topic, bootstrap_servers=kbroker.bootstrap, group_id=group, consumer_timeout_ms=3000)
    try:
        wait_until(lambda: (k.poll(timeout_ms=200) is not None) and len(k.assignment()) == 2, 30, "classic member assigned")
    finally:
        k.close()


def test_http_and_cli_show_consumer_groups(kbroker):
    topic, group = unique_topic("h"), unique_group()
    create_topic(kbroker.bootstrap, topic, 2)
    m = Member(kbroker.bootstrap, group, [topic])
    try:
        poll_until([m], lambda: m.parts() == all_parts(topic, 2), 30, "assigned")
        r = strata("group", "describe", group, "--bootstrap-server", kbroker.bootstrap)
        assert r.returncode == 0, r.stderr
        assert "consumer" in r.stdout and "EPOCH" in r.stdout, r.stdout
        code, body, _ = http_get(f"{kbroker.http_url}/v3/clusters")
        cluster = json.loads(body)["data"][0]["cluster_id"]
        code, body, _ = http_get(f"{kbroker.http_url}/v3/clusters/{cluster}/consumer-groups/{group}")
        assert code == 200, body
        g = json.loads(body)
        assert g["group_type"] == "consumer" and g["partition_assignor"] == "uniform", g
        code, body, _ = http_get(f"{kbroker.http_url}/v3/clusters/{cluster}/consumer-groups/{group}/consumers")
        assert code == 200, body
        cs = json.loads(body)["data"]
        assert len(cs) == 1 and cs[0]["member_epoch"] >= 1
        assert sorted(a["partition_id"] for a in cs[0]["assignments"]) == [0, 1]
    finally:
        m.close()
