"""The controller quorum: real controller and broker processes, real signals.

Every failure test runs an idempotent acks=all producer through the failure
and hands its acknowledgements to the checker, which reads every partition
back and fails on a lost, duplicated, moved or reordered record.

- leader failover: SIGKILL the controller leader under produce, CreateTopics
  and OffsetCommit load; a new leader takes over, nothing acknowledged is
  lost, the killed controller rejoins and catches up;
- snapshot catch-up: a follower down for more than ten snapshots' worth of
  commands catches up after its restart;
- membership through `strata controller`: remove a voter, add and promote a
  new controller, refuse a removed id;
- quorum loss: with two of three controllers stopped nothing is acknowledged
  and CreateTopics fails, committed data stays readable, and everything
  proceeds once they are back;
- upgrade: a data dir written by the release before the controller quorum
  (tests/e2e/fixtures) opens with every topic, record and committed offset;
- scripts/cluster: up, status, stop, start and down of a local cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import ConfigResource, ConfigSource, NewTopic

import kproto
from checker import Checker, ProduceLoop
from cluster import cluster_factory, wait_until  # noqa: F401,F811 - cluster_factory is a fixture
from conftest import REPO, child_env, free_port, http_get, strata_bin
from kclients import (
    admin,
    consume_range,
    consumer,
    create_topic,
    first_mismatch,
    producer,
    unique_topic,
    wait_topic,
    watermarks,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PARTITIONS = 3
TOPIC_CONFIG = ConfigResource.Type.TOPIC if hasattr(ConfigResource, "Type") else ConfigResource.ResourceType.TOPIC
# How long acknowledgements must stay away while the quorum is lost. Nothing
# can be awaited here: the assertion is that nothing happens in this window.
NO_ACK_WINDOW_S = 4.0
# Delivery timeout of the producers that run through failures: long enough
# to outlast an election or a paused quorum, so an error is a real failure.
MESSAGE_TIMEOUT_MS = 90_000


def idempotent_producer(bootstrap: str, **conf):
    return producer(bootstrap, **{"enable.idempotence": True, "message.timeout.ms": MESSAGE_TIMEOUT_MS, "linger.ms": 5, **conf})


class Repeat(threading.Thread):
    """Calls ``fn(i)`` for i = 0, 1, ... until stopped, ``pause`` apart, and
    records when each call succeeded (returned) or failed (raised)."""

    def __init__(self, name: str, fn, pause: float = 0.02):
        super().__init__(daemon=True, name=name)
        self.fn = fn
        self.pause = pause
        self.ok: list[tuple[float, int, object]] = []  # (monotonic time, i, result)
        self.errors: list[tuple[float, int, str]] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        i = 0
        while not self._halt.is_set():
            try:
                res = self.fn(i)
                with self._lock:
                    self.ok.append((time.monotonic(), i, res))
            except Exception as e:  # noqa: BLE001 - recorded; failures are allowed during the fault
                with self._lock:
                    self.errors.append((time.monotonic(), i, repr(e)))
            i += 1
            self._halt.wait(self.pause)

    def successes_since(self, t: float) -> int:
        with self._lock:
            return sum(1 for when, _, _ in self.ok if when > t)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)
        assert not self.is_alive(), f"{self.name} did not stop"


def topic_creator(bootstrap: str, prefix: str) -> Repeat:
    a = admin(bootstrap)

    def create(i: int) -> str:
        name = f"{prefix}-{i}"
        fs = a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)], operation_timeout=10, request_timeout=15)
        fs[name].result(timeout=30)
        return name

    return Repeat("create-topics", create, pause=0.1)


class Committer(Repeat):
    """OffsetCommits of a consumer group: call i commits offset i + 1 for
    partition i % partitions; remembers the highest acknowledged per partition."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int):
        self.consumer = consumer(bootstrap, **{"group.id": group})
        self.topic = topic
        self.partitions = partitions
        self.highest: dict[int, int] = {}
        super().__init__("offset-commits", self.commit)

    def commit(self, i: int) -> tuple[int, int]:
        p, off = i % self.partitions, i + 1
        res = self.consumer.commit(offsets=[TopicPartition(self.topic, p, off)], asynchronous=False)
        errs = [tp.error for tp in res or [] if tp.error is not None]
        if errs:
            raise AssertionError(f"commit {p}@{off}: {errs}")
        with self._lock:
            self.highest[p] = max(self.highest.get(p, 0), off)
        return p, off

    def stop(self) -> None:
        super().stop()
        self.consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str, partitions) -> dict[int, int]:
    c = consumer(bootstrap, **{"group.id": group})
    try:
        got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def topic_names(bootstrap: str) -> set[str]:
    return set(admin(bootstrap).list_topics(timeout=15).topics)


def other_controller(cl, *not_ids: int) -> int:
    return next(n.id for n in cl.controllers() if n.id not in not_ids)


# ------------------------------------------------------------------ failover


def test_controller_leader_killed_under_load(cluster_factory):
    cl = cluster_factory(controllers=3, brokers=1)
    topic = unique_topic("failover")
    create_topic(cl.bootstrap, topic, PARTITIONS)
    group = unique_topic("failover-group")

    chk = Checker()
    prod = ProduceLoop(chk, idempotent_producer(cl.bootstrap), topic)
    creator = topic_creator(cl.bootstrap, unique_topic("fo-created"))
    committer = Committer(cl.bootstrap, group, topic, PARTITIONS)
    for th in (prod, creator, committer):
        th.start()
    try:
        wait_until(lambda: chk.acked_count() >= 100 and creator.ok and committer.ok, 30, "produce, CreateTopics and OffsetCommit all succeeding before the kill")

        old = cl.controller_leader()
        sent_at_kill = chk.sent
        killed_at = time.monotonic()
        cl.kill(old)

        new = cl.controller_leader(timeout=30, exclude={old})
        assert new != old
        voters = cl.status(new)["voters"]
        assert sorted(voters) == [1, 2, 3], f"voters after the kill: {voters}"
        # The broker carries on: records handed over after the kill are acked,
        # and metadata writes go through the new leader.
        wait_until(lambda: chk.acked_count() >= sent_at_kill + 100, 60, f"100 acks beyond the {sent_at_kill} records sent before the kill")
        wait_until(lambda: creator.successes_since(killed_at) >= 2, 60, "CreateTopics succeeding after the kill")
        wait_until(lambda: committer.successes_since(killed_at) >= 5, 60, "OffsetCommits succeeding after the kill")
    finally:
        creator.stop()
        committer.stop()
        left = prod.stop()
    assert left == 0, f"{left} records still unreported after the flush"
    assert not chk.failed(), f"delivery failures with a {MESSAGE_TIMEOUT_MS} ms timeout: {chk.failed()[:5]}"

    chk.consume_all(cl.bootstrap, [topic])
    chk.assert_clean(min_acked=200)

    created = [name for _, _, name in creator.ok]
    missing = sorted(set(created) - topic_names(cl.bootstrap))
    assert not missing, f"{len(missing)} of {len(created)} topics whose CreateTopics succeeded are gone: {missing[:10]}"

    want = dict(committer.highest)
    got = committed_offsets(cl.bootstrap, group, topic, sorted(want))
    behind = {p: (got.get(p), off) for p, off in want.items() if got.get(p, -1) < off}
    assert not behind, f"committed offsets behind acknowledged commits, partition -> (committed, acked commit): {behind}"

    # The killed controller comes back as a follower and catches up.
    cl.start(old)
    target, reached = cl.wait_caught_up(old, timeout=60)
    s = cl.status(old)
    assert s["leader"] is not None and s["leader"] in (1, 2, 3), s
    assert sorted(s["voters"]) == [1, 2, 3], s


# ------------------------------------------------------------------ snapshots


def test_follower_catches_up_from_snapshot(cluster_factory):
    cl = cluster_factory(controllers=3, brokers=1, controller_args=["--controller-snapshot-every", "20"])
    topic = unique_topic("snap")
    create_topic(cl.bootstrap, topic, PARTITIONS)
    leader = cl.controller_leader()
    follower = other_controller(cl, leader)
    cl.kill(follower)

    chk = Checker()
    prod = ProduceLoop(chk, idempotent_producer(cl.bootstrap), topic)
    prod.start()
    group = unique_topic("snap-group")
    prefix = unique_topic("snap-t")
    try:
        before = cl.status(leader)["applied_index"]
        a = admin(cl.bootstrap)
        names = [f"{prefix}-{i}" for i in range(40)]
        for chunk in (names[:20], names[20:]):
            fs = a.create_topics([NewTopic(n, num_partitions=1, replication_factor=1) for n in chunk], operation_timeout=10, request_timeout=30)
            for n, f in fs.items():
                f.result(timeout=30)
        c = consumer(cl.bootstrap, **{"group.id": group})
        try:
            for i in range(200):
                c.commit(offsets=[TopicPartition(topic, i % PARTITIONS, i + 1)], asynchronous=False)
        finally:
            c.close()
        after = cl.status(leader)["applied_index"]
        assert after - before >= 200, f"the leader applied only {after - before} entries ({before} -> {after}); the test needs more than ten snapshots' worth"
        wait_until(lambda: chk.acked_count() >= 100, 30, "records acknowledged while the follower is down")

        cl.start(follower)
        target, reached = cl.wait_caught_up(follower, timeout=60)
        assert reached >= after, (target, reached, after)
        s = cl.status(follower)
        assert s["leader"] == cl.controller_leader(), s
        installed = "install" in cl.node(follower).log_text().lower()
        print(f"follower {follower}: applied {reached} (leader had {after}); log mentions an install: {installed}")
    finally:
        left = prod.stop()
    assert left == 0

    # The state the follower rebuilt is the cluster's: with the old leader
    # gone the remaining two (one of them the restarted follower) serve it.
    cl.kill(leader)
    cl.controller_leader(exclude={leader})
    wait_topic(cl.bootstrap, names[-1], 1, timeout=30)
    missing = sorted(set(names) - topic_names(cl.bootstrap))
    assert not missing, f"topics lost: {missing}"
    want = {p: max(i + 1 for i in range(200) if i % PARTITIONS == p) for p in range(PARTITIONS)}
    assert committed_offsets(cl.bootstrap, group, topic, range(PARTITIONS)) == want
    chk.consume_all(cl.bootstrap, [topic])
    chk.assert_clean(min_acked=100)


# ------------------------------------------------------------------ membership


def test_membership_changes_through_the_cli(cluster_factory):
    cl = cluster_factory(controllers=3, brokers=1)
    topic = unique_topic("members")
    create_topic(cl.bootstrap, topic, PARTITIONS)
    chk = Checker()
    prod = ProduceLoop(chk, idempotent_producer(cl.bootstrap), topic)
    prod.start()
    try:
        leader = cl.controller_leader()
        addr = cl.controller_addr(leader)

        out = cl.cli_ok("controller", "status", "--controller", addr, "--json")
        s = json.loads(out)
        assert s["leader"] == leader and sorted(s["voters"]) == [1, 2, 3], s
        cl.cli_ok("controller", "status", "--controller", addr)

        victim = other_controller(cl, leader)
        cl.cli_ok("controller", "remove", "--controller", addr, "--node-id", str(victim))
        remaining = sorted({1, 2, 3} - {victim})
        wait_until(lambda: sorted(cl.status(cl.controller_leader())["voters"]) == remaining, 30, f"voters becoming {remaining}")
        cl.stop(victim)
        acked = chk.acked_count()
        wait_until(lambda: chk.acked_count() >= acked + 50, 30, "acks with two voters")

        n4 = cl.add_controller(4, quorum=",".join(f"{i}@{cl.controller_addr(i)}" for i in remaining))
        leader = cl.controller_leader()
        addr = cl.controller_addr(leader)
        cl.cli_ok("controller", "add-learner", "--controller", addr, "--node-id", "4", "--address", n4.controller)
        wait_until(lambda: 4 in cl.status(cl.controller_leader())["learners"], 30, "node 4 listed as a learner")
        cl.cli_ok("controller", "promote", "--controller", cl.controller_addr(cl.controller_leader()), "--node-id", "4")
        want = sorted(remaining + [4])

        def voters_and_learners():
            s = cl.status(cl.controller_leader())
            return (sorted(s["voters"]), sorted(s["learners"])) == (want, []) and s

        s = wait_until(voters_and_learners, 30, f"voters becoming {want} with no learners")
        assert victim not in [n["id"] for n in s["nodes"]], f"removed node {victim} still listed: {s['nodes']}"
        n4.wait_ready()
        cl.wait_caught_up(4, timeout=60)
        s4 = cl.status(4)
        assert sorted(s4["voters"]) == want and s4["leader"] == cl.controller_leader(), s4

        # A removed id can never come back.
        r = cl.cli("controller", "add-learner", "--controller", cl.controller_addr(cl.controller_leader()), "--node-id", str(victim), "--address", f"127.0.0.1:{free_port()}")
        out = (r.stdout + r.stderr).strip()
        assert r.returncode != 0, f"adding removed node {victim} again succeeded: {out}"
        assert out and "panicked" not in out, f"exit {r.returncode} without a reason: {out!r}"
        assert sorted(cl.status(cl.controller_leader())["voters"]) == want

        acked = chk.acked_count()
        wait_until(lambda: chk.acked_count() >= acked + 50, 30, "acks after the membership changes")
    finally:
        left = prod.stop()
    assert left == 0
    assert not chk.failed(), chk.failed()[:5]
    chk.consume_all(cl.bootstrap, [topic])
    chk.assert_clean(min_acked=100)


# ------------------------------------------------------------------ quorum loss


def test_quorum_loss_stops_acks_and_recovers(cluster_factory):
    cl = cluster_factory(controllers=3, brokers=1)
    topic = unique_topic("quorum")
    create_topic(cl.bootstrap, topic, PARTITIONS)
    chk = Checker()
    p = idempotent_producer(cl.bootstrap)
    for i in range(200):
        p.produce(topic, value=chk.next_value(), partition=i % PARTITIONS, on_delivery=chk.on_delivery)
    assert p.flush(30) == 0
    assert chk.acked_count() == 200 and not chk.failed(), chk.report()
    before = {(t, part, off): v for t, part, off, v in chk.acked()}
    ends = {part: hi for part, (_lo, hi) in watermarks(cl.bootstrap, topic, range(PARTITIONS)).items()}

    leader = cl.controller_leader()
    paused = [leader, other_controller(cl, leader)]
    for n in paused:
        cl.pause(n)
    try:
        for i in range(50):
            p.produce(topic, value=chk.next_value(), partition=i % PARTITIONS, on_delivery=chk.on_delivery)
        name = unique_topic("quorum-create")
        adm = admin(cl.bootstrap)  # kept referenced: the future dies with its client
        fut = adm.create_topics([NewTopic(name, 1, 1)], operation_timeout=3, request_timeout=8)[name]

        # The window itself is the assertion: no ack may arrive in it.
        window_end = time.monotonic() + NO_ACK_WINDOW_S
        while time.monotonic() < window_end:
            p.poll(0.1)
            assert chk.acked_count() == 200, f"{chk.acked_count() - 200} records acknowledged with two of three controllers stopped"
        assert not chk.failed(), f"delivery failed instead of waiting: {chk.failed()[:5]}"

        try:
            res = fut.result(timeout=30)
            raise AssertionError(f"CreateTopics {name} succeeded without a controller quorum: {res!r}")
        except KafkaException as e:
            err = e.args[0]
            assert err.retriable() or err.code() in (KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT), f"CreateTopics without a quorum: want a retriable error or a timeout, got {err}"

        # Committed data stays readable.
        got = consume_range(cl.bootstrap, topic, ends, timeout=30)
        read = {(topic, part, m.offset): m.value for part, ms in got.items() for m in ms}
        problem = first_mismatch(sorted(before.items()), sorted(read.items()), "records read without a quorum")
        assert problem is None, problem
        assert chk.acked_count() == 200
        # The broker says it cannot commit instead of wedging silently.
        broker = cl.brokers()[0]

        def not_ready():
            code, body, _ = http_get(broker.http_url + "/readyz", timeout=2)
            return code == 503 and "wal commits failing" in body

        wait_until(not_ready, 30, "/readyz reporting failing WAL commits")
    finally:
        for n in paused:
            cl.resume(n)

    cl.controller_leader()
    wait_until(lambda: http_get(cl.brokers()[0].http_url + "/readyz", timeout=2)[0] == 200, 60, "/readyz ready again once commits go through")

    def all_acked() -> bool:
        p.poll(0.1)  # serves the delivery reports
        return chk.acked_count() == 250

    wait_until(all_acked, 60, "the 50 pending records acknowledged after the quorum returned")
    assert p.flush(30) == 0
    assert not chk.failed(), chk.failed()[:5]
    chk.consume_all(cl.bootstrap, [topic])
    chk.assert_clean(min_acked=250)
    # Metadata writes work again.
    create_topic(cl.bootstrap, unique_topic("quorum-after"), 1)


# ------------------------------------------------------------------ upgrade


def test_upgrade_from_pre_controller_data_dir(broker_factory):
    desc_path = FIXTURES / "legacy-data.json"
    tar_path = FIXTURES / "legacy-data.tar.gz"
    assert desc_path.exists() and tar_path.exists(), f"missing fixture {tar_path} (generate it with fixtures/make_legacy_fixture.py)"
    desc = json.loads(desc_path.read_text())

    # Same flags as the legacy broker was run with (conftest adds a free
    # --controller-listen port).
    b = broker_factory(start=False)
    ctrl = f"127.0.0.1:{b.controller_port}"
    b.workdir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path) as tf:
        for m in tf.getmembers():
            assert not m.name.startswith("/") and ".." not in Path(m.name).parts, f"unsafe path in fixture: {m.name}"
        tf.extractall(b.workdir, filter="data")
    assert b.data_dir.is_dir(), f"fixture did not unpack into {b.data_dir}"
    b.start()

    md = admin(b.bootstrap).list_topics(timeout=15)
    if desc.get("cluster_id"):
        assert md.cluster_id == desc["cluster_id"], f"cluster id {md.cluster_id}, legacy {desc['cluster_id']}"
    for t in desc["topics"]:
        wait_topic(b.bootstrap, t["name"], t["partitions"], timeout=30)
    a = admin(b.bootstrap)
    for t in desc["topics"]:
        res = ConfigResource(TOPIC_CONFIG, t["name"])
        cfg = a.describe_configs([res])[res].result(timeout=30)
        overrides = {k: e.value for k, e in cfg.items() if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}
        assert overrides == t["configs"], f"{t['name']}: config overrides {overrides}, legacy {t['configs']}"
        if t.get("topic_id"):
            tid = _topic_id_hex(a, t["name"])
            assert tid == t["topic_id"], f"{t['name']}: topic id {tid}, legacy {t['topic_id']}"

        marks = watermarks(b.bootstrap, t["name"], range(t["partitions"]))
        want_marks = {int(p): (0, len(rows)) for p, rows in t["records"].items()}
        assert marks == want_marks, f"{t['name']}: watermarks {marks}, legacy {want_marks}"
        got = consume_range(b.bootstrap, t["name"], {p: hi for p, (_lo, hi) in want_marks.items()})
        for p, rows in t["records"].items():
            want = [(r["offset"], _b(r["key"]), _b(r["value"]), r["timestamp"], [(k, _b(v)) for k, v in r["headers"]]) for r in rows]
            have = [(m.offset, m.key, m.value, m.timestamp, list(m.headers)) for m in got[int(p)]]
            problem = first_mismatch(want, have, f"{t['name']}/{p}")
            assert problem is None, problem

    g = desc["group"]
    for tname, offs in g["offsets"].items():
        parts = sorted(int(p) for p in offs)
        got = committed_offsets(b.bootstrap, g["name"], tname, parts)
        assert got == {int(p): o["offset"] for p, o in offs.items()}, f"group {g['name']} on {tname}: committed {got}, legacy {offs}"

    # The producer-id counter continues past every id the legacy broker handed out.
    with kproto.Conn("127.0.0.1", b.kafka_port) as c:
        pid, _epoch = c.init_producer_id()
    assert pid > desc["last_producer_id"], f"InitProducerId gave {pid}, legacy already handed out {desc['last_producer_id']}"
    t0 = desc["topics"][0]
    p = idempotent_producer(b.bootstrap)
    acked = []
    for part in range(t0["partitions"]):
        p.produce(t0["name"], value=b"after-upgrade-%d" % part, partition=part, on_delivery=lambda err, m: acked.append((err, m.partition(), m.offset())))
    assert p.flush(30) == 0
    assert sorted(acked) == [(None, part, len(t0["records"][str(part)])) for part in range(t0["partitions"])], acked

    s = json.loads(http_get(f"http://{ctrl}/controller/status")[1])
    assert s["leader"] == s["node_id"] and s["voters"] == [s["node_id"]], s


def _b(s: str | None) -> bytes | None:
    return None if s is None else s.encode()


def _topic_id_hex(a, name: str) -> str:
    u = a.describe_topics(TopicCollection([name]))[name].result(timeout=30).topic_id
    mask = (1 << 64) - 1
    return f"{u.get_most_significant_bits() & mask:016x}{u.get_least_significant_bits() & mask:016x}"


# ------------------------------------------------------------------ scripts/cluster


def _script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "cluster"), *args], capture_output=True, text=True, timeout=timeout, env=child_env(), stdin=subprocess.DEVNULL)


def _pid_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_cluster_script(tmp_path):
    d = tmp_path / "cluster"
    pids: set[int] = set()

    def status() -> dict:
        r = _script("status", "--dir", str(d), "--json")
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        pids.update(n["pid"] for n in s["nodes"] if n["pid"])
        return s

    try:
        r = _script("up", "--dir", str(d), "--controllers", "3", "--brokers", "1", "--bin", str(strata_bin()))
        assert r.returncode == 0, f"up exited {r.returncode}\n{r.stdout}\n{r.stderr}"
        s = status()
        assert [(n["id"], n["roles"]) for n in s["nodes"]] == [(1, ["controller"]), (2, ["controller"]), (3, ["controller"]), (101, ["broker"])], s
        assert all(n["pid"] for n in s["nodes"]), s
        assert all((n["kafka"] is None) == (n["roles"] == ["controller"]) for n in s["nodes"]), s
        assert all((n["controller"] is None) == (n["roles"] == ["broker"]) for n in s["nodes"]), s
        old = s["controller_leader"]
        assert old in (1, 2, 3), s
        bootstrap = s["nodes"][3]["kafka"]
        assert bootstrap.startswith("127.0.0.1:")
        for n in s["nodes"]:
            assert http_get(f"http://{n['http']}/readyz")[0] == 200, n

        topic = unique_topic("script")
        create_topic(bootstrap, topic, 2)
        chk = Checker()
        p = idempotent_producer(bootstrap)
        for i in range(20):
            p.produce(topic, value=chk.next_value(), on_delivery=chk.on_delivery)
        assert p.flush(30) == 0

        r = _script("stop", str(old), "--dir", str(d))
        assert r.returncode == 0, r.stderr
        s = wait_until(lambda: (s := status())["controller_leader"] not in (None, old) and s, 30, "a new leader in `status`")
        assert next(n for n in s["nodes"] if n["id"] == old)["pid"] is None, s
        for i in range(20):
            p.produce(topic, value=chk.next_value(), on_delivery=chk.on_delivery)
        assert p.flush(60) == 0

        r = _script("start", str(old), "--dir", str(d))
        assert r.returncode == 0, r.stderr
        assert next(n for n in status()["nodes"] if n["id"] == old)["pid"], "restarted node has no pid"

        chk.consume_all(bootstrap, [topic])
        chk.assert_clean(min_acked=40)

        r = _script("down", "--dir", str(d))
        assert r.returncode == 0, r.stderr
        assert all(n["pid"] is None for n in status()["nodes"])
        still = [pid for pid in pids if _pid_running(pid)]
        assert not still, f"processes still running after down: {still}"
        logs = sorted(d.glob("node-*/strata.log"))
        assert len(logs) == 4 and not any("panicked" in f.read_text(errors="replace") for f in logs)
    finally:
        if (d / "cluster.json").exists():
            _script("down", "--dir", str(d))
        for pid in pids:
            if _pid_running(pid):
                os.kill(pid, 9)


def _raft_records(log: bytes) -> list[int]:
    """Start offsets of the records of a controller's `raft/log`
    ([u32 magic][u32 len][u32 crc][payload], little endian)."""
    starts, pos = [], 0
    while pos + 12 <= len(log):
        assert log[pos:pos + 4] == (0x5354524C).to_bytes(4, "little"), f"no record magic at byte {pos}"
        n = int.from_bytes(log[pos + 4:pos + 8], "little")
        starts.append(pos)
        pos += 12 + n
    return starts


def test_corrupt_raft_log_refuses_to_start_torn_tail_is_cut(broker_factory):
    """A single node whose Raft log is damaged in the middle refuses to start
    and says why (nothing is dropped silently); a torn tail is cut and the
    node starts with everything acknowledged before it."""
    b = broker_factory()
    topic = unique_topic("corrupt")
    create_topic(b.bootstrap, topic, partitions=2)
    p = idempotent_producer(b.bootstrap, acks="all")
    checker = Checker()
    for i in range(20):
        p.produce(topic, checker.next_value(), partition=i % 2, on_delivery=checker.on_delivery)
    assert p.flush(30) == 0
    assert checker.acked_count() == 20, checker.failed()
    # One more command after the acknowledged ones: the record the torn
    # write below stands for (a crash while it was being appended).
    create_topic(b.bootstrap, unique_topic("last"), partitions=1)
    assert b.stop() == 0
    log_path = b.data_dir / "meta" / "raft" / "log"
    good = log_path.read_bytes()
    starts = _raft_records(good)
    assert len(starts) > 6, f"expected several raft records, found {len(starts)}"

    # Torn tail: half of the last record is gone. The node starts, the tail
    # is cut, nothing acknowledged is lost.
    log_path.write_bytes(good[: starts[-1] + (len(good) - starts[-1]) // 2])
    b.start()
    assert "cutting torn raft log tail" in b.log_text()
    checker.consume_all(b.bootstrap)
    checker.assert_clean(min_acked=20)
    assert b.stop() == 0

    # Damage in the middle: a payload byte of an early record flipped, with
    # intact records after it. The node must refuse and name the byte.
    data = bytearray(log_path.read_bytes())
    starts = _raft_records(bytes(data))
    victim = starts[2]
    data[victim + 12 + 5] ^= 0x01
    log_path.write_bytes(bytes(data))
    b.start(wait=False)
    rc = b.proc.wait(timeout=30)
    b.exit_codes.append(rc)
    assert rc != 0, "a node with a corrupt Raft log must not start"
    text = b.log_text()
    assert f"damaged record at byte {victim}" in text, text[-2000:]
    # Nothing was cut: the damaged file is as it was.
    assert log_path.read_bytes() == bytes(data)



def _objects(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def test_second_cluster_on_the_same_prefix_refuses_to_start(broker_factory, tmp_path):
    """The bucket prefix carries its cluster's id (create-only marker): a
    second cluster pointed at it refuses to start and deletes nothing."""
    objects = tmp_path / "shared-objects"
    store = ["--object-store", f"file://{objects}", "--gc-grace-ms", "0", "--tier-tick-ms", "100"]
    a = broker_factory(extra_args=store)
    topic = unique_topic("owned")
    create_topic(a.bootstrap, topic, partitions=1)
    p = idempotent_producer(a.bootstrap, acks="all")
    checker = Checker()
    for _ in range(10):
        p.produce(topic, checker.next_value(), partition=0, on_delivery=checker.on_delivery)
    assert p.flush(30) == 0
    owner = json.loads((objects / "cluster.owner").read_text())
    assert owner["cluster_id"] == admin(a.bootstrap).list_topics(timeout=10).cluster_id
    before = _objects(objects)
    assert any(k.startswith("wal/") for k in before), before

    b = broker_factory(extra_args=store, start=False)
    b.start(wait=False)
    rc = b.proc.wait(timeout=30)
    b.exit_codes.append(rc)
    assert rc != 0, "a second cluster must not start on another cluster's prefix"
    assert "belongs to cluster" in b.log_text(), b.log_tail()
    after = _objects(objects)
    assert set(before) <= set(after), f"objects of the first cluster were deleted: {set(before) - set(after)}"
    checker.consume_all(a.bootstrap)
    checker.assert_clean(min_acked=10)


def test_a_broker_that_cannot_reach_the_controllers_answers_probes_and_stops(tmp_path):
    """Until it has registered, a broker answers /healthz 200 (it runs) and
    every other path 503 "starting" with a JSON body: probes and users see
    why, instead of a connection that is accepted and never answered. It
    stops at once on SIGTERM while it waits."""
    http, kafka, nobody = free_port(), free_port(), free_port()
    args = [
        str(strata_bin()), "serve", "--roles", "broker", "--node-id", "101",
        "--data-dir", str(tmp_path / "data"), "--object-store", f"file://{tmp_path / 'objects'}",
        "--controller-quorum", f"1@127.0.0.1:{nobody}",
        "--http-listen", f"127.0.0.1:{http}", "--kafka-listen", f"127.0.0.1:{kafka}", "--advertised-host", "127.0.0.1",
    ]
    log = tmp_path / "broker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=child_env())
    try:

        def healthz():
            try:
                return http_get(f"http://127.0.0.1:{http}/healthz", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(healthz, timeout=30, what="/healthz while waiting for the controllers")
        for path in ("/readyz", "/v3/clusters", "/metrics"):
            status, body, headers = http_get(f"http://127.0.0.1:{http}{path}", timeout=2)
            assert status == 503, (path, status, body)
            assert json.loads(body)["status"] == "starting", (path, body)
            assert headers["content-type"].startswith("application/json"), (path, headers)
        assert proc.poll() is None, log.read_text()[-2000:]
        proc.terminate()
        rc = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The handler is installed before the start: a stop request ends the
    # start cleanly (exit 0, logged), not by the signal's default action.
    assert rc == 0, (rc, log.read_text()[-2000:])
    assert "stop requested while starting" in log.read_text(), log.read_text()[-2000:]
