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


def test_tags_migration_is_expand_only_and_reversible(empty_database: str) -> None:
    """0002 adds tags beside items: the previous release's statements keep working on the
    new schema, links cascade with their item or tag, and downgrading keeps the items."""
    config = alembic_config()
    engine = create_engine(sa_url(empty_database))
    with database(empty_database):
        command.upgrade(config, "0001")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO items (name) VALUES ('before')"))
        command.upgrade(config, "0002")
        schema = inspect(engine)
        foreign_keys = {fk["referred_table"]: fk for fk in schema.get_foreign_keys("item_tags")}
        assert {t: fk["options"].get("ondelete") for t, fk in foreign_keys.items()} == {
            "items": "CASCADE", "tags": "CASCADE"
        }  # fmt: skip
        assert schema.get_pk_constraint("item_tags")["constrained_columns"] == ["item_id", "tag_id"]
        indexes = {ix["name"]: ix["column_names"] for ix in schema.get_indexes("item_tags")}
        assert indexes == {"ix_item_tags_tag_id_item_id": ["tag_id", "item_id"]}
        with engine.begin() as conn:  # what release 0001's code runs, unchanged
            conn.execute(text("INSERT INTO items (name, description) VALUES ('after', NULL)"))
            conn.execute(text("INSERT INTO tags (name) VALUES ('t')"))
            conn.execute(text("INSERT INTO item_tags SELECT i.id, t.id FROM items i, tags t"))
            conn.execute(text("DELETE FROM items WHERE name = 'after'"))
            assert conn.execute(text("SELECT count(*) FROM item_tags")).scalar() == 1
            conn.execute(text("DELETE FROM tags"))
            assert conn.execute(text("SELECT count(*) FROM item_tags")).scalar() == 0
        command.downgrade(config, "0001")
        assert sorted(inspect(engine).get_table_names()) == ["alembic_version", "items"]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM items")).scalars().all() == ["before"]
    engine.dispose()
