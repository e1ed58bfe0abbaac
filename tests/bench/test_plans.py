"""The plans that keep every scenario flat from 100k to 10M items (issue 26), on data
seeded as `make bench` seeds it (bench/dataset.py, at 100k: below some thousand tags the
planner rightly reads the whole two-page `tags` table instead of its index, a plan that
would not stay flat), as the service prepares them (the generic plan psycopg's prepared statements
settle on, and the custom plan of their first runs): no sequential scan, no subplan per
item (the tags come from the row), and `?tag=` reads the tag's links by an index-only
scan."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from bench.dataset import BENCH_OWNER, POPULAR_TAG, RARE_TAG
from bench.servers import Database, seeded_postgres
from service.store.items import _CREATE_WITH_TAGS, _PAGE_WITH_TAG, ITEMS
from service.store.owners import Scope
from service.store.tags import _REPLACE, SWEEP_BATCH
from tests.service.test_owner_indexes import nodes, plan, scans

pytestmark = pytest.mark.slow

BENCH = Scope.of(BENCH_OWNER)
GENERIC = pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])


@pytest.fixture(scope="module")
def seeded_100k() -> Iterator[Database]:
    with seeded_postgres(100_000, report=lambda line: None) as database:
        yield database


@pytest.fixture(scope="module")
def conn(seeded_100k: Database) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(seeded_100k.url) as connection:
        yield connection
        connection.rollback()


def flat(found: dict[str, Any]) -> None:
    kinds = [n["Node Type"] for n in nodes(found)]
    assert "Seq Scan" not in kinds, found
    # No correlated subplan, run once per row (an InitPlan, e.g. a CTE, runs once).
    assert not [n for n in nodes(found) if n.get("Parent Relationship") == "SubPlan"], found


@GENERIC
def test_the_list_page_deep_in_the_keyset_reads_its_rows_by_an_index(
    conn: psycopg.Connection[Any], seeded_100k: Database, generic: bool
) -> None:
    params = {**BENCH.params, "after_id": seeded_100k.dataset.items // 2}
    found = plan(conn, ITEMS._page.sql(BENCH, 20), params, generic=generic)
    flat(found)
    assert found["Node Type"] == "Limit"  # rows in id order from an index: no sort
    # The owner's index, or the key's with the owner filtered (the bench owner has half the
    # rows: either reads about 40 entries for 20); both stop after the page.
    (items,) = scans(found, "items")
    assert items["Node Type"] == "Index Scan", found
    assert items["Index Name"] in ("ix_items_owner_id", "pk_items"), found
    assert scans(found, "item_tags") == [] and scans(found, "tags") == []


@GENERIC
@pytest.mark.parametrize("tag", [POPULAR_TAG, RARE_TAG])
def test_the_tag_page_reads_the_links_by_an_index_only_scan(
    conn: psycopg.Connection[Any], generic: bool, tag: str
) -> None:
    params = {**BENCH.params, "tag": tag, "after_id": 0}
    found = plan(conn, _PAGE_WITH_TAG.sql(BENCH, 20), params, generic=generic)
    flat(found)
    links = scans(found, "item_tags")
    assert [(s["Node Type"], s["Index Name"]) for s in links] == [
        ("Index Only Scan", "ix_item_tags_tag_id_item_id")
    ], found
    assert [s["Index Name"] for s in scans(found, "tags")] == ["uq_tags_owner_name"]
    assert all(s["Node Type"] == "Index Scan" for s in scans(found, "items")), found


@GENERIC
def test_get_post_and_the_writes_of_tags_touch_only_their_rows(
    conn: psycopg.Connection[Any], generic: bool
) -> None:
    get = plan(conn, ITEMS._get[BENCH], {**BENCH.params, "id": 11}, generic=generic)
    flat(get)
    # The writes: every row they touch found by an index (a subplan over an item's own
    # links, at most 20, is bounded).
    create = {**BENCH.params, "name": "n", "description": None, "wanted": 2,
              "names": ["tag-11", "tag-21"]}  # fmt: skip
    replace = {"item_id": 11, "item_owner": BENCH_OWNER, "names": ["tag-11", "tag-21"]}
    sweep = {"id": 1, "name": POPULAR_TAG, "batch": 10_000}
    for statement, params in (
        (_CREATE_WITH_TAGS, create),
        (_REPLACE, replace),
        (SWEEP_BATCH, sweep),
    ):
        found = plan(conn, statement, params, generic=generic)
        assert "Seq Scan" not in [n["Node Type"] for n in nodes(found)], found
