"""Fixtures for the release tests: a real OCI registry (Debian's docker-registry, i.e.
distribution 2.8) on a free loopback port, a clean commit of this work tree to release
from, and one `make release` into that registry shared by the module's tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The image tests' engine check: a Docker that answers, else skip (CI=true: fail).
from tests.image.conftest import docker as docker
from tools.localpg import free_port
from tools.prereq import in_ci, require_tool

ROOT = Path(__file__).resolve().parents[2]
SOURCE_URL = "https://github.com/example/service"
RELEASE_TIMEOUT_S = 1200


@dataclass(frozen=True)
class ReleaseTools:
    docker: str
    skopeo: str
    helm: str


@dataclass(frozen=True)
class Checkout:
    """A git repository holding exactly this work tree as one commit (a clean tree)."""

    path: Path
    commit: str

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.path), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    def make(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`make ARGS` in the checkout, with this work tree's venv (not a fresh one)."""
        return subprocess.run(
            # The SBOM tool's venv by its real path: one made through the checkout's
            # .tools symlink would name the checkout, gone after the run, in its scripts.
            ["make", "--no-print-directory", f"VENV={ROOT / '.venv'}",
             f"SBOM_VENV={ROOT / '.tools' / 'sbom-venv'}", *args],
            cwd=self.path, env={**os.environ, **(env or {})},
            capture_output=True, text=True, timeout=RELEASE_TIMEOUT_S, check=False,
        )  # fmt: skip


@dataclass(frozen=True)
class Released:
    registry: str  # REGISTRY as passed to make release
    version: str
    record: dict[str, Any]
    checkout: Checkout
    output: str


@pytest.fixture(scope="session")
def release_tools(docker: str) -> ReleaseTools:
    skopeo = require_tool("skopeo", provided_by="apt-get install skopeo")
    helm = require_tool("helm", provided_by="bash scripts/ci/install-k8s-tools.sh helm")
    if in_ci() and not os.environ.get("BASE_IMAGE"):
        pytest.fail("CI=true but BASE_IMAGE is unset (.ci/run sets it from base-image.sh)")
    return ReleaseTools(docker=docker, skopeo=skopeo, helm=helm)


def wait_for_registry(url: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a fresh registry; its storage is a temporary directory."""
    binary = require_tool("docker-registry", provided_by="apt-get install docker-registry")
    work = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = work / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {work / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    with (work / "registry.log").open("w") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        wait_for_registry(f"http://127.0.0.1:{port}/v2/")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def clean_checkout(destination: Path) -> Checkout:
    """Copy the tracked and untracked (not ignored) files, commit them: the release is
    made from the code under test, whatever state this work tree is in."""
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        source = ROOT / name
        if not source.exists():  # deleted in the work tree, not yet in the index
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        # copy2 keeps mtimes: the shared venv's stamp stays newer than the lock file.
        shutil.copy2(source, target, follow_symlinks=False)
    # The tools the Makefile finds in bin/ and .tools/ (both ignored, never committed).
    for shared in ("bin", ".tools"):
        if (ROOT / shared).exists():
            (destination / shared).symlink_to((ROOT / shared).resolve())
    git = ["git", "-C", str(destination), "-c", "user.name=release-test",
           "-c", "user.email=t@example.com"]  # fmt: skip
    subprocess.run([*git, "init", "--quiet"], check=True)
    # Symlinks, which .gitignore's `bin/` (a directory pattern) does not match.
    (destination / ".git" / "info" / "exclude").write_text("/bin\n/.tools\n")
    subprocess.run([*git, "add", "--all"], check=True)
    subprocess.run([*git, "commit", "--quiet", "--message", "release test"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Checkout(destination, commit)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Checkout:
    return clean_checkout(tmp_path_factory.mktemp("checkout"))


def release_env(tools: ReleaseTools) -> dict[str, str]:
    return {"DOCKER": tools.docker, "SKOPEO": tools.skopeo, "SOURCE": SOURCE_URL}


def remove_local_images(docker: str, repository_prefix: str) -> None:
    """Forget the images the tests pushed and pulled: the registry they name is gone."""
    listed = subprocess.run(
        [docker, "images", "--format", "{{.Repository}} {{.ID}}"],
        capture_output=True, text=True, timeout=60, check=False,
    ).stdout  # fmt: skip
    ids = {
        i
        for line in listed.splitlines()
        for r, i in [line.split()]
        if r.startswith(repository_prefix)
    }
    if ids:
        subprocess.run([docker, "rmi", "--force", *sorted(ids)], capture_output=True, check=False)


@pytest.fixture(scope="module")
def released(release_tools: ReleaseTools, registry: str, checkout: Checkout) -> Iterator[Released]:
    """One complete release, VERSION 1.0.0, made by `make release` as a person runs it."""
    namespace = f"{registry}/team"
    result = checkout.make(
        "release", f"REGISTRY={namespace}", "VERSION=1.0.0", env=release_env(release_tools)
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"make release failed:\n{output[-6000:]}"
    record = json.loads((checkout.path / "dist" / "release-1.0.0.json").read_text())
    yield Released(namespace, "1.0.0", record, checkout, output)
    remove_local_images(release_tools.docker, f"{namespace}/")
