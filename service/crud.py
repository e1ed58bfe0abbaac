"""Item queries: one statement, one round trip each, rows as named tuples.

SQLAlchemy writes the SQL, from the table definition the migrations use too, once at
import; psycopg runs it on the request's connection (service/db.py says why). Values
always travel as bound parameters, never in the SQL text. psycopg prepares a statement
on the server after its fifth run on a connection, so the hot ones are parsed and
planned once per connection.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, cast

import psycopg
from psycopg.rows import args_row
from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql.expression import ClauseElement

from service.models import Item

items = cast(Table, Item.__table__)
COLUMNS = (items.c.id, items.c.name, items.c.description, items.c.created_at, items.c.updated_at)
_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]


class ItemRow(NamedTuple):
    id: int
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


_ROW = args_row(ItemRow)


def _sql(statement: ClauseElement) -> str:
    """The statement as psycopg's SQL, with `%(name)s` placeholders for its parameters."""
    return str(statement.compile(dialect=_DIALECT))


_GET = _sql(select(*COLUMNS).where(items.c.id == bindparam("item_id")))
# Keyset pagination: stable under concurrent inserts, and as fast on page 5,000 as on 1.
_LIST = _sql(
    select(*COLUMNS)
    .where(items.c.id > bindparam("after_id"))
    .order_by(items.c.id)
    .limit(bindparam("limit"))
)
_CREATE = _sql(
    insert(items)
    .values(name=bindparam("name"), description=bindparam("description"))
    .returning(*COLUMNS)
)
_DELETE = _sql(delete(items).where(items.c.id == bindparam("item_id")).returning(items.c.id))


def get_item(connection: psycopg.Connection[Any], *, item_id: int) -> ItemRow | None:
    with connection.cursor(row_factory=_ROW) as cursor:
        return cursor.execute(_GET, {"item_id": item_id}).fetchone()


def list_items(connection: psycopg.Connection[Any], *, after_id: int, limit: int) -> list[ItemRow]:
    with connection.cursor(row_factory=_ROW) as cursor:
        return cursor.execute(_LIST, {"after_id": after_id, "limit": limit}).fetchall()


def create_item(
    connection: psycopg.Connection[Any], *, name: str, description: str | None
) -> ItemRow:
    with connection.cursor(row_factory=_ROW) as cursor:
        row = cursor.execute(_CREATE, {"name": name, "description": description}).fetchone()
    if row is None:  # INSERT ... RETURNING returns the row or raises; never reached
        raise RuntimeError("INSERT ... RETURNING returned no row")
    return row


def update_item(
    connection: psycopg.Connection[Any], *, item_id: int, changes: dict[str, Any]
) -> ItemRow | None:
    # The set of changed columns varies, so this one is compiled per call (PATCH is rare).
    compiled = (
        update(items)
        .where(items.c.id == item_id)
        .values(**changes, updated_at=func.now())
        .returning(*COLUMNS)
        .compile(dialect=_DIALECT)
    )
    with connection.cursor(row_factory=_ROW) as cursor:
        return cursor.execute(str(compiled), compiled.params).fetchone()


def delete_item(connection: psycopg.Connection[Any], *, item_id: int) -> bool:
    with connection.cursor() as cursor:
        return cursor.execute(_DELETE, {"item_id": item_id}).fetchone() is not None
