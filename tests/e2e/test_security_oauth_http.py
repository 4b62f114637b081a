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
