"""helm/strata offline: rendered for every CI values file, each manifest
valid against the Kubernetes schemas (CRDs against theirs), values the
schema or the templates must refuse, and the places where the chart, the
image recipe, the binary and the metrics catalogue must agree."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from chart import CHART, CI_VALUES, NAMESPACE, REPO, container, deep_merge, env_map, find, helm, load_values, manifests, notes, one, render

# The oldest Kubernetes the chart supports (pod-index label: 1.28) and the
# newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]
BASE = load_values(CHART / "ci" / "default-values.yaml")


def strata_bin() -> Path:
    env = os.environ.get("STRATA_BIN")
    if env:
        return Path(env)
    target = os.environ.get("CARGO_TARGET_DIR")
    return Path(target) / "release" / "strata" if target else REPO / "target" / "release" / "strata"


def run_strata(*args: str) -> subprocess.CompletedProcess:
    b = strata_bin()
    if not b.exists():
        pytest.fail(f"strata binary not found at {b} (cargo build --release, or set STRATA_BIN)")
    return subprocess.run([str(b), *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module", params=CI_VALUES, ids=[p.stem for p in CI_VALUES])
def rendered(request):
    return render(load_values(request.param))


# ------------------------------------------------------------ CRD schemas


def _strict(node):
    """Structural CRD schemas prune unknown fields and the API server's strict
    field validation refuses them: refuse them here too."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            _strict(v)
    elif isinstance(node, list):
        for v in node:
            _strict(v)
    return node


def _crd_validators() -> dict[tuple[str, str], jsonschema.Validator]:
    from cloudcoil.models.keda import v1alpha1 as keda
    from cloudcoil.models.prometheus_operator import v1 as po

    out = {}
    for api, kind, model in (
        ("monitoring.coreos.com/v1", "ServiceMonitor", po.ServiceMonitor),
        ("monitoring.coreos.com/v1", "PrometheusRule", po.PrometheusRule),
        ("keda.sh/v1alpha1", "ScaledObject", keda.ScaledObject),
    ):
        schema = _strict(model.model_json_schema(by_alias=True, mode="validation"))
        out[(api, kind)] = jsonschema.Draft202012Validator(schema)
    return out


CRDS = _crd_validators()


def validate_manifest(doc: dict, version: str) -> list[str]:
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRDS:
        errs = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in CRDS[key].iter_errors(doc)]
        for rule_group in doc.get("spec", {}).get("groups", []) if key[1] == "PrometheusRule" else []:
            for rule in rule_group["rules"]:
                if not isinstance(rule.get("expr"), str):
                    errs.append(f"rule {rule.get('alert')}: expr must be a string")
        return errs
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'/'.join(map(str, e.path))}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"no schema: {e.message}"]
    return []


# ------------------------------------------------------------ rendering


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_manifest_is_valid(rendered, version):
    docs = manifests(rendered)
    assert docs, "nothing rendered"
    problems = {}
    for d in docs:
        errs = validate_manifest(d, version)
        if errs:
            problems[f"{d['kind']}/{d['metadata']['name']}"] = errs
    assert not problems, f"invalid manifests for Kubernetes {version}:\n" + json.dumps(problems, indent=2)
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), f"duplicate objects: {names}"
    assert all(d["metadata"].get("namespace") == NAMESPACE for d in docs), "every object goes to the release namespace"


def test_the_crd_check_catches_a_wrong_field():
    """The validators are not vacuous: a typo in a ServiceMonitor, a wrong
    type in a ScaledObject or a Deployment, an unknown pod field are refused."""
    docs = manifests(render(load_values(CHART / "ci" / "observability-values.yaml")))
    sm = copy.deepcopy(one(docs, "ServiceMonitor"))
    sm["spec"]["endpoints"][0]["intervall"] = "30s"
    assert validate_manifest(sm, KUBE_VERSIONS[-1]), "a misspelt ServiceMonitor field passed"
    so = copy.deepcopy(one(docs, "ScaledObject"))
    so["spec"]["minReplicaCount"] = "two"
    assert validate_manifest(so, KUBE_VERSIONS[-1]), "a string replica count passed"
    dep = copy.deepcopy(one(docs, "Deployment"))
    dep["spec"]["template"]["spec"]["containers"][0]["envFrom"] = {"secretRef": "keys"}
    assert validate_manifest(dep, KUBE_VERSIONS[-1]), "envFrom as an object passed"
    dep["spec"]["template"]["spec"]["containers"][0].pop("envFrom")
    dep["spec"]["template"]["spec"]["terminationGracePeriod"] = 60
    assert validate_manifest(dep, KUBE_VERSIONS[-1]), "an unknown pod field passed"


def test_lint_is_clean():
    for vf in CI_VALUES:
        report = helm.lint(CHART, load_values(vf), strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
        bad = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not bad, f"helm lint --strict with {vf.name}: {bad}"


# ------------------------------------------------------------ values refused

SCHEMA_REFUSALS = [
    ({"controller": {"replicas": 4}}, "/controller/replicas", "1, 3, 5"),
    ({"controller": {"replicas": 2}}, "/controller/replicas", "1, 3, 5"),
    ({"objectStore": {"bucket": "Not_A_Bucket"}}, "/objectStore/bucket", "pattern"),
    ({"objectStore": {"prefix": "/leading/slash"}}, "/objectStore/prefix", "pattern"),
    ({"objectStore": {"credentials": {"mode": "keys"}}}, "/objectStore/credentials/mode", "irsa"),
    ({"objectStore": {"credentials": {"irsaRoleArn": "my-role"}}}, "/objectStore/credentials/irsaRoleArn", "pattern"),
    ({"broker": {"rack": {"source": "node"}}}, "/broker/rack/source", "podZoneLabel"),
    ({"broker": {"ports": {"kafka": 70000}}}, "/broker/ports/kafka", "65,535"),
    ({"broker": {"terminationGracePeriodSeconds": 5}}, "/broker/terminationGracePeriodSeconds", "15"),
    ({"broker": {"config": {"WAL_FLUSH_MS": 5}}}, "'WAL_FLUSH_MS'", "does not match pattern"),
    ({"broker": {"config": {"wal-flush-ms": [1]}}}, "/broker/config/wal-flush-ms", "string"),
    ({"broker": {"resources": {"requests": {"memory": "2 GB"}}}}, "/broker/resources/requests/memory", "pattern"),
    ({"brokers": {"replicas": 3}}, "brokers", "not allowed"),
    ({"autoscaling": {"targetCPUUtilizationPercentage": 0}}, "/autoscaling/targetCPUUtilizationPercentage", "minimum"),
    ({"autoscaling": {"bytesIn": {"targetPerBroker": "fifty"}}}, "/autoscaling/bytesIn/targetPerBroker", "pattern"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", "Always"),
    ({"metrics": {"prometheusRule": {"objectStoreErrorRatio": 2}}}, "/metrics/prometheusRule/objectStoreErrorRatio", "maximum"),
]


@pytest.mark.parametrize("override,path,word", SCHEMA_REFUSALS, ids=[p for _, p, _ in SCHEMA_REFUSALS])
def test_schema_refuses_bad_values(override, path, word):
    values = deep_merge(BASE, override)
    with helm.Chart.load(CHART) as c:
        with pytest.raises(helm.HelmValuesError) as e:
            c.validate_schema(values)
    msg = str(e.value)
    assert path in msg and word in msg, f"message should name {path} and say {word!r}: {msg}"
    # And an install with those values stops before rendering anything.
    with pytest.raises(helm.HelmValuesError) as e2:
        render(values)
    assert path in str(e2.value)


TEMPLATE_REFUSALS = [
    ({"objectStore": {"bucket": ""}}, "objectStore.bucket is required"),
    ({"objectStore": {"credentials": {"irsaRoleArn": ""}}}, "irsaRoleArn is required with credentials mode irsa"),
    ({"objectStore": {"credentials": {"mode": "secret"}}}, "existingSecret is required with credentials mode secret"),
    ({"broker": {"rack": {"source": "value"}}}, "broker.rack.value is required"),
    ({"autoscaling": {"minReplicas": 5, "maxReplicas": 3}}, "autoscaling.minReplicas (5) must not exceed autoscaling.maxReplicas (3)"),
    ({"keda": {"enabled": True}}, "autoscaling.enabled and keda.enabled are exclusive"),
    ({"broker": {"config": {"kafka-listen": "0.0.0.0:1"}}}, 'config key "kafka-listen" is set by the chart itself'),
    ({"broker": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}, "cannot both be 0"),
]


@pytest.mark.parametrize("override,message", TEMPLATE_REFUSALS, ids=[m[:40] for _, m in TEMPLATE_REFUSALS])
def test_templates_refuse_inconsistent_values(override, message):
    values = deep_merge(BASE, override)
    with pytest.raises((helm.HelmRenderError, helm.HelmValuesError)) as e:
        render(values)
    assert message in str(e.value), f"want {message!r} in: {e.value}"


def test_schema_accepts_every_ci_values_file_and_the_defaults():
    with helm.Chart.load(CHART) as c:
        for vf in CI_VALUES:
            c.validate_schema(load_values(vf))
        # values.yaml itself (bucket empty is the template's message, not a schema error).
        c.validate_schema({})


# ------------------------------------------------------------ agreement with the binary


def serve_env_names() -> set[str]:
    r = run_strata("serve", "--help")
    assert r.returncode == 0, r.stderr
    return set(re.findall(r"\[env: (STRATA_[A-Z0-9_]+)=", r.stdout))


def test_every_strata_env_var_is_a_serve_flag():
    """A misspelt STRATA_* name would be ignored silently by the binary."""
    known = serve_env_names()
    assert "STRATA_OBJECT_STORE" in known, "could not read the env names from strata serve --help"
    used = set()
    for vf in CI_VALUES:
        for w in find(manifests(render(load_values(vf))), "Deployment") + find(manifests(render(load_values(vf))), "StatefulSet"):
            used |= {n for n in env_map(container(w)) if n.startswith("STRATA_")}
    unknown = sorted(used - known)
    assert not unknown, f"env vars the binary does not read: {unknown}"
    assert {"STRATA_NODE_ID", "STRATA_ROLES", "STRATA_CONTROLLER_QUORUM", "STRATA_RACK", "STRATA_S3_ENDPOINT", "STRATA_WAL_FLUSH_MS"} <= used


def test_prestop_drain_is_a_command_of_the_binary():
    dep = one(manifests(render(BASE)), "Deployment")
    c = container(dep)
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] == c["command"][0] and cmd[1] == "drain", cmd
    r = run_strata("drain", "--help")
    assert r.returncode == 0, f"`strata drain --help` exited {r.returncode}: {r.stderr}"
    assert "--http" in r.stdout, r.stdout
    grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= 15, grace


def cargo_version() -> str:
    m = re.search(r'^version = "([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M)
    return m.group(1)


def test_versions_agree():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == cargo_version(), "Chart.yaml appVersion must be the crate version (the image tag)"
    r = run_strata("--version")
    assert r.stdout.strip() == f"strata {cargo_version()}", r.stdout
    img = container(one(manifests(render(BASE)), "Deployment"))["image"]
    assert img == f"strata:{cargo_version()}", img


# ------------------------------------------------------------ workload shape


@pytest.mark.parametrize("replicas", [1, 3, 5])
def test_controllers_quorum_and_pdb(replicas):
    docs = manifests(render(deep_merge(BASE, {"controller": {"replicas": replicas}})))
    sts = one(docs, "StatefulSet", "controller")
    svc = next(s for s in find(docs, "Service", "controller") if s["metadata"]["name"] == sts["spec"]["serviceName"])
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    assert sts["spec"]["podManagementPolicy"] == "Parallel", "voters must start together"
    assert sts["spec"]["replicas"] == replicas
    env = env_map(container(sts))
    assert env["STRATA_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert env["STRATA_ROLES"]["value"] == "controller"
    name = sts["metadata"]["name"]
    want = ",".join(f"{i}@{name}-{i}.{svc['metadata']['name']}.{NAMESPACE}.svc.cluster.local:9093" for i in range(replicas))
    assert env["STRATA_CONTROLLER_QUORUM"]["value"] == want
    brokers = env_map(container(one(docs, "Deployment", "broker")))
    assert brokers["STRATA_CONTROLLER_QUORUM"]["value"] == want
    assert any(v["metadata"]["name"] == "data" for v in sts["spec"]["volumeClaimTemplates"])
    pdbs = find(docs, "PodDisruptionBudget", "controller")
    if replicas == 1:
        assert not pdbs, "no budget keeps a single voter available; none is rendered"
        assert "WARNING: a single controller" in notes(render(deep_merge(BASE, {"controller": {"replicas": 1}})))
    else:
        (pdb,) = pdbs
        majority = replicas // 2 + 1
        assert replicas - pdb["spec"]["maxUnavailable"] >= majority, "a voluntary disruption must leave a majority"
        assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]


def test_brokers_deployment():
    docs = manifests(render(BASE))
    dep = one(docs, "Deployment", "broker")
    c = container(dep)
    env = env_map(c)
    assert env["STRATA_NODE_ID"]["value"] == "auto" and env["STRATA_ROLES"]["value"] == "broker"
    assert env["STRATA_ADVERTISED_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["STRATA_RACK"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['topology.kubernetes.io/zone']"
    assert env["STRATA_OBJECT_STORE"]["value"] == "s3://strata-ci-bucket/strata"
    assert "replicas" not in dep["spec"], "the HPA owns the replica count"
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    spread = dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread[0]["topologyKey"] == "topology.kubernetes.io/zone"
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/strata-irsa"
    assert not any(e.get("name", "").startswith("AWS_") for e in c["env"]), "IRSA needs no keys"
    bootstrap = next(s for s in find(docs, "Service", "bootstrap"))
    assert bootstrap["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]


def test_secret_credentials_and_s3_compatible_store():
    docs = manifests(render(load_values(CHART / "ci" / "s3-compatible-values.yaml")))
    c = container(one(docs, "Deployment", "broker"))
    env = env_map(c)
    for name, key in (("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"), ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"), ("AWS_SESSION_TOKEN", "AWS_SESSION_TOKEN")):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "strata-s3-keys", "key": key}
    assert env["STRATA_S3_ENDPOINT"]["value"] == "http://minio.storage.svc:9000"
    assert env["STRATA_S3_PATH_STYLE"]["value"] == "true"
    assert env["STRATA_OBJECT_STORE"]["value"] == "s3://events/prod/events"
    assert env["STRATA_RACK"]["value"] == "zone-a"
    assert env["STRATA_WAL_FLUSH_MS"]["value"] == "50" and env["STRATA_BROKER_LEASE_MS"]["value"] == "6000"
    assert not find(docs, "HorizontalPodAutoscaler")
    assert one(docs, "Deployment", "broker")["spec"]["replicas"] == 4


def test_security_contexts_match_the_image_user():
    dockerfile = (REPO / "Dockerfile").read_text()
    user = re.findall(r"^USER\s+(\d+)(?::(\d+))?\s*$", dockerfile, re.M)
    assert user, "the runtime stage must set a numeric USER"
    uid = int(user[-1][0])
    for vf in CI_VALUES:
        for w in find(manifests(render(load_values(vf))), "Deployment") + find(manifests(render(load_values(vf))), "StatefulSet"):
            pod = w["spec"]["template"]["spec"]
            c = container(w)
            sc = c["securityContext"]
            assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
            assert pod["automountServiceAccountToken"] is False
            mounts = {m["mountPath"] for m in c["volumeMounts"]}
            data = env_map(c)["STRATA_DATA_DIR"]["value"]
            assert any(data == m or data.startswith(m + "/") for m in mounts), f"data dir {data} is not on a volume (read-only root)"


def test_autoscaling_is_asymmetric_and_keda_uses_the_same_target():
    hpa = one(manifests(render(BASE)), "HorizontalPodAutoscaler")
    b = hpa["spec"]["behavior"]
    assert b["scaleUp"]["stabilizationWindowSeconds"] < b["scaleDown"]["stabilizationWindowSeconds"]
    assert b["scaleDown"]["policies"][0] == {"type": "Pods", "value": 1, "periodSeconds": 120}
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "strata_bytes_in_per_second"
    assert metrics["Pods"]["pods"]["target"] == {"type": "AverageValue", "averageValue": "50Mi"}
    obs = manifests(render(load_values(CHART / "ci" / "observability-values.yaml")))
    so = one(obs, "ScaledObject")
    assert not find(obs, "HorizontalPodAutoscaler"), "KEDA creates its own HPA"
    triggers = {t["type"] if t["type"] == "cpu" else t["name"]: t for t in so["spec"]["triggers"]}
    assert triggers["bytes-in"]["metadata"]["threshold"] == str(50 * 1024 * 1024)
    assert "rate(strata_bytes_in_total{" in triggers["bytes-in"]["metadata"]["query"]
    assert triggers["consumer-lag"]["metadata"]["query"].startswith("max(kafka_consumergroup_lag_sum{")
    assert so["spec"]["minReplicaCount"] == 2 and so["spec"]["maxReplicaCount"] == 20


def test_notes_give_the_bootstrap_service_address():
    r = render(BASE)
    svc = next(s for s in find(manifests(r), "Service", "bootstrap"))
    port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "kafka")
    want = f"bootstrap.servers={svc['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{port}"
    assert want in notes(r), notes(r)


# ------------------------------------------------------------ metrics


def catalogue() -> set[str]:
    text = (REPO / "docs" / "metrics.md").read_text()
    return set(re.findall(r"^\| `([a-z_:]+)` \|", text, re.M))


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b((?:strata|kafka)_[a-z_]+)\b", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if n.endswith(("_bucket", "_count")) or (n.endswith("_sum") and not n.endswith("lag_sum") and not n.endswith("offset_sum")) else n for n in names}


def test_alerts_dashboard_and_scalers_use_existing_metrics():
    known = catalogue()
    assert "strata_bytes_in_total" in known and "kafka_consumergroup_lag_sum" in known, "could not read docs/metrics.md"
    docs = manifests(render(load_values(CHART / "ci" / "observability-values.yaml")))
    exprs = {}
    rule = one(docs, "PrometheusRule")
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"StrataConsumerLagHigh", "StrataObjectStoreErrors", "StrataWalCommitSlow", "StrataBrokerLeaseLost"} <= set(alerts)
    exprs.update({f"alert {k}": v for k, v in alerts.items()})
    for t in one(docs, "ScaledObject")["spec"]["triggers"]:
        if "query" in t["metadata"]:
            exprs[f"keda {t['name']}"] = t["metadata"]["query"]
    dash = json.loads(one(docs, "ConfigMap")["data"]["strata.json"])
    assert dash == json.loads((CHART / "dashboards" / "strata.json").read_text())
    for p in dash["panels"]:
        for t in p["targets"]:
            exprs[f"panel {p['title']}"] = exprs.get(f"panel {p['title']}", "") + " " + t["expr"]
    unknown = {where: sorted(metric_names(e) - known) for where, e in exprs.items() if metric_names(e) - known}
    assert not unknown, f"metrics not in docs/metrics.md: {unknown}"
    assert 'status="error"' in alerts["StrataObjectStoreErrors"], "docs/metrics.md: status is ok or error"
    assert all(metric_names(e) for e in exprs.values())


# ------------------------------------------------------------ docs and image recipe


def leaf_paths(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        p = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v and k not in ("config", "labels", "annotations", "podAnnotations", "podLabels", "nodeSelector", "commonLabels", "requests", "limits"):
            out += leaf_paths(v, p)
        else:
            out.append(p)
    return out


def test_every_value_is_documented():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", readme, re.M))
    missing = [p for p in leaf_paths(values) if p not in documented]
    assert not missing, f"values without a row in helm/strata/README.md: {missing}"
    stale = sorted(documented - set(leaf_paths(values)))
    assert not stale, f"README rows for values that do not exist: {stale}"


def test_dockerfile_builds_a_small_non_root_image_without_shell():
    text = (REPO / "Dockerfile").read_text()
    stages = re.split(r"^FROM\s+", text, flags=re.M)[1:]
    assert len(stages) >= 2, "multi-stage: a build stage and a runtime stage"
    runtime = stages[-1]
    base = runtime.split()[0]
    assert base.startswith("gcr.io/distroless/cc-debian") and base.endswith(":nonroot"), f"runtime base {base}: want distroless cc (glibc, no shell)"
    assert not re.search(r"^RUN\s", runtime, re.M), "the runtime stage has no shell to RUN with"
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/strata"\]', runtime, re.M), "exec-form entrypoint at the chart's binary path"
    assert re.search(r"^USER 65532:65532$", runtime, re.M)
    assert re.search(r'org\.opencontainers\.image\.version="\$\{VERSION\}"', runtime)
    build = stages[0]
    assert "cargo build --release --locked" in build
    assert '"strata $VERSION"' in build, "the build checks the binary's --version against the label"
    assert "docker build --build-arg VERSION=" in text, "documented build command"
    for d in ("vendor", "src"):
        assert f"COPY {d} ./{d}" in build
    ignore = (REPO / ".dockerignore").read_text().split()
    assert "*" in ignore and "!src/" in ignore and "!target/" not in ignore
    binary = container(one(manifests(render(BASE)), "Deployment"))["command"][0]
    assert binary == "/usr/local/bin/strata"
