"""Kafka 4 protocol completeness: what compacted topics refuse, replica
assignments on CreateTopics, the topic configs Kafka 3.x clients still send,
and the admin APIs tools call (DescribeTopicPartitions, DescribeProducers,
DescribeLogDirs, ElectLeaders, partition reassignments)."""

from __future__ import annotations

from confluent_kafka import KafkaError

import kproto
from cluster import wait_until
from kclients import admin, create_topic, producer, unique_topic

INVALID_RECORD = 87


def _deliver(p, topic: str, records: list[tuple[bytes | None, bytes]]) -> list:
    """Produce and flush; returns per record the KafkaError or None."""
    out: list = [None] * len(records)
    done = [False] * len(records)

    def cb(i):
        def f(err, _msg):
            out[i] = err
            done[i] = True

        return f

    for i, (k, v) in enumerate(records):
        p.produce(topic, key=k, value=v, partition=0, on_delivery=cb(i))
    assert p.flush(60) == 0
    assert all(done)
    return out


def test_compacted_topic_refuses_records_without_key(broker):
    compacted = unique_topic("compact")
    both = unique_topic("compact-delete")
    plain = unique_topic("delete")
    create_topic(broker.bootstrap, compacted, 1, config={"cleanup.policy": "compact"})
    create_topic(broker.bootstrap, both, 1, config={"cleanup.policy": "compact,delete"})
    create_topic(broker.bootstrap, plain, 1)

    p = producer(broker.bootstrap, retries=0)
    errs = _deliver(p, compacted, [(None, b"no key")])
    assert errs[0] is not None and errs[0].code() == KafkaError.INVALID_RECORD, errs
    errs = _deliver(p, both, [(None, b"no key")])
    assert errs[0] is not None and errs[0].code() == KafkaError.INVALID_RECORD, errs
    # Keyed records (and tombstones) to the same topic, keyless to a delete topic: fine.
    assert _deliver(p, compacted, [(b"k1", b"v1"), (b"k2", None)]) == [None, None]
    assert _deliver(p, plain, [(None, b"no key")]) == [None]


def test_compacted_topic_record_errors_per_record(broker):
    """KIP-467: the partition fails with INVALID_RECORD, record_errors name
    the keyless records, other partitions of the same request are written."""
    compacted = unique_topic("compact")
    plain = unique_topic("delete")
    create_topic(broker.bootstrap, compacted, 1, config={"cleanup.policy": "compact"})
    create_topic(broker.bootstrap, plain, 1)
    host, port = broker.bootstrap.split(":")
    with kproto.Conn(host, int(port)) as c:
        bad = kproto.record_batch([kproto.Record(b"k", b"a"), kproto.Record(None, b"b"), kproto.Record(b"k", b"c"), kproto.Record(None, b"d")])
        good = kproto.record_batch([kproto.Record(None, b"x")])
        resp = c.request(
            kproto.PRODUCE,
            9,
            {
                "transactional_id": None,
                "acks": -1,
                "timeout_ms": 10_000,
                "topic_data": [
                    {"name": compacted, "partition_data": [{"index": 0, "records": bad}]},
                    {"name": plain, "partition_data": [{"index": 0, "records": good}]},
                ],
            },
        )
    by_name = {t["name"]: t["partition_responses"][0] for t in resp["responses"]}
    r = by_name[compacted]
    assert r["error_code"] == INVALID_RECORD, r
    assert [e["batch_index"] for e in r["record_errors"]] == [1, 3], r
    assert all("without key" in e["batch_index_error_message"] for e in r["record_errors"]), r
    assert r["error_message"], r
    ok = by_name[plain]
    assert ok["error_code"] == 0 and ok["base_offset"] == 0, ok


def test_compacted_topic_kafka_python(broker):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError as KPError

    compacted = unique_topic("compact")
    create_topic(broker.bootstrap, compacted, 1, config={"cleanup.policy": "compact"})
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0, acks="all")
    try:
        fut = p.send(compacted, value=b"no key", partition=0)
        try:
            fut.get(timeout=30)
            raise AssertionError("keyless record accepted by a compacted topic")
        except KPError as e:
            assert getattr(e, "errno", None) == INVALID_RECORD or "InvalidRecord" in type(e).__name__, repr(e)
        assert p.send(compacted, key=b"k", value=b"v", partition=0).get(timeout=30).offset >= 0
    finally:
        p.close(timeout=5)


INVALID_REPLICA_ASSIGNMENT = 39


def test_create_topic_with_replica_assignment(broker):
    from confluent_kafka.admin import NewTopic

    from kclients import expect_admin_error, wait_topic

    a = admin(broker.bootstrap)
    topic = unique_topic("assigned")
    fs = a.create_topics([NewTopic(topic, num_partitions=2, replica_assignment=[[1], [1]])], operation_timeout=10, request_timeout=15)
    fs[topic].result(timeout=30)
    wait_topic(broker.bootstrap, topic, 2)
    md = a.list_topics(topic=topic, timeout=10).topics[topic]
    assert {p.id: p.leader for p in md.partitions.values()} == {0: 1, 1: 1}

    # The topic takes records like any other.
    p = producer(broker.bootstrap)
    assert _deliver(p, topic, [(b"k", b"v")]) == [None]

    # A broker the cluster does not know: refused, nothing created.
    other = unique_topic("assigned-unknown")
    fs = a.create_topics([NewTopic(other, num_partitions=2, replica_assignment=[[1], [42]])], operation_timeout=10, request_timeout=15)
    expect_admin_error(fs[other], INVALID_REPLICA_ASSIGNMENT, "assignment naming unknown broker 42")
    assert other not in a.list_topics(timeout=10).topics

    # validate_only with an assignment checks it and creates nothing.
    third = unique_topic("assigned-validate")
    fs = a.create_topics([NewTopic(third, num_partitions=1, replica_assignment=[[1]])], validate_only=True, operation_timeout=10, request_timeout=15)
    fs[third].result(timeout=30)
    assert third not in a.list_topics(timeout=10).topics


# Kafka 3.x topic configs this broker accepts and ignores.
IGNORED_CONFIGS = {
    "message.format.version": "2.8-IV1",
    "message.downconversion.enable": "false",
    "file.delete.delay.ms": "1000",
    "flush.messages": "10",
    "flush.ms": "1000",
    "preallocate": "true",
    "segment.index.bytes": "4096",
    "segment.jitter.ms": "5",
    "unclean.leader.election.enable": "true",
    "min.insync.replicas": "2",
    "follower.replication.throttled.replicas": "*",
    "leader.replication.throttled.replicas": "0:1",
    "message.timestamp.difference.max.ms": "1000",
}


def test_kafka3_topic_configs_accepted_and_ignored(broker):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource

    from kclients import expect_admin_error

    topic_type = ConfigResource.Type.TOPIC if hasattr(ConfigResource, "Type") else ConfigResource.ResourceType.TOPIC
    a = admin(broker.bootstrap)

    def describe(topic):
        res = ConfigResource(topic_type, topic)
        return a.describe_configs([res])[res].result(timeout=30)

    topic = unique_topic("k3cfg")
    create_topic(broker.bootstrap, topic, 1, config={**IGNORED_CONFIGS, "retention.ms": "3600000"})
    cfg = describe(topic)
    assert cfg["retention.ms"].value == "3600000" and not cfg["retention.ms"].is_read_only
    for name, sent in IGNORED_CONFIGS.items():
        e = cfg[name]
        assert e.is_read_only, name
        assert e.source == ConfigSource.DEFAULT_CONFIG.value, (name, e.source)
        assert e.value != sent, f"{name}: ignored value {sent} reported as in effect"

    # IncrementalAlterConfigs and AlterConfigs take them too.
    inc = ConfigResource(topic_type, topic, incremental_configs=[ConfigEntry(n, v, incremental_operation=AlterConfigOpType.SET) for n, v in IGNORED_CONFIGS.items()])
    a.incremental_alter_configs([inc])[inc].result(timeout=30)
    legacy = ConfigResource(topic_type, topic, set_config={"retention.ms": "7200000", "flush.ms": "5", "message.format.version": "3.0"})
    a.alter_configs([legacy])[legacy].result(timeout=30)
    cfg = describe(topic)
    assert cfg["retention.ms"].value == "7200000"
    assert cfg["flush.ms"].is_read_only and cfg["flush.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    # Unknown keys stay refused; a known ignored key with a bad value too.
    bad = ConfigResource(topic_type, topic, incremental_configs=[ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)])
    expect_admin_error(a.incremental_alter_configs([bad])[bad], KafkaError.INVALID_CONFIG, "unknown key")
    bad = ConfigResource(topic_type, topic, incremental_configs=[ConfigEntry("min.insync.replicas", "zero", incremental_operation=AlterConfigOpType.SET)])
    expect_admin_error(a.incremental_alter_configs([bad])[bad], KafkaError.INVALID_CONFIG, "min.insync.replicas=zero")


def _conn(broker) -> kproto.Conn:
    host, port = broker.bootstrap.split(":")
    return kproto.Conn(host, int(port))


def test_new_admin_apis_are_advertised(broker):
    with _conn(broker) as c:
        v = c.api_versions(3)
    assert v[kproto.DESCRIBE_TOPIC_PARTITIONS] == (0, 0)
    assert v[kproto.DESCRIBE_PRODUCERS] == (0, 0)
    assert v[kproto.DESCRIBE_LOG_DIRS] == (1, 4)
    assert v[kproto.ELECT_LEADERS] == (0, 2)
    assert v[kproto.LIST_PARTITION_REASSIGNMENTS] == (0, 0)
    assert v[kproto.ALTER_PARTITION_REASSIGNMENTS] == (0, 1)


def test_describe_topic_partitions_pages_with_a_cursor(broker):
    a_topic, b_topic = sorted([unique_topic("dtp-a"), unique_topic("dtp-b")])
    create_topic(broker.bootstrap, a_topic, 3)
    create_topic(broker.bootstrap, b_topic, 2)
    missing = unique_topic("dtp-missing")
    seen = []
    cursor = None
    pages = 0
    with _conn(broker) as c:
        while True:
            r = c.request(
                kproto.DESCRIBE_TOPIC_PARTITIONS,
                0,
                {"topics": [{"name": a_topic}, {"name": b_topic}], "response_partition_limit": 2, "cursor": cursor},
            )
            pages += 1
            for t in r["topics"]:
                assert t["error_code"] == 0, t
                for p in t["partitions"]:
                    assert p["leader_id"] == 1 and p["replica_nodes"] == [1] and p["isr_nodes"] == [1], p
                    seen.append((t["name"], p["partition_index"]))
            cursor = r["next_cursor"]
            if cursor is None:
                break
            assert pages < 10
        assert pages == 3
        assert seen == [(a_topic, 0), (a_topic, 1), (a_topic, 2), (b_topic, 0), (b_topic, 1)]
        r = c.request(kproto.DESCRIBE_TOPIC_PARTITIONS, 0, {"topics": [{"name": missing}], "response_partition_limit": 100})
        assert [(t["name"], t["error_code"]) for t in r["topics"]] == [(missing, kproto.UNKNOWN_TOPIC_OR_PARTITION)]
        assert r["next_cursor"] is None


def test_describe_producers_lists_idempotent_producer(broker):
    topic = unique_topic("producers")
    create_topic(broker.bootstrap, topic, 1)
    p = producer(broker.bootstrap, **{"enable.idempotence": True})
    assert _deliver(p, topic, [(b"k", b"v%d" % i) for i in range(3)]) == [None] * 3
    with _conn(broker) as c:
        r = c.request(kproto.DESCRIBE_PRODUCERS, 0, {"topics": [{"name": topic, "partition_indexes": [0, 7]}]})
    (t,) = r["topics"]
    by_index = {x["partition_index"]: x for x in t["partitions"]}
    assert by_index[7]["error_code"] == kproto.UNKNOWN_TOPIC_OR_PARTITION
    p0 = by_index[0]
    assert p0["error_code"] == 0, p0
    (ps,) = p0["active_producers"]
    assert ps["producer_id"] >= 0 and ps["producer_epoch"] >= 0
    assert ps["last_sequence"] == 2, ps
    assert ps["current_txn_start_offset"] == -1


def test_describe_log_dirs_reports_local_and_object_storage_bytes(broker):
    topic = unique_topic("logdirs")
    create_topic(broker.bootstrap, topic, 2)
    p = producer(broker.bootstrap)
    assert _deliver(p, topic, [(b"k", b"x" * 1000)]) == [None]
    with _conn(broker) as c:
        r = c.request(kproto.DESCRIBE_LOG_DIRS, 4, {"topics": [{"topic": topic, "partitions": [0, 1]}]})
        assert r["error_code"] == 0
        dirs = {d["log_dir"]: d for d in r["results"]}
        assert "object-storage" in dirs and len(dirs) == 2, list(dirs)
        (local_name,) = [n for n in dirs if n != "object-storage"]
        local = dirs[local_name]
        assert local["total_bytes"] > 0 and 0 <= local["usable_bytes"] <= local["total_bytes"]
        sizes = {p["partition_index"]: p["partition_size"] for t in local["topics"] if t["name"] == topic for p in t["partitions"]}
        assert sizes.keys() == {0, 1}
        assert sizes[0] >= 1000, sizes
        assert sizes[1] == 0, sizes
        remote = {p["partition_index"]: p["partition_size"] for t in dirs["object-storage"]["topics"] for p in t["partitions"]}
        assert remote.keys() == {0, 1} and remote[1] == 0, remote

        def remote_bytes():
            r = c.request(kproto.DESCRIBE_LOG_DIRS, 4, {"topics": [{"topic": topic, "partitions": [0]}]})
            d = {d["log_dir"]: d for d in r["results"]}["object-storage"]
            return [p["partition_size"] for t in d["topics"] for p in t["partitions"]][0] >= 1000

        # The record reaches the bucket (a WAL object or a segment).
        wait_until(remote_bytes, 30, "partition 0's bytes in object storage")
        # All topics (null list) includes this one.
        r = c.request(kproto.DESCRIBE_LOG_DIRS, 1, {"topics": None})
        assert any(t["name"] == topic for d in r["results"] for t in d["topics"])


def test_elect_leaders_not_needed_and_reassignments_refused(broker):
    topic = unique_topic("elect")
    create_topic(broker.bootstrap, topic, 2)
    with _conn(broker) as c:
        r = c.request(kproto.ELECT_LEADERS, 2, {"election_type": 0, "topic_partitions": [{"topic": topic, "partitions": [0, 1, 5]}], "timeout_ms": 5000})
        assert r["error_code"] == 0
        (res,) = r["replica_election_results"]
        codes = {p["partition_id"]: p["error_code"] for p in res["partition_result"]}
        assert codes == {0: 84, 1: 84, 5: kproto.UNKNOWN_TOPIC_OR_PARTITION}, codes

        r = c.request(kproto.LIST_PARTITION_REASSIGNMENTS, 0, {"timeout_ms": 5000, "topics": None})
        assert r["error_code"] == 0 and r["topics"] == []

        r = c.request(
            kproto.ALTER_PARTITION_REASSIGNMENTS,
            0,
            {"timeout_ms": 5000, "topics": [{"name": topic, "partitions": [{"partition_index": 0, "replicas": [1]}, {"partition_index": 1, "replicas": None}]}]},
        )
        (t,) = r["responses"]
        codes = {p["partition_index"]: p["error_code"] for p in t["partitions"]}
        assert codes == {0: INVALID_REPLICA_ASSIGNMENT, 1: 85}, t
        assert "object storage" in t["partitions"][0]["error_message"]
