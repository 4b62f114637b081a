"""Local mode (`--wal-mode`): the embedded default commits the fsynced hot
segments in place instead of copying every byte into WAL objects.

- each byte is written once: no WAL objects, segment files hard-linked into
  the `file://` store, object-store upload bytes a tiny fraction of the data;
- pulling the plug (SIGKILL) right after acks=all answers loses nothing;
- reads from the store (local copies dropped) return the same bytes;
- `--wal-mode local` refuses a store it cannot link into, naming the flag;
- `--wal-mode object` keeps WAL objects on a `file://` store;
- requests waiting for durability do not hold back a pipelining producer.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from checker import Checker, ProduceLoop
from cluster import wait_until
from conftest import http_get
from kclients import Rec, consume_range, create_topic, first_mismatch, produce, producer, unique_topic


def metrics(broker) -> dict[str, float]:
    _, body, _ = http_get(broker.http_url + "/metrics")
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def store_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_each_byte_is_written_once_and_a_sigkill_right_after_acks_loses_nothing(broker_factory):
    b = broker_factory(extra_args=["--segment-bytes", "262144", "--upload-interval-ms", "1000", "--tier-tick-ms", "200"])
    assert 'mode="local"' in b.log_text(), b.log_tail()
    topic = unique_topic("local")
    create_topic(b.bootstrap, topic, 4)
    c = Checker()
    # Idempotent: its retries after the restart must not write twice what
    # the killed broker had stored but not yet acknowledged.
    loop = ProduceLoop(c, producer(b.bootstrap, acks="all", **{"linger.ms": 1, "enable.idempotence": True}), topic, interval=0.0005, pad=200)
    loop.start()
    # Enough to roll and upload segments, then the plug is pulled while
    # acks=all requests are in flight.
    wait_until(lambda: c.acked_count() >= 6000, 60, "6000 acks=all records")
    wait_until(lambda: metrics(b).get("strata_segments_uploaded_total", 0) >= 2, 60, "sealed segments made objects")
    m = metrics(b)
    b.kill()
    acked_at_kill = c.acked_count()
    # The broker is gone: what is still in flight stays unacknowledged.
    loop.stop(flush_timeout=0.5)

    # One write per byte: no WAL object was written; what went "up" to the
    # store is the ownership marker and the segments' offset indexes.
    objects = Path(b.data_dir) / "objects"
    files = store_files(objects)
    assert not [p for p in files if p.suffix == ".wal"], "local mode wrote WAL objects"
    produced = acked_at_kill * 200
    assert m["strata_object_store_bytes_total{direction=\"up\"}"] < produced / 20, m
    assert m["strata_object_store_links_total"] >= 4, m
    # Every data object of the store is a local segment file (same inode).
    local_inodes = {p.stat().st_ino for p in (Path(b.data_dir) / "logs").rglob("*.log")}
    data_objects = [p for p in files if p.suffix in (".seg", ".log")]
    assert data_objects, files
    linked = [p for p in data_objects if p.stat().st_ino in local_inodes]
    assert linked, "no store object shares its inode with a local segment"

    b.start()
    n = c.consume_all(b.bootstrap, [topic])
    assert n >= acked_at_kill
    report = c.assert_clean(min_acked=6000)
    assert report["lost"] == 0


def test_reads_from_the_store_return_the_same_bytes_when_local_copies_are_gone(broker_factory):
    b = broker_factory(
        extra_args=[
            "--segment-bytes",
            "65536",
            "--upload-interval-ms",
            "500",
            "--tier-tick-ms",
            "100",
            "--local-retention-bytes",
            "0",
        ]
    )
    topic = unique_topic("cold")
    create_topic(b.bootstrap, topic, 1)
    recs = [Rec(b"k%d" % i, b"v%d-" % i + bytes([i % 251]) * 300) for i in range(3000)]
    # Small batches: many 64 KiB segments.
    placed = produce(producer(b.bootstrap, acks="all", **{"batch.size": 16384}), topic, recs)
    # Sealed segments become objects and their local copies are dropped.
    logs = Path(b.data_dir) / "logs"
    wait_until(lambda: metrics(b).get("strata_segments_uploaded_total", 0) >= 5, 30, "segments made objects")
    wait_until(lambda: len(list(logs.rglob("*.log"))) <= 3, 30, "local copies of uploaded segments dropped")
    got = consume_range(b.bootstrap, topic, {0: len(recs)})
    want = [(off, r.key, r.value) for r, (_, off) in zip(recs, placed)]
    have = [(m.offset, m.key, m.value) for m in got[0]]
    assert first_mismatch(want, have, "cold read") is None
    assert metrics(b)["strata_object_store_bytes_total{direction=\"down\"}"] > 0, "nothing was read from the store"
    # And across a restart (the tail rebuilt from the linked objects).
    b.restart()
    got = consume_range(b.bootstrap, topic, {0: len(recs)})
    have = [(m.offset, m.key, m.value) for m in got[0]]
    assert first_mismatch(want, have, "read after restart") is None


def test_wal_mode_local_refuses_a_store_it_cannot_link_into(broker_factory):
    b = broker_factory(extra_args=["--wal-mode", "local", "--object-store", "memory://"], start=False)
    b.start(wait=False)
    rc = b.proc.wait(timeout=60)
    assert rc != 0
    assert "--wal-mode local needs a file:// object store" in b.log_text(), b.log_tail()


def test_wal_mode_object_keeps_wal_objects_on_a_file_store(broker_factory, tmp_path):
    b = broker_factory(extra_args=["--wal-mode", "object"])
    assert 'mode="object"' in b.log_text()
    topic = unique_topic("obj")
    create_topic(b.bootstrap, topic, 2)
    recs = [Rec(None, b"v%d" % i + b"x" * 500) for i in range(2000)]
    produce(producer(b.bootstrap, acks="all"), topic, recs)
    objects = Path(b.data_dir) / "objects"
    assert [p for p in store_files(objects) if p.suffix == ".wal"], "no WAL objects in object mode"
    assert metrics(b)["strata_object_store_bytes_total{direction=\"up\"}"] >= 2000 * 500


def test_durability_waits_do_not_hold_back_a_pipelining_producer(broker_factory):
    # Object mode with a slow flush: every acks=all request waits for the
    # next WAL commit. A producer sending one record per request (linger 0)
    # must get all of them into one or two commits, not be read 128
    # requests per commit.
    b = broker_factory(extra_args=["--wal-mode", "object", "--wal-flush-ms", "1500", "--wal-flush-idle-ms", "0"])
    topic = unique_topic("pipe")
    create_topic(b.bootstrap, topic, 4)
    before = metrics(b)["strata_wal_flushes_total"]
    p = producer(b.bootstrap, acks="all", **{"linger.ms": 0, "batch.num.messages": 1, "max.in.flight.requests.per.connection": 1000})
    recs = [Rec(None, b"r%d" % i, partition=i % 4) for i in range(1200)]
    placed = produce(p, topic, recs)
    assert len(placed) == 1200
    flushes = metrics(b)["strata_wal_flushes_total"] - before
    assert flushes <= 3, f"{flushes} WAL commits for 1200 pipelined requests"
    _, body, _ = http_get(b.http_url + "/metrics")
    assert "strata_request_queued_bytes" in body


def test_gc_sweeps_staging_files_a_crash_left_in_the_store(broker_factory):
    """A copy into a `file://` store that a crash interrupted leaves its
    staging file (`<object>#<digits>`), which no listing shows: GC removes
    it once it is surely abandoned, and leaves a recent one (a copy that may
    still be running) and every object alone."""
    b = broker_factory(extra_args=["--tier-tick-ms", "50", "--gc-grace-ms", "0"])
    topic = unique_topic("staging")
    create_topic(b.bootstrap, topic, 1)
    produce(producer(b.bootstrap, acks="all"), topic, [Rec(b"k", b"v")])
    root = Path(b.data_dir) / "objects"
    wait_until(lambda: len(store_files(root)) > 0, 30, "an object in the store")
    objects = store_files(root)
    d = root / "segments"
    d.mkdir(parents=True, exist_ok=True)
    stale = d / "t-0-00000000000000000000.log#123456789"
    stale.write_bytes(b"half a segment")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    recent = d / "t-0-00000000000000000064.log#42"
    recent.write_bytes(b"a copy still running")
    wait_until(lambda: not stale.exists(), 30, "the abandoned staging file removed")
    assert recent.exists()
    assert all(p.exists() for p in objects)
