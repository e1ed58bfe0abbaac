"""The upgrade test's image path, for real: a copy of the repository with the failing
migration appended is built by `make image` (as the live suite builds it) and its
container runs the migration against a real PostgreSQL, exactly as the Job would.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.harness import images
from tests.e2e.harness.migration_images import (
    EXPAND_REVISION,
    FAILING_REVISION,
    FAILURE_MARKER,
    prepare_build_context,
)
from tools.prereq import find_tool, missing, require_tool

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def docker() -> str:
    path = require_tool(
        "docker",
        provided_by="apt-get install docker.io, then start it: bash scripts/ci/start-docker.sh",
        env_var="DOCKER",
    )
    info = subprocess.run(
        [path, "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if info.returncode != 0:
        missing(
            f"no Docker engine answers `{path} info` ({info.stderr.strip()[:200]}); "
            "start one with: bash scripts/ci/start-docker.sh"
        )
    return path


@pytest.fixture(scope="module")
def failing_image(docker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    make = find_tool("make", "MAKE")
    if make is None:
        missing("`make` not found (install it with: apt-get install make)")
    assert make is not None
    context = tmp_path_factory.mktemp("failing-image") / "src"
    prepare_build_context(ROOT, context, [EXPAND_REVISION, FAILING_REVISION])
    ref = images.build_image(
        make=make,
        context=context,
        docker=docker,
        repository="service-e2e-harness",
        tag=f"fails-{secrets.token_hex(4)}",
    )
    yield ref
    subprocess.run([docker, "rmi", "--force", ref], capture_output=True, check=False, timeout=120)


def test_the_failing_image_migrates_as_far_as_it_can_and_logs_why(
    docker: str, failing_image: str, empty_database: str
) -> None:
    # Host networking: the test database listens on 127.0.0.1 of this machine.
    migrate = subprocess.run(
        [docker, "run", "--rm", "--network=host", "--read-only", "--tmpfs=/tmp",
         "--env", f"DATABASE_URL={empty_database}", failing_image, "migrate"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert migrate.returncode != 0
    assert FAILURE_MARKER in migrate.stdout + migrate.stderr  # what `kubectl logs job/...` shows
    with psycopg.connect(empty_database) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row == (EXPAND_REVISION.revision,)
