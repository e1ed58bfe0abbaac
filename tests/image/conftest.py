"""Fixtures for the image tests: a Docker engine that answers, and both images built once
per run by `make image image-dev`, exactly as developers and CI build them (BuildKit's
cache makes the rebuild of an unchanged tree take seconds).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.prereq import in_ci, missing, require_tool

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_TIMEOUT_S = 900


@dataclass(frozen=True)
class BuiltImages:
    runtime: str
    dev: str
    ca_bundle: Path  # the file the build received as its `ca` secret
    revision: str  # the commit the images say they hold


@pytest.fixture(scope="session")
def docker() -> str:
    path = require_tool(
        "docker",
        provided_by="apt-get install docker.io, then start it: bash scripts/ci/start-docker.sh",
        env_var="DOCKER",
    )
    try:
        info = subprocess.run(
            [path, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        info = subprocess.CompletedProcess([path], 1, "", "timed out")
    except OSError as exc:  # $DOCKER names a file that is not there or not executable
        info = subprocess.CompletedProcess([path], 1, "", str(exc))
    if info.returncode != 0:
        missing(
            f"no Docker engine answers `{path} info` ({info.stderr.strip()[:200]}); "
            "start one with: bash scripts/ci/start-docker.sh"
        )
    return path


def ca_bundle() -> Path:
    """The bundle to hand the build: the system's (needed behind an intercepting proxy),
    else certifi's, so the build always receives a secret the tests can look for."""
    if SYSTEM_CA_BUNDLE.is_file():
        return SYSTEM_CA_BUNDLE
    import certifi

    return Path(certifi.where())


@pytest.fixture(scope="session")
def images(docker: str) -> BuiltImages:
    if in_ci() and not os.environ.get("BASE_IMAGE"):
        pytest.fail("CI=true but BASE_IMAGE is unset (.ci/run sets it from base-image.sh)")
    make = require_tool("make", provided_by="apt-get install make")
    bundle = ca_bundle()
    env = {**os.environ, "DOCKER": docker, "CA_BUNDLE": str(bundle)}
    result = subprocess.run(
        [make, "--no-print-directory", "image", "image-dev"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
    )  # fmt: skip
    output = f"{result.stdout}\n{result.stderr}"
    if "buildx component is missing" in output:
        pytest.fail(
            f"{docker} cannot run BuildKit builds (no buildx plugin): point DOCKER at a "
            "client that can, e.g. DOCKER=/usr/bin/docker (Debian's docker.io)",
            pytrace=False,
        )
    assert result.returncode == 0, f"make image image-dev failed:\n{output[-6000:]}"
    built = re.findall(r"^built (\S+)$", result.stdout, re.MULTILINE)
    assert len(built) == 2, f"expected two `built NAME` lines from make:\n{result.stdout}"
    revision = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    return BuiltImages(runtime=built[0], dev=built[1], ca_bundle=bundle, revision=revision)
