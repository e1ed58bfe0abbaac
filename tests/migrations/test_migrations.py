"""Migrations: they agree with the models, every revision goes up and down cleanly, and
concurrent runs are serialised by the advisory lock."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from service.store.schema_revision import alembic_config, code_head

pytestmark = pytest.mark.slow


@contextmanager
def database(url: str) -> Iterator[None]:
    os.environ["DATABASE_URL"] = url
    try:
        yield
    finally:
        del os.environ["DATABASE_URL"]


def sa_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://")


def test_models_and_migrations_agree(empty_database: str) -> None:
    with database(empty_database):
        command.upgrade(alembic_config(), "head")
        command.check(alembic_config())  # raises if autogenerate would emit anything


def test_every_revision_upgrades_and_downgrades(empty_database: str) -> None:
    """The stairway: up one, down one, up again, for each revision in order."""
    config = alembic_config()
    revisions = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
    with database(empty_database):
        for revision in revisions:
            command.upgrade(config, revision.revision)
            command.downgrade(config, revision.down_revision or "base")
            command.upgrade(config, revision.revision)
        command.downgrade(config, "base")
    engine = create_engine(sa_url(empty_database))
    assert inspect(engine).get_table_names() == ["alembic_version"]
    engine.dispose()


def test_concurrent_upgrades_apply_the_schema_once(empty_database: str) -> None:
    env = {**os.environ, "DATABASE_URL": empty_database}
    runs = [
        subprocess.Popen([sys.executable, "-m", "service", "migrate"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(4)
    ]  # fmt: skip
    outputs = [run.communicate(timeout=60)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0, 0], outputs
    applied = sum(output.count("Running upgrade  -> ") for output in outputs)
    assert applied == 1, outputs
    engine = create_engine(sa_url(empty_database))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == code_head()
    engine.dispose()
