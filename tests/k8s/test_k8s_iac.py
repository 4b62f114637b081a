"""Static checks of the infrastructure code: checkov on the rendered chart
and on terraform/, `terraform fmt -check`, and `terraform validate` +
`terraform test` on the provider-free sizing module (the main module needs
the aws and helm providers, which cannot be downloaded here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chart import REPO
from render_dir import write_all

TERRAFORM = REPO / "terraform"
TIMEOUT_S = 300


def checkov_bin() -> str:
    env = os.environ.get("CHECKOV")
    cands = [env] if env else [str(REPO / ".venv-checkov" / "bin" / "checkov"), shutil.which("checkov")]
    for c in cands:
        if c and Path(c).exists():
            return c
    pytest.fail("checkov not found: scripts/test installs it into .venv-checkov from tests/k8s/requirements-checkov.txt (or set CHECKOV=/path/to/checkov)")


def terraform_bin() -> str:
    t = shutil.which("terraform")
    if not t:
        pytest.fail("terraform is not on PATH: these checks need the terraform CLI (no provider is downloaded); install it, or run on the project's machine image, which ships it")
    return t


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, env=full_env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(cmd)} still running after {TIMEOUT_S}s: {e.stdout!r} {e.stderr!r}") from None


def checkov(directory: Path, framework: str) -> dict:
    # Offline: no policy download, no platform mapping look-ups.
    r = run(
        [checkov_bin(), "-d", str(directory), "--framework", framework, "--output", "json", "--compact", "--skip-download"],
        cwd=directory,
        env={"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "LOG_LEVEL": "ERROR"},
    )
    assert r.stdout.strip(), f"checkov printed nothing (exit {r.returncode}): {r.stderr[-2000:]}"
    report = json.loads(r.stdout)
    reports = report if isinstance(report, list) else [report]
    results = {"passed": 0, "failed": [], "skipped": []}
    for rep in reports:
        res = rep.get("results", {})
        results["passed"] += rep.get("summary", {}).get("passed", 0)
        results["failed"] += res.get("failed_checks", [])
        results["skipped"] += res.get("skipped_checks", [])
    return results


def assert_clean(results: dict, what: str) -> None:
    failed = [f"{c['check_id']} {c['check_name']} ({c['resource']}, {c['file_path']})" for c in results["failed"]]
    assert not failed, f"checkov on {what}: {len(failed)} failed checks:\n" + "\n".join(failed)
    assert results["passed"] > 20, f"checkov on {what} ran only {results['passed']} checks"
    unjustified = [f"{c['check_id']} ({c['resource']})" for c in results["skipped"] if len((c["check_result"].get("suppress_comment") or "").strip()) < 20]
    assert not unjustified, f"checkov on {what}: skips without a reason: {unjustified}"


def test_checkov_on_the_rendered_chart(tmp_path):
    write_all(tmp_path)
    assert_clean(checkov(tmp_path, "kubernetes"), "helm/strata rendered with every CI values file")


def test_checkov_on_terraform():
    assert_clean(checkov(TERRAFORM, "terraform"), "terraform/")


def test_terraform_fmt():
    r = run([terraform_bin(), "fmt", "-check", "-recursive", "-diff"], cwd=TERRAFORM)
    assert r.returncode == 0, f"terraform fmt -check: files need formatting:\n{r.stdout}{r.stderr}"


def test_sizing_module_validates_and_its_tests_pass(tmp_path):
    tf = terraform_bin()
    work = tmp_path / "sizing"
    shutil.copytree(TERRAFORM / "sizing", work, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    env = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": str(tmp_path / "terraformrc")}
    (tmp_path / "terraformrc").write_text("")
    r = run([tf, "init", "-backend=false", "-no-color"], cwd=work, env=env)
    assert r.returncode == 0, f"terraform init (no providers needed) failed:\n{r.stdout}{r.stderr}"
    assert not (work / ".terraform" / "providers").exists(), "the sizing module must stay provider-free"
    r = run([tf, "validate", "-no-color"], cwd=work, env=env)
    assert r.returncode == 0, f"terraform validate:\n{r.stdout}{r.stderr}"
    r = run([tf, "test", "-no-color"], cwd=work, env=env)
    sys.stdout.write(r.stdout)
    assert r.returncode == 0, f"terraform test:\n{r.stdout}{r.stderr}"
    assert " 0 failed" in r.stdout and "passed" in r.stdout, r.stdout
