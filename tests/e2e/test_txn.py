"""Exactly-once: transactional producers, read_committed consumers,
transactional offset commits, zombie fencing, timeouts, and a
consume-transform-produce loop through SIGKILLs of the transaction
coordinator and of partition leaders.

The loop's checker (Jepsen-style, over what the application saw):
- no aborted read: no output of an attempt the loop aborted is visible to
  read_committed;
- no lost committed write: every attempt whose commit returned is visible;
- no duplicate: every input record appears in the output exactly once;
- committed input offsets equal what the visible output covers.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from cluster import cluster_factory, wait_until  # noqa: F401 - cluster_factory is a fixture
from conftest import http_get
import kproto
from kclients import create_topic, unique_topic

WAL_ARGS = ["--wal-flush-ms", "20"]


def txn_producer(bootstrap: str, tid: str, **conf) -> Producer:
    extra = {"debug": os.environ["STRATA_TXN_DEBUG"]} if os.environ.get("STRATA_TXN_DEBUG") else {}
    return Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5, "message.timeout.ms": 60000, **extra, **conf})


def read_values(bootstrap: str, topic: str, partitions: int, isolation: str, expect: int | None = None, timeout: float = 20.0) -> list[bytes]:
    """Everything readable now (until `expect` records or an idle end)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("reader"),
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[bytes] = []
    eof: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
                if len(eof) == partitions and (expect is None or len(out) >= expect):
                    break
                continue
            raise AssertionError(f"consumer error {m.error()}")
        eof.discard(m.partition())
        out.append(m.value())
    c.close()
    return out


def test_commit_and_abort_visibility_across_clients(broker_factory, kcat):
    b = broker_factory(extra_args=WAL_ARGS)
    topic = unique_topic("txn-vis")
    create_topic(b.bootstrap, topic, 2)
    p = txn_producer(b.bootstrap, unique_topic("tid"))
    plain = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    p.init_transactions(30)
    committed, aborted = [], []
    for round_ in range(3):
        p.begin_transaction()
        vals = [f"c{round_}-{i}".encode() for i in range(10)]
        for i, v in enumerate(vals):
            p.produce(topic, v, partition=i % 2)
        p.commit_transaction(30)
        committed += vals
        p.begin_transaction()
        vals = [f"a{round_}-{i}".encode() for i in range(7)]
        for i, v in enumerate(vals):
            p.produce(topic, v, partition=i % 2)
        p.flush(30)
        # A non-transactional write while the transaction is open: visible
        # to read_committed only once the transaction ends.
        plain.produce(topic, f"plain-{round_}".encode(), partition=round_ % 2)
        assert plain.flush(30) == 0
        p.abort_transaction(30)
        aborted += vals
        committed.append(f"plain-{round_}".encode())
    rc = read_values(b.bootstrap, topic, 2, "read_committed", expect=len(committed))
    assert sorted(rc) == sorted(committed), f"read_committed saw {sorted(set(rc) ^ set(committed))[:10]} differently"
    ru = read_values(b.bootstrap, topic, 2, "read_uncommitted", expect=len(committed) + len(aborted))
    assert sorted(ru) == sorted(committed + aborted)

    # kafka-python, read_committed.
    from kafka import KafkaConsumer, TopicPartition as KTP

    kc = KafkaConsumer(bootstrap_servers=b.bootstrap, isolation_level="read_committed", enable_auto_commit=False, consumer_timeout_ms=3000)
    kc.assign([KTP(topic, 0), KTP(topic, 1)])
    kc.seek_to_beginning()
    got = [m.value for m in kc]
    kc.close()
    assert sorted(got) == sorted(committed), "kafka-python read_committed differs from librdkafka"

    # kcat, read_committed.
    out = subprocess.run(
        [kcat, "-b", b.bootstrap, "-C", "-t", topic, "-e", "-o", "beginning", "-q", "-X", "isolation.level=read_committed", "-f", "%s\n"],
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert sorted(out.stdout.decode().split()) == sorted(v.decode() for v in committed)


def test_zombie_producer_is_fenced(broker_factory):
    b = broker_factory(extra_args=WAL_ARGS)
    topic = unique_topic("txn-zombie")
    create_topic(b.bootstrap, topic, 1)
    tid = unique_topic("tid")
    old = txn_producer(b.bootstrap, tid)
    old.init_transactions(30)
    old.begin_transaction()
    for i in range(3):
        old.produce(topic, f"zombie-{i}".encode(), partition=0)
    old.flush(30)
    new = txn_producer(b.bootstrap, tid)
    new.init_transactions(30)  # fences `old` and aborts its open transaction
    new.begin_transaction()
    new.produce(topic, b"new-0", partition=0)
    new.commit_transaction(30)
    # The zombie can neither write nor commit any more.
    old.produce(topic, b"zombie-late", partition=0)
    with pytest.raises(KafkaException) as e:
        old.commit_transaction(30)
    assert e.value.args[0].code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError._STATE), e.value
    assert read_values(b.bootstrap, topic, 1, "read_committed", expect=1) == [b"new-0"]
    got = read_values(b.bootstrap, topic, 1, "read_uncommitted", expect=4)
    assert b"zombie-late" not in got, got


def test_transaction_past_its_timeout_is_aborted(broker_factory):
    b = broker_factory(extra_args=WAL_ARGS)
    topic = unique_topic("txn-timeout")
    create_topic(b.bootstrap, topic, 1)
    tid = unique_topic("tid")
    p = txn_producer(b.bootstrap, tid, **{"transaction.timeout.ms": 2000, "message.timeout.ms": 2000})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, f"late-{i}".encode(), partition=0)
    p.flush(30)
    code, body, _ = http_get(b.http_url + "/v3/clusters", timeout=5)
    cluster = json.loads(body)["data"][0]["cluster_id"]

    def state():
        code, body, _ = http_get(f"{b.http_url}/v3/clusters/{cluster}/transactions/{tid}", timeout=5)
        assert code == 200, body
        return json.loads(body)["state"]

    assert state() == "Ongoing"
    wait_until(lambda: state() == "CompleteAbort", 30, "the coordinator aborting the expired transaction")
    # Its records never become visible, and later data is readable.
    q = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    q.produce(topic, b"after", partition=0)
    assert q.flush(30) == 0
    assert read_values(b.bootstrap, topic, 1, "read_committed", expect=1) == [b"after"]
    with pytest.raises(KafkaException):
        p.commit_transaction(10)
    # strata txn describe shows it too.
    out = subprocess.run(
        [str(b.bin), "txn", "describe", tid, "--http", f"127.0.0.1:{b.http_port}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and "CompleteAbort" in out.stdout, out


def _coordinator(cl, tid: str) -> int:
    b = cl.brokers()[0]
    for n in cl.brokers():
        if n.alive():
            b = n
            break
    code, body, _ = http_get(b.http_url + "/v3/clusters", timeout=5)
    cluster = json.loads(body)["data"][0]["cluster_id"]
    code, body, _ = http_get(f"{b.http_url}/v3/clusters/{cluster}/transactions/{tid}", timeout=5)
    assert code == 200, body
    return json.loads(body)["coordinator_id"]


def _kill_until_fenced(cl, victim: int, boot) -> None:
    """SIGKILL a broker and keep it down until the cluster has fenced it
    (its partitions and coordinators moved to the others), then start it
    again: clients that still wait for it find it back."""
    cl.kill(victim)
    wait_until(
        lambda: victim not in Consumer({"bootstrap.servers": boot(), "group.id": "md"}).list_topics(timeout=10).brokers,
        30,
        f"broker {victim} fenced",
    )
    cl.start(victim, wait=False)


def _find_coordinator(cl, key: str, key_type: int) -> int:
    from test_groups import FIND_COORDINATOR  # noqa: PLC0415 - registers the schema

    b = next(n for n in cl.brokers() if n.alive())
    host, port = b.bootstrap.rsplit(":", 1)
    with kproto.Conn(host, int(port)) as c:
        r = c.request(FIND_COORDINATOR, 2, {"key": key, "key_type": key_type})
    assert r["error_code"] == 0, r
    return r["node_id"]


def test_consume_transform_produce_exactly_once_through_kills(cluster_factory):
    """SIGKILL the transaction coordinator's broker, then an output
    partition's leader, mid-loop: every input appears once in the output.

    Neither victim is the consumer group's coordinator: librdkafka (2.16)
    hangs in send_offsets_to_transaction, past its timeout, when the group
    coordinator it cached leaves the metadata (confluentinc/librdkafka#5511
    and #5456, open). Kafka drops a fenced broker from Metadata as Strata
    does, so the hang is the client's; group coordinator failover is tested
    with consumers in test_pool.py."""
    lease = ["--broker-lease-ms", "3000", *WAL_ARGS]
    cl = cluster_factory(controllers=3, brokers=3, broker_args=lease, controller_args=lease)
    boot = lambda: ",".join(n.bootstrap for n in cl.brokers() if n.alive())  # noqa: E731
    src, dst = unique_topic("eos-in"), unique_topic("eos-out")
    create_topic(cl.bootstrap, src, 3)
    create_topic(cl.bootstrap, dst, 3)
    n_in = 1200
    p = Producer({"bootstrap.servers": boot(), "enable.idempotence": True, "acks": "all"})
    for i in range(n_in):
        p.produce(src, str(i).encode(), partition=i % 3)
    assert p.flush(60) == 0
    group = unique_topic("eos-g")
    group_coord = _find_coordinator(cl, group, 0)
    # A transactional id whose coordinator is not the group's.
    tid = next(t for t in (unique_topic("eos-tid") for _ in range(100)) if _find_coordinator(cl, t, 1) != group_coord)
    cons = Consumer(
        {
            "bootstrap.servers": boot(),
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
        }
    )
    cons.subscribe([src])
    prod = txn_producer(boot(), tid, **{"transaction.timeout.ms": 60000})
    prod.init_transactions(60)
    committed_attempts: dict[str, str] = {}  # input -> attempt tag that committed
    aborted_attempts: set[str] = set()
    attempt = 0
    done_inputs: set[str] = set()
    kills = {"coordinator": False, "leader": False}
    deadline = time.monotonic() + 180
    while len(done_inputs) < n_in and time.monotonic() < deadline:
        msgs = cons.consume(50, timeout=0.5)
        msgs = [m for m in msgs if m.error() is None]
        if not msgs:
            continue
        attempt += 1
        tag = f"a{attempt}"
        batch = [m.value().decode() for m in msgs]
        try:
            prod.begin_transaction()
            for m in msgs:
                prod.produce(dst, f"{m.value().decode()}:{tag}".encode(), partition=m.partition())
            prod.send_offsets_to_transaction(cons.position(cons.assignment()), cons.consumer_group_metadata(), 15)
            # The kills happen with a transaction open.
            if len(done_inputs) > n_in // 3 and not kills["coordinator"]:
                kills["coordinator"] = True
                victim = _coordinator(cl, tid)
                assert victim != group_coord, (victim, group_coord)
                _kill_until_fenced(cl, victim, boot)
            elif len(done_inputs) > 2 * n_in // 3 and not kills["leader"]:
                kills["leader"] = True
                md = Consumer({"bootstrap.servers": boot(), "group.id": "md"}).list_topics(dst, timeout=10)
                leaders = [pm.leader for pm in md.topics[dst].partitions.values()]
                victim = next(v for v in leaders if v != group_coord)
                _kill_until_fenced(cl, victim, boot)
            for left in range(3, -1, -1):
                try:
                    prod.commit_transaction(20)
                    break
                except KafkaException as e:
                    # A retriable commit error: the outcome is not known
                    # yet; committing again finds it out.
                    if left == 0 or not e.args[0].retriable():
                        raise
            for v in batch:
                committed_attempts[v] = tag
                done_inputs.add(v)
        except KafkaException as e:
            err = e.args[0]
            # An application's EOS loop: abort what is open (or start a new
            # instance, which aborts it), then redo from committed offsets.
            aborted_attempts.add(tag)
            try:
                if not err.fatal():
                    prod.abort_transaction(30)
            except KafkaException:
                pass
            # A new instance (which also aborts whatever is still open):
            # librdkafka keeps waiting for a coordinator broker it has
            # cached even after that broker left the cluster, so a
            # TxnOffsetCommit can time out again and again on the old one.
            prod = txn_producer(boot(), tid, **{"transaction.timeout.ms": 60000})
            prod.init_transactions(60)
            # Rewind to the committed offsets and redo.
            committed = cons.committed(cons.assignment(), timeout=30)
            for tp in committed:
                cons.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))
    cons.close()
    print(f"{attempt} transactions, {len(aborted_attempts)} aborted, kills {kills}")
    assert all(kills.values()), kills
    assert len(done_inputs) == n_in, f"processed {len(done_inputs)} of {n_in} in time"
    for n in cl.brokers():
        if not n.alive():
            cl.start(n.id)
    out = read_values(boot(), dst, 3, "read_committed", expect=n_in, timeout=60)
    seen: dict[str, list[str]] = {}
    for v in out:
        i, tag = v.decode().split(":")
        seen.setdefault(i, []).append(tag)
    dup = {i: t for i, t in seen.items() if len(t) > 1}
    lost = [str(i) for i in range(n_in) if str(i) not in seen]
    aborted_read = [(i, t) for i, ts in seen.items() for t in ts if t in aborted_attempts]
    wrong = [(i, ts, committed_attempts[i]) for i, ts in seen.items() if i in committed_attempts and committed_attempts[i] not in ts]
    assert not dup and not lost and not aborted_read and not wrong, (
        f"duplicates {list(dup.items())[:5]}, lost {lost[:5]}, aborted reads {aborted_read[:5]}, committed attempts not visible {wrong[:5]}"
    )
    # The group's committed offsets cover exactly the input.
    c = Consumer({"bootstrap.servers": boot(), "group.id": group, "isolation.level": "read_committed"})
    offs = c.committed([TopicPartition(src, q) for q in range(3)], timeout=30)
    c.close()
    assert sum(tp.offset for tp in offs) == n_in, [(tp.partition, tp.offset) for tp in offs]
