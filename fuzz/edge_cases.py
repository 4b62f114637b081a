#!/usr/bin/env python3
"""Writes the hand-made edge cases of the fuzzing corpus (fuzz/corpus/<target>/edge-*):
lying lengths and counts, truncations, bad checksums, odd JSON. The valid
seeds come from `strata::fuzzing::seeds` (`scripts/fuzz --seed-corpus` runs
both). Every file here must be handled without a panic or unbounded memory;
tests/fuzz_replay.rs replays them."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def varint(n: int) -> bytes:
    return uvarint((n << 1) ^ (n >> 63))


def batch(records: bytes, count: int, codec: int = 0, last_delta: int | None = None, magic: int = 2, fix_crc: bool = True, length: int | None = None) -> bytes:
    """A RecordBatch v2 around `records`."""
    last_delta = count - 1 if last_delta is None else last_delta
    body = struct.pack(">hiqqqhii", codec, last_delta, 1_700_000_000_000, 1_700_000_000_000, -1, -1, -1, count) + records
    crc = crc32c(body) if fix_crc else 0xDEADBEEF
    after_len = struct.pack(">ibI", 0, magic, crc) + body
    return struct.pack(">qi", 0, len(after_len) if length is None else length) + after_len


def record(offset_delta: int, key: bytes | None, value: bytes | None, headers: bytes = b"\x00") -> bytes:
    body = b"\x00" + varint(0) + varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += headers
    return varint(len(body)) + body


def header(api: int, version: int, flexible: bool) -> bytes:
    h = struct.pack(">hhih", api, version, 7, -1)  # client id null
    return h + (b"\x00" if flexible else b"")


def frames() -> dict[str, bytes]:
    one = batch(record(0, b"k", b"v"), 1)
    produce_v7 = lambda records: header(0, 7, False) + struct.pack(">hhi", -1, -1, 30_000) + struct.pack(">i", 1) + struct.pack(">h", 6) + b"orders" + struct.pack(">i", 1) + struct.pack(">ii", 0, len(records)) + records  # noqa: E731
    return {
        "edge-too-short": b"\x00\x03\x00",
        "edge-unsupported-version": header(0, 99, False),
        "edge-unknown-api": header(9999, 0, False),
        # Metadata v0 claiming 54,265,856 topics in 5 bytes.
        "edge-metadata-v0-huge-array": header(3, 0, False) + struct.pack(">i", 0x033C0C00),
        # Metadata v12 (flexible): a compact array claiming 2^28 topics.
        "edge-metadata-v12-huge-compact-array": header(3, 12, True) + uvarint(1 << 28),
        "edge-metadata-v1-negative-array": header(3, 1, False) + struct.pack(">i", -5),
        "edge-metadata-v1-string-beyond-frame": header(3, 1, False) + struct.pack(">ih", 1, 30_000) + b"abc",
        "edge-produce-v7-lying-records-length": header(0, 7, False) + struct.pack(">hhi", -1, -1, 30_000) + struct.pack(">i", 1) + struct.pack(">h", 6) + b"orders" + struct.pack(">i", 1) + struct.pack(">ii", 0, 1 << 30) + one,
        "edge-produce-v7-lying-batch-length": produce_v7(one[:8] + struct.pack(">i", 1 << 30) + one[12:]),
        "edge-produce-v7-huge-record-count": produce_v7(batch(record(0, b"k", b"v"), 0x7FFFFFFF, last_delta=0x7FFFFFFE)),
        "edge-api-versions-v3-long-varint": header(18, 3, True) + b"\xff" * 12,
    }


def batches() -> dict[str, bytes]:
    ok = batch(record(0, b"k", b"v") + record(1, None, None), 2)
    return {
        "edge-truncated-header": ok[:30],
        "edge-negative-length": ok[:8] + struct.pack(">i", -1) + ok[12:],
        "edge-length-beyond-data": ok[:8] + struct.pack(">i", 1 << 30) + ok[12:],
        "edge-bad-crc": batch(record(0, b"k", b"v"), 1, fix_crc=False),
        "edge-magic-1": batch(record(0, b"k", b"v"), 1, magic=1),
        "edge-count-mismatch": batch(record(0, b"k", b"v"), 3),
        "edge-offset-deltas-out-of-order": batch(record(1, b"a", b"1") + record(0, b"b", b"2"), 2, last_delta=1),
        "edge-record-length-beyond": batch(varint(1000) + b"\x00\x00\x00", 1),
        "edge-varint-too-long": batch(b"\xff" * 12, 1),
        "edge-codec-7": batch(b"", 0, codec=7),
        "edge-two-batches-second-torn": ok + ok[:40],
        "edge-header-count-huge": batch(record(0, b"k", b"v", headers=varint(1 << 30)), 1),
    }


def decompress() -> dict[str, bytes]:
    # codec byte, record count (u16), compressed records
    zstd_rle = bytes.fromhex("28b52ffd") + b"\x00" + bytes([0x03, 0x00, 0x02, 0x78])  # frame header, one RLE block
    return {
        "edge-gzip-garbage": b"\x01\x00\x01" + b"\x1f\x8b\x08\x00" + b"\x00" * 20,
        "edge-gzip-truncated": b"\x01\x00\x01" + b"\x1f\x8b",
        "edge-lz4-bad-magic": b"\x03\x00\x01" + b"\x04\x22\x4d\x19" + b"\xff" * 8,
        "edge-zstd-garbage": b"\x04\x00\x01" + b"\x28\xb5\x2f\xfd" + b"\xff" * 8,
        "edge-zstd-rle-block": b"\x04\x00\x01" + zstd_rle,
        "edge-none-count-beyond-records": b"\x00\xff\xff" + record(0, b"k", b"v"),
        "edge-empty-payload": b"\x02\x00\x00",
    }


def http() -> dict[str, bytes]:
    return {
        "edge-deep-nesting": b"[" * 300 + b"]" * 300,
        "edge-deep-object": b'{"value":' + b'{"a":' * 200 + b"1" + b"}" * 201,
        "edge-huge-number": b'{"partition_id":1e400,"timestamp":123456789012345678901234567890}',
        "edge-invalid-utf8": b'{"topic_name":"\xff\xfe"}',
        "edge-bad-base64-header": json.dumps({"headers": [{"name": "h", "value": "not base64!"}], "value": {"type": "BINARY", "data": "@@@"}}).encode(),
        "edge-timestamp-far-future": json.dumps({"value": {"data": 1}, "timestamp": "9999-12-31T23:59:59.999+14:00"}).encode(),
        "edge-timestamp-negative": json.dumps({"value": {"data": 1}, "timestamp": -1}).encode(),
        "edge-negative-partition": json.dumps({"partition_id": -2147483648, "key": {"type": "STRING", "data": "k"}}).encode(),
        "edge-unterminated-stream": b'{"value":{"data":1}} {"value":',
        "edge-wrong-types": json.dumps({"topic_name": 5, "partitions_count": "x", "configs": {"a": 1}}).encode(),
    }


def raft_record(payload: bytes) -> bytes:
    ln = struct.pack("<I", len(payload))
    crc = crc32c(ln + payload)
    return struct.pack("<I", 0x5354524C) + ln + struct.pack("<I", crc) + payload


def raft() -> dict[str, bytes]:
    blank = lambda i: json.dumps({"log_id": {"leader_id": {"term": 1, "node_id": 1}, "index": i}, "payload": "Blank"}).encode()  # noqa: E731
    good = raft_record(blank(1))
    return {
        "edge-damaged-middle": good + b"\x00" * 5 + raft_record(blank(2)),
        "edge-huge-length": struct.pack("<II", 0x5354524C, 0xFFFFFFFF) + b"\x00" * 8,
        "edge-gap-in-indexes": good + raft_record(blank(3)),
        "edge-not-json": raft_record(b"\xff\xfe not json"),
    }


def meta() -> dict[str, bytes]:
    hdr = b"STRMLOG1" + struct.pack("<Q", 0)
    hdr += struct.pack("<I", crc32c(hdr))
    rec = lambda p: struct.pack("<II", len(p), crc32c(p)) + p  # noqa: E731
    return {
        "edge-bad-header": b"STRMLOG2" + b"\x00" * 12,
        "edge-huge-record-length": hdr + struct.pack("<II", 0xFFFFFFFF, 0),
        "edge-damaged-middle": hdr + rec(b'"AllocateBrokerId"') + b"\x01\x02\x03" + rec(b'"AllocateBrokerId"'),
        "edge-refused-command": hdr + rec(json.dumps({"DeleteTopic": {"name": "nope", "topic_id": None}}).encode()),
    }


def main() -> int:
    for target, cases in (("kafka_frame", frames()), ("record_batch", batches()), ("decompress", decompress()), ("http_json", http()), ("raft_log", raft()), ("meta_log", meta())):
        d = CORPUS / target
        d.mkdir(parents=True, exist_ok=True)
        for name, data in cases.items():
            (d / name).write_bytes(data)
    print(f"edge cases written under {CORPUS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
