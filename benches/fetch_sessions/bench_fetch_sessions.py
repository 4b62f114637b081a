"""Fetch request bytes and broker CPU of a consumer of many partitions,
with incremental fetch sessions (KIP-227) and without.

A kafka-python consumer (it opens fetch sessions by itself) is assigned
every partition of a 1,000-partition topic while a producer writes a steady
trickle of records spread over the partitions: the common case of a big
consumer where few partitions change per fetch. Measured per run: fetch
requests sent and their bytes (counted where kafka-python encodes them),
records received, and the broker's CPU seconds (/proc/<pid>/stat). The
broker runs once with sessions (the default) and once with
`--max-incremental-fetch-session-cache-slots 0`, where every fetch is full.
"""

import argparse
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, TopicPartition
from kafka.protocol import parser
from kafka.protocol.fetch import FetchRequest

COUNT = {"fetches": 0, "bytes": 0}
_orig = parser.KafkaProtocol.send_request


def _counting(self, request, correlation_id=None):
    n = len(self.bytes_to_send)
    cid = _orig(self, request, correlation_id)
    if isinstance(request, tuple(FetchRequest)):
        COUNT["fetches"] += 1
        COUNT["bytes"] += sum(len(b) for b in self.bytes_to_send[n:])
    return cid


parser.KafkaProtocol.send_request = _counting


def port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def run(binary: str, partitions: int, seconds: float, rate: int, extra: list[str]) -> dict:
    kafka, http = port(), port()
    data = tempfile.mkdtemp(prefix="strata-bench-fs.")
    log = open(os.path.join(data, "broker.log"), "wb")
    proc = subprocess.Popen(
        [binary, "serve", "--data-dir", data, "--kafka-listen", f"127.0.0.1:{kafka}", "--http-listen", f"127.0.0.1:{http}",
         "--advertised-host", "127.0.0.1", "--controller-listen", f"127.0.0.1:{port()}", *extra],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{http}/readyz", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        bootstrap = f"127.0.0.1:{kafka}"
        topic = "fs-bench"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
        time.sleep(1)
        stop = threading.Event()

        def produce():
            p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5})
            i = 0
            while not stop.is_set():
                p.produce(topic, b"v" * 100, partition=i % partitions)
                i += 1
                p.poll(0)
                time.sleep(1 / rate)
            p.flush(10)

        c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100, auto_offset_reset="earliest")
        c.assign([TopicPartition(topic, i) for i in range(partitions)])
        c.seek_to_beginning()
        c.poll(timeout_ms=2000)
        t = threading.Thread(target=produce)
        t.start()
        COUNT.update(fetches=0, bytes=0)
        cpu0, t0, got = cpu_seconds(proc.pid), time.monotonic(), 0
        while time.monotonic() - t0 < seconds:
            got += sum(len(v) for v in c.poll(timeout_ms=200).values())
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
        stop.set()
        t.join()
        c.close()
        return {"fetches": COUNT["fetches"], "bytes": COUNT["bytes"], "records": got, "cpu": cpu1 - cpu0, "secs": t1 - t0}
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rate", type=int, default=200, help="records/s produced")
    a = ap.parse_args()
    rows = [("sessions on (default)", run(a.bin, a.partitions, a.seconds, a.rate, [])),
            ("sessions off (`--max-incremental-fetch-session-cache-slots 0`)",
             run(a.bin, a.partitions, a.seconds, a.rate, ["--max-incremental-fetch-session-cache-slots", "0"]))]
    print(f"{a.partitions} partitions, {a.rate} records/s of 100 B spread over them, {a.seconds:.0f} s, one kafka-python consumer\n")
    print("| run | fetches | fetch request bytes | bytes per fetch | records received | broker CPU s | broker CPU % |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        per = r["bytes"] / max(r["fetches"], 1)
        print(f"| {name} | {r['fetches']} | {r['bytes']:,} | {per:,.0f} | {r['records']} | {r['cpu']:.2f} | {100 * r['cpu'] / r['secs']:.0f} |")


if __name__ == "__main__":
    main()
