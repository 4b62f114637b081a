"""A small hand-written Kafka wire-protocol codec for the end-to-end tests.

Real clients (librdkafka, kafka-python) hide the bytes; the tests that need
exact control over a request (duplicate idempotent batches, corrupt CRCs,
lying length prefixes, fuzzing) use this module instead. It covers only the
APIs and versions the tests send, both non-flexible and flexible (compact)
encodings, and Kafka RecordBatch v2 (magic 2) without compression.

Schemas are lists of ``(name, type, min_version, max_version)``; ``type`` is a
primitive name or ``("array", schema_or_primitive)`` / ``("narray", ...)``.
"""

from __future__ import annotations

import io
import socket
import struct
import time
from dataclasses import dataclass, field

# --------------------------------------------------------------------------
# API keys and error codes used by the tests

PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
API_VERSIONS = 18
CREATE_TOPICS = 19
DELETE_TOPICS = 20
INIT_PRODUCER_ID = 22
DESCRIBE_CONFIGS = 32
ALTER_CONFIGS = 33
CREATE_PARTITIONS = 37
INCREMENTAL_ALTER_CONFIGS = 44
DESCRIBE_CLUSTER = 60
DESCRIBE_LOG_DIRS = 35
ELECT_LEADERS = 43
ALTER_PARTITION_REASSIGNMENTS = 45
LIST_PARTITION_REASSIGNMENTS = 46
DESCRIBE_PRODUCERS = 61
DESCRIBE_TOPIC_PARTITIONS = 75

API_NAMES = {
    PRODUCE: "Produce",
    FETCH: "Fetch",
    LIST_OFFSETS: "ListOffsets",
    METADATA: "Metadata",
    API_VERSIONS: "ApiVersions",
    CREATE_TOPICS: "CreateTopics",
    DELETE_TOPICS: "DeleteTopics",
    INIT_PRODUCER_ID: "InitProducerId",
    DESCRIBE_CONFIGS: "DescribeConfigs",
    ALTER_CONFIGS: "AlterConfigs",
    CREATE_PARTITIONS: "CreatePartitions",
    INCREMENTAL_ALTER_CONFIGS: "IncrementalAlterConfigs",
    DESCRIBE_CLUSTER: "DescribeCluster",
    DESCRIBE_LOG_DIRS: "DescribeLogDirs",
    ELECT_LEADERS: "ElectLeaders",
    ALTER_PARTITION_REASSIGNMENTS: "AlterPartitionReassignments",
    LIST_PARTITION_REASSIGNMENTS: "ListPartitionReassignments",
    DESCRIBE_PRODUCERS: "DescribeProducers",
    DESCRIBE_TOPIC_PARTITIONS: "DescribeTopicPartitions",
}

NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
UNSUPPORTED_VERSION = 35
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
DUPLICATE_SEQUENCE_NUMBER = 46

# First version of each API that uses the flexible ("compact") encoding.
FLEXIBLE_FROM = {
    PRODUCE: 9,
    FETCH: 12,
    LIST_OFFSETS: 6,
    METADATA: 9,
    API_VERSIONS: 3,
    INIT_PRODUCER_ID: 2,
    DESCRIBE_LOG_DIRS: 2,
    ELECT_LEADERS: 2,
    ALTER_PARTITION_REASSIGNMENTS: 0,
    LIST_PARTITION_REASSIGNMENTS: 0,
    DESCRIBE_PRODUCERS: 0,
    DESCRIBE_TOPIC_PARTITIONS: 0,
}

# --------------------------------------------------------------------------
# primitives


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(n: int) -> bytes:
    """Signed zig-zag varint/varlong as used inside records."""
    return uvarint((n << 1) ^ (n >> 63))


class Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"short read: want {n} bytes at {self.pos}, have {self.remaining()}")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))[0]

    def uvarint(self) -> int:
        shift = 0
        result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def varint(self) -> int:
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)


_FIXED = {"int8": ">b", "int16": ">h", "int32": ">i", "int64": ">q", "uint32": ">I"}


def _enc_value(buf: io.BytesIO, typ, value, version: int, flexible: bool) -> None:
    if isinstance(typ, tuple) and typ[0] == "nstruct":
        # A nullable struct: int8 -1 for null, 1 then the struct.
        if value is None:
            buf.write(struct.pack(">b", -1))
        else:
            buf.write(struct.pack(">b", 1))
            _enc_struct(buf, typ[1], value, version, flexible)
        return
    if isinstance(typ, tuple):
        kind, inner = typ
        if value is None:
            if kind != "narray":
                raise ValueError("null for non-nullable array")
            buf.write(uvarint(0) if flexible else struct.pack(">i", -1))
            return
        buf.write(uvarint(len(value) + 1) if flexible else struct.pack(">i", len(value)))
        for item in value:
            if isinstance(inner, list):
                _enc_struct(buf, inner, item, version, flexible)
            else:
                _enc_value(buf, inner, item, version, flexible)
        return
    if typ in _FIXED:
        buf.write(struct.pack(_FIXED[typ], value))
    elif typ == "bool":
        buf.write(b"\x01" if value else b"\x00")
    elif typ == "uuid":
        buf.write(value if value is not None else b"\x00" * 16)
    elif typ in ("string", "nstring"):
        if value is None:
            if typ != "nstring":
                raise ValueError("null for non-nullable string")
            buf.write(uvarint(0) if flexible else struct.pack(">h", -1))
            return
        raw = value.encode() if isinstance(value, str) else value
        buf.write(uvarint(len(raw) + 1) if flexible else struct.pack(">h", len(raw)))
        buf.write(raw)
    elif typ in ("bytes", "nbytes"):
        if value is None:
            if typ != "nbytes":
                raise ValueError("null for non-nullable bytes")
            buf.write(uvarint(0) if flexible else struct.pack(">i", -1))
            return
        buf.write(uvarint(len(value) + 1) if flexible else struct.pack(">i", len(value)))
        buf.write(value)
    else:
        raise ValueError(f"unknown type {typ}")


def _in_range(version: int, lo: int, hi: int | None) -> bool:
    return version >= lo and (hi is None or version <= hi)


def _enc_struct(buf: io.BytesIO, schema, values: dict, version: int, flexible: bool) -> None:
    for name, typ, lo, hi in schema:
        if not _in_range(version, lo, hi):
            continue
        _enc_value(buf, typ, values.get(name, _default(typ)), version, flexible)
    if flexible:
        buf.write(uvarint(0))  # no tagged fields


def _default(typ):
    if isinstance(typ, tuple) and typ[0] == "nstruct":
        return None
    if isinstance(typ, tuple):
        return []
    if typ in _FIXED:
        return 0
    if typ == "bool":
        return False
    if typ in ("nstring", "nbytes"):
        return None
    if typ == "string":
        return ""
    if typ == "bytes":
        return b""
    if typ == "uuid":
        return None
    raise ValueError(typ)


def _dec_value(r: Reader, typ, version: int, flexible: bool):
    if isinstance(typ, tuple) and typ[0] == "nstruct":
        if r.unpack(">b") < 0:
            return None
        return _dec_struct(r, typ[1], version, flexible)
    if isinstance(typ, tuple):
        kind, inner = typ
        n = (r.uvarint() - 1) if flexible else r.unpack(">i")
        if n < 0:
            return None
        if n > r.remaining():
            raise ValueError(f"array length {n} exceeds the {r.remaining()} bytes left")
        out = []
        for _ in range(n):
            if isinstance(inner, list):
                out.append(_dec_struct(r, inner, version, flexible))
            else:
                out.append(_dec_value(r, inner, version, flexible))
        return out
    if typ in _FIXED:
        return r.unpack(_FIXED[typ])
    if typ == "bool":
        return r.take(1) != b"\x00"
    if typ == "uuid":
        return r.take(16)
    if typ in ("string", "nstring"):
        n = (r.uvarint() - 1) if flexible else r.unpack(">h")
        if n < 0:
            return None
        return r.take(n).decode("utf-8", "replace")
    if typ in ("bytes", "nbytes"):
        n = (r.uvarint() - 1) if flexible else r.unpack(">i")
        if n < 0:
            return None
        return r.take(n)
    raise ValueError(f"unknown type {typ}")


def _skip_tagged(r: Reader) -> dict:
    tags = {}
    for _ in range(r.uvarint()):
        tag = r.uvarint()
        size = r.uvarint()
        tags[tag] = r.take(size)
    return tags


def _dec_struct(r: Reader, schema, version: int, flexible: bool) -> dict:
    out = {}
    for name, typ, lo, hi in schema:
        if not _in_range(version, lo, hi):
            continue
        out[name] = _dec_value(r, typ, version, flexible)
    if flexible:
        out["_tagged"] = _skip_tagged(r)
    return out


def encode(schema, values: dict, version: int, flexible: bool) -> bytes:
    buf = io.BytesIO()
    _enc_struct(buf, schema, values, version, flexible)
    return buf.getvalue()


def decode(schema, data: bytes, version: int, flexible: bool) -> dict:
    r = Reader(data)
    out = _dec_struct(r, schema, version, flexible)
    return out


# --------------------------------------------------------------------------
# schemas (from Kafka's message JSON definitions, only the versions we send)

A = lambda inner: ("array", inner)  # noqa: E731
NA = lambda inner: ("narray", inner)  # noqa: E731

SCHEMAS = {
    API_VERSIONS: (
        [
            ("client_software_name", "string", 3, None),
            ("client_software_version", "string", 3, None),
        ],
        [
            ("error_code", "int16", 0, None),
            ("api_keys", A([("api_key", "int16", 0, None), ("min_version", "int16", 0, None), ("max_version", "int16", 0, None)]), 0, None),
            ("throttle_time_ms", "int32", 1, None),
        ],
        (0, 3),
    ),
    METADATA: (
        [
            ("topics", NA([("topic_id", "uuid", 10, None), ("name", "nstring", 0, None)]), 0, None),
            ("allow_auto_topic_creation", "bool", 4, None),
            ("include_cluster_authorized_operations", "bool", 8, 10),
            ("include_topic_authorized_operations", "bool", 8, None),
        ],
        [
            ("throttle_time_ms", "int32", 3, None),
            ("brokers", A([("node_id", "int32", 0, None), ("host", "string", 0, None), ("port", "int32", 0, None), ("rack", "nstring", 1, None)]), 0, None),
            ("cluster_id", "nstring", 2, None),
            ("controller_id", "int32", 1, None),
            (
                "topics",
                A(
                    [
                        ("error_code", "int16", 0, None),
                        ("name", "nstring", 0, None),
                        ("topic_id", "uuid", 10, None),
                        ("is_internal", "bool", 1, None),
                        (
                            "partitions",
                            A(
                                [
                                    ("error_code", "int16", 0, None),
                                    ("partition_index", "int32", 0, None),
                                    ("leader_id", "int32", 0, None),
                                    ("leader_epoch", "int32", 7, None),
                                    ("replica_nodes", A("int32"), 0, None),
                                    ("isr_nodes", A("int32"), 0, None),
                                    ("offline_replicas", A("int32"), 5, None),
                                ]
                            ),
                            0,
                            None,
                        ),
                        ("topic_authorized_operations", "int32", 8, None),
                    ]
                ),
                0,
                None,
            ),
            ("cluster_authorized_operations", "int32", 8, 10),
            ("error_code", "int16", 13, None),
        ],
        (1, 12),
    ),
    INIT_PRODUCER_ID: (
        [
            ("transactional_id", "nstring", 0, None),
            ("transaction_timeout_ms", "int32", 0, None),
            ("producer_id", "int64", 3, None),
            ("producer_epoch", "int16", 3, None),
        ],
        [
            ("throttle_time_ms", "int32", 0, None),
            ("error_code", "int16", 0, None),
            ("producer_id", "int64", 0, None),
            ("producer_epoch", "int16", 0, None),
        ],
        (0, 4),
    ),
    PRODUCE: (
        [
            ("transactional_id", "nstring", 3, None),
            ("acks", "int16", 0, None),
            ("timeout_ms", "int32", 0, None),
            ("topic_data", A([("name", "string", 0, 12), ("partition_data", A([("index", "int32", 0, None), ("records", "nbytes", 0, None)]), 0, None)]), 0, None),
        ],
        [
            (
                "responses",
                A(
                    [
                        ("name", "string", 0, 12),
                        (
                            "partition_responses",
                            A(
                                [
                                    ("index", "int32", 0, None),
                                    ("error_code", "int16", 0, None),
                                    ("base_offset", "int64", 0, None),
                                    ("log_append_time_ms", "int64", 2, None),
                                    ("log_start_offset", "int64", 5, None),
                                    ("record_errors", A([("batch_index", "int32", 8, None), ("batch_index_error_message", "nstring", 8, None)]), 8, None),
                                    ("error_message", "nstring", 8, None),
                                ]
                            ),
                            0,
                            None,
                        ),
                    ]
                ),
                0,
                None,
            ),
            ("throttle_time_ms", "int32", 1, None),
        ],
        (3, 12),
    ),
    FETCH: (
        [
            ("replica_id", "int32", 0, 14),
            ("max_wait_ms", "int32", 0, None),
            ("min_bytes", "int32", 0, None),
            ("max_bytes", "int32", 3, None),
            ("isolation_level", "int8", 4, None),
            ("session_id", "int32", 7, None),
            ("session_epoch", "int32", 7, None),
            (
                "topics",
                A(
                    [
                        ("topic", "string", 0, 12),
                        (
                            "partitions",
                            A(
                                [
                                    ("partition", "int32", 0, None),
                                    ("current_leader_epoch", "int32", 9, None),
                                    ("fetch_offset", "int64", 0, None),
                                    ("last_fetched_epoch", "int32", 12, None),
                                    ("log_start_offset", "int64", 5, None),
                                    ("partition_max_bytes", "int32", 0, None),
                                ]
                            ),
                            0,
                            None,
                        ),
                    ]
                ),
                0,
                None,
            ),
            ("forgotten_topics_data", A([("topic", "string", 7, 12), ("partitions", A("int32"), 7, None)]), 7, None),
            ("rack_id", "string", 11, None),
        ],
        [
            ("throttle_time_ms", "int32", 1, None),
            ("error_code", "int16", 7, None),
            ("session_id", "int32", 7, None),
            (
                "responses",
                A(
                    [
                        ("topic", "string", 0, 12),
                        (
                            "partitions",
                            A(
                                [
                                    ("partition_index", "int32", 0, None),
                                    ("error_code", "int16", 0, None),
                                    ("high_watermark", "int64", 0, None),
                                    ("last_stable_offset", "int64", 4, None),
                                    ("log_start_offset", "int64", 5, None),
                                    ("aborted_transactions", NA([("producer_id", "int64", 4, None), ("first_offset", "int64", 4, None)]), 4, None),
                                    ("preferred_read_replica", "int32", 11, None),
                                    ("records", "nbytes", 0, None),
                                ]
                            ),
                            0,
                            None,
                        ),
                    ]
                ),
                0,
                None,
            ),
        ],
        (4, 12),
    ),
    LIST_OFFSETS: (
        [
            ("replica_id", "int32", 0, None),
            ("isolation_level", "int8", 2, None),
            (
                "topics",
                A([("name", "string", 0, None), ("partitions", A([("partition_index", "int32", 0, None), ("current_leader_epoch", "int32", 4, None), ("timestamp", "int64", 0, None)]), 0, None)]),
                0,
                None,
            ),
        ],
        [
            ("throttle_time_ms", "int32", 2, None),
            (
                "topics",
                A(
                    [
                        ("name", "string", 0, None),
                        (
                            "partitions",
                            A(
                                [
                                    ("partition_index", "int32", 0, None),
                                    ("error_code", "int16", 0, None),
                                    ("timestamp", "int64", 1, None),
                                    ("offset", "int64", 1, None),
                                    ("leader_epoch", "int32", 4, None),
                                ]
                            ),
                            0,
                            None,
                        ),
                    ]
                ),
                0,
                None,
            ),
        ],
        (1, 7),
    ),
}

_CURSOR = ("nstruct", [("topic_name", "string", 0, None), ("partition_index", "int32", 0, None)])
SCHEMAS.update(
    {
        DESCRIBE_TOPIC_PARTITIONS: (
            [("topics", A([("name", "string", 0, None)]), 0, None), ("response_partition_limit", "int32", 0, None), ("cursor", _CURSOR, 0, None)],
            [
                ("throttle_time_ms", "int32", 0, None),
                (
                    "topics",
                    A(
                        [
                            ("error_code", "int16", 0, None),
                            ("name", "nstring", 0, None),
                            ("topic_id", "uuid", 0, None),
                            ("is_internal", "bool", 0, None),
                            (
                                "partitions",
                                A(
                                    [
                                        ("error_code", "int16", 0, None),
                                        ("partition_index", "int32", 0, None),
                                        ("leader_id", "int32", 0, None),
                                        ("leader_epoch", "int32", 0, None),
                                        ("replica_nodes", A("int32"), 0, None),
                                        ("isr_nodes", A("int32"), 0, None),
                                        ("eligible_leader_replicas", NA("int32"), 0, None),
                                        ("last_known_elr", NA("int32"), 0, None),
                                        ("offline_replicas", A("int32"), 0, None),
                                    ]
                                ),
                                0,
                                None,
                            ),
                            ("topic_authorized_operations", "int32", 0, None),
                        ]
                    ),
                    0,
                    None,
                ),
                ("next_cursor", _CURSOR, 0, None),
            ],
            (0, 0),
        ),
        DESCRIBE_PRODUCERS: (
            [("topics", A([("name", "string", 0, None), ("partition_indexes", A("int32"), 0, None)]), 0, None)],
            [
                ("throttle_time_ms", "int32", 0, None),
                (
                    "topics",
                    A(
                        [
                            ("name", "string", 0, None),
                            (
                                "partitions",
                                A(
                                    [
                                        ("partition_index", "int32", 0, None),
                                        ("error_code", "int16", 0, None),
                                        ("error_message", "nstring", 0, None),
                                        (
                                            "active_producers",
                                            A(
                                                [
                                                    ("producer_id", "int64", 0, None),
                                                    ("producer_epoch", "int32", 0, None),
                                                    ("last_sequence", "int32", 0, None),
                                                    ("last_timestamp", "int64", 0, None),
                                                    ("coordinator_epoch", "int32", 0, None),
                                                    ("current_txn_start_offset", "int64", 0, None),
                                                ]
                                            ),
                                            0,
                                            None,
                                        ),
                                    ]
                                ),
                                0,
                                None,
                            ),
                        ]
                    ),
                    0,
                    None,
                ),
            ],
            (0, 0),
        ),
        DESCRIBE_LOG_DIRS: (
            [("topics", NA([("topic", "string", 0, None), ("partitions", A("int32"), 0, None)]), 0, None)],
            [
                ("throttle_time_ms", "int32", 0, None),
                ("error_code", "int16", 3, None),
                (
                    "results",
                    A(
                        [
                            ("error_code", "int16", 0, None),
                            ("log_dir", "string", 0, None),
                            (
                                "topics",
                                A(
                                    [
                                        ("name", "string", 0, None),
                                        (
                                            "partitions",
                                            A([("partition_index", "int32", 0, None), ("partition_size", "int64", 0, None), ("offset_lag", "int64", 0, None), ("is_future_key", "bool", 0, None)]),
                                            0,
                                            None,
                                        ),
                                    ]
                                ),
                                0,
                                None,
                            ),
                            ("total_bytes", "int64", 4, None),
                            ("usable_bytes", "int64", 4, None),
                        ]
                    ),
                    0,
                    None,
                ),
            ],
            (1, 4),
        ),
        ELECT_LEADERS: (
            [("election_type", "int8", 1, None), ("topic_partitions", NA([("topic", "string", 0, None), ("partitions", A("int32"), 0, None)]), 0, None), ("timeout_ms", "int32", 0, None)],
            [
                ("throttle_time_ms", "int32", 0, None),
                ("error_code", "int16", 1, None),
                (
                    "replica_election_results",
                    A([("topic", "string", 0, None), ("partition_result", A([("partition_id", "int32", 0, None), ("error_code", "int16", 0, None), ("error_message", "nstring", 0, None)]), 0, None)]),
                    0,
                    None,
                ),
            ],
            (0, 2),
        ),
        LIST_PARTITION_REASSIGNMENTS: (
            [("timeout_ms", "int32", 0, None), ("topics", NA([("name", "string", 0, None), ("partition_indexes", A("int32"), 0, None)]), 0, None)],
            [
                ("throttle_time_ms", "int32", 0, None),
                ("error_code", "int16", 0, None),
                ("error_message", "nstring", 0, None),
                (
                    "topics",
                    A(
                        [
                            ("name", "string", 0, None),
                            (
                                "partitions",
                                A([("partition_index", "int32", 0, None), ("replicas", A("int32"), 0, None), ("adding_replicas", A("int32"), 0, None), ("removing_replicas", A("int32"), 0, None)]),
                                0,
                                None,
                            ),
                        ]
                    ),
                    0,
                    None,
                ),
            ],
            (0, 0),
        ),
        ALTER_PARTITION_REASSIGNMENTS: (
            [
                ("timeout_ms", "int32", 0, None),
                ("allow_replication_factor_change", "bool", 1, None),
                ("topics", A([("name", "string", 0, None), ("partitions", A([("partition_index", "int32", 0, None), ("replicas", NA("int32"), 0, None)]), 0, None)]), 0, None),
            ],
            [
                ("throttle_time_ms", "int32", 0, None),
                ("allow_replication_factor_change", "bool", 1, None),
                ("error_code", "int16", 0, None),
                ("error_message", "nstring", 0, None),
                (
                    "responses",
                    A([("name", "string", 0, None), ("partitions", A([("partition_index", "int32", 0, None), ("error_code", "int16", 0, None), ("error_message", "nstring", 0, None)]), 0, None)]),
                    0,
                    None,
                ),
            ],
            (0, 1),
        ),
    }
)


def is_flexible(api_key: int, version: int) -> bool:
    lo = FLEXIBLE_FROM.get(api_key)
    return lo is not None and version >= lo


def request_header(api_key: int, version: int, correlation_id: int, client_id: str | None = "strata-e2e") -> bytes:
    # Header v1: client_id is a classic nullable string even in flexible
    # versions; header v2 only appends the tagged-field section.
    buf = io.BytesIO()
    buf.write(struct.pack(">hhi", api_key, version, correlation_id))
    _enc_value(buf, "nstring", client_id, version, flexible=False)
    if is_flexible(api_key, version):
        buf.write(uvarint(0))
    return buf.getvalue()


def encode_request(api_key: int, version: int, correlation_id: int, values: dict, client_id: str | None = "strata-e2e") -> bytes:
    """Header + body, without the 4-byte length prefix."""
    req_schema = SCHEMAS[api_key][0]
    return request_header(api_key, version, correlation_id, client_id) + encode(req_schema, values, version, is_flexible(api_key, version))


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def decode_response(api_key: int, version: int, payload: bytes) -> tuple[int, dict]:
    """Returns (correlation_id, body)."""
    r = Reader(payload)
    correlation_id = r.unpack(">i")
    flexible = is_flexible(api_key, version)
    # ApiVersions responses always use response header v0 (no tagged fields).
    if flexible and api_key != API_VERSIONS:
        _skip_tagged(r)
    body = _dec_struct(r, SCHEMAS[api_key][1], version, flexible)
    if r.remaining():
        raise ValueError(f"{API_NAMES.get(api_key, api_key)} v{version} response has {r.remaining()} trailing bytes")
    return correlation_id, body


# --------------------------------------------------------------------------
# RecordBatch v2

_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    headers: list = field(default_factory=list)  # [(str, bytes|None)]
    timestamp: int = 0
    offset: int = 0


def _enc_record(offset_delta: int, ts_delta: int, rec: Record) -> bytes:
    body = io.BytesIO()
    body.write(b"\x00")  # attributes
    body.write(varint(ts_delta))
    body.write(varint(offset_delta))
    for part in (rec.key, rec.value):
        if part is None:
            body.write(varint(-1))
        else:
            body.write(varint(len(part)))
            body.write(part)
    body.write(varint(len(rec.headers)))
    for hk, hv in rec.headers:
        hkb = hk.encode()
        body.write(varint(len(hkb)))
        body.write(hkb)
        if hv is None:
            body.write(varint(-1))
        else:
            body.write(varint(len(hv)))
            body.write(hv)
    b = body.getvalue()
    return varint(len(b)) + b


def record_batch(
    records: list[Record],
    base_offset: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    attributes: int = 0,
    partition_leader_epoch: int = -1,
) -> bytes:
    """Encode an uncompressed RecordBatch v2 with a correct CRC32C."""
    if not records:
        raise ValueError("empty batch")
    base_ts = records[0].timestamp
    max_ts = max(r.timestamp for r in records)
    recs = b"".join(_enc_record(i, r.timestamp - base_ts, r) for i, r in enumerate(records))
    after_crc = (
        struct.pack(">hiqqqhii", attributes, len(records) - 1, base_ts, max_ts, producer_id, producer_epoch, base_sequence, len(records))
        + recs
    )
    crc = crc32c(after_crc)
    # batchLength counts from partitionLeaderEpoch to the end.
    batch_len = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", base_offset, batch_len, partition_leader_epoch, 2, crc) + after_crc


@dataclass
class Batch:
    base_offset: int
    last_offset_delta: int
    attributes: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    crc_ok: bool
    records: list


def parse_batches(data: bytes | None) -> list[Batch]:
    """Parse RecordBatch v2 batches; a trailing partial batch is ignored
    (brokers may cut the last batch at the fetch size limit)."""
    out: list[Batch] = []
    if not data:
        return out
    pos = 0
    while pos + 12 <= len(data):
        base_offset, batch_len = struct.unpack_from(">qi", data, pos)
        end = pos + 12 + batch_len
        if end > len(data):
            break
        r = Reader(data[pos + 12 : end])
        r.unpack(">i")  # partition leader epoch
        magic = r.unpack(">b")
        if magic != 2:
            raise ValueError(f"batch at offset {base_offset} has magic {magic}")
        crc = r.unpack(">I")
        crc_ok = crc32c(r.data[r.pos :]) == crc
        attributes, last_delta, base_ts, _max_ts, pid, epoch, base_seq, count = struct.unpack(">hiqqqhii", r.take(40))
        records = []
        if attributes & 0x07:
            records = None  # compressed: not decoded here
        else:
            for _ in range(count):
                length = r.varint()
                rr = Reader(r.take(length))
                rr.take(1)
                ts_delta = rr.varint()
                off_delta = rr.varint()
                kl = rr.varint()
                key = None if kl < 0 else rr.take(kl)
                vl = rr.varint()
                value = None if vl < 0 else rr.take(vl)
                headers = []
                for _h in range(rr.varint()):
                    hkl = rr.varint()
                    hk = rr.take(hkl).decode()
                    hvl = rr.varint()
                    headers.append((hk, None if hvl < 0 else rr.take(hvl)))
                records.append(Record(key, value, headers, base_ts + ts_delta, base_offset + off_delta))
        out.append(Batch(base_offset, last_delta, attributes, pid, epoch, base_seq, crc_ok, records))
        pos = end
    return out


# --------------------------------------------------------------------------
# a blocking connection


class ConnectionClosed(Exception):
    pass


class Conn:
    """One TCP connection speaking framed Kafka requests."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self._corr = 0
        self.versions: dict[int, tuple[int, int]] | None = None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_correlation_id(self) -> int:
        self._corr += 1
        return self._corr

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            try:
                b = self.sock.recv(min(n, 1 << 20))
            except ConnectionResetError as e:
                raise ConnectionClosed(f"connection reset: {e}") from e
            if not b:
                raise ConnectionClosed("connection closed by broker")
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def recv_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self._recv_exact(4))
        if size < 4 or size > 256 << 20:
            raise ValueError(f"response frame size {size} is implausible")
        return self._recv_exact(size)

    def request(self, api_key: int, version: int, values: dict) -> dict:
        corr = self.next_correlation_id()
        self.send_raw(frame(encode_request(api_key, version, corr, values)))
        got_corr, body = decode_response(api_key, version, self.recv_frame())
        if got_corr != corr:
            raise AssertionError(f"{API_NAMES.get(api_key)} v{version}: correlation id {got_corr}, expected {corr}")
        return body

    # -- version negotiation

    def api_versions(self, version: int = 0) -> dict[int, tuple[int, int]]:
        values = {"client_software_name": "strata-e2e", "client_software_version": "1.0"}
        body = self.request(API_VERSIONS, version, values)
        if body["error_code"] != 0:
            raise AssertionError(f"ApiVersions v{version} error {body['error_code']}")
        self.versions = {k["api_key"]: (k["min_version"], k["max_version"]) for k in body["api_keys"]}
        return self.versions

    def pick(self, api_key: int) -> int:
        """Highest version both the broker and this codec speak."""
        if self.versions is None:
            self.api_versions()
        if api_key not in self.versions:
            raise AssertionError(f"broker does not advertise {API_NAMES.get(api_key, api_key)} (key {api_key}) in ApiVersions")
        bmin, bmax = self.versions[api_key]
        mine_lo, mine_hi = SCHEMAS[api_key][2]
        v = min(bmax, mine_hi)
        if v < max(bmin, mine_lo):
            raise AssertionError(
                f"{API_NAMES[api_key]}: broker range v{bmin}-v{bmax} does not meet the test codec's v{mine_lo}-v{mine_hi}"
            )
        return v

    # -- convenience calls

    def metadata(self, topics: list[str] | None, allow_auto_topic_creation: bool = False, version: int | None = None) -> dict:
        v = self.pick(METADATA) if version is None else version
        t = None if topics is None else [{"name": n} for n in topics]
        return self.request(METADATA, v, {"topics": t, "allow_auto_topic_creation": allow_auto_topic_creation})

    def init_producer_id(self) -> tuple[int, int]:
        v = self.pick(INIT_PRODUCER_ID)
        body = self.request(INIT_PRODUCER_ID, v, {"transactional_id": None, "transaction_timeout_ms": 60000, "producer_id": -1, "producer_epoch": -1})
        if body["error_code"] != 0:
            raise AssertionError(f"InitProducerId v{v} error {body['error_code']}")
        return body["producer_id"], body["producer_epoch"]

    def produce(self, topic: str, partition: int, records: bytes | None, acks: int = -1, version: int | None = None) -> dict:
        """Returns the partition response dict (error_code, base_offset, ...)."""
        v = self.pick(PRODUCE) if version is None else version
        body = self.request(
            PRODUCE,
            v,
            {
                "transactional_id": None,
                "acks": acks,
                "timeout_ms": 10000,
                "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": records}]}],
            },
        )
        (t,) = body["responses"]
        (p,) = t["partition_responses"]
        return p

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 1 << 20, max_wait_ms: int = 100, version: int | None = None) -> dict:
        v = self.pick(FETCH) if version is None else version
        body = self.request(
            FETCH,
            v,
            {
                "replica_id": -1,
                "max_wait_ms": max_wait_ms,
                "min_bytes": 1,
                "max_bytes": max_bytes,
                "isolation_level": 0,
                "session_id": 0,
                "session_epoch": -1,
                "topics": [
                    {
                        "topic": topic,
                        "partitions": [
                            {
                                "partition": partition,
                                "current_leader_epoch": -1,
                                "fetch_offset": offset,
                                "last_fetched_epoch": -1,
                                "log_start_offset": -1,
                                "partition_max_bytes": max_bytes,
                            }
                        ],
                    }
                ],
                "forgotten_topics_data": [],
                "rack_id": "",
            },
        )
        if body.get("error_code", 0):
            raise AssertionError(f"Fetch v{v} top-level error {body['error_code']}")
        (t,) = body["responses"]
        (p,) = t["partitions"]
        return p

    def fetch_all(self, topic: str, partition: int, start: int = 0, deadline_s: float = 10.0) -> list[Record]:
        """Every record from ``start`` up to the high watermark."""
        out: list[Record] = []
        offset = start
        deadline = time.monotonic() + deadline_s
        while True:
            p = self.fetch(topic, partition, offset)
            if p["error_code"] != 0:
                raise AssertionError(f"Fetch {topic}/{partition}@{offset}: error {p['error_code']}")
            for b in parse_batches(p["records"]):
                assert b.crc_ok, f"batch at {b.base_offset} fails its CRC"
                for rec in b.records or []:
                    if rec.offset >= offset:
                        out.append(rec)
                offset = max(offset, b.base_offset + b.last_offset_delta + 1)
            if offset >= p["high_watermark"]:
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"Fetch {topic}/{partition}: stuck at {offset}, high watermark {p['high_watermark']}")

    def list_offset(self, topic: str, partition: int, timestamp: int) -> dict:
        v = self.pick(LIST_OFFSETS)
        body = self.request(
            LIST_OFFSETS,
            v,
            {"replica_id": -1, "isolation_level": 0, "topics": [{"name": topic, "partitions": [{"partition_index": partition, "current_leader_epoch": -1, "timestamp": timestamp}]}]},
        )
        (t,) = body["topics"]
        (p,) = t["partitions"]
        return p


def wait_closed(sock: socket.socket, timeout: float) -> str | None:
    """Read and discard until the peer closes. Returns None when the peer
    closed (EOF or reset) within ``timeout``, else a description of what
    happened instead."""
    deadline = time.monotonic() + timeout
    got = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return f"still open after {timeout}s ({got} bytes received)"
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return None
        except socket.timeout:
            continue
        if not b:
            return None
        got += len(b)
