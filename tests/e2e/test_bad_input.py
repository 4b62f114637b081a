"""Hostile and broken input on the Kafka port: oversized, truncated and lying
frames, unknown APIs and versions, corrupt batches, and a fuzz loop. After
each, the broker must be alive, not have panicked, and still serve."""

from __future__ import annotations

import os
import random
import socket
import struct
import time

import kproto
from kclients import Rec, consume_range, create_topic, produce, producer, unique_topic

MIB = 1 << 20


def assert_serves(broker) -> None:
    """Alive, no panic in the log, answers ApiVersions and Metadata."""
    assert broker.alive(), f"broker process exited with {broker.proc.returncode}\n{broker.log_tail()}"
    broker.assert_no_panic()
    with kproto.Conn("127.0.0.1", broker.kafka_port, timeout=10) as c:
        versions = c.api_versions()
        assert kproto.PRODUCE in versions
        md = c.metadata(None)
        assert [b["node_id"] for b in md["brokers"]] == [1]


def assert_real_client_works(broker) -> None:
    topic = unique_topic("after")
    create_topic(broker.bootstrap, topic, 1)
    placed = produce(producer(broker.bootstrap), topic, [Rec(b"k", b"still-%d" % i, partition=0) for i in range(10)])
    assert placed == [(0, i) for i in range(10)]
    got = consume_range(broker.bootstrap, topic, {0: 10})
    assert [m.value for m in got[0]] == [b"still-%d" % i for i in range(10)]


def connect(broker) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", broker.kafka_port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def test_frame_over_request_max_bytes_closes_connection(broker_factory):
    broker = broker_factory(["--request-max-bytes", str(MIB)])
    s = connect(broker)
    try:
        header = kproto.request_header(kproto.PRODUCE, 7, 1)
        s.sendall(struct.pack(">i", 2 * MIB) + header + b"\x00" * 64)
        problem = kproto.wait_closed(s, 5)
        assert problem is None, f"2 MiB frame with --request-max-bytes 1 MiB: connection {problem}"
    finally:
        s.close()
    # Just under the limit is fine (a Metadata request padded with nothing
    # is too small to test that, so: a real 900 KiB produce).
    topic = unique_topic("underlimit")
    create_topic(broker.bootstrap, topic, 1)
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        batch = kproto.record_batch([kproto.Record(b"k", os.urandom(900 * 1024), timestamp=int(time.time() * 1000))])
        r = c.produce(topic, 0, batch)
        assert r["error_code"] == 0, r
    assert_serves(broker)


def test_negative_frame_length_closes_connection(broker):
    s = connect(broker)
    try:
        s.sendall(struct.pack(">i", -5) + b"\x00" * 16)
        problem = kproto.wait_closed(s, 5)
        assert problem is None, f"negative frame length: connection {problem}"
    finally:
        s.close()
    assert_serves(broker)


def test_truncated_frame_then_close(broker):
    for _ in range(20):
        s = connect(broker)
        s.sendall(struct.pack(">i", 100) + kproto.request_header(kproto.METADATA, 1, 1)[:6])
        s.close()
    assert_serves(broker)


def test_lying_length_does_not_preallocate(broker):
    """20 connections each announce a 50 MB frame (under the default 100 MiB
    limit) and then go quiet. The broker must not reserve 50 MB for each."""
    assert_serves(broker)
    before = broker.proc_status()
    socks = []
    try:
        for i in range(20):
            s = connect(broker)
            s.sendall(struct.pack(">i", 50_000_000) + kproto.request_header(kproto.PRODUCE, 7, i) + b"\x00\x00\xff\xff")
            socks.append(s)
        # Others are still served while those connections hang.
        assert_serves(broker)
        peak = dict(before)
        end = time.monotonic() + 1.5  # no event to wait for: sample for a while
        while time.monotonic() < end:
            st = broker.proc_status()
            for k in ("VmRSS", "VmData"):
                peak[k] = max(peak[k], st[k])
            time.sleep(0.1)
        assert_real_client_works(broker)
    finally:
        for s in socks:
            s.close()
    rss_mb = (peak["VmRSS"] - before["VmRSS"]) / 1024
    print(f"lying-length: RSS {before['VmRSS']} -> {peak['VmRSS']} kB, VmData {before['VmData']} -> {peak['VmData']} kB")
    data_mb = (peak["VmData"] - before["VmData"]) / 1024
    # 20 x 50 MB would be ~1000 MB; allow ordinary growth (buffers, the
    # produce above, allocator arenas, thread stacks).
    assert rss_mb < 200, f"RSS grew by {rss_mb:.0f} MB with 20 idle 50 MB-length frames open"
    assert data_mb < 600, f"VmData grew by {data_mb:.0f} MB with 20 idle 50 MB-length frames open (preallocating the announced size?)"
    assert_serves(broker)


def test_unknown_api_key(broker):
    for api_key in (9999, 32767, -1, 67 + 100):
        s = connect(broker)
        try:
            payload = struct.pack(">hhi", api_key, 0, 42) + struct.pack(">h", 3) + b"e2e"
            s.sendall(kproto.frame(payload))
            # Either an answer carrying our correlation id, or a close.
            s.settimeout(5)
            try:
                head = s.recv(8)
            except (ConnectionResetError, BrokenPipeError):
                head = b""
            except socket.timeout:
                raise AssertionError(f"api key {api_key}: broker neither answered nor closed within 5 s")
            if head:
                assert len(head) >= 8 and struct.unpack(">i", head[4:8])[0] == 42, f"api key {api_key}: odd reply {head!r}"
        finally:
            s.close()
    assert_serves(broker)


def test_unsupported_api_versions_version(broker):
    """KIP-511: an ApiVersions request of a version the broker does not know
    is answered in v0 with UNSUPPORTED_VERSION and the supported range of
    ApiVersions itself, so the client can retry with a version it has."""
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        corr = c.next_correlation_id()
        # v127 with a flexible (v2) header and an empty flexible body.
        header = struct.pack(">hhi", kproto.API_VERSIONS, 127, corr) + struct.pack(">h", 3) + b"e2e" + b"\x00"
        c.send_raw(kproto.frame(header + b"\x00\x00\x00"))
        payload = c.recv_frame()
        r = kproto.Reader(payload)
        assert r.unpack(">i") == corr
        try:
            body = kproto._dec_struct(r, kproto.SCHEMAS[kproto.API_VERSIONS][1], 0, False)
            assert r.remaining() == 0, f"{r.remaining()} trailing bytes"
        except (ValueError, AssertionError) as e:
            raise AssertionError(f"answer to ApiVersions v127 is not a v0 ApiVersions response ({e}): {payload[:64].hex()}") from None
        assert body["error_code"] == kproto.UNSUPPORTED_VERSION, body
        keys = {k["api_key"]: (k["min_version"], k["max_version"]) for k in body["api_keys"]}
        assert kproto.API_VERSIONS in keys, f"UNSUPPORTED_VERSION answer does not say which ApiVersions versions work: {keys}"
        # The same connection then works with a supported version.
        assert kproto.PRODUCE in c.api_versions(0)
    assert_serves(broker)


def test_unsupported_version_of_other_api(broker):
    """Metadata v999: an error response or a close, never a hang or a crash."""
    s = connect(broker)
    try:
        s.sendall(kproto.frame(struct.pack(">hhi", kproto.METADATA, 999, 7) + struct.pack(">h", -1) + b"\x00" * 8))
        s.settimeout(5)
        try:
            s.recv(64)
        except (ConnectionResetError, BrokenPipeError):
            pass
        except socket.timeout:
            raise AssertionError("Metadata v999: broker neither answered nor closed within 5 s")
    finally:
        s.close()
    assert_serves(broker)


def test_corrupt_crc_is_corrupt_message(broker):
    topic = unique_topic("crc")
    create_topic(broker.bootstrap, topic, 1)
    ts = int(time.time() * 1000)
    good = kproto.record_batch([kproto.Record(b"k", b"value-%d" % i, timestamp=ts) for i in range(5)])
    bad = bytearray(good)
    bad[-3] ^= 0xFF  # inside the last record's value: CRC no longer matches
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        r = c.produce(topic, 0, bytes(bad))
        assert r["error_code"] == kproto.CORRUPT_MESSAGE, f"corrupt CRC: {r}"
        # Nothing was written and the connection is still usable.
        assert c.list_offset(topic, 0, -1)["offset"] == 0
        r = c.produce(topic, 0, good)
        assert (r["error_code"], r["base_offset"]) == (0, 0), r
        # A batch whose length field disagrees with its bytes is refused too.
        short = bytearray(good)
        struct.pack_into(">i", short, 8, len(good) - 12 + 40)
        r = c.produce(topic, 0, bytes(short))
        assert r["error_code"] != 0, f"batch with a lying batchLength accepted: {r}"
        assert c.list_offset(topic, 0, -1)["offset"] == 5
        assert [x.value for x in c.fetch_all(topic, 0)] == [b"value-%d" % i for i in range(5)]
    assert_serves(broker)


# ---------------------------------------------------------------- fuzzing

# The frame fuzzer is reproducible: the same seed sends the same frames.
# CI uses this seed; STRATA_FUZZ_SEED=<n> picks another (printed either way).
DEFAULT_FUZZ_SEED = 20240518
FIXED_TS = 1_700_000_000_000  # record timestamps of the templates

A, NA = kproto.A, kproto.NA
FIND_COORDINATOR, JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 10, 11, 12, 13, 14
OFFSET_COMMIT, OFFSET_FETCH, DESCRIBE_GROUPS, LIST_GROUPS = 8, 9, 15, 16
DELETE_RECORDS, OFFSET_FOR_LEADER_EPOCH, DELETE_GROUPS, OFFSET_DELETE = 21, 23, 42, 47
ADD_PARTITIONS_TO_TXN, ADD_OFFSETS_TO_TXN, END_TXN, TXN_OFFSET_COMMIT = 24, 25, 26, 28
DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS = 65, 66

# Request schemas of the group and admin APIs the fuzzer sends (kproto
# covers the data-path APIs), in the shape of kproto.SCHEMAS. Versions sent
# are non-flexible except DescribeCluster (flexible from v0).
GROUP_ADMIN_SCHEMAS = {
    FIND_COORDINATOR: [("key", "string", 0, 3), ("key_type", "int8", 1, None)],
    JOIN_GROUP: [
        ("group_id", "string", 0, None),
        ("session_timeout_ms", "int32", 0, None),
        ("rebalance_timeout_ms", "int32", 1, None),
        ("member_id", "string", 0, None),
        ("group_instance_id", "nstring", 5, None),
        ("protocol_type", "string", 0, None),
        ("protocols", A([("name", "string", 0, None), ("metadata", "bytes", 0, None)]), 0, None),
    ],
    SYNC_GROUP: [
        ("group_id", "string", 0, None),
        ("generation_id", "int32", 0, None),
        ("member_id", "string", 0, None),
        ("group_instance_id", "nstring", 3, None),
        ("assignments", A([("member_id", "string", 0, None), ("assignment", "bytes", 0, None)]), 0, None),
    ],
    HEARTBEAT: [("group_id", "string", 0, None), ("generation_id", "int32", 0, None), ("member_id", "string", 0, None), ("group_instance_id", "nstring", 3, None)],
    LEAVE_GROUP: [
        ("group_id", "string", 0, None),
        ("member_id", "string", 0, 2),
        ("members", A([("member_id", "string", 3, None), ("group_instance_id", "nstring", 3, None)]), 3, None),
    ],
    OFFSET_COMMIT: [
        ("group_id", "string", 0, None),
        ("generation_id_or_member_epoch", "int32", 1, None),
        ("member_id", "string", 1, None),
        ("group_instance_id", "nstring", 7, None),
        ("retention_time_ms", "int64", 2, 4),
        (
            "topics",
            A([("name", "string", 0, None), ("partitions", A([("partition_index", "int32", 0, None), ("committed_offset", "int64", 0, None), ("committed_leader_epoch", "int32", 6, None), ("committed_metadata", "nstring", 0, None)]), 0, None)]),
            0,
            None,
        ),
    ],
    OFFSET_FETCH: [("group_id", "string", 0, 7), ("topics", NA([("name", "string", 0, None), ("partition_indexes", A("int32"), 0, None)]), 0, 7)],
    LIST_GROUPS: [],
    DESCRIBE_GROUPS: [("groups", A("string"), 0, None), ("include_authorized_operations", "bool", 3, None)],
    DELETE_GROUPS: [("groups_names", A("string"), 0, None)],
    OFFSET_DELETE: [("group_id", "string", 0, None), ("topics", A([("name", "string", 0, None), ("partitions", A([("partition_index", "int32", 0, None)]), 0, None)]), 0, None)],
    kproto.CREATE_TOPICS: [
        (
            "topics",
            A([
                ("name", "string", 0, None),
                ("num_partitions", "int32", 0, None),
                ("replication_factor", "int16", 0, None),
                ("assignments", A([("partition_index", "int32", 0, None), ("broker_ids", A("int32"), 0, None)]), 0, None),
                ("configs", A([("name", "string", 0, None), ("value", "nstring", 0, None)]), 0, None),
            ]),
            0,
            None,
        ),
        ("timeout_ms", "int32", 0, None),
        ("validate_only", "bool", 1, None),
    ],
    kproto.DELETE_TOPICS: [("topic_names", A("string"), 0, 5), ("timeout_ms", "int32", 0, None)],
    kproto.DESCRIBE_CONFIGS: [
        ("resources", A([("resource_type", "int8", 0, None), ("resource_name", "string", 0, None), ("configuration_keys", NA("string"), 0, None)]), 0, None),
        ("include_synonyms", "bool", 1, None),
        ("include_documentation", "bool", 3, None),
    ],
    kproto.ALTER_CONFIGS: [
        ("resources", A([("resource_type", "int8", 0, None), ("resource_name", "string", 0, None), ("configs", A([("name", "string", 0, None), ("value", "nstring", 0, None)]), 0, None)]), 0, None),
        ("validate_only", "bool", 0, None),
    ],
    kproto.CREATE_PARTITIONS: [
        ("topics", A([("name", "string", 0, None), ("count", "int32", 0, None), ("assignments", NA([("broker_ids", A("int32"), 0, None)]), 0, None)]), 0, None),
        ("timeout_ms", "int32", 0, None),
        ("validate_only", "bool", 0, None),
    ],
    kproto.INCREMENTAL_ALTER_CONFIGS: [
        (
            "resources",
            A([("resource_type", "int8", 0, None), ("resource_name", "string", 0, None), ("configs", A([("name", "string", 0, None), ("config_operation", "int8", 0, None), ("value", "nstring", 0, None)]), 0, None)]),
            0,
            None,
        ),
        ("validate_only", "bool", 0, None),
    ],
    DELETE_RECORDS: [
        ("topics", A([("name", "string", 0, None), ("partitions", A([("partition_index", "int32", 0, None), ("offset", "int64", 0, None)]), 0, None)]), 0, None),
        ("timeout_ms", "int32", 0, None),
    ],
    OFFSET_FOR_LEADER_EPOCH: [
        ("replica_id", "int32", 3, None),
        ("topics", A([("topic", "string", 0, None), ("partitions", A([("partition", "int32", 0, None), ("current_leader_epoch", "int32", 2, None), ("leader_epoch", "int32", 0, None)]), 0, None)]), 0, None),
    ],
    kproto.DESCRIBE_CLUSTER: [("include_cluster_authorized_operations", "bool", 0, None)],
    # Transactions (non-flexible versions; the two describe APIs are
    # flexible from v0).
    ADD_PARTITIONS_TO_TXN: [
        ("transactional_id", "string", 0, 3),
        ("producer_id", "int64", 0, 3),
        ("producer_epoch", "int16", 0, 3),
        ("topics", A([("name", "string", 0, None), ("partitions", A("int32"), 0, None)]), 0, 3),
    ],
    ADD_OFFSETS_TO_TXN: [("transactional_id", "string", 0, None), ("producer_id", "int64", 0, None), ("producer_epoch", "int16", 0, None), ("group_id", "string", 0, None)],
    END_TXN: [("transactional_id", "string", 0, None), ("producer_id", "int64", 0, None), ("producer_epoch", "int16", 0, None), ("committed", "bool", 0, None)],
    TXN_OFFSET_COMMIT: [
        ("transactional_id", "string", 0, None),
        ("group_id", "string", 0, None),
        ("producer_id", "int64", 0, None),
        ("producer_epoch", "int16", 0, None),
        ("topics", A([("name", "string", 0, None), ("partitions", A([("partition_index", "int32", 0, None), ("committed_offset", "int64", 0, None), ("committed_leader_epoch", "int32", 2, None), ("committed_metadata", "nstring", 0, None)]), 0, None)]), 0, None),
    ],
    DESCRIBE_TRANSACTIONS: [("transactional_ids", A("string"), 0, None)],
    LIST_TRANSACTIONS: [("state_filters", A("string"), 0, None), ("producer_id_filters", A("int64"), 0, None)],
}
FLEXIBLE = {kproto.DESCRIBE_CLUSTER, DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS}


def _request(api: int, version: int, correlation_id: int, values: dict) -> bytes:
    """Header + body of a group or admin request (no length prefix)."""
    flexible = api in FLEXIBLE
    header = kproto.request_header(api, version, correlation_id, "fuzz")
    if flexible and not kproto.is_flexible(api, version):
        header += kproto.uvarint(0)  # header v2: tagged fields
    return header + kproto.encode(GROUP_ADMIN_SCHEMAS[api], values, version, flexible)


def _group_admin_templates(topic: str, group: str) -> list[bytes]:
    sub = struct.pack(">hih", 0, 1, len(topic)) + topic.encode() + struct.pack(">i", -1)
    assign = struct.pack(">hih", 0, 1, len(topic)) + topic.encode() + struct.pack(">ii", 1, 0) + struct.pack(">i", -1)
    member = {"group_id": group, "generation_id": 1, "member_id": "m-1", "group_instance_id": None}
    parts = [{"name": topic, "partitions": [{"partition_index": 0, "committed_offset": 3, "committed_leader_epoch": -1, "committed_metadata": "m"}]}]
    out = []
    for v in (1, 2):
        out.append(_request(FIND_COORDINATOR, v, 10, {"key": group, "key_type": 0}))
    for v in (4, 5):
        # An unknown member joining with v4+ is answered at once (MEMBER_ID_REQUIRED).
        out.append(_request(JOIN_GROUP, v, 11, {"group_id": group, "session_timeout_ms": 10_000, "rebalance_timeout_ms": 30_000, "member_id": "", "group_instance_id": None, "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": sub}]}))
    for v in (1, 3):
        out.append(_request(SYNC_GROUP, v, 12, dict(member, assignments=[{"member_id": "m-1", "assignment": assign}])))
        out.append(_request(HEARTBEAT, v, 13, member))
    out.append(_request(LEAVE_GROUP, 1, 14, {"group_id": group, "member_id": "m-1"}))
    out.append(_request(LEAVE_GROUP, 3, 14, {"group_id": group, "members": [{"member_id": "m-1", "group_instance_id": None}]}))
    for v in (2, 7):
        # generation -1 and no member: a commit outside the group protocol.
        out.append(_request(OFFSET_COMMIT, v, 15, {"group_id": group, "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None, "retention_time_ms": -1, "topics": parts}))
    for v in (1, 5):
        out.append(_request(OFFSET_FETCH, v, 16, {"group_id": group, "topics": [{"name": topic, "partition_indexes": [0, 1]}]}))
    for v in (0, 2):
        out.append(_request(LIST_GROUPS, v, 17, {}))
    for v in (0, 4):
        out.append(_request(DESCRIBE_GROUPS, v, 18, {"groups": [group, "other"], "include_authorized_operations": True}))
    out.append(_request(DELETE_GROUPS, 1, 19, {"groups_names": ["no-such-group"]}))
    out.append(_request(OFFSET_DELETE, 0, 20, {"group_id": group, "topics": [{"name": topic, "partitions": [{"partition_index": 0}]}]}))
    # Admin APIs (validate_only where there is one, so a template itself changes nothing).
    for v in (2, 4):
        out.append(_request(kproto.CREATE_TOPICS, v, 21, {"topics": [{"name": topic + "-new", "num_partitions": 3, "replication_factor": -1, "assignments": [], "configs": [{"name": "cleanup.policy", "value": "compact"}]}], "timeout_ms": 10_000, "validate_only": True}))
    for v in (1, 3):
        out.append(_request(kproto.DELETE_TOPICS, v, 22, {"topic_names": ["no-such-topic"], "timeout_ms": 10_000}))
    for v in (1, 3):
        out.append(_request(kproto.DESCRIBE_CONFIGS, v, 23, {"resources": [{"resource_type": 2, "resource_name": topic, "configuration_keys": None}, {"resource_type": 4, "resource_name": "1", "configuration_keys": ["log.retention.ms"]}], "include_synonyms": True, "include_documentation": True}))
    out.append(_request(kproto.ALTER_CONFIGS, 1, 24, {"resources": [{"resource_type": 2, "resource_name": topic, "configs": [{"name": "retention.ms", "value": "86400000"}]}], "validate_only": True}))
    out.append(_request(kproto.CREATE_PARTITIONS, 1, 25, {"topics": [{"name": topic, "count": 2, "assignments": None}], "timeout_ms": 10_000, "validate_only": True}))
    out.append(_request(kproto.INCREMENTAL_ALTER_CONFIGS, 0, 26, {"resources": [{"resource_type": 2, "resource_name": topic, "configs": [{"name": "retention.ms", "config_operation": 0, "value": "86400000"}]}], "validate_only": True}))
    out.append(_request(DELETE_RECORDS, 1, 27, {"topics": [{"name": topic, "partitions": [{"partition_index": 0, "offset": 0}]}], "timeout_ms": 10_000}))
    for v in (2, 3):
        out.append(_request(OFFSET_FOR_LEADER_EPOCH, v, 28, {"replica_id": -1, "topics": [{"topic": topic, "partitions": [{"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}]}]}))
    out.append(_request(kproto.DESCRIBE_CLUSTER, 0, 29, {"include_cluster_authorized_operations": False}))
    # Transactions of an id that was never initialized: answered with an
    # error (the templates must not open anything), mutated into the rest.
    tid = group + "-tid"
    for v in (0, 2):
        out.append(_request(ADD_PARTITIONS_TO_TXN, v, 30, {"transactional_id": tid, "producer_id": 7, "producer_epoch": 0, "topics": [{"name": topic, "partitions": [0]}]}))
        out.append(_request(ADD_OFFSETS_TO_TXN, v, 31, {"transactional_id": tid, "producer_id": 7, "producer_epoch": 0, "group_id": group}))
        out.append(_request(END_TXN, v, 32, {"transactional_id": tid, "producer_id": 7, "producer_epoch": 0, "committed": True}))
        out.append(_request(TXN_OFFSET_COMMIT, v, 33, {"transactional_id": tid, "group_id": group, "producer_id": 7, "producer_epoch": 0, "topics": parts}))
    out.append(_request(DESCRIBE_TRANSACTIONS, 0, 34, {"transactional_ids": [tid, "other"]}))
    out.append(_request(LIST_TRANSACTIONS, 0, 35, {"state_filters": ["Ongoing"], "producer_id_filters": []}))
    return out


def _templates(topic: str, pid: int, group: str) -> list[bytes]:
    """Valid request payloads (header + body, no length prefix) to mutate:
    the data path, group coordination and admin APIs."""
    ts = FIXED_TS

    batch = kproto.record_batch([kproto.Record(b"k%d" % i, b"v" * i, [("h", b"x")], ts + i) for i in range(4)])
    idem = kproto.record_batch([kproto.Record(b"k", b"v", timestamp=ts)], producer_id=pid, producer_epoch=0, base_sequence=0)
    out = []
    for v in (0, 1, 2, 3):
        out.append(kproto.encode_request(kproto.API_VERSIONS, v, 1, {"client_software_name": "fz", "client_software_version": "1"}))
    for v in (1, 4, 9, 12):
        out.append(kproto.encode_request(kproto.METADATA, v, 2, {"topics": [{"name": topic}], "allow_auto_topic_creation": False}))
    for v in (3, 7, 9):
        for records in (batch, idem):
            out.append(
                kproto.encode_request(
                    kproto.PRODUCE, v, 3, {"acks": 1, "timeout_ms": 1000, "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records}]}]}
                )
            )
    for v in (4, 11, 12):
        out.append(
            kproto.encode_request(
                kproto.FETCH,
                v,
                4,
                {
                    "replica_id": -1,
                    "max_wait_ms": 0,
                    "min_bytes": 1,
                    "max_bytes": 1 << 16,
                    "session_epoch": -1,
                    "topics": [{"topic": topic, "partitions": [{"partition": 0, "fetch_offset": 0, "current_leader_epoch": -1, "log_start_offset": -1, "partition_max_bytes": 1 << 16}]}],
                },
            )
        )
    for v in (1, 6):
        out.append(kproto.encode_request(kproto.LIST_OFFSETS, v, 5, {"replica_id": -1, "topics": [{"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}]}))
    out.append(kproto.encode_request(kproto.INIT_PRODUCER_ID, 0, 6, {"transactional_id": None, "transaction_timeout_ms": 1000}))
    return out + _group_admin_templates(topic, group)


def _mutate(rng: random.Random, tmpl: bytes) -> bytes:
    """One fuzzed frame, length prefix included."""
    data = bytearray(tmpl)
    kind = rng.randrange(8)
    if kind == 0:  # flip a few bytes
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # random bytes in the body
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 2:  # truncate, length prefix tells the truth
        data = data[: rng.randrange(len(data))]
    elif kind == 3:  # large values in length/count positions
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(max(1, len(data) - 4))
            struct.pack_into(">i", data, pos, rng.choice([-2, -1, 0x7FFFFFFF, 0x40000000, 1 << 20, 65535]))
    elif kind == 4:  # random api key / version
        struct.pack_into(">hh", data, 0, rng.choice([rng.randrange(-5, 100), rng.randrange(-32768, 32767)]), rng.choice([rng.randrange(-2, 20), rng.randrange(-32768, 32767)]))
    elif kind == 5:  # insert garbage
        pos = rng.randrange(len(data))
        data[pos:pos] = rng.randbytes(rng.randint(1, 64))
    elif kind == 6:  # pure noise
        data = bytearray(rng.randbytes(rng.randint(0, 300)))
    else:  # varint-heavy garbage: long continuation runs
        pos = rng.randrange(len(data))
        data[pos:pos] = b"\xff" * rng.randint(5, 40)
    # The length prefix: usually honest, sometimes not.
    r = rng.random()
    if r < 0.8:
        prefix = len(data)
    elif r < 0.9:
        prefix = len(data) + rng.randint(1, 100)  # announces more than sent
    else:
        prefix = max(0, len(data) - rng.randint(1, 10))  # announces less: the rest is read as the next frame
    return struct.pack(">i", prefix) + bytes(data)


def test_fuzz_frames(broker):
    seed = int(os.environ.get("STRATA_FUZZ_SEED") or DEFAULT_FUZZ_SEED)
    print(f"fuzz: seed={seed} (STRATA_FUZZ_SEED overrides)")
    rng = random.Random(seed)
    # Names of fixed length: the same seed mutates the same positions.
    topic, group = f"fuzz-{seed}", f"fuzz-group-{seed}"
    create_topic(broker.bootstrap, topic, 1)
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        pid, _ = c.init_producer_id()
    templates = _templates(topic, pid, group)
    # Every template is a valid request the broker answers (else the fuzzer
    # would mutate garbage): one at a time, each on its own connection.
    for t in templates:
        corr = struct.unpack_from(">i", t, 4)[0]
        with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
            c.send_raw(kproto.frame(t))
            frame = c.recv_frame()
        api, version = struct.unpack_from(">hh", t, 0)
        assert struct.unpack_from(">i", frame, 0)[0] == corr, f"template {kproto.API_NAMES.get(api, api)} v{version}: wrong correlation id"
    apis = {struct.unpack_from(">h", t, 0)[0] for t in templates}
    assert {kproto.PRODUCE, JOIN_GROUP, SYNC_GROUP, OFFSET_COMMIT, kproto.CREATE_TOPICS, kproto.INCREMENTAL_ALTER_CONFIGS, END_TXN, TXN_OFFSET_COMMIT, LIST_TRANSACTIONS} <= apis
    frames_total = 20_000
    per_conn = 10
    sent = 0
    conns = 0
    closed_by_broker = 0
    t_end = time.monotonic() + 45
    while sent < frames_total and time.monotonic() < t_end:
        s = connect(broker)
        conns += 1
        s.settimeout(0.5)
        try:
            for _ in range(rng.randint(1, per_conn)):
                s.sendall(_mutate(rng, rng.choice(templates)))
                sent += 1
            # Read whatever comes back without waiting long; the broker may
            # answer, wait for more bytes, or close.
            s.settimeout(0.02)
            try:
                while s.recv(65536):
                    pass
                closed_by_broker += 1
            except socket.timeout:
                pass
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            closed_by_broker += 1
        finally:
            s.close()
        if sent % 1000 < per_conn and not broker.alive():
            break
    print(f"fuzz: seed={seed} templates={len(templates)} apis={len(apis)} frames={sent} connections={conns} closed by broker={closed_by_broker}")
    assert broker.alive(), f"broker died during fuzzing (STRATA_FUZZ_SEED={seed}), exit {broker.proc.returncode}\n{broker.log_tail()}"
    assert sent >= 1000, f"only {sent} frames in 45 s"
    try:
        broker.assert_no_panic()
    except AssertionError as e:
        raise AssertionError(f"STRATA_FUZZ_SEED={seed}: {e}") from None
    assert_serves(broker)
    assert_real_client_works(broker)
