"""Item queries: one statement, one round trip each (service/store/sql.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast

import psycopg
from sqlalchemy import Table, bindparam, delete, func, insert, select, update

from service.store.models import Item
from service.store.sql import Shape, compile_sql, compile_with_values

items = cast(Table, Item.__table__)


class ItemRow(TypedDict):
    id: int
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


# What an item is to clients: the columns every query returns, the keys of ItemRow.
ITEM = Shape[ItemRow](
    items.c.id, items.c.name, items.c.description, items.c.created_at, items.c.updated_at
)

_GET = compile_sql(select(*ITEM.columns).where(items.c.id == bindparam("item_id")))
# Keyset pagination: stable under concurrent inserts, and as fast on page 5,000 as on 1.
_LIST = compile_sql(
    select(*ITEM.columns)
    .where(items.c.id > bindparam("after_id"))
    .order_by(items.c.id)
    .limit(bindparam("limit"))
)
_CREATE = compile_sql(
    insert(items)
    .values(name=bindparam("name"), description=bindparam("description"))
    .returning(*ITEM.columns)
)
_DELETE = compile_sql(delete(items).where(items.c.id == bindparam("item_id")).returning(items.c.id))


def get_item(cursor: psycopg.Cursor[Any], *, item_id: int) -> ItemRow | None:
    return ITEM.fetch_one(cursor, _GET, {"item_id": item_id})


def list_items(cursor: psycopg.Cursor[Any], *, after_id: int, limit: int) -> list[ItemRow]:
    return ITEM.fetch_all(cursor, _LIST, {"after_id": after_id, "limit": limit})


def create_item(cursor: psycopg.Cursor[Any], *, name: str, description: str | None) -> ItemRow:
    row = ITEM.fetch_one(cursor, _CREATE, {"name": name, "description": description})
    if row is None:  # INSERT ... RETURNING returns the row or raises; never reached
        raise RuntimeError("INSERT ... RETURNING returned no row")
    return row


def update_item(
    cursor: psycopg.Cursor[Any], *, item_id: int, changes: dict[str, Any]
) -> ItemRow | None:
    # The set of changed columns varies, so this one is compiled per call (PATCH is rare).
    sql, params = compile_with_values(
        update(items)
        .where(items.c.id == item_id)
        .values(**changes, updated_at=func.now())
        .returning(*ITEM.columns)
    )
    return ITEM.fetch_one(cursor, sql, params)


def delete_item(cursor: psycopg.Cursor[Any], *, item_id: int) -> bool:
    return cursor.execute(_DELETE, {"item_id": item_id}).fetchone() is not None
