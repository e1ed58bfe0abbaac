"""Item queries: Core statements on the items table, one round trip each, rows not objects.

The statements are built once, with bound parameters: building and cache-keying a
statement per request costs more than running it. They use the table's columns (not the
ORM class's attributes), so `Session.execute` hands them straight to the connection
instead of through the ORM's compile and loading steps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from service.models import Item

items = cast(Table, Item.__table__)
COLUMNS = (items.c.id, items.c.name, items.c.description, items.c.created_at, items.c.updated_at)
ItemRow = Row[int, str, str | None, datetime, datetime]

_GET = select(*COLUMNS).where(items.c.id == bindparam("item_id"))
# Keyset pagination: stable under concurrent inserts, and as fast on page 5,000 as on 1.
_LIST = (
    select(*COLUMNS)
    .where(items.c.id > bindparam("after_id"))
    .order_by(items.c.id)
    .limit(bindparam("limit"))
)
_CREATE = insert(items).returning(*COLUMNS)
_DELETE = delete(items).where(items.c.id == bindparam("item_id")).returning(items.c.id)


def get_item(session: Session, *, item_id: int) -> ItemRow | None:
    return session.execute(_GET, {"item_id": item_id}).first()


def list_items(session: Session, *, after_id: int, limit: int) -> list[ItemRow]:
    rows = session.execute(_LIST, {"after_id": after_id, "limit": limit}).all()
    return list(rows)


def create_item(session: Session, *, name: str, description: str | None) -> ItemRow:
    row = session.execute(_CREATE, {"name": name, "description": description}).one()
    session.commit()
    return row


def update_item(session: Session, *, item_id: int, changes: dict[str, Any]) -> ItemRow | None:
    # The set of changed columns varies, so this one is built per call (PATCH is rare).
    statement = (
        update(items)
        .where(items.c.id == item_id)
        .values(**changes, updated_at=func.now())
        .returning(*COLUMNS)
    )
    row = session.execute(statement).first()
    session.commit()
    return row


def delete_item(session: Session, *, item_id: int) -> bool:
    deleted = session.execute(_DELETE, {"item_id": item_id}).first()
    session.commit()
    return deleted is not None
