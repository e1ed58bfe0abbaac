"""Which schema revision the code needs, and whether the database is at or ahead of it.

Alembic revision ids are not ordered, so "ahead" means: the database's revision is one
this code does not know, i.e. written by a newer release (migrations are expand-first,
so older code keeps working on a newer schema). A known revision other than the head is
"behind": the migration Job has not run yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import ProgrammingError

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = ROOT / "alembic.ini"


def alembic_config() -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    return config


@cache
def _script() -> tuple[str, frozenset[str]]:
    script = ScriptDirectory.from_config(alembic_config())
    heads = script.get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads; merge them into one")
    known = frozenset(rev.revision for rev in script.walk_revisions())
    return heads[0], known


def code_head() -> str:
    """The revision this code needs (read once from migrations/versions)."""
    return _script()[0]


@dataclass(frozen=True)
class SchemaState:
    ready: bool
    database_revision: str | None
    code_revision: str
    reason: str


def check_schema(connection: Connection) -> SchemaState:
    head, known = _script()
    try:
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except ProgrammingError:
        connection.rollback()
        rows = []
    current = rows[0] if len(rows) == 1 else None
    if not rows:
        return SchemaState(False, None, head, "database has no schema: run the migrations")
    if len(rows) > 1:
        return SchemaState(False, None, head, "database has several schema heads")
    if current == head:
        return SchemaState(True, current, head, "schema is current")
    if current in known:
        return SchemaState(False, current, head, f"schema {current} is behind {head}: migrate")
    return SchemaState(True, current, head, f"schema {current} is ahead of this code")
