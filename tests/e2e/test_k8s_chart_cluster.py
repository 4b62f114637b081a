"""The chart's own commands start a working cluster.

helm/strata is rendered (Helm's Go SDK, no cluster), and the exact command,
args and environment of the controller StatefulSet and the broker
Deployment are run as local processes, one per pod: environment entries
resolved as the kubelet does (`$(VAR)` expansion, downward-API fieldRefs,
secretKeyRefs), pod host names mapped to 127.0.0.1, and each pod's ports
offset to free ports by rewriting only the `host:port` strings (the
container ports `0.0.0.0:<port>` a pod listens on, `<pod DNS name>:<port>`
in the quorum) and mount paths to temporary directories. Readiness is the
rendered readiness probe. Records are then produced (idempotent, acks=all)
and consumed through the bootstrap address of the rendered NOTES, a broker
is stopped the way Kubernetes stops a pod (its preStop hook, then SIGTERM)
and the rest keeps serving; the checker must find nothing lost or
duplicated. A wrong flag, env name, probe path or port in a template fails
this test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from confluent_kafka import TopicPartition

from checker import Checker, ProduceLoop
from cluster import wait_until
from conftest import child_env, free_port, http_get, strata_bin
from kclients import consumer, create_topic, producer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "k8s"))
from chart import CHART, NAMESPACE, container, deep_merge, find, load_values, manifests, notes, one, render  # noqa: E402

IMAGE_BINARY = "/usr/local/bin/strata"
BUCKET = "strata-k8s"
SECRET = "strata-local-keys"
SECRETS = {SECRET: {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}}
READY_TIMEOUT_S = 60.0
ZONES = ["zone-a", "zone-b"]


# ------------------------------------------------------------ S3 (moto)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with the bucket the chart points at."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    exe = Path(sys.executable).with_name("moto_server")
    with open(log, "wb") as f:
        proc = subprocess.Popen([str(exe) if exe.exists() else "moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=f, stderr=subprocess.STDOUT)

    def up():
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    try:
        wait_until(up, 30, f"moto_server on port {port} ({log})")
        import boto3

        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


# ------------------------------------------------------------ pods as processes


class Pod:
    """One pod of a rendered workload, run as a local process."""

    def __init__(self, workload: dict, name: str, labels: dict, workdir: Path):
        self.workload = workload
        self.name = name
        self.labels = labels
        self.workdir = workdir
        self.spec = workload["spec"]["template"]["spec"]
        self.c = container(workload)
        # container port -> the local port this pod gets instead
        self.ports = {p["containerPort"]: free_port() for p in self.c["ports"]}
        self.port_names = {p["name"]: p["containerPort"] for p in self.c["ports"]}
        self.mounts = {m["mountPath"]: workdir / "volumes" / m["name"] for m in self.c.get("volumeMounts", [])}
        self.log = workdir / "pod.log"
        self.proc: subprocess.Popen | None = None
        self.env: dict[str, str] = {}
        self.argv: list[str] = []

    def local_port(self, name_or_number) -> int:
        n = self.port_names.get(name_or_number, name_or_number)
        assert n in self.ports, f"{self.name}: no container port {name_or_number!r}"
        return self.ports[n]

    @property
    def http(self) -> str:
        return f"127.0.0.1:{self.local_port('http')}"


class LocalCluster:
    def __init__(self, rendered: dict[str, str], tmp: Path):
        self.rendered = rendered
        self.docs = manifests(rendered)
        self.tmp = tmp
        self.pods: list[Pod] = []
        # "<host>:<port>" -> "127.0.0.1:<local port>", for every pod DNS name
        self.host_ports: dict[str, str] = {}
        self.hosts: set[str] = set()

    # -- pods

    def add_statefulset_pods(self, sts: dict) -> list[Pod]:
        svc = sts["spec"]["serviceName"]
        pods = []
        for i in range(sts["spec"]["replicas"]):
            name = f"{sts['metadata']['name']}-{i}"
            labels = {**sts["spec"]["template"]["metadata"]["labels"], "apps.kubernetes.io/pod-index": str(i), "statefulset.kubernetes.io/pod-name": name}
            p = Pod(sts, name, labels, self.tmp / name)
            fqdn = f"{name}.{svc}.{NAMESPACE}.svc.cluster.local"
            for short in (fqdn, f"{name}.{svc}.{NAMESPACE}.svc", f"{name}.{svc}.{NAMESPACE}", f"{name}.{svc}"):
                self.hosts.add(short)
                for cport, local in p.ports.items():
                    self.host_ports[f"{short}:{cport}"] = f"127.0.0.1:{local}"
            pods.append(p)
        self.pods += pods
        return pods

    def add_deployment_pod(self, dep: dict, extra_labels: dict) -> Pod:
        name = f"{dep['metadata']['name']}-{uuid.uuid4().hex[:10]}"
        labels = {**dep["spec"]["template"]["metadata"]["labels"], "pod-template-hash": "local", **extra_labels}
        p = Pod(dep, name, labels, self.tmp / name)
        self.pods.append(p)
        return p

    # -- what the kubelet does

    def field(self, pod: Pod, path: str) -> str:
        if path == "metadata.name":
            return pod.name
        if path == "metadata.namespace":
            return NAMESPACE
        if path == "status.podIP":
            return "127.0.0.1"
        m = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
        if m:
            return pod.labels.get(m.group(1), "")
        raise AssertionError(f"{pod.name}: fieldRef {path} is not emulated here")

    def rewrite(self, pod: Pod, value: str) -> str:
        """Only host:port strings (and mount paths) change, in one pass:
        `0.0.0.0:<port>` / `127.0.0.1:<port>` / `localhost:<port>` of a
        container port are the pod's own ports; `<pod DNS name>:<port>` is
        that pod's port; a bare pod DNS name is 127.0.0.1."""
        own_hosts = ("0.0.0.0", "127.0.0.1", "localhost")

        def host_port(m):
            host, port = m.group(1), int(m.group(2))
            if host in own_hosts and port in pod.ports:
                return f"127.0.0.1:{pod.ports[port]}"
            assert host not in ("0.0.0.0",), f"{pod.name}: listens on {m.group(0)} but declares no containerPort {port}"
            return self.host_ports.get(m.group(0), m.group(0))

        value = re.sub(r"([A-Za-z0-9][A-Za-z0-9.-]*):(\d+)\b", host_port, value)
        if value in self.hosts:
            value = "127.0.0.1"
        for mount in sorted(pod.mounts, key=len, reverse=True):
            if value == mount or value.startswith(mount + "/"):
                value = str(pod.mounts[mount]) + value[len(mount):]
                break
        return value

    def resolve_env(self, pod: Pod) -> dict[str, str]:
        env: dict[str, str] = {}
        for e in pod.c.get("env", []):
            if "value" in e:
                # $(VAR) refers to an entry defined earlier; unknown ones stay as written.
                v = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), str(e["value"]))
            elif "fieldRef" in e.get("valueFrom", {}):
                v = self.field(pod, e["valueFrom"]["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in e.get("valueFrom", {}):
                ref = e["valueFrom"]["secretKeyRef"]
                assert ref["name"] in SECRETS and ref["key"] in SECRETS[ref["name"]], f"{pod.name}: secret {ref} not provided"
                v = SECRETS[ref["name"]][ref["key"]]
            else:
                raise AssertionError(f"{pod.name}: env {e} is not emulated here")
            env[e["name"]] = v
        return {k: self.rewrite(pod, v) for k, v in env.items()}

    def command(self, pod: Pod, argv: list[str]) -> list[str]:
        assert argv[0] == IMAGE_BINARY, f"{pod.name}: runs {argv[0]}, the image has {IMAGE_BINARY}"
        return [str(strata_bin())] + [self.rewrite(pod, a) for a in argv[1:]]

    def start(self, pod: Pod) -> None:
        pod.workdir.mkdir(parents=True, exist_ok=True)
        for local in pod.mounts.values():
            local.mkdir(parents=True, exist_ok=True)
        pod.env = self.resolve_env(pod)
        pod.argv = self.command(pod, pod.c["command"] + pod.c.get("args", []))
        base = {k: v for k, v in child_env().items() if not k.startswith("AWS_")}
        base["AWS_EC2_METADATA_DISABLED"] = "true"
        with open(pod.log, "ab") as log:
            log.write(f"===== {' '.join(pod.argv)}\n{json.dumps(pod.env, indent=1)}\n".encode())
            log.flush()
            pod.proc = subprocess.Popen(pod.argv, env={**base, **pod.env}, cwd=pod.workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def probe_ok(self, pod: Pod, probe: str) -> bool:
        hg = pod.c[probe]["httpGet"]
        code, _, _ = http_get(f"http://127.0.0.1:{pod.local_port(hg['port'])}{hg['path']}", timeout=1.0)
        return code == 200

    def wait_ready(self, pods: list[Pod], timeout: float = READY_TIMEOUT_S) -> None:
        def ready():
            for p in pods:
                if p.proc.poll() is not None:
                    raise AssertionError(f"{p.name} exited {p.proc.returncode}:\n{tail(p)}")
            return all(self.probe_ok(p, "readinessProbe") and self.probe_ok(p, "livenessProbe") for p in pods)

        try:
            wait_until(ready, timeout, f"readiness of {[p.name for p in pods]}", interval=0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}\n" + "\n".join(f"--- {p.name}\n{tail(p)}" for p in pods)) from None

    def pre_stop_and_terminate(self, pod: Pod) -> tuple[subprocess.CompletedProcess, int]:
        """What the kubelet does to a deleted pod: the preStop exec, then
        SIGTERM, then SIGKILL after the grace period (a failure here)."""
        grace = pod.spec["terminationGracePeriodSeconds"]
        started = time.monotonic()
        hook = self.command(pod, pod.c["lifecycle"]["preStop"]["exec"]["command"])
        r = subprocess.run(hook, capture_output=True, text=True, timeout=grace, env=child_env(), stdin=subprocess.DEVNULL)
        pod.proc.send_signal(signal.SIGTERM)
        try:
            rc = pod.proc.wait(timeout=max(1.0, grace - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            pod.proc.kill()
            pod.proc.wait()
            raise AssertionError(f"{pod.name} still running {grace}s after its preStop hook began (terminationGracePeriodSeconds)\n{tail(pod)}") from None
        return r, rc

    def stop_all(self) -> list[str]:
        errors = []
        order = [p for p in self.pods if p.workload["kind"] == "Deployment"] + [p for p in self.pods if p.workload["kind"] != "Deployment"]
        for p in order:
            if p.proc and p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
                try:
                    rc = p.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.proc.kill()
                    p.proc.wait()
                    rc = "killed after 15 s"
                if rc != 0:
                    errors.append(f"{p.name} exited {rc} on SIGTERM\n{tail(p)}")
            if "panicked" in p.log.read_text(errors="replace"):
                errors.append(f"{p.name} panicked\n{tail(p)}")
        return errors


def tail(pod: Pod, lines: int = 40) -> str:
    try:
        return "\n".join(pod.log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def metric_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, 1)[0])
    return names


# ------------------------------------------------------------ the test


def test_rendered_chart_runs_a_working_cluster(s3, tmp_path):
    values = deep_merge(
        load_values(CHART / "ci" / "default-values.yaml"),
        {
            "objectStore": {
                "bucket": BUCKET,
                "prefix": f"k8s/{uuid.uuid4().hex[:8]}",
                "endpoint": s3,
                "region": "us-east-1",
                "pathStyle": True,
                "credentials": {"mode": "secret", "existingSecret": SECRET},
            },
            "autoscaling": {"enabled": False},
            "broker": {"replicas": 2, "terminationGracePeriodSeconds": 30},
            "metrics": {"prometheusRule": {"enabled": True}},
        },
    )
    rendered = render(values)
    docs = manifests(rendered)
    sts = one(docs, "StatefulSet", "controller")
    dep = one(docs, "Deployment", "broker")
    bootstrap_svc = one(docs, "Service", "bootstrap")
    cl = LocalCluster(rendered, tmp_path)
    try:
        controllers = cl.add_statefulset_pods(sts)
        for p in controllers:
            cl.start(p)
        cl.wait_ready(controllers)
        brokers = [cl.add_deployment_pod(dep, {"topology.kubernetes.io/zone": z}) for z in ZONES[: dep["spec"]["replicas"]]]
        for p in brokers:
            cl.start(p)
        cl.wait_ready(brokers)

        # The Service routes to pods its selector matches.
        sel = bootstrap_svc["spec"]["selector"]
        assert all(all(p.labels.get(k) == v for k, v in sel.items()) for p in brokers), "bootstrap Service selects no broker pod"
        port_name = next(sp["targetPort"] for sp in bootstrap_svc["spec"]["ports"] if sp["name"] == "kafka")
        m = re.search(r"bootstrap\.servers=(\S+)", notes(rendered))
        assert m, notes(rendered)
        rendered_bootstrap = m.group(1)
        assert rendered_bootstrap == f"{bootstrap_svc['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{next(sp['port'] for sp in bootstrap_svc['spec']['ports'] if sp['name'] == 'kafka')}"

        def bootstrap_via(pod: Pod) -> str:
            # kube-proxy sends the Service address to a ready endpoint.
            return rendered_bootstrap.replace(rendered_bootstrap, f"127.0.0.1:{pod.local_port(port_name)}")

        bs = bootstrap_via(brokers[1])
        # Every broker registered with a controller-allocated id and its zone.
        code, body, _ = http_get(f"http://{brokers[0].http}/v3/clusters")
        assert code == 200, body
        cid = json.loads(body)["data"][0]["cluster_id"]

        def both_brokers():
            code, body, _ = http_get(f"http://{brokers[0].http}/v3/clusters/{cid}/brokers")
            got = json.loads(body)["data"] if code == 200 else []
            return got if len(got) == len(brokers) else None

        listed = wait_until(both_brokers, 20, "both brokers in the cluster's broker list")
        assert sorted(b.get("rack") for b in listed) == ZONES[: len(brokers)], listed
        assert len({b["broker_id"] for b in listed}) == len(brokers)

        # Produce and consume through the bootstrap address.
        topic = f"k8s-{uuid.uuid4().hex[:8]}"
        create_topic(bs, topic, partitions=4)
        ck = Checker()
        prod = producer(bs, **{"enable.idempotence": True, "acks": "all"})
        loop = ProduceLoop(ck, prod, topic, interval=0.004)
        loop.start()
        wait_until(lambda: ck.acked_count() >= 300, 60, "300 records acknowledged")

        # Kubernetes deletes broker 0: preStop drain, then SIGTERM.
        hook, rc = cl.pre_stop_and_terminate(brokers[0])
        assert hook.returncode == 0, f"preStop hook exited {hook.returncode}: {hook.stdout} {hook.stderr}\n{tail(brokers[0])}"
        assert "drained" in hook.stdout, hook.stdout
        assert rc == 0, f"{brokers[0].name} exited {rc} after SIGTERM\n{tail(brokers[0])}"
        before = ck.acked_count()
        wait_until(lambda: ck.acked_count() >= before + 300, 60, "300 more records acknowledged after the drain")
        left = loop.stop()
        assert left == 0, f"{left} records never reported"

        # A consumer group reads everything back through the bootstrap address.
        c = consumer(bs, **{"group.id": f"g-{topic}", "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        seen = 0
        positions: dict[int, int] = {}
        deadline = time.monotonic() + 60
        while seen < ck.acked_count() and time.monotonic() < deadline:
            for msg in c.consume(num_messages=1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                seen += 1
                positions[msg.partition()] = msg.offset() + 1
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in positions.items()], asynchronous=False)
        c.close()
        short = seen < ck.acked_count()
        ck.consume_all(bs, [topic])
        # The checker's verdict first: it names what is lost or doubled.
        report = ck.assert_clean(min_acked=600)
        assert not short, f"group read {seen} of {ck.acked_count()} acknowledged records (positions {positions}); the checker found all: {report}\n{tail(brokers[1])}"
        assert report["lost"] == 0 and report["duplicated"] == 0

        # The metrics the alerts and the autoscaler use are served (lag
        # once the group has committed).
        rule = one(docs, "PrometheusRule")
        wanted = {"strata_bytes_in_total"}
        for g in rule["spec"]["groups"]:
            for r in g["rules"]:
                wanted |= {n.removesuffix("_bucket") for n in re.findall(r"\b((?:strata|kafka)_[a-z_]+)\b", r["expr"])}

        def missing():
            live = set()
            for p in (brokers[1], controllers[0]):
                live |= {n.removesuffix("_bucket") for n in metric_names(http_get(f"http://{p.http}/metrics")[1])}
            gone = sorted(wanted - live)
            assert not gone, f"metrics used by the alerts or the HPA that no pod serves: {gone}"
            return True

        wait_until(missing, 15, "every metric of the alerts served")
    finally:
        errors = cl.stop_all()
    assert not errors, "\n\n".join(errors)
