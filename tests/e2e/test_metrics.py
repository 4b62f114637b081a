"""/metrics against its catalogue (docs/metrics.md), parsed with
prometheus_client's text-format parser, and its values against the traffic
that made them."""

import os
import re
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from conftest import http_get
from kclients import Rec, admin, consumer, create_topic, expect_admin_error, produce, producer, unique_topic

CATALOGUE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `([a-z_]+)` \| (counter|gauge|histogram) \| ([a-z_, —]+) \|")


def catalogue() -> dict[str, tuple[str, set[str]]]:
    """name -> (type, labels) from the tables of docs/metrics.md."""
    out = {}
    for line in CATALOGUE.read_text().splitlines():
        m = ROW.match(line)
        if m:
            name, kind, labels = m.groups()
            assert name not in out, f"{name} documented twice"
            out[name] = (kind, set() if labels.strip() == "—" else {x.strip() for x in labels.split(",")})
    assert len(out) > 40, f"catalogue parse found only {len(out)} rows"
    return out


def scrape(broker) -> dict[str, object]:
    status, text, _ = http_get(broker.http_url + "/metrics")
    assert status == 200, f"GET /metrics: HTTP {status}: {text[:300]}"
    return {f.name: f for f in text_string_to_metric_families(text)}


def family_name(name: str, kind: str) -> str:
    # The parser names a counter's family without its _total suffix.
    return name[: -len("_total")] if kind == "counter" and name.endswith("_total") else name


def value(families, name: str, **labels) -> float:
    kind = "counter" if name.endswith("_total") else "gauge"
    f = families[family_name(name, kind)]
    for s in f.samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {name}{labels} among {[(s.name, s.labels) for s in f.samples][:20]}")


def test_metrics_match_the_catalogue_and_the_traffic(broker):
    topic = unique_topic("metrics")
    create_topic(broker.bootstrap, topic, 3)
    payload = [Rec(f"k{i}".encode(), bytes([i % 251]) * 1000) for i in range(300)]
    produce(producer(broker.bootstrap, **{"acks": "all"}), topic, payload)

    # A live consumer group with a commit, so the group families have rows.
    c = consumer(broker.bootstrap, **{"group.id": "metrics-g", "auto.offset.reset": "earliest", "enable.auto.offset.store": True})
    c.subscribe([topic])
    got, deadline = 0, time.monotonic() + 60
    while got < len(payload) and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got += 1
    assert got == len(payload), f"consumed {got} of {len(payload)}"
    c.commit(asynchronous=False)

    # One request answered with an error: creating the topic again.
    from confluent_kafka.admin import NewTopic
    a = admin(broker.bootstrap)
    expect_admin_error(a.create_topics([NewTopic(topic, 3, 1)])[topic], 36, "CreateTopics of an existing topic")

    try:
        fams = scrape(broker)
        docs = catalogue()

        # Every exposed family is documented with its type and labels, and
        # every documented metric is exposed.
        exposed = {}
        for fam in fams.values():
            labels = set()
            for s in fam.samples:
                labels |= {k for k in s.labels if k != "le"}
            exposed[fam.name] = (fam.type, labels)
        by_family = {family_name(n, k): (n, k, l) for n, (k, l) in docs.items()}
        undocumented = sorted(set(exposed) - set(by_family))
        assert not undocumented, f"exposed but not in docs/metrics.md: {undocumented}"
        missing = sorted(n for f, (n, _, _) in by_family.items() if f not in exposed)
        assert not missing, f"documented but not exposed: {missing}"
        for fam, (name, kind, labels) in by_family.items():
            ekind, elabels = exposed[fam]
            assert ekind == kind, f"{name}: documented {kind}, exposed {ekind}"
            # A family without samples yet (e.g. throttles when no client
            # was throttled) shows no labels to compare.
            if fams[fam].samples:
                assert elabels == labels, f"{name}: exposed labels {elabels}, documented {labels}"

        # Values agree with the traffic.
        sent = sum(len(r.key) + len(r.value) for r in payload)
        bytes_in = value(fams, "strata_topic_bytes_in_total", topic=topic)
        assert sent < bytes_in < sent * 2, f"topic bytes in {bytes_in} for {sent} payload bytes"
        assert value(fams, "strata_topic_records_in_total", topic=topic) == len(payload)
        assert value(fams, "strata_topic_bytes_out_total", topic=topic) >= bytes_in
        assert value(fams, "strata_bytes_in_total") >= bytes_in
        assert value(fams, "kafka_topic_partitions", topic=topic) == 3
        ends = sum(value(fams, "kafka_topic_partition_current_offset", topic=topic, partition=str(p)) for p in range(3))
        assert ends == len(payload), f"partition end offsets sum to {ends}"
        # The leader is the broker id the cluster metadata names (the single
        # broker, node 1), for every partition.
        md = a.list_topics(topic, timeout=10)
        assert [b.id for b in md.brokers.values()] == [1]
        for p, pm in md.topics[topic].partitions.items():
            assert pm.leader == 1, f"metadata leader of partition {p}: {pm.leader}"
            assert value(fams, "kafka_topic_partition_leader", topic=topic, partition=str(p)) == pm.leader
        lag = sum(value(fams, "kafka_consumergroup_lag", consumergroup="metrics-g", topic=topic, partition=str(p)) for p in range(3))
        assert lag == 0, f"lag after consuming and committing everything: {lag}"
        assert value(fams, "kafka_consumergroup_members", consumergroup="metrics-g") == 1
        assert value(fams, "kafka_brokers") == 1

        assert value(fams, "strata_request_errors_total", api="CreateTopics") >= 1
        assert value(fams, "strata_request_errors_total", api="Produce") == 0
        produce_count = value(fams, "strata_requests_total", api="Produce")
        assert produce_count >= 1
        hist = fams["strata_request_duration_seconds"]
        inf = [s.value for s in hist.samples if s.name.endswith("_bucket") and s.labels == {"api": "Produce", "le": "+Inf"}]
        count = [s.value for s in hist.samples if s.name.endswith("_count") and s.labels == {"api": "Produce"}]
        assert inf == count == [produce_count], (inf, count, produce_count)
        buckets = [s.value for s in hist.samples if s.name.endswith("_bucket") and s.labels["api"] == "Produce"]
        assert buckets == sorted(buckets), f"histogram buckets not cumulative: {buckets}"

        flushes = value(fams, "strata_wal_flushes_total")
        assert flushes >= 1
        wal_count = [s.value for s in fams["strata_wal_flush_duration_seconds"].samples if s.name.endswith("_count")]
        assert wal_count == [flushes], (wal_count, flushes)
        # The embedded default is local mode: flushes commit linked segment
        # files, not WAL objects (one PUT: the cluster ownership marker).
        assert value(fams, "strata_object_store_links_total") >= 1
        assert value(fams, "strata_object_store_requests_total", operation="put", status="ok") >= 1
        # One write per byte: what goes up is the marker and segment indexes.
        assert value(fams, "strata_object_store_bytes_total", direction="up") < bytes_in
        assert value(fams, "strata_connections") >= 1
        assert value(fams, "strata_process_resident_memory_bytes") > 1 << 20
        # The broker's own CPU time, as /proc tells it to anyone.
        fields = Path(f"/proc/{broker.pid}/stat").read_text().rsplit(")", 1)[1].split()
        proc_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        cpu = value(fams, "strata_process_cpu_seconds_total")
        assert 0 <= cpu <= proc_cpu + 0.05 and cpu >= proc_cpu - 0.5, (cpu, proc_cpu)
        assert value(fams, "strata_process_open_fds") > 3
        ratio = value(fams, "strata_cache_hit_ratio")
        assert 0 <= ratio <= 1
    finally:
        c.close()
