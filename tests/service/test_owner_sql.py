"""The owner filter lives in the shared plumbing (service/store/sql.py): a statement that
reads an owned table without it does not compile, a table without owners must say why,
and a list's `?owner=` never widens what a caller reaches."""

from __future__ import annotations

import pytest
from sqlalchemy import BigInteger, Column, MetaData, String, Table, bindparam, select

from service.store.items import items
from service.store.owners import ANONYMOUS_SCOPE, Reach, Scope
from service.store.sql import Resource, ScopedSQL, UnscopedStatementError, compile_sql
from service.store.tags import item_tags, tags

lookup = Table(
    "colours", MetaData(), Column("id", BigInteger, primary_key=True), Column("name", String(20))
)


def test_a_statement_that_reads_an_owned_table_without_its_owner_does_not_compile() -> None:
    with pytest.raises(UnscopedStatementError, match=r"reads tags without an owner filter"):
        compile_sql(select(items.c.id).where(items.c.owner == bindparam("owner")).add_columns(
            select(tags.c.name).where(tags.c.id == 1).scalar_subquery()
        ))  # fmt: skip
    aliased = items.alias("other")
    with pytest.raises(UnscopedStatementError, match="reached\\(items\\)"):
        compile_sql(select(aliased.c.id))
    assert compile_sql(select(item_tags.c.tag_id))  # no owner column: nothing to filter
    assert compile_sql(select(items.c.id), unscoped={"items": "a count for the metrics"})
    # A correlation to another row's owner is a filter too (an item's tags are its owner's).
    assert compile_sql(
        select(items.c.id, select(tags.c.name).where(tags.c.owner == items.c.owner)
               .scalar_subquery()).where(items.c.owner == bindparam("owner"))
    )  # fmt: skip


def test_a_scoped_statement_has_one_variant_per_reach() -> None:
    statement = ScopedSQL(lambda owned: select(tags.c.id).where(owned(tags)))
    alice, admin = Scope.of("alice"), Scope.admin("root")
    assert "tags.owner = %(owner)s" in statement[alice]
    assert "tags.owner = ANY (%(owners)s" in statement[ANONYMOUS_SCOPE]
    assert "owner" not in statement[admin]
    with pytest.raises(UnscopedStatementError):
        ScopedSQL(lambda owned: select(tags.c.id))


def test_a_resource_without_owners_must_say_why() -> None:
    with pytest.raises(TypeError, match="unowned="):
        Resource(lookup, creates=("name",))
    with pytest.raises(TypeError, match="unowned="):
        Resource(tags, creates=("name",), unowned="it has owners: this is a mistake")
    colours = Resource(lookup, creates=("name",), unowned="a list every caller shares")
    assert "owner" not in colours._get[Scope.of("alice")]


@pytest.mark.parametrize(
    ("scope", "owner", "reaches"),
    [
        (Scope.of("alice"), None, (Reach.OWNER, "alice")),
        (Scope.of("alice"), "alice", (Reach.OWNER, "alice")),
        (Scope.of("alice"), "bob", None),
        (Scope.admin("root"), "bob", (Reach.OWNER, "bob")),
        (Scope.admin("root"), None, (Reach.EVERY_OWNER, "root")),
        (ANONYMOUS_SCOPE, "unowned", (Reach.OWNER, "unowned")),
        (ANONYMOUS_SCOPE, "alice", None),
    ],
)
def test_an_owner_filter_narrows_within_the_reach(
    scope: Scope, owner: str | None, reaches: tuple[Reach, str] | None
) -> None:
    listed = scope.listing(owner)
    assert (listed and (listed.reach, listed.params["owner"])) == reaches
