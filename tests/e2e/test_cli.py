"""The `strata` command line: help, flag validation, env config and the
`strata topic` admin commands against a running broker."""

from __future__ import annotations

import subprocess
import time

import pytest
from confluent_kafka.admin import ConfigResource, ConfigSource

from cluster import wait_until
from conftest import child_env, free_port, strata_bin
from kclients import Rec, admin, create_topic, produce, producer, unique_topic, wait_topic

SERVE_FLAGS = [
    "--data-dir",
    "--kafka-listen",
    "--http-listen",
    "--advertised-host",
    "--advertised-port",
    "--broker-id",
    "--auto-create-topics",
    "--num-partitions",
    "--segment-bytes",
    "--segment-ms",
    "--request-max-bytes",
    "--config",
]
TOPIC_CONFIG = ConfigResource.Type.TOPIC if hasattr(ConfigResource, "Type") else ConfigResource.ResourceType.TOPIC


def strata(*args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([str(strata_bin()), *args], capture_output=True, text=True, timeout=timeout, env=child_env(env), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`strata {' '.join(args)}` still running after {timeout}s; output so far: {e.stdout!r} {e.stderr!r}") from None


def ok(*args: str) -> str:
    r = strata(*args)
    assert r.returncode == 0, f"`strata {' '.join(args)}` exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r.stdout


def fails(*args: str) -> str:
    r = strata(*args)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode != 0, f"`strata {' '.join(args)}` should fail but exited 0\noutput: {out}"
    assert out, f"`strata {' '.join(args)}` failed ({r.returncode}) without saying why"
    assert "panicked" not in out, out
    return out


def describe_configs(bootstrap: str, topic: str) -> dict:
    a = admin(bootstrap)
    res = ConfigResource(TOPIC_CONFIG, topic)
    return a.describe_configs([res])[res].result(timeout=30)


# ---------------------------------------------------------------- help and flags


def test_top_level_help():
    out = ok("--help")
    for word in ("serve", "topic"):
        assert word in out, f"`strata --help` does not mention {word}:\n{out}"


def test_serve_help_lists_every_flag():
    out = ok("serve", "--help")
    missing = [f for f in SERVE_FLAGS if f not in out]
    assert not missing, f"`strata serve --help` does not mention {missing}:\n{out}"


def test_topic_help_lists_subcommands():
    out = ok("topic", "--help")
    missing = [c for c in ("create", "list", "describe", "delete", "alter") if c not in out]
    assert not missing, f"`strata topic --help` does not mention {missing}:\n{out}"


def test_unknown_subcommand_fails():
    out = fails("no-such-subcommand")
    assert "no-such-subcommand" in out


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--kafka-listen", "notanaddr"),
        ("--http-listen", "also:not:an:addr"),
        ("--broker-id", "one"),
        ("--auto-create-topics", "maybe"),
        ("--num-partitions", "0"),
        ("--request-max-bytes", "lots"),
        ("--advertised-port", "99999"),
    ],
)
def test_bad_flag_value_names_the_flag(tmp_path, flag, value):
    args = {
        "--data-dir": str(tmp_path / "data"),
        "--kafka-listen": f"127.0.0.1:{free_port()}",
        "--http-listen": f"127.0.0.1:{free_port()}",
    }
    args[flag] = value
    flat = [f"{k}={v}" for k, v in args.items()]
    r = strata("serve", *flat, timeout=15)
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"`strata serve {flag} {value}` exited 0:\n{out}"
    assert flag in out or flag.lstrip("-") in out or flag.lstrip("-").replace("-", "_") in out, f"error for {flag} {value} does not name the flag:\n{out}"
    assert "panicked" not in out, out


def test_port_in_use_fails_cleanly(tmp_path, broker):
    r = strata(
        "serve",
        "--data-dir",
        str(tmp_path / "other"),
        "--kafka-listen",
        broker.bootstrap,
        "--http-listen",
        f"127.0.0.1:{free_port()}",
        timeout=15,
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"second broker on a busy port exited 0:\n{out}"
    assert "panicked" not in out, out


def test_settings_from_environment(broker_factory, tmp_path):
    kafka_port, http_port = free_port(), free_port()
    b = broker_factory(
        env={
            "STRATA_DATA_DIR": str(tmp_path / "envdata"),
            "STRATA_KAFKA_LISTEN": f"127.0.0.1:{kafka_port}",
            "STRATA_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "STRATA_ADVERTISED_HOST": "127.0.0.1",
            "STRATA_BROKER_ID": "7",
            "STRATA_NUM_PARTITIONS": "4",
        },
        use_flags=False,
        start=False,
    )
    b.kafka_port, b.http_port = kafka_port, http_port
    b.start()
    a = admin(b.bootstrap)
    md = a.list_topics(timeout=10)
    assert list(md.brokers) == [7], f"STRATA_BROKER_ID=7 ignored: brokers {md.brokers}"
    assert (md.brokers[7].host, md.brokers[7].port) == ("127.0.0.1", kafka_port)
    topic = unique_topic("envauto")
    produce(producer(b.bootstrap), topic, [Rec(b"k", b"v")])
    wait_topic(b.bootstrap, topic, 4)
    assert (tmp_path / "envdata").is_dir() and any((tmp_path / "envdata").iterdir()), "STRATA_DATA_DIR not used"


def test_flags_override_environment(broker_factory):
    b = broker_factory(["--broker-id", "3"], env={"STRATA_BROKER_ID": "9"})
    md = admin(b.bootstrap).list_topics(timeout=10)
    assert list(md.brokers) == [3], f"flag --broker-id 3 should beat STRATA_BROKER_ID=9: {md.brokers}"


def test_config_file_env_and_flag_precedence(broker_factory, tmp_path):
    """TOML file < STRATA_* env < flags (DESIGN.md §6); file keys are the
    flag names without the dashes."""
    cfg = tmp_path / "strata.toml"
    cfg.write_text('broker-id = 5\nnum-partitions = 2\nauto-create-topics = true\n')
    b = broker_factory(["--config", str(cfg)])
    assert list(admin(b.bootstrap).list_topics(timeout=10).brokers) == [5], "broker-id from the config file ignored"
    topic = unique_topic("filecfg")
    produce(producer(b.bootstrap), topic, [Rec(b"k", b"v")])
    wait_topic(b.bootstrap, topic, 2)
    b.stop()

    b2 = broker_factory(["--config", str(cfg), "--broker-id", "6"], env={"STRATA_NUM_PARTITIONS": "3", "STRATA_BROKER_ID": "8"})
    assert list(admin(b2.bootstrap).list_topics(timeout=10).brokers) == [6], "flag should beat env and file"
    topic = unique_topic("envcfg")
    produce(producer(b2.bootstrap), topic, [Rec(b"k", b"v")])
    wait_topic(b2.bootstrap, topic, 3)  # env beats file


def test_config_file_with_unknown_key_or_missing_file_fails(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("no-such-setting = 1\n")
    common = ["--data-dir", str(tmp_path / "d"), "--kafka-listen", f"127.0.0.1:{free_port()}", "--http-listen", f"127.0.0.1:{free_port()}"]
    for path in (bad, tmp_path / "missing.toml"):
        r = strata("serve", "--config", str(path), *common, timeout=15)
        out = r.stdout + r.stderr
        assert r.returncode != 0, f"--config {path.name}: exited 0\n{out}"
        assert "panicked" not in out, out


def test_advertised_port_and_broker_id(broker_factory):
    adv_port = free_port()
    b = broker_factory(["--advertised-port", str(adv_port), "--broker-id", "42"])
    md = admin(b.bootstrap).list_topics(timeout=10)
    assert list(md.brokers) == [42]
    assert (md.brokers[42].host, md.brokers[42].port) == ("127.0.0.1", adv_port)


def test_data_dir_is_used(broker):
    topic = unique_topic("dd")
    create_topic(broker.bootstrap, topic, 1)
    assert broker.data_dir.is_dir() and any(broker.data_dir.rglob("*")), f"nothing written under --data-dir {broker.data_dir}"
    assert not (broker.workdir / "strata-data").exists(), "broker wrote to ./strata-data despite --data-dir"


def test_listening_line_printed(broker):
    text = broker.log_text()
    lines = [l for l in text.splitlines() if "listening" in l]
    assert lines, f"no 'listening' line in the output:\n{text[-2000:]}"
    joined = "\n".join(lines)
    assert str(broker.kafka_port) in joined and str(broker.http_port) in joined, f"'listening' line lacks the ports:\n{joined}"


# ---------------------------------------------------------------- strata topic


def test_topic_commands(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    topic = unique_topic("cli")

    ok("topic", "create", topic, "--partitions", "3", "--config", "retention.ms=123456789", *bs)
    wait_topic(broker.bootstrap, topic, 3)
    assert describe_configs(broker.bootstrap, topic)["retention.ms"].value == "123456789"

    listing = ok("topic", "list", *bs)
    assert topic in listing.split() or topic in listing, f"`topic list` lacks {topic}:\n{listing}"

    desc = ok("topic", "describe", topic, *bs)
    assert topic in desc, desc
    assert "123456789" in desc, f"`topic describe` does not show the retention.ms set at create:\n{desc}"

    ok("topic", "alter", topic, "--partitions", "5", *bs)
    wait_topic(broker.bootstrap, topic, 5)

    ok("topic", "alter", topic, "--set", "retention.ms=1000", "--set", "max.message.bytes=2000000", *bs)
    cfg = describe_configs(broker.bootstrap, topic)
    assert (cfg["retention.ms"].value, cfg["max.message.bytes"].value) == ("1000", "2000000")

    ok("topic", "alter", topic, "--delete", "max.message.bytes", *bs)
    cfg = describe_configs(broker.bootstrap, topic)
    assert cfg["max.message.bytes"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["retention.ms"].value == "1000", "--delete of one key touched another"

    ok("topic", "delete", topic, *bs)
    wait_until(lambda: topic not in admin(broker.bootstrap).list_topics(timeout=10).topics, 10, "topic gone after `topic delete`")
    assert topic not in ok("topic", "list", *bs)


def test_topic_command_errors(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    topic = unique_topic("clierr")
    ok("topic", "create", topic, "--partitions", "2", *bs)

    out = fails("topic", "create", topic, "--partitions", "2", *bs)
    assert "exist" in out.lower(), f"create of an existing topic: {out}"

    missing = unique_topic("nope")
    for args in (("describe", missing), ("delete", missing), ("alter", missing, "--partitions", "4")):
        out = fails("topic", *args, *bs)
        assert missing in out or "unknown" in out.lower() or "not" in out.lower(), f"`topic {' '.join(args)}`: {out}"

    fails("topic", "alter", topic, "--partitions", "1", *bs)  # shrink
    fails("topic", "create", "bad name", "--partitions", "1", *bs)
    fails("topic", "alter", topic, "--set", "no.such.config=1", *bs)
    fails("topic", "create", unique_topic("x"), "--partitions", "notanumber", *bs)
    wait_topic(broker.bootstrap, topic, 2)


def test_topic_command_unreachable_broker_fails(tmp_path):
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    r = strata("topic", "list", "--bootstrap-server", f"127.0.0.1:{port}", timeout=60)
    took = time.monotonic() - t0
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"`topic list` against a closed port exited 0: {out}"
    assert out.strip(), "no message"
    assert took < 45, f"took {took:.0f}s to give up"

