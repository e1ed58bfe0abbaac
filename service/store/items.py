"""Item queries: one statement, one round trip each, rows as dicts the API returns as is.

SQLAlchemy writes the SQL, from the table definition the migrations use too, once at
import; psycopg runs it on the request's cursor (service/store/database.py says why). Values always
travel as bound parameters, never in the SQL text. psycopg prepares a statement on the
server after its fifth run on a connection, so the hot ones are parsed and planned once
per connection.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast

import psycopg
from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql.expression import ClauseElement

from service.store.models import Item

items = cast(Table, Item.__table__)
# What an item is to clients: the columns every query returns, and the keys of ItemRow.
COLUMNS = (items.c.id, items.c.name, items.c.description, items.c.created_at, items.c.updated_at)
_KEYS = tuple(column.name for column in COLUMNS)
_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]


class ItemRow(TypedDict):
    """A row as a dict, ready for JSON (datetimes too: the JSON provider writes them), so
    serving a page of rows builds no intermediate objects per row."""

    id: int
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


def _item(values: tuple[Any, ...]) -> ItemRow:
    return _items([values])[0]


def _items(rows: list[tuple[Any, ...]]) -> list[ItemRow]:
    # Every query selects COLUMNS, so the lengths match. zip(strict=True) (a keyword
    # argument: the slow way to call zip) and a function call per row each cost 4% of the
    # CPU of a page of 20.
    return cast("list[ItemRow]", [dict(zip(_KEYS, row)) for row in rows])  # noqa: B905


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


def get_item(cursor: psycopg.Cursor[Any], *, item_id: int) -> ItemRow | None:
    row = cursor.execute(_GET, {"item_id": item_id}).fetchone()
    return None if row is None else _item(row)


def list_items(cursor: psycopg.Cursor[Any], *, after_id: int, limit: int) -> list[ItemRow]:
    rows = cursor.execute(_LIST, {"after_id": after_id, "limit": limit}).fetchall()
    return _items(rows)


def create_item(cursor: psycopg.Cursor[Any], *, name: str, description: str | None) -> ItemRow:
    row = cursor.execute(_CREATE, {"name": name, "description": description}).fetchone()
    if row is None:  # INSERT ... RETURNING returns the row or raises; never reached
        raise RuntimeError("INSERT ... RETURNING returned no row")
    return _item(row)


def update_item(
    cursor: psycopg.Cursor[Any], *, item_id: int, changes: dict[str, Any]
) -> ItemRow | None:
    # The set of changed columns varies, so this one is compiled per call (PATCH is rare).
    compiled = (
        update(items)
        .where(items.c.id == item_id)
        .values(**changes, updated_at=func.now())
        .returning(*COLUMNS)
        .compile(dialect=_DIALECT)
    )
    row = cursor.execute(str(compiled), compiled.params).fetchone()
    return None if row is None else _item(row)


def delete_item(cursor: psycopg.Cursor[Any], *, item_id: int) -> bool:
    return cursor.execute(_DELETE, {"item_id": item_id}).fetchone() is not None
