"""Wire-level behaviour every Kafka client relies on."""

from __future__ import annotations

import struct
import time

import pytest

import kproto
from kclients import consume_range, create_topic, unique_topic

PROMISED = [
    kproto.PRODUCE,
    kproto.FETCH,
    kproto.LIST_OFFSETS,
    kproto.METADATA,
    kproto.API_VERSIONS,
    kproto.CREATE_TOPICS,
    kproto.DELETE_TOPICS,
    kproto.INIT_PRODUCER_ID,
    kproto.DESCRIBE_CONFIGS,
    kproto.ALTER_CONFIGS,
    kproto.CREATE_PARTITIONS,
    kproto.INCREMENTAL_ALTER_CONFIGS,
    kproto.DESCRIBE_CLUSTER,
]


def test_api_versions_lists_promised_apis(broker):
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        v0 = c.api_versions(0)
        missing = [kproto.API_NAMES[k] for k in PROMISED if k not in v0]
        assert not missing, f"ApiVersions lacks {missing}; has {sorted(v0)}"
        bad = {k: r for k, r in v0.items() if not (0 <= r[0] <= r[1])}
        assert not bad, f"nonsense version ranges: {bad}"
        assert v0[kproto.API_VERSIONS][1] >= 3, "ApiVersions v3 (KIP-511) not supported"
        # The flexible v3 request gives the same answer.
        v3 = c.api_versions(3)
        assert v3 == v0


def test_pipelined_requests_answered_in_order(broker):
    """Kafka answers requests on one connection in the order they came,
    whatever they are; clients pipeline and match by correlation id."""
    topic = unique_topic("pipe")
    create_topic(broker.bootstrap, topic, 1)
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        md_v = c.pick(kproto.METADATA)
        pr_v = c.pick(kproto.PRODUCE)
        lo_v = c.pick(kproto.LIST_OFFSETS)
        sent = []
        out = b""
        ts = int(time.time() * 1000)
        for i in range(60):
            corr = 1000 + i
            kind = i % 4
            if kind == 0:
                payload = kproto.encode_request(kproto.API_VERSIONS, 0, corr, {})
                sent.append((corr, kproto.API_VERSIONS, 0))
            elif kind == 1:
                payload = kproto.encode_request(kproto.METADATA, md_v, corr, {"topics": [{"name": topic}]})
                sent.append((corr, kproto.METADATA, md_v))
            elif kind == 2:
                batch = kproto.record_batch([kproto.Record(b"k", b"p%d" % i, timestamp=ts)])
                payload = kproto.encode_request(
                    kproto.PRODUCE, pr_v, corr, {"acks": -1, "timeout_ms": 10000, "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}]}
                )
                sent.append((corr, kproto.PRODUCE, pr_v))
            else:
                payload = kproto.encode_request(
                    kproto.LIST_OFFSETS, lo_v, corr, {"replica_id": -1, "topics": [{"name": topic, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]}
                )
                sent.append((corr, kproto.LIST_OFFSETS, lo_v))
            out += kproto.frame(payload)
        c.send_raw(out)
        produce_offsets = []
        for corr, api, v in sent:
            got_corr, body = kproto.decode_response(api, v, c.recv_frame())
            assert got_corr == corr, f"response for correlation id {got_corr} arrived where {corr} ({kproto.API_NAMES[api]}) was due"
            if api == kproto.PRODUCE:
                p = body["responses"][0]["partition_responses"][0]
                assert p["error_code"] == 0, p
                produce_offsets.append(p["base_offset"])
        assert produce_offsets == list(range(15)), produce_offsets


@pytest.mark.parametrize("version", [1, 4, 8, 9, 12])
def test_metadata_versions_agree(broker, version):
    topic = unique_topic("mdv")
    create_topic(broker.bootstrap, topic, 2)
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        c.api_versions()
        lo, hi = c.versions[kproto.METADATA]
        # The broker advertises Metadata v0-v12: a narrower range is a regression.
        assert lo <= version <= hi, f"broker advertises Metadata v{lo}-v{hi}, not v{version}"
        md = c.metadata([topic], version=version)
        assert [(b["node_id"], b["host"], b["port"]) for b in md["brokers"]] == [(1, "127.0.0.1", broker.kafka_port)]
        if version >= 1:
            assert md["controller_id"] == 1
        if version >= 2:
            assert md["cluster_id"], "empty cluster id"
        (t,) = md["topics"]
        assert (t["error_code"], t["name"]) == (0, topic)
        assert sorted(p["partition_index"] for p in t["partitions"]) == [0, 1]
        for p in t["partitions"]:
            assert (p["error_code"], p["leader_id"], p["replica_nodes"], p["isr_nodes"]) == (0, 1, [1], [1]), p
        if version >= 10:
            assert t["topic_id"] != b"\x00" * 16, "Metadata v10+ returns a zero topic id"


def test_produce_to_missing_partition(broker):
    topic = unique_topic("nopart")
    create_topic(broker.bootstrap, topic, 1)
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        batch = kproto.record_batch([kproto.Record(b"k", b"v", timestamp=int(time.time() * 1000))])
        r = c.produce(topic, 5, batch)
        assert r["error_code"] == kproto.UNKNOWN_TOPIC_OR_PARTITION, r
        r = c.fetch(topic, 5, 0)
        assert r["error_code"] == kproto.UNKNOWN_TOPIC_OR_PARTITION, r


def test_produce_without_records_writes_nothing(broker):
    topic = unique_topic("nullrec")
    create_topic(broker.bootstrap, topic, 1)
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        for records in (None, b""):
            try:
                c.produce(topic, 0, records)  # any error code is fine
            except kproto.ConnectionClosed:
                c = kproto.Conn("127.0.0.1", broker.kafka_port)
        c.close()
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        assert c.list_offset(topic, 0, -1)["offset"] == 0


def test_produce_base_offset_in_request_is_ignored(broker):
    """The broker assigns offsets; whatever base offset the client wrote is replaced."""
    topic = unique_topic("baseoff")
    create_topic(broker.bootstrap, topic, 1)
    ts = int(time.time() * 1000)
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        r = c.produce(topic, 0, kproto.record_batch([kproto.Record(b"k", b"a", timestamp=ts)] * 2, base_offset=1234))
        assert (r["error_code"], r["base_offset"]) == (0, 0), r
        r = c.produce(topic, 0, kproto.record_batch([kproto.Record(b"k", b"b", timestamp=ts)], base_offset=-77))
        assert (r["error_code"], r["base_offset"]) == (0, 2), r
        recs = c.fetch_all(topic, 0)
        assert [(x.offset, x.value) for x in recs] == [(0, b"a"), (1, b"a"), (2, b"b")]


def test_fetch_respects_max_bytes_but_returns_a_whole_first_batch(broker):
    topic = unique_topic("maxbytes")
    create_topic(broker.bootstrap, topic, 1)
    ts = int(time.time() * 1000)
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        for i in range(20):
            assert c.produce(topic, 0, kproto.record_batch([kproto.Record(b"k", bytes([i]) * 10_000, timestamp=ts)]))["error_code"] == 0
        # max_bytes smaller than one batch: Kafka still returns the first
        # batch whole so consumers make progress.
        r = c.fetch(topic, 0, 0, max_bytes=100)
        batches = kproto.parse_batches(r["records"])
        assert batches and batches[0].base_offset == 0, f"no complete batch with max_bytes=100 ({len(r['records'] or b'')} bytes)"
        # A 50 KB limit returns a few batches, not all 200 KB.
        r = c.fetch(topic, 0, 0, max_bytes=50_000)
        assert len(r["records"] or b"") <= 50_000 + 10_100, f"{len(r['records'])} bytes for max_bytes 50000"
        # Fetch from the middle of the log.
        r = c.fetch(topic, 0, 13)
        batches = kproto.parse_batches(r["records"])
        assert batches[0].base_offset == 13
        assert batches[0].records[0].value == bytes([13]) * 10_000


def test_frame_split_across_many_writes(broker):
    """A request arriving one byte at a time is still one request."""
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        data = kproto.frame(kproto.encode_request(kproto.API_VERSIONS, 0, 77, {}))
        for i in range(len(data)):
            c.send_raw(data[i : i + 1])
        corr, body = kproto.decode_response(kproto.API_VERSIONS, 0, c.recv_frame())
        assert corr == 77 and body["error_code"] == 0


def test_null_client_id_accepted(broker):
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        c.send_raw(kproto.frame(struct.pack(">hhi", kproto.API_VERSIONS, 0, 5) + struct.pack(">h", -1)))
        corr, body = kproto.decode_response(kproto.API_VERSIONS, 0, c.recv_frame())
        assert corr == 5 and body["error_code"] == 0


def test_invalid_acks_refused(broker):
    topic = unique_topic("acks")
    create_topic(broker.bootstrap, topic, 1)
    batch = kproto.record_batch([kproto.Record(b"k", b"v", timestamp=int(time.time() * 1000))])
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        r = c.produce(topic, 0, batch, acks=2)
        assert r["error_code"] == 21, f"acks=2: want INVALID_REQUIRED_ACKS (21), got {r}"
        assert c.list_offset(topic, 0, -1)["offset"] == 0


def test_topic_max_message_bytes_enforced(broker):
    topic = unique_topic("maxmsg")
    create_topic(broker.bootstrap, topic, 1, config={"max.message.bytes": "2000"})
    ts = int(time.time() * 1000)
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        r = c.produce(topic, 0, kproto.record_batch([kproto.Record(b"k", b"x" * 5000, timestamp=ts)]))
        assert r["error_code"] == 10, f"5 KB batch on a topic with max.message.bytes=2000: want MESSAGE_TOO_LARGE (10), got {r}"
        r = c.produce(topic, 0, kproto.record_batch([kproto.Record(b"k", b"x" * 500, timestamp=ts)]))
        assert (r["error_code"], r["base_offset"]) == (0, 0), r


def test_log_append_time_topic(broker):
    """message.timestamp.type=LogAppendTime: the broker stamps batches with
    its own clock, and consumers see timestamp type LogAppendTime."""
    topic = unique_topic("lat")
    create_topic(broker.bootstrap, topic, 1, config={"message.timestamp.type": "LogAppendTime"})
    old = int(time.time() * 1000) - 86_400_000
    before = int(time.time() * 1000)
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        r = c.produce(topic, 0, kproto.record_batch([kproto.Record(b"k", b"v%d" % i, timestamp=old + i) for i in range(3)]))
        assert r["error_code"] == 0, r
        append_time = r["log_append_time_ms"]
        assert before - 1000 <= append_time <= time.time() * 1000 + 1000, f"log_append_time_ms {append_time} is not the broker's clock ({before})"
        (b,) = kproto.parse_batches(c.fetch(topic, 0, 0)["records"])
        assert b.crc_ok, "batch CRC not recomputed after stamping LogAppendTime"
        assert b.attributes & 0x08, f"timestamp-type bit not set in attributes {b.attributes:#x}"
    got = consume_range(broker.bootstrap, topic, {0: 3})
    for m in got[0]:
        assert m.ts_type == 2, f"offset {m.offset}: timestamp type {m.ts_type}, want LogAppendTime (2)"
        assert m.timestamp == append_time, f"offset {m.offset}: timestamp {m.timestamp}, want the append time {append_time}"
