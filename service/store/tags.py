"""Tag queries, and the tags of items: which exist, replacing an item's set, and deleting
a tag (at once, or marked and left to service/store/tag_sweeper.py when it is on more
items than one request may touch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import psycopg
from sqlalchemy import (
    ARRAY,
    CTE,
    BigInteger,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert

from service.store.models import Item, ItemTag, Tag
from service.store.owners import Scope
from service.store.sql import Resource, ScopedSQL, Shape, compile_sql

tags = cast(Table, Tag.__table__)
item_tags = cast(Table, ItemTag.__table__)
items = cast(Table, Item.__table__)

# A tag marked deleted is gone to every statement of the API (its name stays taken until
# the sweeper has removed it from its items, then the row).
TAGS = Resource(
    tags,
    Shape(*(column for column in tags.columns if column.key != "deleted_at")),
    creates=("name",),
    live=tags.c.deleted_at.is_(None),
)


class UnknownTagsError(LookupError):
    """Some of the names given are not tags (of the item's owner); nothing was written."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


# Replace an item's tags in one statement: link the named live tags of the item's owner,
# unlink the others, set the item's `tag_names` to theirs (sorted), return them. An item
# carries only its owner's tags: another owner's tag of the same name is an unknown name
# here. Run it in the transaction that locked the item (items.update_item says why); ON
# CONFLICT keeps the links it already has.
def known_tags(owner: str) -> CTE:
    """The live tags of the owner in parameter `owner` named in parameter `names`."""
    return (
        select(tags.c.id, tags.c.name)
        .where(
            tags.c.owner == bindparam(owner),
            tags.c.name == any_(bindparam("names", type_=ARRAY(String))),
            tags.c.deleted_at.is_(None),
        )
        .cte("known")
    )


_known = known_tags("item_owner")
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
_named = (
    update(items)
    .where(items.c.id == bindparam("item_id"), items.c.owner == bindparam("item_owner"))
    .values(
        tag_names=select(
            func.coalesce(
                func.array_agg(aggregate_order_by(_known.c.name, _known.c.name)),
                literal_column("'{}'::varchar[]"),
            )
        ).scalar_subquery()
    )
    .cte("named")
)
_REPLACE = compile_sql(
    select(_known.c.name).add_cte(_unlinked, _linked, _named).order_by(_known.c.name)
)


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


# DELETE /tags/{id}, first step: mark the caller's live tag deleted (from now on no
# statement of the API finds it), returning what the sweep needs.
_MARK = ScopedSQL(
    lambda owned: (
        update(tags)
        .where(tags.c.id == bindparam("id"), owned(tags), tags.c.deleted_at.is_(None))
        .values(deleted_at=func.now())
        .returning(tags.c.id, tags.c.name)
    )
)
# How many links a tag has, up to `up_to` (batch + 1: enough to tell whether they fit one
# batch, reading at most that many index entries).
_LINKS_UP_TO = compile_sql(
    select(func.count()).select_from(
        select(literal_column("1"))
        .where(item_tags.c.tag_id == bindparam("id"))
        .limit(bindparam("up_to"))
        .subquery()
    )
)
# One batch of a deleted tag's sweep, one statement: up to `batch` of its links, in item
# order (the (tag_id, item_id) index), deleted; its name taken off those items. Returns
# how many links it found: fewer than `batch` means none were left. (Not how many it
# deleted: a link a concurrent PATCH took away is found but skipped, and more may follow.)
_batch = (
    select(item_tags.c.item_id)
    .where(item_tags.c.tag_id == bindparam("id"))
    .order_by(item_tags.c.item_id)
    .limit(bindparam("batch"))
    .cte("batch")
)
# The items' rows are locked before their links are touched (a link is deleted only once
# `locked` has returned its item): the order of every other writer (PATCH's UPDATE then
# its links, DELETE's cascade). Links first would deadlock with a PATCH of the same item.
# FOR NO KEY UPDATE, as the UPDATE below would take: a note's foreign key check (KEY
# SHARE) on one of these items does not wait for the batch.
_locked = (
    select(items.c.id)
    .where(items.c.id == any_(func.array(select(_batch.c.item_id).scalar_subquery())))
    .order_by(items.c.id)
    .with_for_update(key_share=True)
    .cte("locked")
)
_swept = (
    delete(item_tags)
    .where(item_tags.c.tag_id == bindparam("id"), item_tags.c.item_id.in_(select(_locked)))
    .returning(item_tags.c.item_id)
    .cte("swept")
)
_renamed = (
    update(items)
    .where(items.c.id.in_(select(_swept.c.item_id)))
    .values(tag_names=func.array_remove(items.c.tag_names, bindparam("name", type_=String)))
    .cte("renamed")
)
_UNSCOPED_SWEEP = {"items": "the deleted tag's items: every one carrying it is the tag's owner's"}
SWEEP_BATCH = compile_sql(
    select(func.count()).select_from(_batch).add_cte(_swept, _renamed),
    unscoped=_UNSCOPED_SWEEP,
)
# The last step: the row itself, once it has no links left. Not while it has: the FK's
# cascade would take those links and leave the tag's name on their items.
_UNSCOPED_DROP = {"tags": "a tag already marked deleted by its owner"}
# A write that found the tag live before the mark committed may still be adding a link:
# its foreign key check holds the tag's row KEY SHARE until it commits. FOR UPDATE waits
# for it, so the DELETE after it (a statement of its own: a new snapshot) sees that link;
# and a write arriving later waits for this lock, then fails its check on a row gone.
_LOCK_TAG = compile_sql(
    select(literal_column("1")).where(tags.c.id == bindparam("id")).with_for_update(),
    unscoped=_UNSCOPED_DROP,
)
_DROP_IF_UNLINKED = compile_sql(
    delete(tags).where(
        tags.c.id == bindparam("id"),
        tags.c.deleted_at.is_not(None),
        ~select(item_tags.c.item_id).where(item_tags.c.tag_id == tags.c.id).exists(),
    ),
    unscoped=_UNSCOPED_DROP,
)


def drop_swept(cursor: psycopg.Cursor[Any], params: dict[str, Any]) -> bool:
    """Remove the marked tag `params["id"]` if no link is left (call it in a transaction);
    False if one is: a write that had found the tag live added it, and a batch more
    (the sweeper's next) takes it off."""
    cursor.execute(_LOCK_TAG, params)
    return cursor.execute(_DROP_IF_UNLINKED, params).rowcount == 1


@dataclass(frozen=True)
class TagDeletion:
    """What DELETE did: `done` (204), or marked it and left the rest to the sweeper (202)."""

    done: bool


def delete_tag(
    cursor: psycopg.Cursor[Any], scope: Scope, tag_id: int, *, batch: int
) -> TagDeletion | None:
    """Delete the caller's tag `tag_id` (None: it has none), in one transaction: mark it,
    then, if its links fit one batch of `batch`, take them and the row away too. Otherwise
    (or if a concurrent write linked it meanwhile) the mark commits alone, and the sweeper
    does the rest in batches."""
    with cursor.connection.transaction():
        marked = cursor.execute(_MARK[scope], {**scope.params, "id": tag_id}).fetchone()
        if marked is None:
            return None
        params = {"id": tag_id, "name": marked[1], "batch": batch, "up_to": batch + 1}
        (links,) = cursor.execute(_LINKS_UP_TO, params).fetchone() or (0,)
        if links > batch:
            return TagDeletion(done=False)
        cursor.execute(SWEEP_BATCH, params)
        done = drop_swept(cursor, params)
    return TagDeletion(done=done)  # not done: a link came in meanwhile, 202 and the sweeper
