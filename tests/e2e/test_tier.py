"""The object-storage tier against a real S3 API (moto's server) and file://.

- acks=all survives SIGKILL + deleting the broker's whole data directory
  (metadata kept in --meta-dir, as a controller's disk would be);
- a consumer reads from offset 0 after the local segments are gone, served
  from object storage, bytes identical;
- while the store is unreachable (moto frozen with SIGSTOP) acks=all
  producers get no acknowledgement; after SIGCONT everything is acked once;
- superseded WAL objects are garbage-collected.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import wait_until
from conftest import free_port, http_get

BUCKET = "strata-test"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 (real HTTP, conditional writes)."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    exe = Path(sys.executable).with_name("moto_server")
    cmd = [str(exe) if exe.exists() else "moto_server", "-H", "127.0.0.1", "-p", str(port)]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"moto_server did not start: {log.read_text()}")
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    yield {"endpoint": endpoint, "s3": s3, "proc": proc}
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(10)


S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def s3_args(moto, prefix: str) -> list[str]:
    return ["--object-store", f"s3://{BUCKET}/{prefix}", "--s3-endpoint", moto["endpoint"], "--s3-path-style", "true"]


def keys(moto, prefix: str) -> list[str]:
    out, token = [], None
    while True:
        kw = {"Bucket": BUCKET, "Prefix": prefix}
        if token:
            kw["ContinuationToken"] = token
        r = moto["s3"].list_objects_v2(**kw)
        out += [o["Key"] for o in r.get("Contents", [])]
        if not r.get("IsTruncated"):
            return out
        token = r["NextContinuationToken"]


def metric(broker, name: str) -> float:
    status, body, _ = http_get(broker.http_url + "/metrics")
    assert status == 200
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def create(broker, topic: str, partitions: int) -> None:
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic(topic, num_partitions=partitions)]).values():
        f.result(30)


def consume_all(broker, topic: str, partitions: int, expect: int, timeout: float = 60.0) -> dict[int, list]:
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "tier-" + uuid.uuid4().hex, "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: dict[int, list] = {p: [] for p in range(partitions)}
    n, deadline = 0, time.monotonic() + timeout
    while n < expect and time.monotonic() < deadline:
        for m in c.consume(1000, 0.5):
            assert m.error() is None, m.error()
            got[m.partition()].append((m.offset(), m.key(), m.value()))
            n += 1
    c.close()
    return got


def store_modes(moto_needed: bool = False):
    return pytest.mark.parametrize("mode", ["file", "s3"])


def tier_broker(broker_factory, moto, tmp_path, mode: str, extra: list[str] | None = None):
    meta = tmp_path / f"meta-{uuid.uuid4().hex[:6]}"
    args = ["--meta-dir", str(meta), "--wal-flush-ms", "50", *(extra or [])]
    env = {}
    if mode == "s3":
        args += s3_args(moto, uuid.uuid4().hex[:8])
        env = S3_ENV
    else:
        args += ["--object-store", f"file://{tmp_path / ('objects-' + uuid.uuid4().hex[:6])}"]
    return broker_factory(extra_args=args, env=env)


@pytest.mark.parametrize("mode", ["file", "s3"])
def test_acks_all_survives_sigkill_and_wiped_data_dir(broker_factory, moto, tmp_path, mode):
    b = tier_broker(broker_factory, moto, tmp_path, mode)
    topic, parts = "durable", 4
    create(b, topic, parts)
    acked: dict[bytes, tuple[int, int]] = {}
    errors: list = []
    lock = threading.Lock()

    def on_delivery(err, msg):
        with lock:
            if err is None:
                acked[msg.value()] = (msg.partition(), msg.offset())
            else:
                errors.append(err)

    p = Producer({
        "bootstrap.servers": b.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": 120000,
        "retry.backoff.ms": 200,
        "reconnect.backoff.max.ms": 500,
    })
    stop = threading.Event()
    sent = [0]

    def load():
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, key=str(i % 37).encode(), value=f"v-{i:08d}".encode() + b"x" * 200, on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            p.poll(0.001 if i % 100 == 0 else 0)
        sent[0] = i

    t = threading.Thread(target=load)
    t.start()
    wait_until(lambda: len(acked) >= 5000, 30, f"5000 records acked (errors {errors[:3]})")
    b.kill()  # mid-load
    shutil.rmtree(b.data_dir)  # every local byte of the broker is gone
    b.start()
    # The load goes on against the restarted broker until it acks more.
    at_restart = len(acked)
    wait_until(lambda: len(acked) >= at_restart + 1000, 60, "records acked after the restart")
    stop.set()
    t.join()
    assert p.flush(120) == 0, "producer could not deliver everything after the restart"
    assert not errors, errors[:5]
    total = len(acked)
    assert total == sent[0], (total, sent[0])
    got = consume_all(b, topic, parts, total)
    seen = {}
    for part, recs in got.items():
        offsets = [o for o, _, _ in recs]
        assert offsets == list(range(len(offsets))), f"partition {part} offsets not continuous"
        for o, k, v in recs:
            assert v not in seen, f"duplicate record {v[:12]!r}"
            seen[v] = (part, o)
    missing = [v for v in acked if v not in seen]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:3]}"
    for v, where in acked.items():
        assert seen[v] == where, f"{v[:12]!r} acked at {where} but found at {seen[v]}"


@pytest.mark.parametrize("mode", ["file", "s3"])
def test_cold_read_from_object_storage_is_byte_identical(broker_factory, moto, tmp_path, mode):
    b = tier_broker(broker_factory, moto, tmp_path, mode, ["--upload-interval-ms", "500", "--segment-bytes", "65536"])
    topic = "cold"
    create(b, topic, 2)
    # Batches well under a segment, so each partition rolls many segments
    # whatever the client's batching (how fast acks come back shapes it).
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5, "compression.type": "lz4", "batch.size": 32768})
    sent = {}
    for i in range(4000):
        v = os.urandom(300) + str(i).encode()
        p.produce(topic, key=str(i).encode(), value=v, partition=i % 2, headers=[("i", str(i).encode())])
        sent[str(i).encode()] = v
    assert p.flush(60) == 0
    wait_until(lambda: metric(b, "strata_segments_uploaded_total") >= 4, 30, "segments uploaded")

    # The active segments roll and upload too once idle past the interval:
    # everything is uploaded once the uploaded bytes reach the local logs'.
    def local_bytes():
        return sum(f.stat().st_size for f in (b.data_dir / "logs").rglob("*.log"))

    wait_until(lambda: metric(b, "strata_segment_upload_bytes_total") >= local_bytes() > 0, 30, "every local segment uploaded")
    b.stop()
    shutil.rmtree(b.data_dir)
    b.start()
    got = consume_all(b, topic, 2, 4000)
    n = 0
    for part, recs in got.items():
        assert [o for o, _, _ in recs] == list(range(len(recs)))
        for _, k, v in recs:
            assert sent[k] == v
            n += 1
    assert n == 4000
    assert metric(b, "strata_object_store_requests_total") > 0
    assert metric(b, "strata_cache_misses_total") > 0, "reads must have come from object storage"


def test_store_outage_never_acks_then_recovers(broker_factory, moto, tmp_path):
    b = tier_broker(broker_factory, moto, tmp_path, "s3", ["--object-store-timeout-ms", "1000"])
    topic = "outage"
    create(b, topic, 1)
    acked, errs = [], []
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "enable.idempotence": True, "message.timeout.ms": 120000, "linger.ms": 1})

    def cb(err, msg):
        (errs if err else acked).append(msg.value())

    for i in range(100):
        p.produce(topic, value=f"before-{i}".encode(), on_delivery=cb)
    assert p.flush(30) == 0 and len(acked) == 100
    os.kill(moto["proc"].pid, signal.SIGSTOP)
    try:
        for i in range(100):
            p.produce(topic, value=f"during-{i}".encode(), on_delivery=cb)
        p.flush(4)
        assert len(acked) == 100, "nothing may be acknowledged while the store is down"
        assert metric(b, "strata_wal_upload_retries_total") > 0
        # The broker says so: not ready, and the gauge is up.
        wait_until(lambda: http_get(b.http_url + "/readyz", timeout=5)[0] == 503, 20, "/readyz 503 while WAL uploads fail")
        code, body, _ = http_get(b.http_url + "/readyz", timeout=5)
        assert "object store" in body, body
        assert metric(b, "strata_wal_upload_failing") == 1
    finally:
        os.kill(moto["proc"].pid, signal.SIGCONT)
    assert p.flush(90) == 0
    wait_until(lambda: http_get(b.http_url + "/readyz", timeout=5)[0] == 200, 30, "/readyz 200 once uploads succeed")
    assert metric(b, "strata_wal_upload_failing") == 0
    assert len(acked) == 200 and not errs, (len(acked), errs[:3])
    got = consume_all(b, topic, 1, 200)
    values = [v for _, _, v in got[0]]
    assert sorted(values) == sorted(acked) and len(set(values)) == 200


def test_superseded_wal_objects_are_garbage_collected(broker_factory, moto, tmp_path):
    b = tier_broker(broker_factory, moto, tmp_path, "s3", ["--upload-interval-ms", "300", "--gc-grace-ms", "0", "--tier-tick-ms", "100"])
    prefix = b.extra_args[b.extra_args.index("--object-store") + 1].split("/", 3)[3]
    topic = "gc"
    create(b, topic, 3)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 2})
    for i in range(3000):
        p.produce(topic, value=f"{i}".encode(), partition=i % 3)
    assert p.flush(30) == 0
    assert keys(moto, f"{prefix}/wal/"), "WAL objects were written"
    wait_until(lambda: keys(moto, f"{prefix}/wal/") == [], 30, "superseded WAL objects deleted", interval=0.3)
    segs = keys(moto, f"{prefix}/segments/")
    assert any(k.endswith(".log") for k in segs) and any(k.endswith(".idx") for k in segs)
    got = consume_all(b, topic, 3, 3000)
    assert sum(len(v) for v in got.values()) == 3000


def test_local_disk_is_trimmed_to_the_cache_limit(broker_factory, moto, tmp_path):
    b = tier_broker(broker_factory, moto, tmp_path, "file", ["--upload-interval-ms", "300", "--segment-bytes", "65536", "--local-retention-bytes", "0", "--tier-tick-ms", "100"])
    topic = "trimmed"
    create(b, topic, 1)
    # Small batches: many 64 KiB segments.
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 1, "batch.num.messages": 20})
    sent = []
    for i in range(3000):
        v = os.urandom(400) + str(i).encode()
        p.produce(topic, value=v, partition=0)
        sent.append(v)
    assert p.flush(60) == 0
    logs = lambda: [f for f in (b.data_dir / "logs").rglob("*.log")]  # noqa: E731
    wait_until(lambda: metric(b, "strata_segments_uploaded_total") >= 10, 30, "many segments uploaded", interval=0.2)
    wait_until(lambda: len(logs()) <= 2, 30, f"local segments trimmed (now {len(logs())})", interval=0.2)
    got = consume_all(b, topic, 1, 3000)
    assert [v for _, _, v in got[0]] == sent
    assert metric(b, "strata_cache_misses_total") > 0
