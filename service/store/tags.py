"""Tag queries, and the tags of items: which exist, and replacing an item's set."""

from __future__ import annotations

from typing import Any, cast

import psycopg
from sqlalchemy import ARRAY, BigInteger, String, Table, any_, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from service.store.models import ItemTag, Tag
from service.store.sql import Resource, compile_sql

tags = cast(Table, Tag.__table__)
item_tags = cast(Table, ItemTag.__table__)

TAGS = Resource(tags, creates=("name",))


class UnknownTagsError(LookupError):
    """Some of the names given are not tags (of the item's owner); nothing was written."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


# Replace an item's tags in one statement: link the named tags of the item's owner that
# exist, unlink the others, return the names linked. An item carries only its owner's
# tags: another owner's tag of the same name is an unknown name here. Run it in the
# transaction that locked the item (items.update_item says why); ON CONFLICT keeps the
# links it already has.
_known = (
    select(tags.c.id, tags.c.name)
    .where(
        tags.c.owner == bindparam("item_owner"),
        tags.c.name == any_(bindparam("names", type_=ARRAY(String))),
    )
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


def replace_item_tags(
    cursor: psycopg.Cursor[Any], *, item_id: int, owner: str, names: list[str]
) -> list[str]:
    """The item's tags become `names` of its `owner`'s tags (sorted, returned), or
    UnknownTagsError is raised: call it inside `connection.transaction()` so that the
    raise undoes the statement."""
    wanted = set(names)
    params = {"item_id": item_id, "item_owner": owner, "names": list(wanted)}
    linked = [name for (name,) in cursor.execute(_REPLACE, params).fetchall()]
    if len(linked) != len(wanted):
        raise UnknownTagsError(sorted(wanted - set(linked)))
    return linked
