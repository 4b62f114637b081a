"""Log compaction: latest value per key survives, deleted keys vanish after
delete.retention.ms, offsets strictly increase, the log gets smaller, and a
SIGKILL mid-compaction leaves a readable log that is compacted after the
restart."""

from __future__ import annotations

import random
import re
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import wait_until
from conftest import http_get

FAST = ["--upload-interval-ms", "300", "--gc-grace-ms", "0", "--tier-tick-ms", "100", "--wal-flush-ms", "50"]
CONFIG = {
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "1000",
    "min.cleanable.dirty.ratio": "0.01",
    "segment.bytes": "1048576",
}


def metric(b, name):
    _, body, _ = http_get(b.http_url + "/metrics")
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def read_all(b, topic, timeout=60):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "c-" + uuid.uuid4().hex, "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    c.assign([TopicPartition(topic, 0, 0)])
    hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ms = c.consume(5000, 0.5)
        for m in ms:
            assert m.error() is None, m.error()
            out.append((m.offset(), m.key(), m.value()))
        if out and out[-1][0] >= hi - 1:
            break
    c.close()
    return out, hi


def produce_updates(b, topic, n=100_000, keys=1000, seed=7):
    rnd = random.Random(seed)
    latest = {}
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 20, "compression.type": "zstd"})
    for i in range(n):
        k = f"key-{rnd.randrange(keys):04d}".encode()
        if rnd.random() < 0.05:
            p.produce(topic, key=k, value=None, partition=0)
            latest[k] = None
        else:
            v = f"{k.decode()}={i}".encode() + b"." * 60
            p.produce(topic, key=k, value=v, partition=0)
            latest[k] = v
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    return latest


def wait_compacted(b, topic, latest, timeout=90):
    live = {k: v for k, v in latest.items() if v is not None}
    last = {}

    def compacted():
        recs, _ = read_all(b, topic)
        got = {k: v for _, k, v in recs}
        keys_seen = [k for _, k, _ in recs]
        last["state"] = (len(recs), len(keys_seen) - len(set(keys_seen)), sum(1 for _, _, v in recs if v is None))
        if len(keys_seen) == len(set(keys_seen)) and all(v is not None for _, _, v in recs) and got == live:
            return recs
        return None

    try:
        return wait_until(compacted, timeout, "compacted", interval=1.0)
    except AssertionError:
        raise AssertionError(f"not compacted in {timeout}s: (records, duplicate keys, tombstones) = {last.get('state')}") from None


def test_compaction_keeps_latest_value_per_key(broker_factory, tmp_path):
    b = broker_factory(extra_args=["--object-store", f"file://{tmp_path / 'objects'}", *FAST])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic("compacted", num_partitions=1, config=CONFIG)]).values():
        f.result(30)
    latest = produce_updates(b, "compacted")
    recs = wait_compacted(b, "compacted", latest)
    offsets = [o for o, _, _ in recs]
    assert offsets == sorted(set(offsets)), "offsets strictly increasing"
    assert len(recs) < 1000, "the log got smaller"
    assert metric(b, "strata_compaction_runs_total") >= 1
    assert metric(b, "strata_compaction_bytes_written_total") < metric(b, "strata_compaction_bytes_read_total")
    # New writes after compaction keep their offsets after the compacted range.
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    p.produce("compacted", key=b"key-0001", value=b"after", partition=0)
    p.flush(10)
    recs2, hi = read_all(b, "compacted")
    assert recs2[-1][2] == b"after" and recs2[-1][0] == hi - 1 == 100_000


def store_objects(objects: Path) -> list[str]:
    """Keys of the WAL and segment objects in a file:// store."""
    return sorted(str(p.relative_to(objects)) for p in objects.rglob("*") if p.is_file() and p.relative_to(objects).parts[0] in ("wal", "segments"))


COMPACTED_KEY = re.compile(r"^segments/[0-9a-f]+/(\d+)/(\d+)-(\d+)(?:\.c(\d+))?\.(log|idx)$")


def orphans(objects: Path, restarted_ms: int) -> list[str]:
    """Objects that no metadata can reference once compaction and GC are
    done and nothing is produced: WAL objects (every extent was uploaded as
    a segment and released), objects written by a compaction generation from
    before the restart (the killed run never committed them), and any
    second object for one segment's base offset or a data object without its
    index (or the reverse)."""
    out = []
    seen: dict[tuple[str, str, str], list[str]] = {}
    for key in store_objects(objects):
        if key.startswith("wal/"):
            out.append(key)
            continue
        m = COMPACTED_KEY.match(key)
        if not m:
            out.append(key)
            continue
        part, base, _epoch, generation, ext = m.groups()
        if generation is not None and int(generation) < restarted_ms:
            out.append(key)
        seen.setdefault((part, base, ext), []).append(key)
    for (part, base, ext), keys in seen.items():
        if len(keys) > 1:
            out.extend(keys)
        other = "idx" if ext == "log" else "log"
        if (part, base, other) not in seen:
            out.extend(keys)
    return sorted(set(out))


def test_sigkill_mid_compaction_then_finishes(broker_factory, tmp_path):
    objects = tmp_path / "objects"
    # Compaction reads are paced (--job-io-bytes-per-sec), so a run over the
    # uploaded segments (128 KiB each) takes seconds: a window to kill it
    # in. Segments must be 2 s old before they are compacted, so the first
    # run starts once several are uploaded.
    b = broker_factory(extra_args=["--object-store", f"file://{objects}", *FAST, "--job-io-bytes-per-sec", "131072"])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    config = dict(CONFIG, **{"min.compaction.lag.ms": "2000", "segment.bytes": "131072"})
    for f in a.create_topics([NewTopic("ck", num_partitions=1, config=config)]).values():
        f.result(30)
    latest = produce_updates(b, "ck", n=60_000, keys=500, seed=11)

    # In progress: the job examined the partition and found it dirty enough
    # (strata_compaction_dirty_ratio is set just before a run starts, and
    # only for a non-empty run of segments old enough), and no run has
    # finished or failed yet.
    def in_progress():
        return (
            metric(b, "strata_compaction_dirty_ratio") >= float(CONFIG["min.cleanable.dirty.ratio"])
            and metric(b, "strata_compaction_runs_total") == 0
            and metric(b, "strata_compaction_errors_total") == 0
        )

    wait_until(in_progress, 30, "a compaction run in progress")
    b.kill()
    killed_log = b.log_text()
    assert not re.search(r"compacted topic=ck", killed_log), "the run finished before the kill"
    restarted_ms = int(time.time() * 1000)
    b.start()
    recs, _ = read_all(b, "ck")
    assert recs, "log readable after the kill"
    wait_compacted(b, "ck", latest)
    assert metric(b, "strata_compaction_runs_total") >= 1
    # Whatever the killed run wrote is garbage collected (grace 0 here);
    # the store ends up holding only what the metadata references.
    wait_until(lambda: not orphans(objects, restarted_ms), 30, f"no orphan objects (now {orphans(objects, restarted_ms)})")
    # And the log reads the same afterwards.
    wait_compacted(b, "ck", latest, timeout=30)
