"""Which schema revision the code needs, and whether the database is at or ahead of it.

Alembic revision ids are not ordered, so "ahead" means: the database's revision is one
this code does not know, i.e. written by a newer release (migrations are expand-first,
so older code keeps working on a newer schema). A known revision before the one the
code needs is "behind": the migration Job has not run yet.

A contract step is a revision that says `contract = True`: it removes what only the
previous release needed (docs/extending.md). `migrate` stops before the contract steps
at the end of the chain, because the previous release may still be serving; `migrate
--contract` applies them once it is gone, and the next release's first revision, which
comes after them, applies them on its way. The code works with and without them.
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


@dataclass(frozen=True)
class Chain:
    """The revisions, newest first, and how many of the newest are contract steps."""

    revisions: tuple[str, ...]
    contract_steps: int = 0

    @property
    def needed(self) -> str:
        """What the code needs: the newest revision that is not a trailing contract step."""
        return self.revisions[self.contract_steps]

    @property
    def latest(self) -> str:
        return self.revisions[0]

    def reached(self, current: str, target: str) -> bool:
        """Whether a database at `current` is at or past `target` (both in the chain)."""
        return self.revisions.index(current) <= self.revisions.index(target)


def read_chain(config: Config) -> Chain:
    script = ScriptDirectory.from_config(config)
    heads = script.get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads; merge them into one")
    revisions = list(script.walk_revisions())  # newest first
    steps = 0
    while steps < len(revisions) - 1 and getattr(revisions[steps].module, "contract", False):
        steps += 1
    return Chain(tuple(rev.revision for rev in revisions), steps)


@cache
def _script() -> Chain:
    """This code's chain, read once from migrations/versions."""
    return read_chain(alembic_config())


def code_head() -> str:
    """The revision this code needs: the newest that is not a contract step at the end."""
    return _script().needed


def latest_revision() -> str:
    """The newest revision, contract steps included (what `migrate --contract` reaches)."""
    return _script().latest


@dataclass(frozen=True)
class SchemaState:
    ready: bool
    database_revision: str | None
    code_revision: str
    reason: str


def database_revisions(connection: Connection) -> list[str]:
    """The revision ids in alembic_version: none (no schema yet), one, or several (broken)."""
    try:
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        return list(rows.all())
    except ProgrammingError:
        connection.rollback()
        return []


def check_schema(connection: Connection) -> SchemaState:
    chain = _script()
    head = chain.needed
    rows = database_revisions(connection)
    current = rows[0] if len(rows) == 1 else None
    if not rows:
        return SchemaState(False, None, head, "database has no schema: run the migrations")
    if current is None:
        return SchemaState(False, None, head, "database has several schema heads")
    if current == head:
        return SchemaState(True, current, head, "schema is current")
    if current not in chain.revisions:
        return SchemaState(True, current, head, f"schema {current} is ahead of this code")
    if chain.reached(current, head):
        return SchemaState(True, current, head, f"schema {current}: {head} and its contract steps")
    return SchemaState(False, current, head, f"schema {current} is behind {head}: migrate")
