"""Tag queries, and the tags of items: which exist, and replacing an item's set."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast

import psycopg
from sqlalchemy import ARRAY, BigInteger, String, Table, any_, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from service.store.models import ItemTag, Tag
from service.store.sql import Resource, Shape, compile_sql

tags = cast(Table, Tag.__table__)
item_tags = cast(Table, ItemTag.__table__)


class TagRow(TypedDict):
    id: int
    name: str
    created_at: datetime


TAGS = Resource(tags, Shape[TagRow](tags.c.id, tags.c.name, tags.c.created_at), creates=("name",))


class UnknownTagsError(LookupError):
    """Some of the names given are not tags; nothing was written."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


# Replace an item's tags in one statement: link the named tags that exist, unlink the
# others, return the names linked. Run it in the transaction that locked the item
# (items.update_item says why); ON CONFLICT keeps the links it already has.
_known = (
    select(tags.c.id, tags.c.name)
    .where(tags.c.name == any_(bindparam("names", type_=ARRAY(String))))
    .cte("known")
)
_unlinked = (
    delete(item_tags)
    .where(item_tags.c.item_id == bindparam("item_id"))
    .where(item_tags.c.tag_id.not_in(select(_known.c.id)))
    .cte("unlinked")
)
_linked = (
    pg_insert(item_tags)
    .from_select(["item_id", "tag_id"], select(bindparam("item_id", type_=BigInteger), _known.c.id))
    .on_conflict_do_nothing()
    .cte("linked")
)
_REPLACE = compile_sql(select(_known.c.name).add_cte(_unlinked, _linked).order_by(_known.c.name))


def replace_item_tags(cursor: psycopg.Cursor[Any], *, item_id: int, names: list[str]) -> list[str]:
    """The item's tags become `names` (sorted, returned), or UnknownTagsError is raised: call
    it inside `connection.transaction()` so that the raise undoes the statement."""
    wanted = set(names)
    rows = cursor.execute(_REPLACE, {"item_id": item_id, "names": list(wanted)}).fetchall()
    linked = [name for (name,) in rows]
    if len(linked) != len(wanted):
        raise UnknownTagsError(sorted(wanted - set(linked)))
    return linked
