"""A pool of brokers on one controller quorum: real processes, real signals.

Every failure test runs idempotent acks=all producers through the failure
and ends with the checker (lost, duplicated, moved or reordered records:
zero allowed).

- SIGKILL of the broker leading the most partitions: its lease expires, the
  controller moves its partitions, producers carry on;
- SIGSTOP of a broker for longer than its lease: the others take over; after
  SIGCONT it refuses every write for its old partitions;
- SIGTERM of a broker while a new one joins: leadership is handed off at
  once and rebalanced onto the new broker, producers see only retriable
  errors;
- SIGKILL of a group's coordinator: the group resumes on another broker from
  its committed offsets.
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import TopicPartition

import kproto
from checker import Checker, ProduceLoop
from cluster import cluster_factory, wait_until  # noqa: F401,F811 - cluster_factory is a fixture
from conftest import http_get
from kclients import admin, consumer, create_topic, producer, unique_topic

PARTITIONS = 6
LEASE_MS = 3000
# Long enough to outlast a failover: a delivery error is a real failure.
MESSAGE_TIMEOUT_MS = 90_000
BROKER_ARGS = ["--broker-lease-ms", str(LEASE_MS), "--wal-flush-ms", "20"]


def pool(cluster_factory, brokers: int = 3):
    return cluster_factory(controllers=3, brokers=brokers, broker_args=BROKER_ARGS, controller_args=BROKER_ARGS)


def bootstrap_all(cl) -> str:
    return ",".join(n.bootstrap for n in cl.brokers() if n.alive())


def idempotent_producer(bootstrap: str):
    return producer(
        bootstrap,
        **{"enable.idempotence": True, "acks": "all", "message.timeout.ms": MESSAGE_TIMEOUT_MS, "linger.ms": 5},
    )


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    md = admin(bootstrap).list_topics(topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, t.error
    return {p: pm.leader for p, pm in t.partitions.items()}


def metric(node, name: str) -> float:
    code, body, _ = http_get(node.http_url + "/metrics", timeout=5)
    assert code == 200, body[:200]
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics of node {node.id}")


def wait_all_led_by(bootstrap: str, topic: str, allowed: set[int], timeout: float = 30.0) -> dict[int, int]:
    def ok():
        ls = leaders(bootstrap, topic)
        return ls if len(ls) == PARTITIONS and set(ls.values()) <= allowed else None

    return wait_until(ok, timeout, f"every partition of {topic} led by one of {sorted(allowed)}")


def wait_spread(cl, topic: str, ids: set[int]) -> dict[int, int]:
    """Leaders once every broker of ``ids`` leads some partition."""
    return wait_until(
        lambda: (ls := leaders(cl.bootstrap, topic)) and set(ls.values()) == ids and ls,
        30,
        "leadership spread over every broker",
    )


def start_load(cl, topic: str, loops: int = 2) -> tuple[Checker, list[ProduceLoop]]:
    chk = Checker()
    prods = [ProduceLoop(chk, idempotent_producer(bootstrap_all(cl)), topic, interval=0.002) for _ in range(loops)]
    for p in prods:
        p.start()
    return chk, prods


def finish_load(cl, topic: str, chk: Checker, prods: list[ProduceLoop], min_acked: int) -> None:
    for p in prods:
        left = p.stop()
        assert left == 0, f"{left} records still unreported after the flush"
    assert not chk.failed(), f"delivery failures with a {MESSAGE_TIMEOUT_MS} ms timeout: {chk.failed()[:5]}"
    chk.consume_all(bootstrap_all(cl), [topic])
    chk.assert_clean(min_acked=min_acked)


def test_broker_killed_under_load_fails_over(cluster_factory):
    cl = pool(cluster_factory)
    topic = unique_topic("pool-kill")
    create_topic(cl.bootstrap, topic, PARTITIONS)
    ids = {n.id for n in cl.brokers()}
    # The controller spreads leadership over the three brokers.
    spread = wait_spread(cl, topic, ids)
    chk, prods = start_load(cl, topic)
    wait_until(lambda: chk.acked_count() >= 300, 60, "300 acks before the kill")
    counts = {b: list(spread.values()).count(b) for b in ids}
    victim = max(counts, key=counts.get)
    survivors = ids - {victim}
    sent = chk.sent
    t0 = time.monotonic()
    cl.kill(victim)
    wait_all_led_by(cl.node(min(survivors)).bootstrap, topic, survivors, timeout=LEASE_MS / 1000 + 20)
    moved_s = time.monotonic() - t0
    wait_until(lambda: chk.acked_count() >= sent + 300, 60, "300 acks beyond what was sent before the kill")
    finish_load(cl, topic, chk, prods, min_acked=600)
    print(f"partitions of broker {victim} led elsewhere {moved_s:.1f} s after SIGKILL (lease {LEASE_MS} ms)")
    assert moved_s <= LEASE_MS / 1000 + 10, f"failover took {moved_s:.1f} s"


def test_paused_broker_is_fenced_and_refuses_writes_after_resume(cluster_factory):
    cl = pool(cluster_factory)
    topic = unique_topic("pool-stop")
    create_topic(cl.bootstrap, topic, PARTITIONS)
    ids = {n.id for n in cl.brokers()}
    spread = wait_spread(cl, topic, ids)
    chk, prods = start_load(cl, topic)
    wait_until(lambda: chk.acked_count() >= 200, 60, "200 acks before the pause")
    victim = spread[0]
    old_parts = [p for p, b in spread.items() if b == victim]
    survivors = ids - {victim}
    cl.pause(victim)
    wait_all_led_by(cl.node(min(survivors)).bootstrap, topic, survivors, timeout=LEASE_MS / 1000 + 20)
    sent = chk.sent
    wait_until(lambda: chk.acked_count() >= sent + 200, 60, "200 acks while the broker is stopped")
    cl.resume(victim)
    node = cl.node(victim)
    before = metric(node, "strata_produce_not_leader_total")
    # Write straight to the resumed broker (raw protocol: no client-side
    # routing) for the partitions it led before the pause.
    batch = kproto.record_batch([kproto.Record(b"k", b"stale-write", timestamp=int(time.time() * 1000))])
    with kproto.Conn("127.0.0.1", node.kafka_port) as conn:
        for q in old_parts:
            r = conn.produce(topic, q, batch)
            assert r["error_code"] == 6, f"write to the fenced broker for partition {q}: {r}"
    assert metric(node, "strata_produce_not_leader_total") >= before + len(old_parts)
    finish_load(cl, topic, chk, prods, min_acked=400)
    # No refused write is in the log.
    c = consumer(cl.bootstrap, **{"group.id": unique_topic("g"), "enable.auto.commit": False})
    c.assign([TopicPartition(topic, q, 0) for q in range(PARTITIONS)])
    seen = 0
    deadline = time.monotonic() + 60
    while seen < chk.acked_count() and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        seen += 1
        assert m.value() != b"stale-write", f"a write to the fenced broker landed at {m.partition()}/{m.offset()}"
    c.close()
    assert seen >= chk.acked_count(), f"read {seen} of {chk.acked_count()} records"
    # The resumed broker registered again and is live.
    wait_until(lambda: metric(node, "strata_broker_lease_valid") == 1.0, 30, "the resumed broker holding a new lease")


def test_sigterm_hands_off_and_a_new_broker_gets_its_share(cluster_factory):
    cl = pool(cluster_factory, brokers=2)
    topic = unique_topic("pool-drain")
    create_topic(cl.bootstrap, topic, PARTITIONS)
    ids = {n.id for n in cl.brokers()}
    wait_until(lambda: set(leaders(cl.bootstrap, topic).values()) == ids, 30, "leadership spread over both brokers")
    chk, prods = start_load(cl, topic)
    wait_until(lambda: chk.acked_count() >= 200, 60, "200 acks before the drain")
    new_id = max(ids) + 1
    cl._add(new_id, ("broker",), cl.quorum, cl.broker_args)
    cl.start(new_id)
    leaving = min(ids)
    t0 = time.monotonic()
    cl.stop(leaving)  # SIGTERM: exit 0 after handing off
    stay = (ids - {leaving}) | {new_id}
    ls = wait_until(
        lambda: (l := leaders(cl.node(new_id).bootstrap, topic)) and set(l.values()) == stay and l,
        30,
        f"leadership over {sorted(stay)} only, the new broker included",
    )
    handoff_s = time.monotonic() - t0
    sent = chk.sent
    wait_until(lambda: chk.acked_count() >= sent + 200, 60, "200 acks after the drain")
    finish_load(cl, topic, chk, prods, min_acked=400)
    counts = {b: list(ls.values()).count(b) for b in stay}
    assert min(counts.values()) >= PARTITIONS // len(stay) - 1, f"unbalanced leadership {counts}"
    assert handoff_s < LEASE_MS / 1000 + 10, f"hand-off took {handoff_s:.1f} s"


def test_group_resumes_when_its_coordinator_dies(cluster_factory):
    cl = pool(cluster_factory)
    topic = unique_topic("pool-group")
    create_topic(cl.bootstrap, topic, PARTITIONS)
    p = idempotent_producer(bootstrap_all(cl))
    for i in range(600):
        p.produce(topic, f"v{i}".encode(), partition=i % PARTITIONS)
    assert p.flush(60) == 0
    group = unique_topic("pool-g")
    conf = {"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest", "session.timeout.ms": 6000}
    c = consumer(bootstrap_all(cl), **conf)
    c.subscribe([topic])
    got = 0
    nxt: dict[int, int] = {}
    deadline = time.monotonic() + 60
    while (got < 300 or len(nxt) < PARTITIONS) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
            nxt[m.partition()] = m.offset() + 1
    assert got >= 300 and len(nxt) == PARTITIONS, f"consumed {got} from partitions {sorted(nxt)}"
    c.commit(offsets=[TopicPartition(topic, q, o) for q, o in nxt.items()], asynchronous=False)
    committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, q) for q in range(PARTITIONS)], timeout=10)}
    assert committed == nxt, (committed, nxt)
    c.close()
    # Which broker coordinates the group?
    a = admin(bootstrap_all(cl))
    desc = a.describe_consumer_groups([group])[group].result(timeout=10)
    coord = desc.coordinator.id
    assert coord in {n.id for n in cl.brokers()}, coord
    cl.kill(coord)
    rest = [n for n in cl.brokers() if n.alive()]
    boot = ",".join(n.bootstrap for n in rest)
    # More records everywhere, so every partition has something past its
    # committed offset (its leader may be the killed broker: wait it out).
    p2 = idempotent_producer(boot)
    for i in range(60 * PARTITIONS):
        p2.produce(topic, f"w{i}".encode(), partition=i % PARTITIONS)
    assert p2.flush(60) == 0
    c2 = consumer(boot, **conf)
    c2.subscribe([topic])
    first: dict[int, int] = {}
    deadline = time.monotonic() + 90
    while len(first) < PARTITIONS and time.monotonic() < deadline:
        m = c2.poll(0.5)
        if m is not None and not m.error():
            first.setdefault(m.partition(), m.offset())
    c2.close()
    assert len(first) == PARTITIONS, f"resumed on {sorted(first)} only"
    for q, off in first.items():
        assert off == committed[q], f"partition {q} resumed at {off}, committed {committed[q]}"
    a2 = admin(boot)
    new_coord = a2.describe_consumer_groups([group])[group].result(timeout=30).coordinator.id
    assert new_coord != coord and new_coord in {n.id for n in rest}, (coord, new_coord)


def test_controller_leader_killed_then_whole_cluster_restarted(cluster_factory):
    """SIGKILL the controller leader under load on a pool, then stop every
    process and start them again: everything acknowledged is there."""
    cl = pool(cluster_factory)
    topic = unique_topic("pool-restart")
    create_topic(cl.bootstrap, topic, PARTITIONS)
    chk, prods = start_load(cl, topic)
    wait_until(lambda: chk.acked_count() >= 200, 60, "200 acks before the kill")
    leader = cl.controller_leader()
    sent = chk.sent
    cl.kill(leader)
    cl.controller_leader(timeout=30, exclude={leader})
    wait_until(lambda: chk.acked_count() >= sent + 200, 60, "200 acks after the controller leader died")
    for p in prods:
        assert p.stop() == 0
    assert not chk.failed(), chk.failed()[:5]
    cl.start(leader)
    # Stop everything (brokers first, then controllers), start everything.
    for n in cl.brokers() + cl.controllers():
        cl.stop(n.id)
    for n in cl.controllers():
        cl.start(n.id, wait=False)
    for n in cl.brokers():
        cl.start(n.id, wait=False)
    for n in cl.controllers() + cl.brokers():
        n.wait_ready()
    chk.consume_all(bootstrap_all(cl), [topic])
    chk.assert_clean(min_acked=400)


def _read_all(bootstrap: str, topic: str, n: int, **conf) -> list[bytes]:
    c = consumer(bootstrap, **{"group.id": unique_topic("zr"), "enable.auto.commit": False, **conf})
    c.assign([TopicPartition(topic, q, 0) for q in range(3)])
    out: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(out) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append(m.value())
    c.close()
    return out


def test_zone_local_reads_serve_consumers_from_their_own_rack(cluster_factory):
    """KIP-392: a consumer that sets client.rack is sent by each leader to a
    broker of its own rack, which serves committed data from object storage:
    the leaders in other racks send it no record bytes."""
    cl = cluster_factory(
        controllers=3,
        brokers=3,
        broker_args=BROKER_ARGS,
        controller_args=BROKER_ARGS,
        on_node=lambda n: n.extra_args.extend(["--rack", f"zone-{n.id}"]) if n.is_broker else None,
    )
    topic = unique_topic("zones")
    create_topic(cl.bootstrap, topic, 3)
    ids = {n.id for n in cl.brokers()}
    wait_spread(cl, topic, ids)
    p = idempotent_producer(bootstrap_all(cl))
    want = [f"z{i}".encode() * 50 for i in range(300)]
    for i, v in enumerate(want):
        p.produce(topic, v, partition=i % 3)
    assert p.flush(60) == 0
    local = max(ids)
    others = [cl.node(i) for i in ids if i != local]

    def out_bytes() -> dict[int, float]:
        return {n.id: metric(n, "strata_bytes_out_total") for n in cl.brokers()}

    before = out_bytes()
    got = _read_all(bootstrap_all(cl), topic, 300, **{"client.rack": f"zone-{local}"})
    assert sorted(got) == sorted(want), f"read {len(got)} records with client.rack"
    mid = out_bytes()
    cross_with = sum(mid[n.id] - before[n.id] for n in others)
    assert mid[local] - before[local] >= sum(len(v) for v in want) * 2 // 3, "the local broker served the other racks' partitions"
    assert cross_with == 0, f"{cross_with} record bytes crossed zones with client.rack"
    got = _read_all(bootstrap_all(cl), topic, 300)
    assert sorted(got) == sorted(want)
    after = out_bytes()
    cross_without = sum(after[n.id] - mid[n.id] for n in others)
    assert cross_without > 0
    print(f"cross-zone record bytes for 300 records: with client.rack {cross_with:.0f}, without {cross_without:.0f}")


def broker_ids(bootstrap: str) -> set[int]:
    return set(admin(bootstrap).list_topics(timeout=10).brokers)


def test_auto_ids_and_drain_command_under_load(cluster_factory):
    """Brokers started with ``--node-id auto`` get distinct ids above 1000
    (a new one at every start); ``strata drain`` hands one's partitions off
    under idempotent acks=all load, /readyz turns 503, its SIGTERM exits 0,
    and the checker finds nothing lost or duplicated."""
    cl = pool(cluster_factory, brokers=1)
    fixed = cl.brokers()[0].id
    a1 = cl.add_broker(201, auto_id=True)
    a2 = cl.add_broker(202, auto_id=True)
    ids = wait_until(lambda: (b := broker_ids(cl.bootstrap)) and len(b) == 3 and b, 30, "three brokers in Metadata")
    auto = ids - {fixed}
    assert len(auto) == 2 and all(i > 1000 for i in auto), ids
    topic = unique_topic("pool-auto")
    create_topic(cl.bootstrap, topic, PARTITIONS)
    wait_spread(cl, topic, ids)
    chk, prods = start_load(cl, topic)
    wait_until(lambda: chk.acked_count() >= 200, 60, "200 acks before the drain")
    # Which auto id is a1? The one whose HTTP metrics report it leads.
    out = cl.cli_ok("drain", "--http", f"127.0.0.1:{a1.http_port}")
    assert "drained" in out, out
    a1_id = int(out.split()[1])
    assert a1_id in auto, (out, auto)
    ls = leaders(cl.bootstrap, topic)
    assert a1_id not in ls.values(), f"drained broker {a1_id} still leads {ls}"
    code, body, _ = http_get(a1.http_url + "/readyz", timeout=5)
    assert code == 503 and "draining" in body, (code, body)
    assert metric(a1, "strata_partitions_led") == 0
    sent = chk.sent
    wait_until(lambda: chk.acked_count() >= sent + 200, 60, "200 acks after the drain")
    cl.stop(a1.id)
    # Restarted, the same process directory gets a new id.
    cl.start(a1.id)
    again = wait_until(lambda: (b := broker_ids(cl.bootstrap)) and len(b) == 3 and b, 30, "three live brokers again")
    assert a1_id not in again and len(again - ids) == 1 and min(again - ids) > 1000, (ids, again)
    sent = chk.sent
    wait_until(lambda: chk.acked_count() >= sent + 200, 60, "200 acks after the restart")
    finish_load(cl, topic, chk, prods, min_acked=600)
    # Draining the last live broker keeps everything: nothing to hand off to.
    for n in (a2, a1):
        cl.stop(n.id)
    out = cl.cli_ok("drain", "--http", f"127.0.0.1:{cl.node(fixed).http_port}")
    assert "only live broker" in out, out


def test_busy_partitions_spread_by_bytes_in(cluster_factory):
    """Balanced by count, both busy partitions sit on one broker; once their
    bytes-in rates reach the controller it splits them, keeping counts even."""
    cl = pool(cluster_factory, brokers=1)
    first = cl.brokers()[0].id
    hot, cold = unique_topic("a-hot"), unique_topic("z-cold")
    create_topic(cl.bootstrap, hot, 2)
    create_topic(cl.bootstrap, cold, 2)
    second = cl.add_broker(first + 1)
    ids = {first, second.id}

    def layout():
        return leaders(cl.bootstrap, hot), leaders(cl.bootstrap, cold)

    def per_broker() -> dict[int, int]:
        h, c = layout()
        return {b: [*h.values(), *c.values()].count(b) for b in ids}

    # Count balancing moves two partitions (both of the first topic).
    wait_until(lambda: per_broker() == {first: 2, second.id: 2}, 30, "two partitions per broker")
    h, _ = layout()
    assert len(set(h.values())) == 1, f"count balancing split the busy topic already: {h}"
    stop = threading.Event()

    def flood():
        p = producer(bootstrap_all(cl), acks="1", **{"linger.ms": 20, "batch.size": 1 << 20, "message.timeout.ms": MESSAGE_TIMEOUT_MS})
        v = b"x" * 16384
        i = 0
        while not stop.is_set():
            try:
                p.produce(hot, v, partition=i % 2)
                i += 1
            except BufferError:
                p.poll(0.01)
            p.poll(0)
        p.flush(30)

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        split = wait_until(lambda: (h := layout()[0]) and len(set(h.values())) == 2 and h, 60, "the busy partitions on two brokers")
    finally:
        stop.set()
        t.join(60)
    assert per_broker() == {first: 2, second.id: 2}, f"counts after the split {split}: {layout()}"
