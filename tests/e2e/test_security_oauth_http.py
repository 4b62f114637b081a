"""SASL/OAUTHBEARER with JWTs checked against a JWKS, and authentication of
the HTTP API (basic, bearer) onto the same principals and ACLs.

Signing keys are generated per test with the ``cryptography`` package and
their public halves written to a JWKS file the broker reads; no key is
committed."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from cluster import wait_until
from conftest import free_port, http_get
from kclients import Rec, consume_range, create_topic, produce, producer, unique_topic
from test_security import (
    ADMIN_PASSWORD,
    ALICE_PASSWORD,
    SASL_AUTHENTICATION_FAILED,
    sasl_authenticate,
    sasl_handshake,
    user_set,
)

ISSUER = "https://issuer.test"
AUDIENCE = "strata"


# -- tokens ------------------------------------------------------------------


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _int(n: int) -> str:
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Signer:
    """A signing key (ES256 or RS256) and its JWK."""

    def __init__(self, kid: str, alg: str = "ES256"):
        self.kid, self.alg = kid, alg
        if alg == "ES256":
            self.key = ec.generate_private_key(ec.SECP256R1())
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict:
        pub = self.key.public_key().public_numbers()
        if self.alg == "ES256":
            return {"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256", "x": b64u(pub.x.to_bytes(32, "big")), "y": b64u(pub.y.to_bytes(32, "big"))}
        return {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256", "n": _int(pub.n), "e": _int(pub.e)}

    def token(self, sub: str = "alice", ttl: float = 600, header: dict | None = None, **claims) -> str:
        now = int(time.time())
        body = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now - 5, "exp": now + int(ttl)}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        h = header or {"alg": self.alg, "kid": self.kid, "typ": "JWT"}
        msg = f"{b64u(json.dumps(h).encode())}.{b64u(json.dumps(body).encode())}".encode()
        if h.get("alg") == "none":
            return msg.decode() + "."
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.key.sign(msg, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            sig = self.key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
        return msg.decode() + "." + b64u(sig)


def write_jwks(path: Path, *signers: Signer) -> Path:
    # A symmetric key in the set is ignored (HMAC is never accepted).
    keys = [s.jwk() for s in signers] + [{"kty": "oct", "kid": "hmac", "k": b64u(b"shared-secret")}]
    path.write_text(json.dumps({"keys": keys}))
    return path


def oauth_flags(jwks: str) -> list[str]:
    return [
        "--sasl-oauthbearer-jwks",
        jwks,
        "--sasl-oauthbearer-expected-issuer",
        ISSUER,
        "--sasl-oauthbearer-expected-audience",
        f"other,{AUDIENCE}",
    ]


def start_oauth(broker_factory, tmp_path: Path, extra: list[str] | None = None, jwks: str | None = None):
    """A broker with PLAINTEXT (for setup) and SASL_PLAINTEXT offering
    OAUTHBEARER and SCRAM; returns (broker, sasl port, ES256 signer, RS256 signer)."""
    es, rs = Signer("es-1"), Signer("rs-1", "RS256")
    if jwks is None:
        jwks = str(write_jwks(tmp_path / "jwks.json", es, rs))
    port = free_port()
    b = broker_factory(start=False)
    b.extra_args = [
        "--listeners",
        f"PLAINTEXT://{b.bootstrap},SASL_PLAINTEXT://127.0.0.1:{port}",
        "--sasl-enabled-mechanisms",
        "OAUTHBEARER,SCRAM-SHA-512,PLAIN",
        *oauth_flags(jwks),
        *(extra or []),
    ]
    assert user_set(b.data_dir, "admin", ADMIN_PASSWORD).returncode == 0
    b.start()
    return b, port, es, rs


def oauth_conf(port: int, token_fn) -> dict:
    def cb(_config):
        return token_fn(), time.time() + 600

    return {
        "bootstrap.servers": f"127.0.0.1:{port}",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "OAUTHBEARER",
        "oauth_cb": cb,
    }


def client_first(token: str) -> bytes:
    return f"n,,\x01auth=Bearer {token}\x01\x01".encode()


def raw_login(port: int, token: str, source: str = "127.0.0.1") -> tuple[int, str | None, int]:
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as sock:
        err, mechs = sasl_handshake(sock, "OAUTHBEARER")
        assert err == 0 and "OAUTHBEARER" in mechs, (err, mechs)
        err, msg, _, life = sasl_authenticate(sock, client_first(token))
        return err, msg, life


# -- OAUTHBEARER -------------------------------------------------------------


def test_oauthbearer_produce_consume_with_confluent_kafka_and_kafka_python(broker_factory, tmp_path):
    b, port, es, rs = start_oauth(broker_factory, tmp_path)
    # confluent-kafka (librdkafka) with an oauth_cb handing out ES256 and RS256 tokens.
    for signer in (es, rs):
        topic = unique_topic("oauth")
        create_topic(b.bootstrap, topic)
        conf = oauth_conf(port, lambda s=signer: s.token("alice"))
        bootstrap = conf.pop("bootstrap.servers")
        recs = [Rec(f"k{i}".encode(), os.urandom(64)) for i in range(30)]
        produce(producer(bootstrap, **conf), topic, recs)
        got = consume_range(bootstrap, topic, {0: len(recs)}, **conf)[0]
        assert [(g.key, g.value) for g in got] == [(r.key, r.value) for r in recs], signer.alg

    # kafka-python with a token provider.
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.sasl.oauth import AbstractTokenProvider

    class Provider(AbstractTokenProvider):
        def token(self):
            return es.token("bob")

    topic = unique_topic("oauth-kp")
    create_topic(b.bootstrap, topic)
    common = dict(bootstrap_servers=f"127.0.0.1:{port}", security_protocol="SASL_PLAINTEXT", sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Provider())
    p = KafkaProducer(acks="all", **common)
    values = [os.urandom(48) for _ in range(20)]
    for v in values:
        p.send(topic, value=v).get(timeout=30)
    p.close()
    c = KafkaConsumer(auto_offset_reset="earliest", enable_auto_commit=False, **common)
    c.assign([TopicPartition(topic, 0)])
    got, deadline = [], time.monotonic() + 30
    while len(got) < len(values) and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            got.extend(r.value for r in recs)
    c.close()
    assert got == values

    # The session lifetime (SaslAuthenticate v1) is bounded by exp.
    err, msg, life = raw_login(port, es.token("alice", ttl=120))
    assert err == 0, msg
    assert 60_000 < life <= 120_000, life


def test_bad_tokens_are_refused_and_the_broker_keeps_serving(broker_factory, tmp_path):
    b, port, es, rs = start_oauth(broker_factory, tmp_path)
    stranger = Signer("es-1")  # same kid, another key
    now = int(time.time())
    cases = {
        "expired": (es.token(ttl=-120), "expired"),
        "wrong issuer": (es.token(iss="https://evil.test"), "issuer"),
        "wrong audience": (es.token(aud="someone-else"), "audience"),
        "bad signature": (stranger.token(), "signature"),
        "alg none": (es.token(header={"alg": "none", "typ": "JWT"}), "none"),
        "hmac": (es.token(header={"alg": "HS256", "kid": "hmac"}), "HS256"),
        "not yet valid": (es.token(nbf=now + 3600), "not valid before"),
        "no exp": (es.token(exp=None), "exp"),
        "garbage": ("not-a-jwt", "malformed"),
    }
    # The refused logins come from another loopback address than the
    # clients below: failures are rate limited per address.
    for name, (token, words) in cases.items():
        err, msg, _ = raw_login(port, token, source="127.0.0.2")
        assert err == SASL_AUTHENTICATION_FAILED, (name, err, msg)
        assert words in (msg or ""), (name, msg)
    # A malformed client message.
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.2", 0)) as sock:
        assert sasl_handshake(sock, "OAUTHBEARER")[0] == 0
        err, msg, _, _ = sasl_authenticate(sock, b"auth=Bearer x")
        assert err == SASL_AUTHENTICATION_FAILED, msg

    # That address is now over the limit: even a good token is refused for a while...
    err, msg, _ = raw_login(port, rs.token("carol"), source="127.0.0.2")
    assert err == SASL_AUTHENTICATION_FAILED and "too many" in msg, msg

    # ...while others keep working.
    err, msg, _ = raw_login(port, rs.token("carol"))
    assert err == 0, msg
    topic = unique_topic("after")
    create_topic(b.bootstrap, topic)
    conf = oauth_conf(port, lambda: rs.token("carol"))
    bootstrap = conf.pop("bootstrap.servers")
    produce(producer(bootstrap, **conf), topic, [Rec(None, b"still serving")])
    assert [g.value for g in consume_range(bootstrap, topic, {0: 1}, **conf)[0]] == [b"still serving"]

    # librdkafka with an expired token reports the authentication error.
    errors = []
    conf = {**oauth_conf(port, lambda: es.token(ttl=-120)), "error_cb": lambda e: errors.append(e), "message.timeout.ms": 5000}
    p = Producer(conf)
    p.produce("whatever", b"x")
    p.flush(10)
    assert any(e.code() == KafkaError._AUTHENTICATION and "expired" in e.str() for e in errors), errors



def test_kafka_python_with_a_refused_token_reports_the_reason(broker_factory, tmp_path, caplog):
    import logging

    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError
    from kafka.sasl.oauth import AbstractTokenProvider

    b, port, es, _ = start_oauth(broker_factory, tmp_path)

    class Provider(AbstractTokenProvider):
        def token(self):
            return es.token(aud="someone-else")

    caplog.set_level(logging.ERROR, logger="kafka.conn")
    with pytest.raises(KafkaTimeoutError):
        p = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", security_protocol="SASL_PLAINTEXT", sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Provider(), max_block_ms=3000)
        p.send("t", b"v").get(timeout=10)
    # kafka-python gives up with a timeout; its log carries the broker's reason.
    assert "SaslAuthenticationFailedError" in caplog.text and "audience" in caplog.text, caplog.text[-2000:]

def test_oauthbearer_is_offered_only_when_configured(broker_factory, tmp_path):
    port = free_port()
    b = broker_factory(start=False)
    b.extra_args = ["--listeners", f"PLAINTEXT://{b.bootstrap},SASL_PLAINTEXT://127.0.0.1:{port}"]
    b.start()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        err, mechs = sasl_handshake(sock, "OAUTHBEARER")
        assert err == 33 and "OAUTHBEARER" not in mechs, (err, mechs)
    # Listing it without a JWKS names the flag and stops startup.
    b2 = broker_factory(start=False)
    b2.extra_args = ["--listeners", f"SASL_PLAINTEXT://{b2.bootstrap}", "--sasl-enabled-mechanisms", "OAUTHBEARER"]
    b2.start(wait=False)
    assert b2.proc.wait(timeout=30) != 0
    assert "--sasl-oauthbearer-jwks" in b2.log_text()


def test_a_missing_or_invalid_jwks_names_itself_and_stops_startup(broker_factory, tmp_path):
    for name, content in [("missing.json", None), ("invalid.json", "{not json"), ("hmac-only.json", json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))]:
        path = tmp_path / name
        if content is not None:
            path.write_text(content)
        b = broker_factory(start=False)
        b.extra_args = ["--sasl-oauthbearer-jwks", str(path)]
        b.start(wait=False)
        assert b.proc.wait(timeout=30) != 0, name
        assert str(path) in b.log_text(), b.log_tail()


class _JwksServer:
    """A JWKS endpoint on loopback whose document can be swapped."""

    def __init__(self):
        self.doc = b"{}"
        self.hits = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.doc)))
                self.end_headers()
                self.wfile.write(outer.doc)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_jwks_url_is_fetched_and_refreshed(broker_factory, tmp_path):
    srv = _JwksServer()
    try:
        old, new = Signer("old"), Signer("new", "RS256")
        srv.doc = json.dumps({"keys": [old.jwk()]}).encode()
        b, port, _, _ = start_oauth(broker_factory, tmp_path, jwks=srv.url, extra=["--sasl-oauthbearer-jwks-refresh-ms", "1000"])
        assert raw_login(port, old.token())[0] == 0
        assert raw_login(port, new.token())[0] == SASL_AUTHENTICATION_FAILED
        # Key rotation at the endpoint: the new key is picked up, the old one dropped.
        srv.doc = json.dumps({"keys": [new.jwk()]}).encode()
        wait_until(lambda: raw_login(port, new.token())[0] == 0, 15, "the rotated key accepted")
        assert raw_login(port, old.token())[0] == SASL_AUTHENTICATION_FAILED
        # An endpoint that starts serving garbage keeps the last good keys.
        hits = srv.hits
        srv.doc = b"<html>oops</html>"
        wait_until(lambda: srv.hits >= hits + 2, 15, "two more refreshes")
        assert raw_login(port, new.token())[0] == 0
    finally:
        srv.close()


# -- HTTP API authentication ---------------------------------------------------

V2 = "application/vnd.kafka.v2+json"
BIN = "application/vnd.kafka.binary.v2+json"


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def assert_error(resp, status: int) -> dict:
    assert resp.status_code == status, f"want {status}, got {resp.status_code}: {resp.text[:300]}"
    body = resp.json()
    assert isinstance(body.get("error_code"), int) and body.get("message"), body
    return body


def start_http_auth(broker_factory, tmp_path: Path, methods: str, extra: list[str] | None = None):
    """A broker with the ACL authorizer, admin as super user, alice as an
    ordinary SCRAM user, and the HTTP API behind ``methods``."""
    es = Signer("es-1")
    jwks = write_jwks(tmp_path / "jwks.json", es)
    port = free_port()
    b = broker_factory(start=False)
    b.extra_args = [
        "--listeners",
        f"PLAINTEXT://{b.bootstrap},SASL_PLAINTEXT://127.0.0.1:{port}",
        "--authorizer",
        "acl",
        "--super-users",
        "User:admin",
        "--http-auth",
        methods,
        *oauth_flags(str(jwks)),
        *(extra or []),
    ]
    assert user_set(b.data_dir, "admin", ADMIN_PASSWORD).returncode == 0
    assert user_set(b.data_dir, "alice", ALICE_PASSWORD).returncode == 0
    b.start()
    return b, port, es


def grant_alice(port: int, w_topic: str, r_topic: str, groups: list[str]) -> None:
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, AdminClient, ResourcePatternType, ResourceType

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "admin", "sasl.password": ADMIN_PASSWORD})

    def acl(rt, name, op):
        return AclBinding(rt, name, ResourcePatternType.LITERAL, "User:alice", "*", op, AclPermissionType.ALLOW)

    grants = [
        acl(ResourceType.TOPIC, w_topic, AclOperation.WRITE),
        acl(ResourceType.TOPIC, r_topic, AclOperation.READ),
        *(acl(ResourceType.GROUP, g, AclOperation.READ) for g in groups),
    ]
    for f in admin.create_acls(grants).values():
        f.result(timeout=30)


def test_http_basic_and_bearer_map_to_the_kafka_principals_and_acls(broker_factory, tmp_path):
    import requests

    b, port, es = start_http_auth(broker_factory, tmp_path, "basic,bearer", extra=["--metrics-auth"])
    url = b.http_url
    admin = basic("admin", ADMIN_PASSWORD)

    # Unauthenticated: 401, JSON, and a challenge naming both schemes.
    r = requests.get(f"{url}/v3/clusters", timeout=10)
    assert_error(r, 401)
    challenge = r.headers.get("WWW-Authenticate", "")
    assert "Basic" in challenge and "Bearer" in challenge, challenge
    assert_error(requests.get(f"{url}/v3/clusters", headers=basic("admin", "wrong"), timeout=10), 401)
    assert_error(requests.get(f"{url}/v3/clusters", headers=basic("nobody", "x"), timeout=10), 401)
    assert "expired" in assert_error(requests.get(f"{url}/v3/clusters", headers=bearer(es.token("alice", ttl=-120)), timeout=10), 401)["message"]
    assert_error(requests.get(f"{url}/v3/clusters", headers=bearer(Signer("es-1").token("alice")), timeout=10), 401)
    # Health stays open; /metrics needs a login with --metrics-auth.
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
    assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
    assert_error(requests.get(f"{url}/metrics", timeout=10), 401)
    m = requests.get(f"{url}/metrics", headers=admin, timeout=10)
    assert m.status_code == 200 and "strata_sasl_authentications_total" in m.text
    assert ADMIN_PASSWORD not in m.text and ADMIN_PASSWORD not in b.log_text()

    # The super user creates the topics over HTTP.
    cid = requests.get(f"{url}/v3/clusters", headers=admin, timeout=10).json()["data"][0]["cluster_id"]
    topics = f"{url}/v3/clusters/{cid}/topics"
    w_topic, r_topic, hidden = unique_topic("w"), unique_topic("r"), unique_topic("hidden")
    for t in (w_topic, r_topic, hidden):
        r = requests.post(topics, json={"topic_name": t, "partitions_count": 1}, headers=admin, timeout=30)
        assert r.status_code == 201, r.text
    grant_alice(port, w_topic, r_topic, ["G-basic", "G-bearer"])
    r_values = [os.urandom(40) for _ in range(5)]
    for v in r_values:
        r = requests.post(f"{topics}/{r_topic}/records", json={"value": {"type": "BINARY", "data": base64.b64encode(v).decode()}}, headers=admin, timeout=30)
        assert r.status_code == 200, r.text

    written = []
    for name, creds in [("basic", lambda: basic("alice", ALICE_PASSWORD)), ("bearer", lambda: bearer(es.token("alice")))]:
        # Allowed: produce to the WRITE topic...
        v = os.urandom(32)
        r = requests.post(f"{topics}/{w_topic}/records", json={"value": {"type": "BINARY", "data": base64.b64encode(v).decode()}}, headers=creds(), timeout=30)
        assert r.status_code == 200, (name, r.text)
        written.append(v)
        # ...and read the READ topic, statelessly and in its group.
        r = requests.get(f"{topics}/{r_topic}/partitions/0/records", params={"offset": 0}, headers=creds(), timeout=30)
        assert r.status_code == 200, (name, r.text)
        assert [base64.b64decode(x["value"]) for x in r.json()["records"]] == r_values
        s = requests.Session()
        s.headers.update(creds())
        inst = s.post(f"{url}/consumers/G-{name}", data=json.dumps({"name": f"i-{name}", "format": "binary", "auto.offset.reset": "earliest"}), headers={"Content-Type": V2}, timeout=10)
        assert inst.status_code == 200, (name, inst.text)
        iu = inst.json()["base_uri"]
        assert s.post(iu + "/subscription", json={"topics": [r_topic]}, headers={"Content-Type": V2}, timeout=10).status_code == 204
        got, deadline = [], time.monotonic() + 30
        while len(got) < len(r_values) and time.monotonic() < deadline:
            rr = s.get(iu + "/records", headers={"Accept": BIN}, params={"timeout": 500}, timeout=30)
            assert rr.status_code == 200, (name, rr.text)
            got.extend(base64.b64decode(x["value"]) for x in rr.json())
        assert got == r_values, name
        assert s.post(iu + "/offsets", headers={"Content-Type": V2}, timeout=10).status_code in (200, 204)
        # Another principal cannot use alice's instance.
        assert_error(requests.get(iu + "/records", headers={**admin, "Accept": BIN}, timeout=10), 403)
        assert s.delete(iu, timeout=10).status_code == 204

        # Forbidden: 403 with the JSON error body.
        def v64():
            return {"value": {"type": "BINARY", "data": base64.b64encode(b"x").decode()}}

        assert_error(requests.post(f"{topics}/{r_topic}/records", json=v64(), headers=creds(), timeout=30), 403)
        assert_error(requests.post(f"{topics}/{hidden}/records", json=v64(), headers=creds(), timeout=30), 403)
        assert_error(requests.get(f"{topics}/{w_topic}/partitions/0/records", headers=creds(), timeout=30), 403)
        assert_error(requests.post(f"{url}/consumers/H", json={"name": "x"}, headers={**creds(), "Content-Type": V2}, timeout=10), 403)
        assert_error(requests.post(topics, json={"topic_name": unique_topic("new"), "partitions_count": 1}, headers=creds(), timeout=30), 403)
        assert_error(requests.delete(f"{topics}/{w_topic}", headers=creds(), timeout=30), 403)
        assert_error(requests.get(f"{topics}/{hidden}", headers=creds(), timeout=30), 403)
        assert_error(requests.get(f"{topics}/{w_topic}/configs", headers=creds(), timeout=30), 403)
        assert_error(requests.get(f"{url}/ui", headers=creds(), timeout=30), 403)
        # Listing shows only what alice may describe.
        listed = {t["topic_name"] for t in requests.get(topics, headers=creds(), timeout=30).json()["data"]}
        assert listed == {w_topic, r_topic}, listed

    # What alice produced over HTTP, read back by the super user.
    r = requests.get(f"{topics}/{w_topic}/partitions/0/records", params={"offset": 0}, headers=admin, timeout=30)
    assert [base64.b64decode(x["value"]) for x in r.json()["records"]] == written
    # The super user reaches the console and the admin routes.
    assert requests.get(f"{url}/ui", headers=admin, timeout=30).status_code == 200
    assert requests.delete(f"{topics}/{hidden}", headers=admin, timeout=30).status_code == 204


def test_http_failed_logins_are_rate_limited_and_counted(broker_factory, tmp_path):
    import requests

    b, _, es = start_http_auth(broker_factory, tmp_path, "bearer")
    url = b.http_url
    # Without --metrics-auth, /metrics stays open.
    before = requests.get(f"{url}/metrics", timeout=10)
    assert before.status_code == 200

    def failures() -> float:
        text = requests.get(f"{url}/metrics", timeout=10).text
        return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith('strata_sasl_authentications_total{result="failure"}'))

    # Basic is not enabled here: the challenge names Bearer only.
    r = requests.get(f"{url}/v3/clusters", headers=basic("admin", ADMIN_PASSWORD), timeout=10)
    assert_error(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(f"{url}/v3/clusters", headers=bearer(es.token("alice")), timeout=10).status_code == 200
    start = failures()
    bad = bearer(es.token("alice", iss="https://evil.test"))
    codes = [requests.get(f"{url}/v3/clusters", headers=bad, timeout=10).status_code for _ in range(12)]
    assert codes[:9].count(401) == 9 and codes[-1] == 429, codes
    assert failures() >= start + 9
    # The address is refused even with a good token until the window passes.
    assert_error(requests.get(f"{url}/v3/clusters", headers=bearer(es.token("alice")), timeout=10), 429)


def test_https_with_client_certificates_as_principals(broker_factory, tmp_path):
    import requests

    from test_security import make_pki

    pki = make_pki(tmp_path / "pki")  # client certificate CN=alice
    port = free_port()
    b = broker_factory(start=False)
    b.extra_args = [
        "--listeners",
        f"PLAINTEXT://{b.bootstrap},SASL_PLAINTEXT://127.0.0.1:{port}",
        "--authorizer",
        "acl",
        "--super-users",
        "User:admin",
        "--http-auth",
        "basic",
        "--http-tls-cert",
        str(pki.cert),
        "--http-tls-key",
        str(pki.key),
        "--http-tls-client-ca",
        str(pki.ca_cert),
    ]
    assert user_set(b.data_dir, "admin", ADMIN_PASSWORD).returncode == 0
    b.start(wait=False)
    url = f"https://127.0.0.1:{b.http_port}"
    ca = str(pki.ca_cert)
    cert = (str(pki.client_cert), str(pki.client_key))

    def ready():
        assert b.proc.poll() is None, b.log_tail()
        try:
            # Health probes need no certificate.
            return requests.get(f"{url}/readyz", verify=ca, timeout=2).status_code == 200
        except requests.exceptions.ConnectionError:
            return False

    wait_until(ready, 30, "HTTPS /readyz")
    # Plain HTTP on the HTTPS port gets nowhere.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{b.http_port}/v3/clusters", timeout=5)
    # Without a certificate or a password: 401.
    assert_error(requests.get(f"{url}/v3/clusters", verify=ca, timeout=10), 401)
    admin = basic("admin", ADMIN_PASSWORD)
    cid = requests.get(f"{url}/v3/clusters", headers=admin, verify=ca, timeout=10).json()["data"][0]["cluster_id"]
    topics = f"{url}/v3/clusters/{cid}/topics"
    mine, other = unique_topic("mine"), unique_topic("other")
    for t in (mine, other):
        assert requests.post(topics, json={"topic_name": t, "partitions_count": 1}, headers=admin, verify=ca, timeout=30).status_code == 201
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, AdminClient, ResourcePatternType, ResourceType

    ka = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "admin", "sasl.password": ADMIN_PASSWORD})
    grants = [AclBinding(ResourceType.TOPIC, mine, ResourcePatternType.LITERAL, "User:alice", "*", op, AclPermissionType.ALLOW) for op in (AclOperation.WRITE, AclOperation.READ)]
    for f in ka.create_acls(grants).values():
        f.result(timeout=30)

    # The certificate's CN is the principal User:alice.
    values = [os.urandom(24) for _ in range(3)]
    for v in values:
        r = requests.post(f"{topics}/{mine}/records", json={"value": {"type": "BINARY", "data": base64.b64encode(v).decode()}}, cert=cert, verify=ca, timeout=30)
        assert r.status_code == 200, r.text
    r = requests.get(f"{topics}/{mine}/partitions/0/records", params={"offset": 0}, cert=cert, verify=ca, timeout=30)
    assert r.status_code == 200, r.text
    assert [base64.b64decode(x["value"]) for x in r.json()["records"]] == values
    body = assert_error(requests.post(f"{topics}/{other}/records", json={"value": {"type": "STRING", "data": "x"}}, cert=cert, verify=ca, timeout=30), 403)
    assert "User:alice" in body["message"]
    # A certificate from another CA is refused in the handshake.
    stranger = make_pki(tmp_path / "other-pki")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{url}/v3/clusters", cert=(str(stranger.client_cert), str(stranger.client_key)), verify=ca, timeout=10)
    # A bad HTTPS file names its flag and stops startup.
    b2 = broker_factory(start=False)
    missing = tmp_path / "missing.pem"
    b2.extra_args = ["--http-tls-cert", str(missing), "--http-tls-key", str(pki.key)]
    b2.start(wait=False)
    assert b2.proc.wait(timeout=30) != 0
    assert "--http-tls-cert" in b2.log_text() and str(missing) in b2.log_text()
