"""Topic administration and partitioning with real clients."""

from __future__ import annotations

import collections
import time

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)
from kafka import KafkaProducer
from kafka.partitioner.default import DefaultPartitioner

import kproto
from cluster import wait_until
from kclients import (
    Rec,
    admin,
    consume_range,
    create_topic,
    expect_admin_error,
    produce,
    producer,
    unique_topic,
    wait_topic,
    watermarks,
)

TOPIC_CONFIG = ConfigResource.Type.TOPIC if hasattr(ConfigResource, "Type") else ConfigResource.ResourceType.TOPIC


def describe_topic_configs(bootstrap: str, topic: str) -> dict:
    a = admin(bootstrap)  # keep the client alive until the future resolves
    fs = a.describe_configs([ConfigResource(TOPIC_CONFIG, topic)])
    (f,) = fs.values()
    return f.result(timeout=30)


def test_create_and_describe_six_partitions(broker):
    topic = unique_topic("six")
    create_topic(broker.bootstrap, topic, 6)
    md = admin(broker.bootstrap).list_topics(topic=topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, t.error
    assert sorted(t.partitions) == list(range(6))
    for p in t.partitions.values():
        assert p.leader == 1, f"partition {p.id} leader {p.leader}, want broker 1"
        assert list(p.replicas) == [1], f"partition {p.id} replicas {p.replicas}"
        assert list(p.isrs) == [1], f"partition {p.id} isrs {p.isrs}"
    assert md.brokers[1].host == "127.0.0.1"
    assert md.brokers[1].port == broker.kafka_port
    # The topic shows up in a full listing too.
    assert topic in admin(broker.bootstrap).list_topics(timeout=10).topics


def test_describe_cluster(broker):
    a = admin(broker.bootstrap)
    desc = a.describe_cluster(request_timeout=10).result(timeout=30)
    assert desc.cluster_id, "empty cluster id"
    nodes = {(n.id, n.host, n.port) for n in desc.nodes}
    assert nodes == {(1, "127.0.0.1", broker.kafka_port)}, nodes
    assert desc.controller is not None and desc.controller.id == 1


def test_keyed_records_stay_in_one_partition(broker):
    topic = unique_topic("keyed")
    partitions = 6
    create_topic(broker.bootstrap, topic, partitions)
    keys = [f"user-{i}".encode() for i in range(20)]
    recs = [Rec(k, f"{k.decode()}#{n}".encode()) for n in range(50) for k in keys]
    # murmur2_random is librdkafka's Java-compatible partitioner, so the
    # choice can be compared with kafka-python's DefaultPartitioner.
    p = producer(broker.bootstrap, partitioner="murmur2_random")
    placed = produce(p, topic, recs)

    by_key = collections.defaultdict(set)
    for r, (part, _off) in zip(recs, placed):
        by_key[r.key].add(part)
    split = {k: v for k, v in by_key.items() if len(v) != 1}
    assert not split, f"keys delivered to several partitions: {split}"
    assert len({next(iter(v)) for v in by_key.values()}) > 1, "all 20 keys hashed to one partition: partitioner not applied?"

    # What the broker actually stores, partition by partition.
    ends = {pp: hi for pp, (_lo, hi) in watermarks(broker.bootstrap, topic, range(partitions)).items()}
    assert sum(ends.values()) == len(recs), f"high watermarks {ends} do not add up to {len(recs)}"
    got = consume_range(broker.bootstrap, topic, ends)
    seen = collections.defaultdict(collections.Counter)
    for part, msgs in got.items():
        for m in msgs:
            seen[m.key][part] += 1
    for k in keys:
        assert len(seen[k]) == 1, f"key {k!r} found in partitions {dict(seen[k])}"
        ((part, count),) = seen[k].items()
        assert count == 50, f"key {k!r}: {count} records in partition {part}, want 50"
        assert {part} == by_key[k], f"key {k!r}: delivery report said {by_key[k]}, log has it in {part}"

    # Java's / kafka-python's murmur2 choice agrees.
    dp = DefaultPartitioner()
    all_parts = list(range(partitions))
    for k in keys:
        assert dp(k, all_parts, all_parts) == next(iter(by_key[k])), f"key {k!r}: murmur2 disagrees"

    # kafka-python's producer places the same keys in the same partitions.
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
    try:
        futs = {k: kp.send(topic, key=k, value=b"from-kafka-python") for k in keys}
        kp.flush(timeout=30)
        for k, f in futs.items():
            md = f.get(timeout=30)
            assert md.partition == next(iter(by_key[k])), f"kafka-python put key {k!r} in {md.partition}"
            assert md.offset >= ends[md.partition], f"kafka-python record for {k!r} got offset {md.offset} below the old end {ends[md.partition]}"
    finally:
        kp.close(timeout=5)


def test_null_keys_spread_over_partitions(broker):
    topic = unique_topic("nullkey")
    create_topic(broker.bootstrap, topic, 6)
    # sticky.partitioning.linger.ms=0 turns off sticky batching, so every
    # null-key record gets a random partition.
    p = producer(broker.bootstrap, **{"sticky.partitioning.linger.ms": 0})
    placed = produce(p, topic, [Rec(None, b"v%d" % i) for i in range(600)])
    used = collections.Counter(part for part, _ in placed)
    assert len(used) > 1, f"600 null-key records all went to {dict(used)}"
    ends = {pp: hi for pp, (_lo, hi) in watermarks(broker.bootstrap, topic, range(6)).items()}
    assert ends == {pp: used.get(pp, 0) for pp in range(6)}, f"high watermarks {ends} vs delivered {dict(used)}"
    got = consume_range(broker.bootstrap, topic, ends)
    assert all(m.key is None for ms in got.values() for m in ms), "a null key came back non-null"
    assert sorted(m.value for ms in got.values() for m in ms) == sorted(b"v%d" % i for i in range(600))


def test_delete_topic_and_recreate_is_empty(broker):
    topic = unique_topic("del")
    create_topic(broker.bootstrap, topic, 2)
    produce(producer(broker.bootstrap), topic, [Rec(b"k", b"old-%d" % i, partition=i % 2) for i in range(10)])
    a = admin(broker.bootstrap)
    a.delete_topics([topic], operation_timeout=10)[topic].result(timeout=30)
    wait_until(lambda: topic not in a.list_topics(timeout=10).topics, 10, f"{topic} no longer listed after DeleteTopics")
    # Deleting again: UNKNOWN_TOPIC_OR_PART.
    expect_admin_error(a.delete_topics([topic], operation_timeout=10)[topic], KafkaError.UNKNOWN_TOPIC_OR_PART, "delete a deleted topic")
    # Same name again starts from offset 0 with none of the old records.
    create_topic(broker.bootstrap, topic, 2)
    assert watermarks(broker.bootstrap, topic, [0, 1]) == {0: (0, 0), 1: (0, 0)}
    placed = produce(producer(broker.bootstrap), topic, [Rec(b"k", b"new", partition=0)])
    assert placed == [(0, 0)]
    got = consume_range(broker.bootstrap, topic, {0: 1})
    assert [m.value for m in got[0]] == [b"new"]


def test_create_partitions_grows_topic(broker):
    topic = unique_topic("grow")
    create_topic(broker.bootstrap, topic, 2)
    a = admin(broker.bootstrap)
    a.create_partitions([NewPartitions(topic, 5)], operation_timeout=10)[topic].result(timeout=30)
    wait_topic(broker.bootstrap, topic, 5)
    placed = produce(producer(broker.bootstrap), topic, [Rec(b"k", b"p%d" % p, partition=p) for p in range(5)])
    assert placed == [(p, 0) for p in range(5)]
    got = consume_range(broker.bootstrap, topic, {p: 1 for p in range(5)})
    assert {p: [m.value for m in ms] for p, ms in got.items()} == {p: [b"p%d" % p] for p in range(5)}
    # Shrinking is refused; so is "growing" to the same count.
    expect_admin_error(a.create_partitions([NewPartitions(topic, 3)], operation_timeout=10)[topic], KafkaError.INVALID_PARTITIONS, "shrink 5 -> 3")
    expect_admin_error(a.create_partitions([NewPartitions(topic, 5)], operation_timeout=10)[topic], KafkaError.INVALID_PARTITIONS, "grow 5 -> 5")
    wait_topic(broker.bootstrap, topic, 5)
    # Unknown topic.
    missing = unique_topic("missing")
    expect_admin_error(a.create_partitions([NewPartitions(missing, 3)], operation_timeout=10)[missing], KafkaError.UNKNOWN_TOPIC_OR_PART, "grow unknown topic")


def test_create_existing_topic_fails(broker):
    topic = unique_topic("dup")
    create_topic(broker.bootstrap, topic, 3)
    a = admin(broker.bootstrap)
    fs = a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)], operation_timeout=10)
    expect_admin_error(fs[topic], KafkaError.TOPIC_ALREADY_EXISTS, "create existing topic")
    wait_topic(broker.bootstrap, topic, 3)  # unchanged


@pytest.mark.parametrize("name", ["has space", "bad/slash", "x" * 250, "..", ".", "ümlaut"])
def test_invalid_topic_name_refused(broker, name):
    a = admin(broker.bootstrap)
    fs = a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)], operation_timeout=10)
    expect_admin_error(fs[name], KafkaError.TOPIC_EXCEPTION, f"create topic {name!r}")
    assert name not in a.list_topics(timeout=10).topics


def test_create_topic_validate_only_creates_nothing(broker):
    topic = unique_topic("dry")
    a = admin(broker.bootstrap)
    a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)], validate_only=True, operation_timeout=10)[topic].result(timeout=30)
    assert topic not in a.list_topics(timeout=10).topics


def test_auto_create_on_produce(broker_factory):
    b = broker_factory(["--num-partitions", "3"])
    topic = unique_topic("auto")
    placed = produce(producer(b.bootstrap), topic, [Rec(b"k%d" % i, b"v") for i in range(30)])
    assert len(placed) == 30
    wait_topic(b.bootstrap, topic, 3)  # --num-partitions applies to auto-created topics
    ends = {p: hi for p, (_lo, hi) in watermarks(b.bootstrap, topic, range(3)).items()}
    assert sum(ends.values()) == 30


def test_auto_create_disabled(broker_factory):
    b = broker_factory(["--auto-create-topics", "false"])
    topic = unique_topic("noauto")
    p = producer(b.bootstrap, **{"message.timeout.ms": 5000, "topic.metadata.propagation.max.ms": 1000})
    errors = []
    p.produce(topic, b"v", on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(20) == 0
    assert len(errors) == 1 and errors[0] is not None, f"produce to unknown topic succeeded: {errors}"
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), errors[0]

    # At the protocol level: Metadata asking for creation, and Produce, both
    # answer UNKNOWN_TOPIC_OR_PARTITION and create nothing.
    with kproto.Conn("127.0.0.1", b.kafka_port) as c:
        md = c.metadata([topic], allow_auto_topic_creation=True)
        (t,) = md["topics"]
        assert t["error_code"] == kproto.UNKNOWN_TOPIC_OR_PARTITION, t
        batch = kproto.record_batch([kproto.Record(b"k", b"v", timestamp=int(time.time() * 1000))])
        pr = c.produce(topic, 0, batch)
        assert pr["error_code"] == kproto.UNKNOWN_TOPIC_OR_PARTITION, pr
        md = c.metadata(None)
        assert topic not in {t["name"] for t in md["topics"]}
    # Explicit creation still works.
    create_topic(b.bootstrap, topic, 1)


def test_metadata_without_auto_create_flag_does_not_create(broker):
    topic = unique_topic("probe")
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        # allow_auto_topic_creation exists from Metadata v4; the broker
        # advertises up to v12, so less is a regression.
        assert c.pick(kproto.METADATA) >= 4, f"broker advertises Metadata {c.versions[kproto.METADATA]}"
        md = c.metadata([topic], allow_auto_topic_creation=False)
        (t,) = md["topics"]
        assert t["error_code"] == kproto.UNKNOWN_TOPIC_OR_PARTITION, t
        assert topic not in {t["name"] for t in c.metadata(None)["topics"]}


def test_topic_config_round_trip(broker):
    topic = unique_topic("cfg")
    create_topic(broker.bootstrap, topic, 1, config={"retention.ms": "86400000"})
    a = admin(broker.bootstrap)

    cfg = describe_topic_configs(broker.bootstrap, topic)
    assert cfg["retention.ms"].value == "86400000"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert "cleanup.policy" in cfg, f"DescribeConfigs lists no cleanup.policy: {sorted(cfg)}"
    assert cfg["cleanup.policy"].value == "delete"
    default_max_message_bytes = cfg["max.message.bytes"].value

    # IncrementalAlterConfigs SET two keys.
    inc = ConfigResource(
        TOPIC_CONFIG,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("max.message.bytes", "2000000", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    a.incremental_alter_configs([inc])[inc].result(timeout=30)
    cfg = describe_topic_configs(broker.bootstrap, topic)
    assert cfg["retention.ms"].value == "7200000"
    assert cfg["max.message.bytes"].value == "2000000"
    assert cfg["max.message.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    # IncrementalAlterConfigs DELETE goes back to the default.
    inc = ConfigResource(TOPIC_CONFIG, topic, incremental_configs=[ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([inc])[inc].result(timeout=30)
    cfg = describe_topic_configs(broker.bootstrap, topic)
    assert cfg["max.message.bytes"].value == default_max_message_bytes
    assert cfg["max.message.bytes"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["retention.ms"].value == "7200000"

    # Legacy AlterConfigs replaces the whole set: keys not named go back to defaults.
    inc = ConfigResource(TOPIC_CONFIG, topic, incremental_configs=[ConfigEntry("max.message.bytes", "3000000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([inc])[inc].result(timeout=30)
    assert describe_topic_configs(broker.bootstrap, topic)["max.message.bytes"].value == "3000000"
    legacy = ConfigResource(TOPIC_CONFIG, topic, set_config={"retention.ms": "3600000"})
    a.alter_configs([legacy])[legacy].result(timeout=30)
    cfg = describe_topic_configs(broker.bootstrap, topic)
    assert cfg["retention.ms"].value == "3600000"
    assert cfg["max.message.bytes"].value == default_max_message_bytes, "AlterConfigs must reset keys it does not name"


def test_unknown_or_invalid_config_refused(broker):
    topic = unique_topic("badcfg")
    create_topic(broker.bootstrap, topic, 1)
    a = admin(broker.bootstrap)
    bad = ConfigResource(TOPIC_CONFIG, topic, incremental_configs=[ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)])
    expect_admin_error(a.incremental_alter_configs([bad])[bad], KafkaError.INVALID_CONFIG, "IncrementalAlterConfigs unknown key")
    bad = ConfigResource(TOPIC_CONFIG, topic, set_config={"no.such.config": "1"})
    expect_admin_error(a.alter_configs([bad])[bad], KafkaError.INVALID_CONFIG, "AlterConfigs unknown key")
    bad = ConfigResource(TOPIC_CONFIG, topic, incremental_configs=[ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    expect_admin_error(a.incremental_alter_configs([bad])[bad], KafkaError.INVALID_CONFIG, "retention.ms=soon")
    assert "no.such.config" not in describe_topic_configs(broker.bootstrap, topic)

    other = unique_topic("badcfg-create")
    fs = a.create_topics([NewTopic(other, num_partitions=1, replication_factor=1, config={"no.such.config": "1"})], operation_timeout=10)
    expect_admin_error(fs[other], KafkaError.INVALID_CONFIG, "CreateTopics with unknown config")
    assert other not in a.list_topics(timeout=10).topics

    # Configs of a topic that does not exist.
    missing = ConfigResource(TOPIC_CONFIG, unique_topic("missing"))
    expect_admin_error(a.describe_configs([missing])[missing], KafkaError.UNKNOWN_TOPIC_OR_PART, "DescribeConfigs unknown topic")
