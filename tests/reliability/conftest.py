"""Fixtures for fault tests: PostgreSQL servers of the test's own (they get stopped,
frozen, promoted), and a PgBouncer."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import migrate
from tools.localpg import LocalPostgres
from tools.localpg_replication import (
    PG_BASEBACKUP_MISSING,
    Replicated,
    copy_data_dir,
    has_pg_basebackup,
)
from tools.localpgbouncer import INSTALL as INSTALL_PGBOUNCER
from tools.localpgbouncer import find_pgbouncer
from tools.prereq import missing, require_tool


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A directory the servers' account can reach (they run as `postgres` under root),
    removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """tmp_path for what runs as the servers' account (PostgreSQL, PgBouncer): pytest
    makes /tmp/pytest-of-<user> 0700 as each session starts, so another session started
    meanwhile would lock them out of tmp_path mid-test."""
    with scratch("reliability-") as root:
        yield root


@pytest.fixture
def own_postgres() -> Iterator[LocalPostgres]:
    """A durable server (fsync on, as in production) that only this test uses."""
    with scratch("outage-pg-") as root:
        server = LocalPostgres(root / "data", durable=True).start()
        migrate(server.url())
        try:
            yield server
        finally:
            server.stop(mode="immediate")


@pytest.fixture(scope="session")
def migrated_template() -> Iterator[LocalPostgres]:
    """A stopped, migrated data directory that each failover test copies into its own
    servers (initdb and migrations once per session, not per test)."""
    with scratch("failover-template-") as root:
        template = LocalPostgres(root / "template", durable=False)
        try:
            template.start()
            migrate(template.url())
        finally:
            template.stop()  # a clean shutdown: its copies start without crash recovery
        yield template


@pytest.fixture
def replicated(migrated_template: LocalPostgres) -> Iterator[Replicated]:
    """A primary and its synchronous standby, both running, of this test's own."""
    if not has_pg_basebackup(migrated_template):
        missing(PG_BASEBACKUP_MISSING)
    with scratch("failover-") as root:
        pair = Replicated.start(migrated_template, root)
        try:
            yield pair
        finally:
            pair.stop()


@pytest.fixture
def lone_server(migrated_template: LocalPostgres) -> Iterator[LocalPostgres]:
    """A running copy of the migrated template, for tests that stop one backend."""
    with scratch("deadline-") as root:
        server = copy_data_dir(migrated_template, root, "data").start()
        try:
            yield server
        finally:
            server.stop(mode="immediate")


@pytest.fixture(scope="session")
def pgbouncer_binary() -> str:
    """Debian's pgbouncer (in /usr/sbin, which a user's PATH may lack)."""
    return find_pgbouncer() or require_tool(
        "pgbouncer", provided_by=f"{INSTALL_PGBOUNCER} (scripts/ci/install-debian-packages.sh)"
    )
