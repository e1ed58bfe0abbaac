"""checkov's Kubernetes policies over the staging and prod renders (and prod on
CloudNativePG): no failure allowed.

checkov runs from its own hash-locked venv (.tools/checkov-venv, tools/checkov.lock),
installed by scripts/ci/install-k8s-tools.sh; this module installs it when absent.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.chartlib import CLOUDNATIVE_PG, INSTALL_TOOLS, ROOT, run_helm, template_args
from tools.prereq import missing

pytestmark = pytest.mark.helm

CHECKOV = ROOT / ".tools" / "checkov-venv" / "bin" / "checkov"

# The only excused checks, each on the `helm test` pod alone (annotated in its template):
# a pod that exits within seconds has nothing for liveness/readiness probes to watch.
EXCUSED = {("CKV_K8S_8", "Pod.app.app-test-readyz"), ("CKV_K8S_9", "Pod.app.app-test-readyz")}

# Checks the issue names, which must have run and passed on the Deployment and the Job:
# image pinned by digest, pull policy, namespace set, secrets as files, read-only root,
# high UID, capabilities dropped, no privilege escalation.
MUST_PASS = {
    "CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_21", "CKV_K8S_35", "CKV_K8S_22", "CKV_K8S_40",
    "CKV_K8S_37", "CKV_K8S_20", "CKV_K8S_38", "CKV_K8S_31",
}  # fmt: skip


@pytest.fixture(scope="module")
def checkov() -> str:
    if override := os.environ.get("CHECKOV"):
        return override
    if not CHECKOV.exists():
        result = subprocess.run(
            ["bash", "scripts/ci/install-k8s-tools.sh", "checkov"],
            cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            missing(f"checkov could not be installed ({INSTALL_TOOLS} checkov):\n{result.stderr}")
    return str(CHECKOV)


def scan(
    checkov: str, helm4: str, directory: Path, env: str, *sets: str, on_cnpg: bool = False
) -> dict[str, Any]:
    extra_values = [CLOUDNATIVE_PG] if on_cnpg else []
    rendered = run_helm(helm4, *template_args(env, sets, extra_values))
    assert rendered.returncode == 0, rendered.stderr
    (directory / f"{env}.yaml").write_text(rendered.stdout)
    result = subprocess.run(
        [checkov, "--directory", str(directory), "--framework", "kubernetes",
         "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )  # fmt: skip
    assert result.stdout.strip(), f"checkov printed nothing:\n{result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize(("env", "on_cnpg"), [("staging", False), ("prod", False), ("prod", True)])
def test_render_passes_every_checkov_kubernetes_check(
    checkov: str, helm4: str, tmp_path: Path, env: str, on_cnpg: bool
) -> None:
    report = scan(checkov, helm4, tmp_path, env, on_cnpg=on_cnpg)
    results = report["results"]
    failed = [
        f"{c['check_id']} {c['check_name']} on {c['resource']}" for c in results["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert report["summary"]["parsing_errors"] == 0
    skipped = {(c["check_id"], c["resource"]) for c in results["skipped_checks"]}
    assert skipped <= EXCUSED, f"unexpected suppressions: {skipped - EXCUSED}"

    passed: dict[str, set[str]] = {}
    for check in results["passed_checks"]:
        passed.setdefault(check["resource"].split(".")[0], set()).add(check["check_id"])
    for kind in ("Deployment", "Job"):
        not_run = MUST_PASS - passed.get(kind, set())
        assert not not_run, f"{kind}: these checks did not run and pass: {sorted(not_run)}"


def test_checkov_does_catch_an_image_without_digest(
    checkov: str, helm4: str, tmp_path: Path
) -> None:
    """The scan can fail: the same prod render with a tag instead of a digest fails CKV_K8S_43."""
    report = scan(
        checkov,
        helm4,
        tmp_path,
        "prod",
        "image.requireDigest=false",
        "image.digest=",
        "image.tag=1.0.0",
    )
    failed = {
        (c["check_id"], c["resource"].split(".")[0]) for c in report["results"]["failed_checks"]
    }
    assert ("CKV_K8S_43", "Deployment") in failed
