"""Item queries. Core statements over the ORM table: one round trip each, rows not objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.orm import Session

from service.models import Item

COLUMNS = (Item.id, Item.name, Item.description, Item.created_at, Item.updated_at)
ItemRow = Row[int, str, str | None, datetime, datetime]


def get_item(session: Session, *, item_id: int) -> ItemRow | None:
    return session.execute(select(*COLUMNS).where(Item.id == item_id)).first()


def list_items(session: Session, *, after_id: int, limit: int) -> list[ItemRow]:
    """Keyset pagination: stable under concurrent inserts, and as fast on page 5,000 as on 1."""
    statement = select(*COLUMNS).where(Item.id > after_id).order_by(Item.id).limit(limit)
    return list(session.execute(statement).all())


def create_item(session: Session, *, name: str, description: str | None) -> ItemRow:
    statement = insert(Item).values(name=name, description=description).returning(*COLUMNS)
    row = session.execute(statement).one()
    session.commit()
    return row


def update_item(session: Session, *, item_id: int, changes: dict[str, Any]) -> ItemRow | None:
    statement = (
        update(Item)
        .where(Item.id == item_id)
        .values(**changes, updated_at=func.now())
        .returning(*COLUMNS)
    )
    row = session.execute(statement).first()
    session.commit()
    return row


def delete_item(session: Session, *, item_id: int) -> bool:
    deleted = session.execute(delete(Item).where(Item.id == item_id).returning(Item.id)).first()
    session.commit()
    return deleted is not None
