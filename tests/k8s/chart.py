"""Render helm/strata without a helm binary (helm-python-sdk binds Helm's
own Go SDK) and look things up in the result."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "strata"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "demo"
NAMESPACE = "streaming"

try:
    import helm_python as helm
except ImportError as e:  # pragma: no cover - a setup problem, never a skip
    raise ImportError(f"helm-python-sdk is not installed ({e}); run scripts/test, which installs tests/k8s/requirements.txt") from e


def load_values(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def render(values: dict, name: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included), as `helm
    template` would render it; raises helm's errors."""
    with helm.Chart.load(CHART) as chart:
        return chart.render(values, name=name, namespace=namespace, is_install=True)


def manifests(rendered: dict[str, str]) -> list[dict]:
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def notes(rendered: dict[str, str]) -> str:
    return next(v for k, v in rendered.items() if k.endswith("NOTES.txt"))


def find(docs: list[dict], kind: str, component: str | None = None) -> list[dict]:
    out = [d for d in docs if d["kind"] == kind]
    if component is not None:
        out = [d for d in out if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component]
    return out


def one(docs: list[dict], kind: str, component: str | None = None) -> dict:
    got = find(docs, kind, component)
    assert len(got) == 1, f"want one {kind} ({component or 'any component'}), rendered {len(got)}: {[d['metadata']['name'] for d in got]}"
    return got[0]


def container(workload: dict) -> dict:
    cs = workload["spec"]["template"]["spec"]["containers"]
    assert len(cs) == 1, f"{workload['metadata']['name']}: want one container, got {len(cs)}"
    return cs[0]


def env_map(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}
