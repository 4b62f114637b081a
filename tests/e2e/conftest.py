"""Fixtures that run the real ``strata`` binary.

``broker`` starts one broker per test on free 127.0.0.1 ports with a fresh
data dir; ``broker_factory`` starts brokers with extra flags. A broker can be
restarted on the same data dir and ports (``restart``) or killed (``kill``).
Teardown sends SIGTERM (SIGKILL after 10 s), then fails the test if the
broker did not exit 0 or its log says ``panicked``. When a test fails, the
tail of every broker log it started is attached to the report.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def strata_bin() -> Path:
    env = os.environ.get("STRATA_BIN")
    if env:
        return Path(env)
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return Path(target) / "release" / "strata"
    return REPO / "target" / "release" / "strata"


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port not handed out before in this test session (the
    OS may return the same free port twice before anyone binds it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def child_env(extra: dict | None = None) -> dict:
    """The environment for the broker: without STRATA_* variables from the
    caller's shell (they would change flags under the tests' feet)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env.setdefault("RUST_BACKTRACE", "1")
    if extra:
        env.update(extra)
    return env


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), dict(e.headers)


class Broker:
    """One strata process (and its restarts) on fixed ports and data dir."""

    def __init__(self, workdir: Path, extra_args: list[str] | None = None, env: dict | None = None, use_flags: bool = True):
        self.bin = strata_bin()
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "broker.log"
        self.kafka_port = free_port()
        self.http_port = free_port()
        self.controller_port = free_port()
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        self.use_flags = use_flags
        self.proc: subprocess.Popen | None = None
        self.exit_codes: list[int] = []
        self.starts = 0

    # -- addresses

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def args(self) -> list[str]:
        if not self.use_flags:
            return [str(self.bin), "serve", *self.extra_args]
        return [
            str(self.bin),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--kafka-listen",
            self.bootstrap,
            "--http-listen",
            f"127.0.0.1:{self.http_port}",
            "--advertised-host",
            "127.0.0.1",
            "--controller-listen",
            f"127.0.0.1:{self.controller_port}",
            *self.extra_args,
        ]

    # -- lifecycle

    def start(self, wait: bool = True) -> "Broker":
        if not self.bin.exists():
            pytest.fail(f"strata binary not found at {self.bin} (build it with `cargo build --release` or set STRATA_BIN)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.args())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.args(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env=child_env(self.env),
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(f"strata exited with code {rc} before it was ready\n--- broker log ---\n{self.log_tail()}")
            try:
                status, body, _ = http_get(self.http_url + "/readyz", timeout=1.0)
                if status == 200:
                    return
                last = f"HTTP {status}: {body[:200]}"
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        pytest.fail(f"strata not ready after {timeout}s (last /readyz: {last})\n--- broker log ---\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Signal the broker and wait for it; SIGKILL after ``timeout``.
        Returns the exit code (negative signal number if killed)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                with open(self.log_path, "ab") as log:
                    log.write(f"\n===== e2e: no exit {timeout}s after signal {sig}; sent SIGKILL\n".encode())
                self.exit_codes.append(self.proc.returncode)
                raise AssertionError(f"strata did not exit within {timeout}s of signal {sig}\n{self.log_tail()}")
        rc = self.proc.returncode
        self.exit_codes.append(rc)
        return rc

    def kill(self) -> None:
        """SIGKILL: no chance to flush."""
        self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM) -> int:
        """Stop (SIGTERM by default) and start again on the same data dir and
        ports. Returns the exit code of the stopped process; a graceful stop
        must exit 0."""
        rc = self.stop(sig)
        if sig == signal.SIGTERM:
            assert rc == 0, f"strata exited {rc} on SIGTERM\n{self.log_tail()}"
        self.start()
        return rc

    # -- introspection

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def proc_status(self) -> dict[str, int]:
        """VmRSS, VmData, ... in kB from /proc/<pid>/status."""
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                parts = v.split()
                if len(parts) == 2 and parts[1] == "kB":
                    out[k] = int(parts[0])
        return out

    def assert_no_panic(self) -> None:
        text = self.log_text()
        if "panicked" in text:
            idx = text.index("panicked")
            raise AssertionError(f"broker log mentions a panic:\n{text[max(0, idx - 2000): idx + 3000]}")


def _teardown(brokers: list[Broker]) -> None:
    errors = []
    for b in brokers:
        try:
            if b.alive():
                rc = b.stop(signal.SIGTERM)
                if rc != 0:
                    errors.append(f"strata exited {rc} on SIGTERM at teardown\n{b.log_tail()}")
        except AssertionError as e:
            errors.append(str(e))
        try:
            b.assert_no_panic()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def broker_factory(request, tmp_path):
    """``broker_factory(extra_args=[...], env={...}, start=True)`` -> Broker."""
    started: list[Broker] = []
    request.node._strata_brokers = started

    def make(extra_args: list[str] | None = None, env: dict | None = None, start: bool = True, use_flags: bool = True) -> Broker:
        b = Broker(tmp_path / f"broker{len(started)}", extra_args, env, use_flags)
        started.append(b)
        if start:
            b.start()
        return b

    yield make
    _teardown(started)


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()


@pytest.fixture
def kcat():
    """Path of kcat; skip without it unless STRATA_REQUIRE_KCAT=1."""
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        if os.environ.get("STRATA_REQUIRE_KCAT") == "1":
            pytest.fail("kcat is not on PATH and STRATA_REQUIRE_KCAT=1 (install the Debian package `kcat`)")
        pytest.skip("kcat is not on PATH (install the Debian package `kcat`; STRATA_REQUIRE_KCAT=1 makes this a failure)")
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, b in enumerate(getattr(item, "_strata_brokers", [])):
            rep.sections.append((f"strata broker {i} log tail ({b.log_path})", b.log_tail(60)))
