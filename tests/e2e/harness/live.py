"""What the live test modules and their fixtures share: tools, images, namespaces.

Kept out of conftest.py so test modules import it like any module (pytest discourages
importing conftest files).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import prerequisites
from tests.e2e.harness.cluster import restricted_namespace_manifest
from tests.e2e.harness.diagnostics import dump_namespace
from tests.e2e.harness.images import NO_DEFAULT_ATTESTATIONS
from tests.e2e.harness.kubectl import Kubectl
from tests.e2e.harness.migration_images import ExtraRevision
from tests.e2e.harness.prerequisites import ClusterChoice, SettingError
from tools.localca import LocalCAError, validate_host
from tools.prereq import missing

ROOT = Path(__file__).resolve().parents[3]
STATE_DIR = ROOT / ".local" / "e2e"
ARTIFACTS_DIR = STATE_DIR / "artifacts"
CLUSTER_ARTIFACTS = "cluster"  # ARTIFACTS_DIR/<namespace>/ per test namespace, and this
IMAGE_REPOSITORY = "service"
APP_CONTAINER = "app"  # the chart's name for the serving container
DOCKER_WITHOUT_BUILDX = Path(__file__).resolve().parent / "docker-without-buildx"


def log(message: str) -> None:
    print(f"[e2e] {message}", flush=True)


def unavailable(choice: ClusterChoice, problems: list[str]) -> None:
    reason = prerequisites.skip_reason(problems)
    if choice.required:
        pytest.fail(f"E2E_REQUIRED=1, but the {reason}", pytrace=False)
    # No CI machine of ours can run a cluster, so CI=true must not turn this into a failure.
    missing(reason, ci_can_provide=False)


@dataclass(frozen=True)
class E2ETools:
    docker: str
    kind: str
    kubectl: str
    helm: str
    make: str


@dataclass(frozen=True)
class BuiltImage:
    repository: str
    tag: str
    code_head: str  # the Alembic revision this image's code needs

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


ImageFactory = Callable[[str, Sequence[ExtraRevision]], BuiltImage]


def has_buildx(docker: str) -> bool:
    try:
        return (
            subprocess.run(
                [docker, "buildx", "version"], capture_output=True, timeout=60, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def skaffold_environment(
    tools: E2ETools, skaffold: str, *, buildx: Callable[[str], bool] = has_buildx
) -> dict[str, str]:
    """skaffold runs docker, kind, helm and kubectl from PATH: ours come first. Its builds
    go to `kind load`, so without default attestations (harness/images.py says why). A
    docker CLI without buildx gets the shim in DOCKER_WITHOUT_BUILDX first (it says why)."""
    dirs = [str(Path(p).parent) for p in (skaffold, tools.kind, tools.helm, tools.kubectl)]
    dirs.append(str(Path(tools.docker).parent))
    extra: dict[str, str] = {}
    if not buildx(tools.docker):
        dirs.insert(0, str(DOCKER_WITHOUT_BUILDX))
        extra["SKAFFOLD_REAL_DOCKER"] = tools.docker
    path = os.pathsep.join([*dict.fromkeys(dirs), os.environ.get("PATH", "")])
    return {**os.environ, **NO_DEFAULT_ATTESTATIONS, **extra, "PATH": path}


def app_image(pod: dict[str, Any]) -> str:
    return str(next(c["image"] for c in pod["spec"]["containers"] if c["name"] == APP_CONTAINER))


def ingress_host(env_var: str, default: str) -> str:
    raw = os.environ.get(env_var, "").strip() or default
    try:
        return validate_host(raw)
    except LocalCAError as exc:
        pytest.fail(f"{env_var}: {exc}", pytrace=False)


def keep_namespaces() -> bool:
    try:
        return prerequisites.env_flag(os.environ, "E2E_KEEP_NAMESPACES")
    except SettingError as exc:
        pytest.fail(str(exc), pytrace=False)


@contextlib.contextmanager
def restricted_namespace(
    kubectl: Kubectl, name: str, request: pytest.FixtureRequest
) -> Iterator[Kubectl]:
    """A fresh namespace enforcing Pod Security "restricted"; dumped on failure, then deleted."""
    keep = keep_namespaces()
    kubectl.apply_json(restricted_namespace_manifest(name))
    failed_before = request.session.testsfailed
    scoped = kubectl.in_namespace(name)
    try:
        yield scoped
    finally:
        if request.session.testsfailed > failed_before:
            where = dump_namespace(scoped, ARTIFACTS_DIR / name)
            log(f"tests failed: state of namespace {name} saved in {where}")
        if keep:
            log(f"E2E_KEEP_NAMESPACES set: namespace {name} left in place")
        else:
            # Not waited for (that took a minute or more per namespace, for nothing): each
            # module's Ingress has a host of its own, so a namespace still terminating
            # never meets the next one's in ingress-nginx's admission webhook.
            kubectl.run("delete", "namespace", name, "--wait=false", timeout=120)
