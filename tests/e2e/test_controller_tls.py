"""Node TLS between controllers and brokers: with --controller-tls-cert,
--controller-tls-key and --controller-tls-ca every node serves the
controller API over TLS and calls it with its node certificate. A quorum
and a broker with certificates from the cluster CA work end to end; a
broker with a certificate from another CA, or with none, cannot join;
the controller port refuses plain HTTP and TLS clients without a
certificate; `strata controller status` speaks TLS with the same flags."""

import datetime
import http.client
import ipaddress
import json
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from cluster import cluster_factory, wait_until  # noqa: F401  (fixture)
from conftest import http_get, strata_bin
from test_security import _name, _pem_key, ca_certificate
from kclients import Rec, consume_range, create_topic, produce, producer, unique_topic


def make_ca(d: Path, cn: str):
    """A CA (certificate written to d/ca.pem) and a function that writes a
    node certificate signed by it (server and client use, for 127.0.0.1)."""
    d.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca, ca_key = ca_certificate(cn)
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def node(name: str) -> list[str]:
        k = ec.generate_private_key(ec.SECP256R1())
        c = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(ca.subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        (d / f"{name}.pem").write_bytes(c.public_bytes(serialization.Encoding.PEM))
        (d / f"{name}.key").write_bytes(_pem_key(k))
        return ["--controller-tls-cert", str(d / f"{name}.pem"), "--controller-tls-key", str(d / f"{name}.key"), "--controller-tls-ca", str(d / "ca.pem")]

    return node


def tls_cluster(cluster_factory, tmp_path: Path, brokers: int = 1):  # noqa: F811
    node = make_ca(tmp_path / "pki", "strata-cluster-ca")
    c = cluster_factory(controllers=3, brokers=brokers, start=False, extra_args=node("node"))
    for n in c.controllers() + c.brokers():
        n.start(wait=False)
    for n in c.controllers() + c.brokers():
        n.wait_ready()
    return c, node


def status_cli(c, node_id: int, tls: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(strata_bin()), "controller", "status", "--json", "--controller", c.node(node_id).controller, "--timeout-s", "10", *tls],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_quorum_and_broker_over_node_tls_serve_clients(cluster_factory, tmp_path):  # noqa: F811
    c, node = tls_cluster(cluster_factory, tmp_path)
    topic = unique_topic("ntls")
    create_topic(c.bootstrap, topic, 2)
    recs = [Rec(f"k{i}".encode(), f"value-{i}".encode()) for i in range(200)]
    acks = produce(producer(c.bootstrap), topic, recs)
    ends: dict[int, int] = {}
    for p, o in acks:
        ends[p] = max(ends.get(p, 0), o + 1)
    got = consume_range(c.bootstrap, topic, ends)
    expected = {(p, o): (r.key, r.value) for r, (p, o) in zip(recs, acks)}
    assert {(g.partition, g.offset): (g.key, g.value) for gs in got.values() for g in gs} == expected

    # The CLI speaks TLS with the node flags and sees the whole quorum.
    r = status_cli(c, 1, node("cli"))
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["leader"] in (1, 2, 3) and len(st["voters"]) == 3, st
    # Without them it cannot talk to the controller at all.
    r = status_cli(c, 1, [])
    assert r.returncode != 0 and "cannot reach" in r.stderr, r.stderr

    # Plain HTTP on the controller port gets no HTTP answer (the TLS
    # server's alert is not one).
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        http_get(f"http://{c.node(1).controller}/controller/status", timeout=5)
    # A TLS client that trusts the CA but has no certificate is refused.
    ctx = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.pem"))
    host, port = c.node(1).controller.split(":")
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=host) as t:
                t.sendall(b"GET /controller/status HTTP/1.1\r\nHost: x\r\n\r\n")
                if not t.recv(1):
                    raise ConnectionResetError("closed")
    # With the node certificate the same request is answered.
    ctx.load_cert_chain(str(tmp_path / "pki" / "cli.pem"), str(tmp_path / "pki" / "cli.key"))
    with socket.create_connection((host, int(port)), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=host) as t:
            t.sendall(b"GET /controller/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = t.recv(64)
    assert head.startswith(b"HTTP/1.1 200"), head
    code, text, _ = http_get(f"http://{c.node(1).bootstrap.split(':')[0]}:{c.node(1).http_port}/metrics")
    assert code == 200
    failures = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("strata_controller_tls_handshake_failures_total")]
    assert failures and failures[0] >= 1, failures


@pytest.mark.parametrize("which", ["foreign-ca", "no-certificate"])
def test_broker_without_a_cluster_certificate_cannot_join(cluster_factory, tmp_path, which):  # noqa: F811
    c, node = tls_cluster(cluster_factory, tmp_path)
    if which == "foreign-ca":
        args = make_ca(tmp_path / "other", "someone-else-ca")("intruder")
    else:
        args = []
    b = c.add_broker(110, start=False)
    b.extra_args = _without_tls(b.extra_args) + args
    b.start(wait=False)
    # Its calls to the controllers fail, over and over, and say so.
    wait_until(lambda: "cannot reach" in b.log_text() or not b.alive(), 60, "the broker's controller calls to fail")
    # Not ready (or not yet answering at all).
    try:
        code, _, _ = http_get(f"http://127.0.0.1:{b.http_port}/readyz", timeout=2)
    except (OSError, http.client.HTTPException):
        code = None
    assert code != 200
    # The quorum never registered it: the good broker's metadata lists only itself.
    md = producer(c.bootstrap).list_topics(timeout=10)
    assert sorted(md.brokers) == [c.brokers()[0].id], md.brokers
    b.kill()


def _without_tls(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a.startswith("--controller-tls-"):
            skip = True
            continue
        out.append(a)
    return out
