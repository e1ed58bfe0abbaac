"""Item queries, each item with its tags: one statement, one round trip each
(service/store/sql.py), but for a PATCH of its tags, one transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, TypedDict, cast

import psycopg
from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from service.store.models import Item
from service.store.owners import Reach, Scope
from service.store.sql import (
    OwnerFilter,
    PageBounds,
    PagedSQL,
    Resource,
    Shape,
    compile_sql,
    compile_with_values,
    reached,
)
from service.store.tags import UnknownTagsError, item_tags, known_tags, replace_item_tags, tags

items = cast(Table, Item.__table__)


class ItemRow(TypedDict):
    id: int
    owner: str
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    tags: list[str]


# What an item is to clients: the columns every query returns, the keys of ItemRow. Its
# tags are its `tag_names` column, written with its links (below, and tags.py): a page of
# 20 reads 5 buffers instead of 245-324 for a subquery per item (docs/performance.md).
ITEM = Shape[ItemRow](
    items.c.id,
    items.c.owner,
    items.c.name,
    items.c.description,
    items.c.created_at,
    items.c.updated_at,
    items.c.tag_names.label("tags"),
)
ITEMS = Resource(items, ITEM, creates=("name", "description"))

# A new item with tags, in one statement (no BEGIN and COMMIT round trips): the caller's
# live tags of those names, the item with their sorted names, inserted only if every
# name is one of them (so nothing is written otherwise), and its links.
_known = known_tags("owner")
_new_item = (
    insert(items)
    .from_select(
        ["owner", "name", "description", "tag_names"],
        select(
            bindparam("owner", type_=String),
            bindparam("name", type_=String),
            bindparam("description", type_=String),
            func.array_agg(aggregate_order_by(_known.c.name, _known.c.name)),
        ).having(func.count() == bindparam("wanted")),
    )
    .returning(*ITEM.columns)
    .cte("new_item")
)
_new_links = (
    insert(item_tags)
    .from_select(["item_id", "tag_id"], select(_new_item.c.id, _known.c.id))
    .cte("new_links")
)
_NEW = {"items": "the new item: its owner is the caller's (a value, not a filter)"}
_CREATE_WITH_TAGS = compile_sql(select(*_new_item.c).add_cte(_new_links), unscoped=_NEW)
_KNOWN = compile_sql(select(_known.c.name))


def _page_with_tag(owned: OwnerFilter, limit: ColumnElement[Any]) -> Any:
    """?tag=: the live tags of that name the caller reaches (its own: one, by the owner's
    unique index; an admin's: every owner's), for each the next page of item ids from its
    links in item order (an index-only scan of (tag_id, item_id)), the first `limit` of
    those, then those items by their ids. Joining items to the links directly let the
    planner merge-join from the first item: 30 ms instead of 0.3. The ids go to one index
    scan as an array (`id = ANY(ARRAY(...))`): joined to them instead, each item was a
    nested loop's lookup through a Memoize node, 35 us more database CPU a page."""
    named = (
        select(tags.c.id)
        .where(tags.c.name == bindparam("tag"), owned(tags), tags.c.deleted_at.is_(None))
        .subquery("named")
    )
    tagged = item_tags.alias("tagged")
    links = (
        select(tagged.c.item_id)
        .where(tagged.c.tag_id == named.c.id, tagged.c.item_id > bindparam("after_id"))
        .order_by(tagged.c.item_id)
        .limit(limit)
        .lateral("links")
    )
    ids = (
        select(links.c.item_id)
        .select_from(named.join(links, true()))
        .order_by(links.c.item_id)
        .limit(limit)
    )
    return (
        select(*ITEM.columns)
        .where(items.c.id == any_(func.array(ids.scalar_subquery())), owned(items))
        .order_by(items.c.id)
    )


_PAGE_WITH_TAG = PagedSQL(_page_with_tag)


class ItemPageBounds(PageBounds, Protocol):
    @property
    def tag(self) -> str | None: ...  # only items with this tag


def list_items(cursor: psycopg.Cursor[Any], scope: Scope, bounds: ItemPageBounds) -> list[ItemRow]:
    if bounds.tag is None:
        return ITEMS.page(cursor, scope, bounds)
    if (listed := scope.listing(bounds.owner)) is None:
        return []
    params = {**listed.params, "tag": bounds.tag, "after_id": bounds.cursor}
    return ITEM.fetch_all(cursor, _PAGE_WITH_TAG.sql(listed, bounds.limit), params)


def create_item(
    cursor: psycopg.Cursor[Any],
    scope: Scope,
    *,
    name: str,
    description: str | None,
    tags: list[str],
) -> ItemRow:
    values = {"name": name, "description": description}
    if not tags:
        return ITEMS.create(cursor, scope, values)
    wanted = sorted(set(tags))
    params = {**values, "owner": scope.owner, "names": wanted, "wanted": len(wanted)}
    row = ITEM.fetch_one(cursor, _CREATE_WITH_TAGS, params)
    if row is None:  # some name is not a live tag of the caller's: nothing was written
        params = {"owner": scope.owner, "names": wanted}
        known = {name for (name,) in cursor.execute(_KNOWN, params).fetchall()}
        raise UnknownTagsError(sorted(set(wanted) - known))
    return row


_ADMIN = {"items": "items:admin reaches every owner's rows"}


def update_item(
    cursor: psycopg.Cursor[Any],
    scope: Scope,
    *,
    item_id: int,
    changes: dict[str, Any],
    tags: list[str] | None,
) -> ItemRow | None:
    # The set of changed columns varies, so this one is compiled per call (PATCH is rare).
    sql, params = compile_with_values(
        update(items)
        .where(items.c.id == item_id, reached(items, scope.reach))
        .values(**changes, updated_at=func.now())
        .returning(*ITEM.columns),
        unscoped=_ADMIN if scope.reach is Reach.EVERY_OWNER else None,
    )
    params |= scope.params
    if tags is None:
        return ITEM.fetch_one(cursor, sql, params)
    # The UPDATE locks the item's row until COMMIT, so a concurrent PATCH of its tags
    # waits, then replaces them from a snapshot taken after ours committed: the item ends
    # with one PATCH's set, never a mix of both. The tags are its owner's, also when an
    # admin changes another owner's item.
    with cursor.connection.transaction():
        row = ITEM.fetch_one(cursor, sql, params)
        if row is not None:
            row["tags"] = replace_item_tags(cursor, item_id=item_id, owner=row["owner"], names=tags)
    return row
