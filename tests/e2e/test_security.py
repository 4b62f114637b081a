"""Security end to end: listeners in Kafka's syntax (PLAINTEXT, SSL,
SASL_PLAINTEXT, SASL_SSL), TLS with mutual authentication and certificate
reload, SASL PLAIN and SCRAM-SHA-256/512 with confluent-kafka, kafka-python
and kcat, credentials created offline with ``strata user set`` and online
with AlterUserScramCredentials, and the pre-authentication limits.

Certificates are generated per test with the ``cryptography`` package; no
private key is committed."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import kproto
from cluster import wait_until
from conftest import free_port, http_get, strata_bin
from kclients import Rec, consume_range, create_topic, produce, producer, unique_topic

SASL_AUTHENTICATION_FAILED = 58
UNSUPPORTED_SASL_MECHANISM = 33
ADMIN_PASSWORD = "admin-secret-Ω"
ALICE_PASSWORD = "alice-pw"


# -- certificates ---------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(k) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclass
class Pki:
    dir: Path
    ca_cert: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    ca_key: object = None
    ca: x509.Certificate | None = None

    def server_cert(self, cn: str) -> bytes:
        """Write a new server certificate (and key) for 127.0.0.1 signed by
        the CA; returns its DER bytes."""
        k = _key()
        c = _sign(self.ca, self.ca_key, cn, k.public_key(), server=True)
        tmp_c, tmp_k = self.cert.with_name(self.cert.name + ".new"), self.key.with_name(self.key.name + ".new")
        tmp_c.write_bytes(c.public_bytes(serialization.Encoding.PEM))
        tmp_k.write_bytes(_pem_key(k))
        os.replace(tmp_k, self.key)
        os.replace(tmp_c, self.cert)
        return c.public_bytes(serialization.Encoding.DER)


def _sign(ca, ca_key, cn: str, public_key, server: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if server:
        b = b.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(ca_key, hashes.SHA256())


def ca_certificate(cn: str):
    """A self-signed CA valid for a day: (certificate, key)."""
    ca_key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return ca, ca_key


def make_pki(d: Path) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    ca, ca_key = ca_certificate("strata-test-ca")
    p = Pki(d, d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key", ca_key, ca)
    p.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    p.server_cert("strata-server-1")
    ck = _key()
    p.client_cert.write_bytes(_sign(ca, ca_key, "alice", ck.public_key(), server=False).public_bytes(serialization.Encoding.PEM))
    p.client_key.write_bytes(_pem_key(ck))
    return p


# -- brokers ----------------------------------------------------------------


@dataclass
class Secure:
    b: object
    pki: Pki
    ssl_port: int
    sasl_port: int
    sasl_ssl_port: int

    def addr(self, port: int) -> str:
        return f"127.0.0.1:{port}"


def user_set(data_dir: Path, name: str, password: str, mechanism: str = "SCRAM-SHA-512", extra: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(strata_bin()), "user", "set", name, "--mechanism", mechanism, "--password-stdin", "--data-dir", str(data_dir), *(extra or [])],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("STRATA_")},
    )


def start_secure(broker_factory, tmp_path: Path, client_ca: bool = False, extra: list[str] | None = None, users: tuple = ()) -> Secure:
    pki = make_pki(tmp_path / "pki")
    ssl_port, sasl_port, sasl_ssl_port = free_port(), free_port(), free_port()
    b = broker_factory(start=False)
    b.extra_args = [
        "--listeners",
        f"PLAINTEXT://{b.bootstrap},SSL://127.0.0.1:{ssl_port},SASL_PLAINTEXT://127.0.0.1:{sasl_port},SASL_SSL://127.0.0.1:{sasl_ssl_port}",
        "--tls-cert",
        str(pki.cert),
        "--tls-key",
        str(pki.key),
        *(["--tls-client-ca", str(pki.ca_cert)] if client_ca else []),
        *(extra or []),
    ]
    # The first user exists before the node ever listens.
    r = user_set(b.data_dir, "admin", ADMIN_PASSWORD)
    assert r.returncode == 0, r.stderr
    assert ADMIN_PASSWORD not in r.stdout + r.stderr
    for name, password in users:
        assert user_set(b.data_dir, name, password).returncode == 0
    b.start()
    return Secure(b, pki, ssl_port, sasl_port, sasl_ssl_port)


def sasl_conf(s: Secure, protocol: str, mechanism: str, user: str = "admin", password: str = ADMIN_PASSWORD) -> dict:
    port = s.sasl_ssl_port if protocol == "SASL_SSL" else s.sasl_port
    conf = {
        "bootstrap.servers": s.addr(port),
        "security.protocol": protocol,
        "sasl.mechanisms": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }
    if protocol == "SASL_SSL":
        conf["ssl.ca.location"] = str(s.pki.ca_cert)
    return conf


def roundtrip_confluent(s: Secure, conf: dict, n: int = 50) -> None:
    topic = unique_topic("sec")
    create_topic(s.b.bootstrap, topic)
    recs = [Rec(f"k{i}".encode(), os.urandom(100) + bytes([i % 256])) for i in range(n)]
    bootstrap = conf.pop("bootstrap.servers")
    produce(producer(bootstrap, **conf), topic, recs)
    got = consume_range(bootstrap, topic, {0: n}, **conf)[0]
    assert [(g.key, g.value) for g in got] == [(r.key, r.value) for r in recs]


# -- raw SASL frames ---------------------------------------------------------


def _req(api: int, version: int, corr: int, body: bytes) -> bytes:
    client = b"raw"
    header = struct.pack(">hhih", api, version, corr, len(client)) + client
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def _recv_frame(sock: socket.socket) -> bytes:
    def exact(n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise kproto.ConnectionClosed("closed by broker")
            out += chunk
        return out

    (n,) = struct.unpack(">i", exact(4))
    return exact(n)


def sasl_handshake(sock: socket.socket, mechanism: str, version: int = 1) -> tuple[int, list[str]]:
    m = mechanism.encode()
    sock.sendall(_req(17, version, 1, struct.pack(">h", len(m)) + m))
    r = _recv_frame(sock)
    (err,) = struct.unpack(">h", r[4:6])
    (count,) = struct.unpack(">i", r[6:10])
    mechs, pos = [], 10
    for _ in range(count):
        (ln,) = struct.unpack(">h", r[pos : pos + 2])
        mechs.append(r[pos + 2 : pos + 2 + ln].decode())
        pos += 2 + ln
    return err, mechs


def sasl_authenticate(sock: socket.socket, token: bytes) -> tuple[int, str | None, bytes, int]:
    """SaslAuthenticate v1: (error code, message, server bytes, session lifetime ms)."""
    sock.sendall(_req(36, 1, 2, struct.pack(">i", len(token)) + token))
    r = _recv_frame(sock)
    (err,) = struct.unpack(">h", r[4:6])
    (mlen,) = struct.unpack(">h", r[6:8])
    pos = 8
    msg = None
    if mlen >= 0:
        msg = r[pos : pos + mlen].decode()
        pos += mlen
    (blen,) = struct.unpack(">i", r[pos : pos + 4])
    pos += 4
    data = r[pos : pos + max(blen, 0)]
    pos += max(blen, 0)
    (life,) = struct.unpack(">q", r[pos : pos + 8])
    return err, msg, data, life


# -- tests -------------------------------------------------------------------


def test_sasl_ssl_scram_and_plain_with_confluent_kafka_and_kafka_python(broker_factory, tmp_path):
    s = start_secure(broker_factory, tmp_path)
    for protocol, mechanism in [
        ("SASL_SSL", "SCRAM-SHA-512"),
        ("SASL_SSL", "PLAIN"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
    ]:
        roundtrip_confluent(s, sasl_conf(s, protocol, mechanism))
    # A SCRAM-SHA-256 user created online (AlterUserScramCredentials).
    a = AdminClient({"bootstrap.servers": s.b.bootstrap})
    fs = a.alter_user_scram_credentials([UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), ALICE_PASSWORD.encode())])
    fs["alice"].result(timeout=30)
    roundtrip_confluent(s, sasl_conf(s, "SASL_SSL", "SCRAM-SHA-256", "alice", ALICE_PASSWORD))
    roundtrip_confluent(s, sasl_conf(s, "SASL_PLAINTEXT", "PLAIN", "alice", ALICE_PASSWORD))

    # kafka-python over SASL_SSL with SCRAM-SHA-512 and PLAIN.
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    for mechanism in ("SCRAM-SHA-512", "PLAIN"):
        topic = unique_topic("kp")
        create_topic(s.b.bootstrap, topic)
        ctx = ssl.create_default_context(cafile=str(s.pki.ca_cert))
        common = dict(
            bootstrap_servers=s.addr(s.sasl_ssl_port),
            security_protocol="SASL_SSL",
            ssl_context=ctx,
            sasl_mechanism=mechanism,
            sasl_plain_username="admin",
            sasl_plain_password=ADMIN_PASSWORD,
        )
        p = KafkaProducer(acks="all", **common)
        values = [os.urandom(64) for _ in range(20)]
        for v in values:
            p.send(topic, value=v).get(timeout=30)
        p.close()
        c = KafkaConsumer(consumer_timeout_ms=10000, auto_offset_reset="earliest", enable_auto_commit=False, **common)
        c.assign([TopicPartition(topic, 0)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < len(values) and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                got.extend(r.value for r in recs)
        c.close()
        assert got == values, f"kafka-python {mechanism}: {len(got)} of {len(values)} records back"


def test_wrong_password_and_unknown_user_are_refused_and_others_keep_working(broker_factory, tmp_path):
    s = start_secure(broker_factory, tmp_path)
    # Raw frames: the exact error code, on both mechanisms.
    with socket.create_connection(("127.0.0.1", s.sasl_port), timeout=10) as sock:
        err, mechs = sasl_handshake(sock, "PLAIN")
        assert err == 0 and set(mechs) == {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
        err, msg, _, _ = sasl_authenticate(sock, b"\0admin\0wrong")
        assert err == SASL_AUTHENTICATION_FAILED, msg
        assert "wrong" not in (msg or "")
    with socket.create_connection(("127.0.0.1", s.sasl_port), timeout=10) as sock:
        err, _ = sasl_handshake(sock, "GSSAPI")
        assert err == UNSUPPORTED_SASL_MECHANISM
    with socket.create_connection(("127.0.0.1", s.sasl_port), timeout=10) as sock:
        assert sasl_handshake(sock, "SCRAM-SHA-512")[0] == 0
        err, _, first, _ = sasl_authenticate(sock, b"n,,n=nobody,r=abcdef")
        # An unknown user gets a server-first like anyone (no user enumeration)...
        assert err == 0 and first.startswith(b"r=abcdef") and b",s=" in first and b",i=4096" in first
        nonce = first.split(b",")[0][2:]
        proof = b"A" * 88
        err, msg, _, _ = sasl_authenticate(sock, b"c=biws,r=" + nonce + b",p=" + proof)
        # ...and fails at the proof.
        assert err == SASL_AUTHENTICATION_FAILED, msg
    with socket.create_connection(("127.0.0.1", s.sasl_port), timeout=10) as sock:
        assert sasl_handshake(sock, "SCRAM-SHA-512")[0] == 0
        err, _, first, _ = sasl_authenticate(sock, b"n,,n=admin,r=abcdef")
        assert err == 0
        # A final message that does not continue the server's nonce.
        err, msg, _, _ = sasl_authenticate(sock, b"c=biws,r=abcdef,p=" + b"A" * 88)
        assert err == SASL_AUTHENTICATION_FAILED, msg

    # Real clients: refused with an authentication error, never delivered.
    for mechanism in ("SCRAM-SHA-512", "PLAIN"):
        errors = []
        conf = sasl_conf(s, "SASL_SSL", mechanism, password="not-the-password")
        conf["error_cb"] = errors.append
        p = Producer(conf)
        p.produce(unique_topic("nope"), b"x")
        wait_until(lambda: any(e.code() == KafkaError._AUTHENTICATION for e in errors) or p.poll(0.1) and False, 20, f"{mechanism}: authentication error reported")
        p.purge()
        p.flush(1)
    # The broker keeps serving the others.
    roundtrip_confluent(s, sasl_conf(s, "SASL_SSL", "SCRAM-SHA-512"))
    code, body, _ = http_get(s.b.http_url + "/metrics")
    assert code == 200
    failures = [ln for ln in body.splitlines() if ln.startswith('strata_sasl_authentications_total{result="failure"}')]
    assert failures and float(failures[0].split()[1]) >= 4, failures
    assert ADMIN_PASSWORD not in body and "not-the-password" not in body
    log = s.b.log_text()
    assert "not-the-password" not in log and ADMIN_PASSWORD not in log


def test_sasl_handshake_v0_raw_tokens(broker_factory, tmp_path):
    """SaslHandshake v0 (what librdkafka's feature check and old clients
    use): the exchange continues in raw length-prefixed tokens."""
    s = start_secure(broker_factory, tmp_path)
    with socket.create_connection(("127.0.0.1", s.sasl_port), timeout=10) as sock:
        assert sasl_handshake(sock, "PLAIN", version=0)[0] == 0
        token = b"\0admin\0" + ADMIN_PASSWORD.encode()
        sock.sendall(struct.pack(">i", len(token)) + token)
        assert _recv_frame(sock) == b""
        sock.sendall(kproto.frame(kproto.encode_request(3, 1, 7, {"topics": []})))
        r = _recv_frame(sock)
        assert struct.unpack(">i", r[:4])[0] == 7
    with socket.create_connection(("127.0.0.1", s.sasl_port), timeout=10) as sock:
        assert sasl_handshake(sock, "PLAIN", version=0)[0] == 0
        token = b"\0admin\0wrong"
        sock.sendall(struct.pack(">i", len(token)) + token)
        assert kproto.wait_closed(sock, 10) is None


def test_failed_authentications_are_rate_limited_per_address(broker_factory, tmp_path):
    s = start_secure(broker_factory, tmp_path)
    throttled = None
    for i in range(15):
        with socket.create_connection(("127.0.0.1", s.sasl_port), timeout=10) as sock:
            assert sasl_handshake(sock, "PLAIN")[0] == 0
            err, msg, _, _ = sasl_authenticate(sock, b"\0admin\0guess" + str(i).encode())
            assert err == SASL_AUTHENTICATION_FAILED
            if "too many" in (msg or ""):
                throttled = i
                break
    assert throttled == 10, f"throttled after {throttled} failures, want 10"
    # Even the right password is refused while the address is throttled.
    with socket.create_connection(("127.0.0.1", s.sasl_port), timeout=10) as sock:
        assert sasl_handshake(sock, "PLAIN")[0] == 0
        err, msg, _, _ = sasl_authenticate(sock, b"\0admin\0" + ADMIN_PASSWORD.encode())
        assert err == SASL_AUTHENTICATION_FAILED and "too many" in msg
    code, body, _ = http_get(s.b.http_url + "/metrics")
    line = [ln for ln in body.splitlines() if ln.startswith('strata_sasl_authentications_total{result="throttled"}')]
    assert line and float(line[0].split()[1]) >= 2


def test_session_lifetime_is_answered_and_expired_sessions_are_closed(broker_factory, tmp_path):
    s = start_secure(broker_factory, tmp_path, extra=["--sasl-session-lifetime-ms", "1500"])
    with socket.create_connection(("127.0.0.1", s.sasl_port), timeout=10) as sock:
        assert sasl_handshake(sock, "PLAIN")[0] == 0
        err, _, _, life = sasl_authenticate(sock, b"\0admin\0" + ADMIN_PASSWORD.encode())
        assert err == 0 and life == 1500
        sock.sendall(kproto.frame(kproto.encode_request(3, 1, 7, {"topics": []})))
        _recv_frame(sock)  # served while the session lives
        time.sleep(1.6)  # the lifetime itself is what is tested
        sock.sendall(kproto.frame(kproto.encode_request(3, 1, 8, {"topics": []})))
        assert kproto.wait_closed(sock, 10) is None
    # librdkafka re-authenticates (KIP-368) and keeps producing past the lifetime.
    conf = sasl_conf(s, "SASL_SSL", "SCRAM-SHA-512")
    topic = unique_topic("reauth")
    create_topic(s.b.bootstrap, topic)
    p = producer(conf.pop("bootstrap.servers"), **conf)
    sent = []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        v = os.urandom(16)
        produce(p, topic, [Rec(None, v)])
        sent.append(v)
        time.sleep(0.2)
    got = consume_range(s.b.bootstrap, topic, {0: len(sent)})[0]
    assert [g.value for g in got] == sent


def test_before_authentication_only_small_sasl_frames(broker_factory, tmp_path):
    s = start_secure(broker_factory, tmp_path)
    # Metadata before authenticating closes the connection.
    with socket.create_connection(("127.0.0.1", s.sasl_port), timeout=10) as sock:
        sock.sendall(kproto.frame(kproto.encode_request(3, 1, 1, {"topics": []})))
        assert kproto.wait_closed(sock, 10) is None
    # ApiVersions is served.
    with kproto.Conn("127.0.0.1", s.sasl_port) as c:
        assert c.api_versions()
    # A 100 MiB SASL frame: refused at its length, nothing allocated.
    before = s.b.proc_status()["VmRSS"]
    socks = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", s.sasl_port), timeout=10)
        sock.sendall(struct.pack(">i", 100 * 1024 * 1024) + struct.pack(">hhih", 36, 1, 1, 0) + b"\0" * 65536)
        socks.append(sock)
    for sock in socks:
        assert kproto.wait_closed(sock, 10) is None
        sock.close()
    after = s.b.proc_status()["VmRSS"]
    assert after - before < 20 * 1024, f"RSS grew {before} -> {after} kB"
    code, body, _ = http_get(s.b.http_url + "/metrics")
    line = [ln for ln in body.splitlines() if ln.startswith("strata_pre_auth_refused_total ")]
    assert line and float(line[0].split()[1]) >= 21
    # A normal client still gets in.
    roundtrip_confluent(s, sasl_conf(s, "SASL_PLAINTEXT", "SCRAM-SHA-512"))


def test_mutual_tls_refuses_a_client_without_a_certificate(broker_factory, tmp_path):
    s = start_secure(broker_factory, tmp_path, client_ca=True)
    conf = {
        "bootstrap.servers": s.addr(s.ssl_port),
        "security.protocol": "SSL",
        "ssl.ca.location": str(s.pki.ca_cert),
        "ssl.certificate.location": str(s.pki.client_cert),
        "ssl.key.location": str(s.pki.client_key),
    }
    roundtrip_confluent(s, conf)
    # Without a certificate: the handshake fails.
    ctx = ssl.create_default_context(cafile=str(s.pki.ca_cert))
    with socket.create_connection(("127.0.0.1", s.ssl_port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, kproto.ConnectionClosed, BrokenPipeError)):
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                # TLS 1.3: the refusal arrives with the first read.
                tls.sendall(kproto.frame(kproto.encode_request(18, 0, 1, {})))
                _recv_frame(tls)
    # confluent-kafka without a certificate never gets metadata.
    a = AdminClient({"bootstrap.servers": s.addr(s.ssl_port), "security.protocol": "SSL", "ssl.ca.location": str(s.pki.ca_cert), "socket.timeout.ms": 3000})
    with pytest.raises(Exception):
        a.list_topics(timeout=5)
    wait_until(lambda: _metric(s, "strata_tls_handshake_failures_total") >= 1, 10, "handshake failure counted")
    # kafka-python with its certificate works over mutual TLS.
    from kafka import KafkaProducer

    ctx = ssl.create_default_context(cafile=str(s.pki.ca_cert))
    ctx.load_cert_chain(str(s.pki.client_cert), str(s.pki.client_key))
    topic = unique_topic("mtls")
    create_topic(s.b.bootstrap, topic)
    p = KafkaProducer(bootstrap_servers=s.addr(s.ssl_port), security_protocol="SSL", ssl_context=ctx, acks="all")
    md = p.send(topic, value=b"over mutual TLS").get(timeout=30)
    p.close()
    got = consume_range(s.b.bootstrap, topic, {0: md.offset + 1})[0]
    assert got[-1].value == b"over mutual TLS"


def test_a_client_certificate_is_the_principal_the_acls_see(broker_factory, tmp_path):
    """On an SSL listener with mutual TLS the client is `User:<CN>` of its
    certificate (make_pki's client certificate: CN=alice), and the ACLs
    apply to it: alice may write the topic she is granted and no other."""
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, NewTopic, ResourcePatternType, ResourceType

    s = start_secure(broker_factory, tmp_path, client_ca=True, extra=["--authorizer", "acl", "--super-users", "User:admin"])
    admin_conf = sasl_conf(s, "SASL_PLAINTEXT", "SCRAM-SHA-512")
    admin = AdminClient(admin_conf)
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in ("granted", "not-granted")]).values():
        f.result(timeout=30)
    grant = AclBinding(ResourceType.TOPIC, "granted", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
    for f in admin.create_acls([grant]).values():
        f.result(timeout=30)
    mtls = {
        "bootstrap.servers": s.addr(s.ssl_port),
        "security.protocol": "SSL",
        "ssl.ca.location": str(s.pki.ca_cert),
        "ssl.certificate.location": str(s.pki.client_cert),
        "ssl.key.location": str(s.pki.client_key),
    }
    assert _deliver(mtls, "granted", b"by alice's certificate") is None
    err = _deliver(mtls, "not-granted", b"nope")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    got = consume_range(s.addr(s.sasl_port), "granted", {0: 1}, **{k: v for k, v in admin_conf.items() if k != "bootstrap.servers"})[0]
    assert [g.value for g in got] == [b"by alice's certificate"]


def test_user_quotas_apply_to_the_authenticated_user(broker_factory, tmp_path):
    """A producer_byte_rate quota on user alice throttles what alice sends
    over SASL, whatever its client id, and nobody else."""
    from test_quotas import alter, metrics_text

    s = start_secure(broker_factory, tmp_path, extra=["--quota-window-size-ms", "200"], users=(("alice", ALICE_PASSWORD),))
    assert alter(s.b, [({"user": "alice"}, {"producer_byte_rate": 20000.0})])[0]["error_code"] == 0
    topic = unique_topic("user-quota")
    create_topic(s.b.bootstrap, topic)
    # 100 KB each: alice's burst allowance is 2 s of 20 KB/s.
    for user, password, cid in (("alice", ALICE_PASSWORD, "by-alice"), ("admin", ADMIN_PASSWORD, "by-admin")):
        p = Producer({**sasl_conf(s, "SASL_PLAINTEXT", "SCRAM-SHA-512", user, password), "client.id": cid, "acks": "1", "linger.ms": 5})
        for _ in range(100):
            p.produce(topic, b"x" * 1000)
        assert p.flush(60) == 0
    text = metrics_text(s.b)
    assert 'strata_client_throttled_total{client_id="by-alice",quota="produce"}' in text, text
    assert 'client_id="by-admin",quota="produce"' not in text


def _metric(s: Secure, name: str) -> float:
    code, body, _ = http_get(s.b.http_url + "/metrics")
    for ln in body.splitlines():
        if ln.startswith(name + " "):
            return float(ln.split()[1])
    return -1


def _peer_cert(port: int, ca: Path) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.getpeercert(binary_form=True)


def test_certificate_files_are_reloaded(broker_factory, tmp_path):
    s = start_secure(broker_factory, tmp_path)
    first = _peer_cert(s.ssl_port, s.pki.ca_cert)
    new = s.pki.server_cert("strata-server-2")
    assert new != first
    wait_until(lambda: _peer_cert(s.ssl_port, s.pki.ca_cert) == new, 15, "new connections see the new certificate")
    # A broken rewrite keeps the last good certificate.
    s.pki.cert.write_text("not a certificate")
    time.sleep(2.5)  # two reload checks pass; nothing to await but their absence of effect
    assert _peer_cert(s.ssl_port, s.pki.ca_cert) == new
    roundtrip_confluent(s, sasl_conf(s, "SASL_SSL", "SCRAM-SHA-512"))


def test_a_bad_tls_file_names_itself_and_stops_startup(broker_factory, tmp_path):
    bad = tmp_path / "broken.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    key = tmp_path / "missing.key"
    b = broker_factory(start=False)
    b.extra_args = ["--listeners", f"PLAINTEXT://{b.bootstrap},SSL://127.0.0.1:{free_port()}", "--tls-cert", str(bad), "--tls-key", str(key)]
    b.start(wait=False)
    rc = b.proc.wait(timeout=30)
    assert rc != 0
    assert str(bad) in b.log_text() or str(key) in b.log_text(), b.log_tail()
    # An SSL listener without a certificate is refused naming the flag.
    b2 = broker_factory(start=False)
    b2.extra_args = ["--listeners", f"SSL://{b2.bootstrap}"]
    b2.start(wait=False)
    assert b2.proc.wait(timeout=30) != 0
    assert "--tls-cert" in b2.log_text()


def test_metadata_advertises_the_listener_the_client_connected_on(broker_factory, tmp_path):
    s = start_secure(broker_factory, tmp_path)
    for port, conf in [
        (s.b.kafka_port, {}),
        (s.sasl_ssl_port, {k: v for k, v in sasl_conf(s, "SASL_SSL", "SCRAM-SHA-512").items() if k != "bootstrap.servers"}),
        (s.ssl_port, {"security.protocol": "SSL", "ssl.ca.location": str(s.pki.ca_cert)}),
    ]:
        md = AdminClient({"bootstrap.servers": s.addr(port), **conf}).list_topics(timeout=20)
        assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", port)]


def test_user_set_on_a_stopped_node_then_login_and_describe(broker_factory, tmp_path):
    s = start_secure(broker_factory, tmp_path)
    s.b.stop()
    r = user_set(s.b.data_dir, "carol", "carol-pw", "SCRAM-SHA-256")
    assert r.returncode == 0, r.stderr
    bad = user_set(s.b.data_dir, "dave", "pw", "SCRAM-SHA-256", ["--iterations", "1000"])
    assert bad.returncode != 0 and "--iterations" in bad.stderr
    bad = user_set(s.b.data_dir, "dave", "pw", "SCRAM-SHA-1")
    assert bad.returncode != 0 and "--mechanism" in bad.stderr
    s.b.start()
    roundtrip_confluent(s, sasl_conf(s, "SASL_SSL", "SCRAM-SHA-256", "carol", "carol-pw"))
    a = AdminClient({"bootstrap.servers": s.b.bootstrap})
    desc = a.describe_user_scram_credentials(["admin", "carol"])
    infos = {u: f.result(timeout=30) for u, f in desc.items()}
    assert [(i.mechanism, i.iterations) for i in infos["carol"].scram_credential_infos] == [(ScramMechanism.SCRAM_SHA_256, 4096)]
    assert [(i.mechanism, i.iterations) for i in infos["admin"].scram_credential_infos] == [(ScramMechanism.SCRAM_SHA_512, 4096)]
    # Delete: the login stops working.
    fs = a.alter_user_scram_credentials([UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_256)])
    fs["carol"].result(timeout=30)
    with socket.create_connection(("127.0.0.1", s.sasl_port), timeout=10) as sock:
        assert sasl_handshake(sock, "PLAIN")[0] == 0
        assert sasl_authenticate(sock, b"\0carol\0carol-pw")[0] == SASL_AUTHENTICATION_FAILED


def test_kcat_over_sasl_ssl(broker_factory, tmp_path, kcat):
    s = start_secure(broker_factory, tmp_path)
    topic = unique_topic("kcat")
    create_topic(s.b.bootstrap, topic)
    conf = [
        "-b", s.addr(s.sasl_ssl_port),
        "-X", "security.protocol=SASL_SSL",
        "-X", "sasl.mechanisms=SCRAM-SHA-512",
        "-X", "sasl.username=admin",
        "-X", f"sasl.password={ADMIN_PASSWORD}",
        "-X", f"ssl.ca.location={s.pki.ca_cert}",
    ]
    lines = [f"line-{i}-{os.urandom(4).hex()}" for i in range(10)]
    subprocess.run([kcat, *conf, "-P", "-t", topic], input="\n".join(lines) + "\n", text=True, check=True, timeout=60)
    out = subprocess.run([kcat, *conf, "-C", "-t", topic, "-o", "beginning", "-c", str(len(lines)), "-e"], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines() == lines


# -- ACLs ----------------------------------------------------------------------


def _deliver(conf: dict, topic: str, value: bytes):
    """Produce one record; returns the delivery error (None on success)."""
    out = []
    p = Producer({**conf, "acks": "all", "message.timeout.ms": 15000, "retries": 0})
    p.produce(topic, value, on_delivery=lambda err, msg: out.append(err))
    p.flush(30)
    assert out, "no delivery report"
    return out[0]


def _consume_error(conf: dict, topic: str, group: str | None = None):
    """Consume ``topic`` (assign, in the permitted group G, or subscribe in ``group``);
    returns (values, first error code)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**conf, "group.id": group or "G", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        if group is None:
            c.assign([TopicPartition(topic, 0, 0)])
        else:
            c.subscribe([topic])
        values, deadline = [], time.monotonic() + 20
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                if values:
                    break
                continue
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                return values, m.error().code()
            values.append(m.value())
            if group is not None:
                c.commit(message=m, asynchronous=False)
        return values, None
    finally:
        c.close()


def test_acls_allow_exactly_what_is_granted(broker_factory, tmp_path):
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        NewTopic,
        ResourcePatternType,
        ResourceType,
    )

    s = start_secure(
        broker_factory,
        tmp_path,
        extra=["--authorizer", "acl", "--super-users", "User:admin"],
        users=(("alice", ALICE_PASSWORD),),
    )
    admin_conf = sasl_conf(s, "SASL_PLAINTEXT", "SCRAM-SHA-512")
    alice_conf = sasl_conf(s, "SASL_PLAINTEXT", "SCRAM-SHA-512", "alice", ALICE_PASSWORD)
    admin = AdminClient(admin_conf)
    alice = AdminClient(alice_conf)
    topics = ["orders", "other", "logs-app", "logs-secret"]
    fs = admin.create_topics([NewTopic(t, 1, 1) for t in topics])
    for f in fs.values():
        f.result(timeout=30)
    for t in ("logs-app", "logs-secret"):
        assert _deliver(admin_conf, t, f"{t}-value".encode()) is None

    def acl(rt, name, pattern, op, perm=AclPermissionType.ALLOW):
        return AclBinding(rt, name, pattern, "User:alice", "*", op, perm)

    grants = [
        acl(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, AclOperation.WRITE),
        acl(ResourceType.TOPIC, "logs-", ResourcePatternType.PREFIXED, AclOperation.READ),
        acl(ResourceType.TOPIC, "logs-secret", ResourcePatternType.LITERAL, AclOperation.ALL, AclPermissionType.DENY),
        acl(ResourceType.GROUP, "G", ResourcePatternType.LITERAL, AclOperation.READ),
    ]
    for f in admin.create_acls(grants).values():
        f.result(timeout=30)

    # Write topic A: allowed; another topic: TOPIC_AUTHORIZATION_FAILED.
    assert _deliver(alice_conf, "orders", b"by alice") is None
    err = _deliver(alice_conf, "other", b"nope")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    # Read needs READ: WRITE alone does not give it.
    _, code = _consume_error(alice_conf, "orders")
    assert code == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Prefixed READ with group G: consumes and commits.
    values, code = _consume_error(alice_conf, "logs-app", group="G")
    assert code is None and values == [b"logs-app-value"]
    # Another group: GROUP_AUTHORIZATION_FAILED.
    _, code = _consume_error(alice_conf, "logs-app", group="H")
    assert code == KafkaError.GROUP_AUTHORIZATION_FAILED
    # Deny wins over the prefixed allow (the topic is not even described).
    _, code = _consume_error(alice_conf, "logs-secret", group="G")
    assert code == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Metadata hides what alice may not describe.
    md = alice.list_topics(timeout=20)
    assert sorted(md.topics) == ["logs-app", "orders"]
    assert sorted(t for t in admin.list_topics(timeout=20).topics if not t.startswith("__")) == sorted(topics)
    # Creating topics and managing ACLs need cluster rights.
    fs = alice.create_topics([NewTopic("alice-new", 1, 1)])
    with pytest.raises(Exception) as e:
        fs["alice-new"].result(timeout=30)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    any_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY)
    # (raw frames: librdkafka drops DescribeAcls' top-level error code)
    with socket.create_connection(("127.0.0.1", s.sasl_port), timeout=10) as sock:
        assert sasl_handshake(sock, "PLAIN")[0] == 0
        assert sasl_authenticate(sock, b"\0alice\0" + ALICE_PASSWORD.encode())[0] == 0
        sock.sendall(_req(29, 1, 9, struct.pack(">bhbhhbb", 1, -1, 1, -1, -1, 1, 1)))
        r = _recv_frame(sock)
        assert struct.unpack(">h", r[8:10])[0] == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # The admin sees and deletes them; the write right is gone at once.
    described = admin.describe_acls(any_filter).result(timeout=30)
    assert sorted(map(str, described)) == sorted(map(str, grants))
    write_filter = AclBindingFilter(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
    deleted = admin.delete_acls([write_filter])[write_filter].result(timeout=30)
    assert len(deleted) == 1
    err = _deliver(alice_conf, "orders", b"after delete")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The anonymous PLAINTEXT listener gets nothing either.
    assert sorted(AdminClient({"bootstrap.servers": s.b.bootstrap}).list_topics(timeout=20).topics) == []
