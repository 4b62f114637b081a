"""scripts/autoscale --short: the HPA algorithm over the brokers' /metrics
scales a local pool 3 -> 5 -> 2 under a load ramp of idempotent acks=all
producers and a consumer group; nothing acknowledged is lost or
duplicated, and every scaling reaches balanced leadership."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, child_env, strata_bin

TIMEOUT_S = 180


def test_autoscale_short_form(tmp_path):
    out = tmp_path / "report.json"
    cmd = [sys.executable, str(REPO / "scripts" / "autoscale"), "--short", "--dir", str(tmp_path / "pool"), "--json", str(out), "--bin", str(strata_bin())]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=child_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"scripts/autoscale --short still running after {TIMEOUT_S}s:\n{e.stdout}\n{e.stderr}") from None
    printed = "\n".join(l for l in (r.stdout + r.stderr).splitlines() if not l.startswith("%"))
    assert r.returncode == 0, f"scripts/autoscale exited {r.returncode}:\n{printed}"
    rep = json.loads(out.read_text())
    path = rep["path"]
    top = path.index(max(path))
    # Up to 5 (possibly through 4 when a sample catches the ramp half-way), then down to 2.
    assert path[0] == 3 and max(path) == 5 and path[-1] == 2, f"pool path {path}, want 3 -> 5 -> 2\n{printed}"
    assert path[: top + 1] == sorted(path[: top + 1]) and path[top:] == sorted(path[top:], reverse=True), f"pool path {path} goes back and forth\n{printed}"
    assert rep["checker"]["lost"] == 0 and rep["checker"]["duplicated"] == 0, rep["checker"]
    assert rep["checker"]["acked"] >= 1000 and rep["checker"]["read"] >= rep["checker"]["acked"], rep["checker"]
    assert rep["consumed_by_group"] > 0, "the consumer group read nothing"
    for e in rep["events"]:
        assert e["decision_to_balanced_s"] < 30, e
        counts = list(e["partitions_led"].values())
        assert len(counts) == e["to"] and sum(counts) == rep["settings"]["partitions"] and max(counts) - min(counts) <= 1, e
    # Fast up, slow down: the scale-down came no sooner than its window after the load dropped.
    down = next(e for e in rep["events"] if e["to"] < e["from"])
    up = next(e for e in rep["events"] if e["to"] > e["from"])
    assert down["t"] - up["t"] >= rep["settings"]["down_window"], rep["events"]
    print(printed)
