"""Consumer-group benchmarks against a running Strata (or any Kafka) broker.

1. OffsetCommit: N connections each commit 8 partitions' offsets in a closed
   loop (simple-consumer commits, generation -1) for a fixed time; reports
   requests/s, offsets/s and latency percentiles. Raw protocol (the e2e
   suite's kproto codec) so the client adds as little as possible.
2. Rebalance: 10 librdkafka consumers on a 100-partition topic; times the
   first join (includes group.initial.rebalance.delay.ms), a member leaving
   and a member joining, until every partition is assigned exactly once.

Usage: bench_groups.py BOOTSTRAP [--duration S] [--connections 1,8,32]
Prints a Markdown section on stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "e2e"))

import kproto  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

OFFSET_COMMIT = 8
A = kproto.A
kproto.SCHEMAS.setdefault(
    OFFSET_COMMIT,
    (
        [
            ("group_id", "string", 0, None),
            ("generation_id", "int32", 1, None),
            ("member_id", "string", 1, None),
            ("retention_time_ms", "int64", 2, 4),
            ("group_instance_id", "nstring", 7, None),
            ("topics", A([("name", "string", 0, None), ("partitions", A([("partition_index", "int32", 0, None), ("committed_offset", "int64", 0, None), ("committed_leader_epoch", "int32", 6, None), ("committed_metadata", "nstring", 0, None)]), 0, None)]), 0, None),
        ],
        [
            ("throttle_time_ms", "int32", 3, None),
            ("topics", A([("name", "string", 0, None), ("partitions", A([("partition_index", "int32", 0, None), ("error_code", "int16", 0, None)]), 0, None)]), 0, None),
        ],
        (2, 7),
    ),
)


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
    deadline = time.monotonic() + 10
    while True:
        t = a.list_topics(topic=name, timeout=10).topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"topic {name} not ready")
        time.sleep(0.05)


def pct(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def bench_commits(host: str, port: int, topic: str, connections: int, duration: float) -> dict:
    lat: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    start = threading.Barrier(connections + 1)
    stop_at = [0.0]

    def worker(i: int) -> None:
        c = kproto.Conn(host, port, timeout=30)
        group = f"bench-{uuid.uuid4().hex[:8]}-{i}"
        off = 0
        start.wait()
        while time.perf_counter() < stop_at[0]:
            off += 1
            values = {
                "group_id": group,
                "generation_id": -1,
                "member_id": "",
                "group_instance_id": None,
                "topics": [{"name": topic, "partitions": [{"partition_index": p, "committed_offset": off, "committed_leader_epoch": -1, "committed_metadata": ""} for p in range(8)]}],
            }
            t0 = time.perf_counter()
            r = c.request(OFFSET_COMMIT, 7, values)
            lat[i].append(time.perf_counter() - t0)
            if any(p["error_code"] for t in r["topics"] for p in t["partitions"]):
                errors[i] += 1
        c.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + duration
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    all_lat = sorted(x for l in lat for x in l)
    n = len(all_lat)
    return {
        "connections": connections,
        "requests": n,
        "rps": n / took,
        "offsets_per_s": 8 * n / took,
        "p50_ms": pct(all_lat, 0.50) * 1000,
        "p99_ms": pct(all_lat, 0.99) * 1000,
        "max_ms": (all_lat[-1] * 1000) if all_lat else float("nan"),
        "errors": sum(errors),
    }


class Member:
    def __init__(self, bootstrap: str, group: str, topic: str, strategy: str):
        conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
        }
        if strategy.startswith("consumer/"):
            # KIP-848: the broker assigns (group.remote.assignor) and sets
            # the session and heartbeat interval (scripts/bench-groups
            # starts it with 10000 / 1000 ms, as the classic members here).
            conf.update({"group.protocol": "consumer", "group.remote.assignor": strategy.split("/", 1)[1]})
        else:
            conf.update({"partition.assignment.strategy": strategy, "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000})
        self.c = Consumer(conf)
        self.parts: set[int] = set()
        self.lock = threading.Lock()
        self.running = True
        self.c.subscribe([topic])
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self) -> None:
        while self.running:
            self.c.poll(0.02)
            with self.lock:
                self.parts = {p.partition for p in self.c.assignment()}

    def close(self) -> None:
        self.running = False
        self.t.join()
        self.c.close()

    def assignment(self) -> set[int]:
        with self.lock:
            return set(self.parts)


def settled(members: list[Member], partitions: int) -> bool:
    sets = [m.assignment() for m in members]
    flat = [p for s in sets for p in s]
    return len(flat) == partitions and set(flat) == set(range(partitions)) and all(sets)


def wait_settled(members: list[Member], partitions: int, timeout: float = 120) -> float:
    t0 = time.monotonic()
    while not settled(members, partitions):
        if time.monotonic() - t0 > timeout:
            raise SystemExit("rebalance did not settle")
        time.sleep(0.01)
    return time.monotonic() - t0


def bench_rebalance(bootstrap: str, topic: str, partitions: int, strategy: str, rounds: int, n: int = 10) -> dict:
    """Seconds until every partition is assigned exactly once: after `n`
    members subscribe, after one leaves and after one joins."""
    group = f"rb-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    members = [Member(bootstrap, group, topic, strategy) for _ in range(n)]
    wait_settled(members, partitions)
    first = time.monotonic() - t0
    leaves, joins = [], []
    for _ in range(rounds):
        m = members.pop()
        t = time.monotonic()
        m.close()
        wait_settled(members, partitions)
        leaves.append(time.monotonic() - t)
        t = time.monotonic()
        members.append(Member(bootstrap, group, topic, strategy))
        wait_settled(members, partitions)
        joins.append(time.monotonic() - t)
    for m in members:
        m.close()
    return {"strategy": strategy, "members": n, "first": first, "leave": statistics.median(leaves), "join": statistics.median(joins), "leaves": leaves, "joins": joins}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--connections", default="1,8,32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--members", default="10,100", help="group sizes of the rebalance benchmark")
    ap.add_argument(
        "--assignors",
        default="range,cooperative-sticky,consumer/uniform,consumer/range",
        help="classic strategies, and consumer/<assignor> for KIP-848 (group.protocol=consumer)",
    )
    ap.add_argument("--no-commits", action="store_true", help="skip the OffsetCommit benchmark")
    args = ap.parse_args()
    host, port = args.bootstrap.rsplit(":", 1)
    commits = []
    if not args.no_commits:
        topic = f"bench-commit-{uuid.uuid4().hex[:6]}"
        create_topic(args.bootstrap, topic, 8)
        commits = [bench_commits(host, int(port), topic, int(c), args.duration) for c in args.connections.split(",")]
    rtopic = f"bench-rebalance-{uuid.uuid4().hex[:6]}"
    create_topic(args.bootstrap, rtopic, 100)
    rebalances = [
        bench_rebalance(args.bootstrap, rtopic, 100, s, args.rounds, int(n))
        for n in args.members.split(",")
        for s in args.assignors.split(",")
    ]
    if commits:
        print("| connections | OffsetCommit req/s | offsets/s | p50 ms | p99 ms | max ms | errors |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for r in commits:
            print(f"| {r['connections']} | {r['rps']:.0f} | {r['offsets_per_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['errors']} |")
        print()
    print("| members | protocol | assignor | first join (s) | member leaves, median (s) | member joins, median (s) |")
    print("|---:|---|---|---:|---:|---:|")
    for r in rebalances:
        proto, assignor = r["strategy"].split("/", 1) if "/" in r["strategy"] else ("classic", r["strategy"])
        print(f"| {r['members']} | {proto} | {assignor} | {r['first']:.2f} | {r['leave']:.2f} | {r['join']:.2f} |")
    print()
    print(f"raw: {rebalances}", file=sys.stderr)


if __name__ == "__main__":
    main()
