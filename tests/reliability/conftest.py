"""Fixtures for fault tests: a PostgreSQL of the test's own (it gets stopped and started)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import migrate
from tools.localpg import LocalPostgres


@pytest.fixture
def own_postgres() -> Iterator[LocalPostgres]:
    """A durable server (fsync on, as in production) that only this test uses."""
    root = Path(tempfile.mkdtemp(prefix="outage-pg-"))
    root.chmod(0o755)
    server = LocalPostgres(root / "data", durable=True).start()
    migrate(server.url())
    try:
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)
