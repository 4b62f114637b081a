"""Client quotas: AlterClientQuotas / DescribeClientQuotas round trips (raw
protocol: neither confluent-kafka 2.16 nor kafka-python 2.3 has a quota
admin call), quotas surviving a restart, and byte-rate enforcement with
real clients: a producer or consumer above its quota is held to it while
another client at the same time is not slowed."""

import json
import subprocess
import threading
import time

from confluent_kafka import TopicPartition

import kproto
from conftest import http_get, strata_bin
from kclients import Rec, consumer, create_topic, produce, producer, unique_topic

DESCRIBE_CLIENT_QUOTAS = 48
ALTER_CLIENT_QUOTAS = 49

# The test codec learns the two quota APIs (v1, flexible).
kproto._FIXED.setdefault("float64", ">d")
kproto.FLEXIBLE_FROM.update({DESCRIBE_CLIENT_QUOTAS: 1, ALTER_CLIENT_QUOTAS: 1})
kproto.API_NAMES.update({DESCRIBE_CLIENT_QUOTAS: "DescribeClientQuotas", ALTER_CLIENT_QUOTAS: "AlterClientQuotas"})
_ENTITY = kproto.A([("entity_type", "string", 0, None), ("entity_name", "nstring", 0, None)])
kproto.SCHEMAS[DESCRIBE_CLIENT_QUOTAS] = (
    [
        ("components", kproto.A([("entity_type", "string", 0, None), ("match_type", "int8", 0, None), ("match", "nstring", 0, None)]), 0, None),
        ("strict", "bool", 0, None),
    ],
    [
        ("throttle_time_ms", "int32", 0, None),
        ("error_code", "int16", 0, None),
        ("error_message", "nstring", 0, None),
        ("entries", kproto.NA([("entity", _ENTITY, 0, None), ("values", kproto.A([("key", "string", 0, None), ("value", "float64", 0, None)]), 0, None)]), 0, None),
    ],
    (0, 1),
)
kproto.SCHEMAS[ALTER_CLIENT_QUOTAS] = (
    [
        ("entries", kproto.A([("entity", _ENTITY, 0, None), ("ops", kproto.A([("key", "string", 0, None), ("value", "float64", 0, None), ("remove", "bool", 0, None)]), 0, None)]), 0, None),
        ("validate_only", "bool", 0, None),
    ],
    [
        ("throttle_time_ms", "int32", 0, None),
        ("entries", kproto.A([("error_code", "int16", 0, None), ("error_message", "nstring", 0, None), ("entity", _ENTITY, 0, None)]), 0, None),
    ],
    (0, 1),
)


def alter(broker, entries, validate_only=False) -> list[dict]:
    """entries: [(entity {type: name|None}, {key: value|None (remove)})]."""
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        body = c.request(
            ALTER_CLIENT_QUOTAS,
            1,
            {
                "entries": [
                    {
                        "entity": [{"entity_type": t, "entity_name": n} for t, n in entity.items()],
                        "ops": [{"key": k, "value": v or 0.0, "remove": v is None} for k, v in ops.items()],
                    }
                    for entity, ops in entries
                ],
                "validate_only": validate_only,
            },
        )
    return body["entries"]


def describe(broker, components, strict=False) -> dict:
    """components: [(type, match_type, match)]. Returns {frozenset(entity items): {key: value}}."""
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        body = c.request(
            DESCRIBE_CLIENT_QUOTAS,
            1,
            {"components": [{"entity_type": t, "match_type": m, "match": n} for t, m, n in components], "strict": strict},
        )
    assert body["error_code"] == 0, body
    return {frozenset((e["entity_type"], e["entity_name"]) for e in x["entity"]): {v["key"]: v["value"] for v in x["values"]} for x in body["entries"]}


def test_alter_describe_round_trip_and_restart(broker):
    res = alter(
        broker,
        [
            ({"client-id": "app"}, {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0}),
            ({"client-id": None}, {"request_percentage": 50.0}),
            ({"user": "alice", "client-id": "app"}, {"producer_byte_rate": 4096.0}),
            ({"client-id": "bad"}, {"no_such_quota": 1.0}),
            ({"client-id": "frac"}, {"producer_byte_rate": 10.5}),
            ({"ip": "10.0.0.1"}, {"producer_byte_rate": 10.0}),
        ],
    )
    assert [r["error_code"] for r in res] == [0, 0, 0, 42, 42, 42], res
    assert "no_such_quota" in res[3]["error_message"]
    # validate_only changes nothing.
    assert alter(broker, [({"client-id": "ghost"}, {"producer_byte_rate": 1.0})], validate_only=True)[0]["error_code"] == 0

    app = frozenset({("client-id", "app")})
    default = frozenset({("client-id", None)})
    both = frozenset({("user", "alice"), ("client-id", "app")})

    def check():
        assert describe(broker, [("client-id", 0, "app")], strict=True) == {app: {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0}}
        assert describe(broker, [("client-id", 0, "app")]) == {
            app: {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0},
            both: {"producer_byte_rate": 4096.0},
        }
        assert describe(broker, [("client-id", 1, None)]) == {default: {"request_percentage": 50.0}}
        assert set(describe(broker, [])) == {app, default, both}
        assert describe(broker, [("user", 2, None)]) == {both: {"producer_byte_rate": 4096.0}}

    check()
    broker.restart()
    check()
    # Removing the last key forgets the entity.
    assert alter(broker, [({"user": "alice", "client-id": "app"}, {"producer_byte_rate": None})])[0]["error_code"] == 0
    assert both not in describe(broker, [])
    # A bad filter is refused with INVALID_REQUEST.
    with kproto.Conn("127.0.0.1", broker.kafka_port) as c:
        body = c.request(DESCRIBE_CLIENT_QUOTAS, 1, {"components": [{"entity_type": "ip", "match_type": 2, "match": None}], "strict": False})
    assert body["error_code"] == 42


def test_cli_sets_and_lists_quotas(broker):
    def cli(*args):
        r = subprocess.run([str(strata_bin()), "quota", *args, "--bootstrap-server", broker.bootstrap], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    cli("set", "--client-id", "cli-app", "producer_byte_rate=2048")
    cli("set", "--user", "bob", "consumer_byte_rate=4096")
    rows = json.loads(cli("list", "--json"))
    assert {"entity": {"client-id": "cli-app"}, "values": {"producer_byte_rate": 2048.0}} in rows
    assert {"entity": {"user": "bob"}, "values": {"consumer_byte_rate": 4096.0}} in rows
    cli("remove", "--client-id", "cli-app", "producer_byte_rate")
    assert describe(broker, [("client-id", 0, "cli-app")]) == {}


def metrics_text(broker) -> str:
    status, text, _ = http_get(broker.http_url + "/metrics")
    assert status == 200
    return text


def rate_between(samples: list[tuple[float, int]], t0: float, t1: float) -> float:
    return sum(n for t, n in samples if t0 <= t < t1) / (t1 - t0)


QUOTA = 200 * 1024  # bytes/s
WINDOW = ["--quota-window-size-ms", "200"]  # 11 samples: a burst of 2 s of quota
RUN_S = 12.0
STEADY = (3.0, RUN_S)
# A fetch returns whole batches, so the consumer's rate moves in steps of a
# fetch; Kafka's sampled rate oscillates around the bound: measure longer.
RUN_C = 20.0
STEADY_C = (5.0, RUN_C)


def test_producer_above_its_byte_rate_is_throttled_and_others_are_not(broker_factory):
    b = broker_factory(WINDOW)
    assert alter(b, [({"client-id": "slow"}, {"producer_byte_rate": float(QUOTA)})])[0]["error_code"] == 0
    topic = unique_topic("qprod")
    create_topic(b.bootstrap, topic, 2)
    value = b"x" * 1000
    samples: dict[str, list[tuple[float, int]]] = {"slow": [], "fast": []}
    errors: list = []
    start = time.monotonic()

    def run(cid):
        # At most 5 requests in flight, as Java's producer: librdkafka's
        # default (a million) would leave seconds of requests queued behind
        # the muted socket until they time out and are sent again.
        conf = {"client.id": cid, "acks": "1", "linger.ms": 5, "batch.size": 16384, "queue.buffering.max.messages": 2000}
        p = producer(b.bootstrap, **conf, **{"max.in.flight.requests.per.connection": 5})

        def done(err, msg):
            if err is None:
                samples[cid].append((time.monotonic() - start, len(msg.value())))
            elif time.monotonic() - start < RUN_S:
                errors.append(err)

        while time.monotonic() - start < RUN_S:
            try:
                p.produce(topic, value, partition=0 if cid == "slow" else 1, on_delivery=done)
            except BufferError:
                p.poll(0.01)
            p.poll(0)
        # What is still queued is not part of the measurement.
        p.purge(in_queue=True, in_flight=False)
        p.flush(15)

    threads = [threading.Thread(target=run, args=(c,)) for c in ("slow", "fast")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    slow = rate_between(samples["slow"], *STEADY)
    fast = rate_between(samples["fast"], *STEADY)
    print(f"producer: throttled {slow / 1024:.1f} KiB/s (quota {QUOTA / 1024:.0f}), other {fast / 1024:.0f} KiB/s")
    assert abs(slow - QUOTA) / QUOTA < 0.10, f"slow producer ran at {slow / 1024:.0f} KiB/s, quota {QUOTA / 1024:.0f} KiB/s"
    assert fast > 3 * QUOTA, f"unthrottled producer only reached {fast / 1024:.0f} KiB/s"
    text = metrics_text(b)
    assert 'strata_client_throttled_total{client_id="slow",quota="produce"}' in text
    assert 'client_id="fast",quota="produce"' not in text


def test_consumer_above_its_byte_rate_is_throttled_and_others_are_not(broker_factory):
    b = broker_factory(WINDOW)
    topic = unique_topic("qcons")
    create_topic(b.bootstrap, topic, 1)
    n = 12000
    # Batches of at most 16 KiB: a fetch returns at least one whole batch,
    # so batch size is the granularity of the fetch throttle.
    produce(producer(b.bootstrap, **{"linger.ms": 20, "batch.size": 16384}), topic, [Rec(None, b"y" * 1000) for _ in range(n)])
    assert alter(b, [({"client-id": "slowc"}, {"consumer_byte_rate": float(QUOTA)})])[0]["error_code"] == 0
    samples: dict[str, list[tuple[float, int]]] = {"slowc": [], "fastc": []}
    errors: list = []
    start = time.monotonic()

    def run(cid):
        try:
            consume(cid)
        except BaseException as e:  # surfaced below
            errors.append(e)

    def consume(cid):
        c = consumer(b.bootstrap, **{"client.id": cid, "group.id": cid, "fetch.max.bytes": 32768, "message.max.bytes": 32768, "max.partition.fetch.bytes": 32768})
        c.assign([TopicPartition(topic, 0, 0)])
        got = 0
        while time.monotonic() - start < RUN_C and got < n:
            for m in c.consume(num_messages=1000, timeout=0.1):
                assert m.error() is None, m.error()
                samples[cid].append((time.monotonic() - start, len(m.value())))
                got += 1
        c.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in ("slowc", "fastc")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    slow = rate_between(samples["slowc"], *STEADY_C)
    print(f"consumer: throttled {slow / 1024:.1f} KiB/s (quota {QUOTA / 1024:.0f}), other read {n} KB in {samples['fastc'][-1][0]:.2f} s")
    assert abs(slow - QUOTA) / QUOTA < 0.10, f"slow consumer ran at {slow / 1024:.0f} KiB/s, quota {QUOTA / 1024:.0f} KiB/s"
    # The other consumer read everything, far faster than the quota.
    assert len(samples["fastc"]) == n
    took = samples["fastc"][-1][0]
    assert n * 1000 / took > 3 * QUOTA, f"unthrottled consumer took {took:.1f}s for {n} KB"
    assert 'strata_client_throttled_total{client_id="slowc",quota="fetch"}' in metrics_text(b)
