"""A cluster of real ``strata serve`` processes for the end-to-end tests:
controllers (ids 1..N, ``--roles controller``) forming the metadata quorum and
brokers (ids 101.., ``--roles broker``), each with its own data dir, all
sharing one object store (``file://<workdir>/objects`` unless ``store`` is
given), on free 127.0.0.1 ports.

``cluster_factory`` is the fixture (``from cluster import cluster_factory`` in
a test module). Teardown resumes paused processes, stops brokers then
controllers with SIGTERM, and fails the test if a process still running did
not exit 0 or any log mentions a panic. Every node's log tail is attached to
a failing test's report (through conftest's report hook).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import STOP_TIMEOUT_S, Broker, child_env, free_port, http_get, strata_bin

READY_TIMEOUT_S = 60.0
LEADER_TIMEOUT_S = 30.0
STATUS_HTTP_TIMEOUT_S = 2.0
FIRST_BROKER_ID = 101


def wait_until(pred, timeout: float, what: str, interval: float = 0.05):
    """Poll ``pred`` until it returns something truthy (returned); fail with
    ``what`` and the last value or exception after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            got = pred()
            if got:
                return got
            last = got
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last = repr(e)
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout}s (last: {last})")
        time.sleep(interval)


class Node(Broker):
    """One node of a cluster: conftest's Broker (start, stop, kill, log) with
    the cluster's flags."""

    def __init__(self, cluster: "Cluster", node_id: int, roles: tuple[str, ...], quorum: str, extra_args: list[str], join: bool = False, auto_id: bool = False):
        super().__init__(cluster.workdir / f"node-{node_id}", extra_args)
        # ``--node-id auto``: the controllers hand out the broker id; ``id``
        # is then only this harness's name for the node.
        self.auto_id = auto_id
        self.log_path = self.workdir / "strata.log"
        self.cluster = cluster
        self.id = node_id
        self.roles = tuple(roles)
        self.quorum = quorum
        self.join = join
        self.controller_port = free_port() if self.is_controller else None
        self.paused = False

    @property
    def is_controller(self) -> bool:
        return "controller" in self.roles

    @property
    def is_broker(self) -> bool:
        return "broker" in self.roles

    @property
    def controller(self) -> str | None:
        return f"127.0.0.1:{self.controller_port}" if self.controller_port else None

    def args(self) -> list[str]:
        a = [
            str(self.bin),
            "serve",
            "--roles",
            ",".join(self.roles),
            "--node-id",
            "auto" if self.auto_id else str(self.id),
            "--data-dir",
            str(self.data_dir),
            "--http-listen",
            f"127.0.0.1:{self.http_port}",
            "--controller-quorum",
            self.quorum,
            "--object-store",
            self.cluster.store,
            "--advertised-host",
            "127.0.0.1",
        ]
        if self.is_controller:
            a += ["--controller-listen", self.controller]
        if self.is_broker:
            a += ["--kafka-listen", self.bootstrap]
        if self.join:
            a.append("--controller-join")
        return a + self.extra_args

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        super().wait_ready(timeout)

    def describe(self) -> str:
        return f"node {self.id} ({','.join(self.roles)}, pid {self.proc.pid if self.proc else None}, log {self.log_path})"


class Cluster:
    def __init__(
        self,
        workdir: Path,
        controllers: int = 3,
        brokers: int = 1,
        extra_args: list[str] | None = None,
        store: str | None = None,
        controller_args: list[str] | None = None,
        broker_args: list[str] | None = None,
        on_node=None,
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.store = store or f"file://{self.workdir / 'objects'}"
        self.extra_args = list(extra_args or [])
        self.controller_args = list(controller_args or [])
        self.broker_args = list(broker_args or [])
        self.on_node = on_node
        self.nodes: dict[int, Node] = {}
        self._down = False
        ports = {i: free_port() for i in range(1, controllers + 1)}
        self.quorum = ",".join(f"{i}@127.0.0.1:{p}" for i, p in ports.items())
        for i in range(1, controllers + 1):
            n = self._add(i, ("controller",), self.quorum, self.controller_args)
            n.controller_port = ports[i]
        for j in range(brokers):
            self._add(FIRST_BROKER_ID + j, ("broker",), self.quorum, self.broker_args)

    def _add(self, node_id: int, roles, quorum: str, role_args: list[str], join: bool = False, auto_id: bool = False) -> Node:
        assert node_id not in self.nodes, f"node {node_id} exists"
        n = Node(self, node_id, roles, quorum, self.extra_args + role_args, join, auto_id)
        self.nodes[node_id] = n
        if self.on_node:
            self.on_node(n)
        return n

    # ------------------------------------------------------------ lifecycle

    def up(self) -> "Cluster":
        """Start every node, then wait until all are ready and a controller
        leader is known."""
        for n in self.controllers() + self.brokers():
            n.start(wait=False)
        for n in self.controllers() + self.brokers():
            n.wait_ready()
        self.controller_leader()
        return self

    def start(self, node_id: int, wait: bool = True) -> Node:
        n = self.node(node_id)
        assert not n.alive(), f"node {node_id} is already running (pid {n.pid})"
        n.paused = False
        n.start(wait=wait)
        return n

    def kill(self, node_id: int) -> None:
        """SIGKILL and wait for the process to be gone."""
        n = self.node(node_id)
        assert n.alive(), f"node {node_id} is not running"
        n.kill()
        n.paused = False

    def stop(self, node_id: int) -> None:
        """SIGTERM; the node must exit 0 within conftest's stop timeout."""
        n = self.node(node_id)
        assert n.alive(), f"node {node_id} is not running"
        if n.paused:
            self.resume(node_id)
        rc = n.stop(signal.SIGTERM)
        assert rc == 0, f"node {node_id} exited {rc} on SIGTERM\n{n.log_tail()}"

    def pause(self, node_id: int) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing."""
        n = self.node(node_id)
        assert n.alive(), f"node {node_id} is not running"
        os.kill(n.pid, signal.SIGSTOP)
        n.paused = True
        wait_until(lambda: _proc_state(n.pid) in ("T", "t"), 5.0, f"node {node_id} stopped by SIGSTOP")

    def resume(self, node_id: int) -> None:
        n = self.node(node_id)
        if n.alive():
            os.kill(n.pid, signal.SIGCONT)
        n.paused = False

    def add_broker(self, node_id: int, auto_id: bool = False, start: bool = True) -> Node:
        """A new broker (``--node-id auto`` when ``auto_id``), started and
        waited for."""
        n = self._add(node_id, ("broker",), self.quorum, self.broker_args, auto_id=auto_id)
        if start:
            n.start(wait=True)
        return n

    def add_controller(self, node_id: int, quorum: str | None = None, start: bool = True) -> Node:
        """A new controller started with ``--controller-join``: it waits to be
        added as a learner, so it is not waited for here."""
        n = self._add(node_id, ("controller",), quorum or self.quorum, self.controller_args, join=True)
        if start:
            n.start(wait=False)
        return n

    def down(self) -> list[str]:
        """Stop everything (brokers first); returns the problems found:
        non-zero exits on SIGTERM and panics in any log."""
        if self._down:
            return []
        self._down = True
        errors = []
        for n in self.nodes.values():
            if n.alive():
                try:
                    os.kill(n.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                n.paused = False
        for n in self.brokers() + self.controllers():
            try:
                if n.alive():
                    rc = n.stop(signal.SIGTERM, timeout=STOP_TIMEOUT_S)
                    if rc != 0:
                        errors.append(f"{n.describe()} exited {rc} on SIGTERM at teardown\n{n.log_tail()}")
            except AssertionError as e:
                errors.append(f"{n.describe()}: {e}")
        for n in self.nodes.values():
            try:
                n.assert_no_panic()
            except AssertionError as e:
                errors.append(f"{n.describe()}: {e}")
        return errors

    # ------------------------------------------------------------ lookups

    def node(self, node_id: int) -> Node:
        assert node_id in self.nodes, f"no node {node_id} (have {sorted(self.nodes)})"
        return self.nodes[node_id]

    def controllers(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.is_controller]

    def brokers(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.is_broker]

    @property
    def bootstrap(self) -> str:
        return self.brokers()[0].bootstrap

    def controller_addr(self, node_id: int) -> str:
        return self.node(node_id).controller

    def reachable_controllers(self) -> list[Node]:
        return [n for n in self.controllers() if n.alive() and not n.paused]

    def status(self, node_id: int, timeout: float = STATUS_HTTP_TIMEOUT_S) -> dict:
        """GET /controller/status of one controller (fails on anything but 200)."""
        n = self.node(node_id)
        code, body, _ = http_get(f"http://{n.controller}/controller/status", timeout=timeout)
        assert code == 200, f"/controller/status of node {node_id}: HTTP {code}: {body[:300]}"
        return json.loads(body)

    def try_status(self, node_id: int) -> dict | None:
        try:
            return self.status(node_id)
        except (OSError, AssertionError, ValueError):
            return None

    def controller_leader(self, timeout: float = LEADER_TIMEOUT_S, exclude=()) -> int:
        """The id of the controller leader: a running, unpaused controller
        whose own status names itself leader (and not in ``exclude``)."""

        def find():
            seen = {}
            for n in self.reachable_controllers():
                s = self.try_status(n.id)
                seen[n.id] = s and s.get("leader")
                if s and s.get("leader") == n.id and n.id not in exclude:
                    return n.id
            raise AssertionError(f"no leader yet; node -> leader it reports: {seen}")

        return wait_until(find, timeout, "a controller leader")

    def wait_caught_up(self, node_id: int, timeout: float = 60.0) -> tuple[int, int]:
        """Wait until ``node_id``'s applied index reaches the leader's applied
        index as sampled now. Returns (target, reached)."""
        leader = self.controller_leader()
        target = self.status(leader)["applied_index"]

        def reached():
            s = self.status(node_id)
            return s["applied_index"] if s["applied_index"] >= target else None

        got = wait_until(reached, timeout, f"node {node_id} applied index reaching the leader's {target}")
        return target, got

    # ------------------------------------------------------------ CLI

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run ``strata <args>``; the caller checks the exit code."""
        cmd = [str(strata_bin()), *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_env(), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"`strata {' '.join(args)}` still running after {timeout}s; output so far: {e.stdout!r} {e.stderr!r}") from None

    def cli_ok(self, *args: str, timeout: float = 60.0) -> str:
        r = self.cli(*args, timeout=timeout)
        assert r.returncode == 0, f"`strata {' '.join(args)}` exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
        return r.stdout


def _proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        # pid (comm) state ...: comm may hold spaces, so split after ')'.
        return f.read().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def cluster_factory(request, tmp_path):
    """``cluster_factory(controllers=3, brokers=1, extra_args=None, store=None,
    controller_args=None, broker_args=None, start=True)`` -> a running Cluster."""
    made: list[Cluster] = []
    # conftest's report hook attaches the log tail of everything in this list.
    logs = request.node.__dict__.setdefault("_strata_brokers", [])

    def make(controllers: int = 3, brokers: int = 1, start: bool = True, on_node=None, **kw) -> Cluster:
        def added(n):
            logs.append(n)
            if on_node is not None:
                on_node(n)

        c = Cluster(tmp_path / f"cluster{len(made)}", controllers, brokers, on_node=added, **kw)
        made.append(c)
        if start:
            c.up()
        return c

    yield make
    errors = []
    for c in made:
        errors += c.down()
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)
