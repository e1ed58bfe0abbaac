"""The benchmark's data (bench/dataset.py): the shape every size shares, the owners, and a
schema left exactly as the migrations made it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jwt
import psycopg
import pytest

from bench.dataset import (
    BENCH_OWNER,
    POPULAR_TAG,
    RARE_ITEMS,
    RARE_TAG,
    SECOND_OWNER,
    SECOND_POPULAR_TAG,
    SECOND_RARE_TAG,
    SLOT_OWNERS,
    Dataset,
    Schema,
    load_sql,
    parse_size,
    size_label,
)
from bench.servers import BENCH_CALLERS, WITHOUT_TOKENS, BenchCaller, Database, seeded_postgres
from bench.wrk import SCRIPTS
from tests.bench.conftest import SMALL
from tests.conftest import migrate, tag_names_mismatched
from tools.localpg import throwaway_postgres


@pytest.mark.parametrize(
    ("text", "rows"),
    [("100k", 100_000), ("10m", 10_000_000), ("10M", 10_000_000), ("250000", 250_000),
     ("1_000k", 1_000_000)],
)  # fmt: skip
def test_sizes_are_counts_with_k_or_m(text: str, rows: int) -> None:
    assert parse_size(text) == rows
    assert parse_size(size_label(rows)) == rows


@pytest.mark.parametrize(
    ("text", "complaint"),
    [("ten", "not a data size"), ("10g", "not a data size"), ("", "not a data size"),
     ("-5k", "not a data size"), ("1k", "at least 2,000"), ("100100", "multiple of 200")],
)  # fmt: skip
def test_a_bad_size_says_what_a_size_is(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_size(text)


def test_the_shape_scales_with_the_items() -> None:
    big = Dataset(10_000_000)
    assert (big.tags, big.links, big.bench_items) == (100_000, 30_000_000, 5_000_000)
    assert Dataset(100_000).tags == 1_000


def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    with psycopg.connect(db.url) as conn:
        return conn.execute(sql, params or None).fetchall()


def test_counts(seeded: Database) -> None:
    d = seeded.dataset
    assert d.items == SMALL
    assert rows(seeded, "SELECT count(*) FROM items WHERE id <= %(n)s", n=d.items) == [(d.items,)]
    assert rows(seeded, "SELECT count(*) FROM tags WHERE id <= %(n)s", n=d.tags) == [(d.tags,)]
    linked = "SELECT count(*) FROM item_tags WHERE item_id <= %(n)s"
    assert rows(seeded, linked, n=d.items) == [(d.links,)]


def test_every_seeded_item_has_three_distinct_tags(seeded: Database) -> None:
    counts = rows(
        seeded,
        """SELECT count(*), count(DISTINCT tag_id) FROM item_tags WHERE item_id <= %(n)s
           GROUP BY item_id""",
        n=seeded.dataset.items,
    )
    assert len(counts) == seeded.dataset.items and set(counts) == {(3, 3)}


@pytest.mark.parametrize(
    ("owner", "popular_tag", "rare_tag", "first", "every"),
    [(BENCH_OWNER, POPULAR_TAG, RARE_TAG, 1, 20),
     (SECOND_OWNER, SECOND_POPULAR_TAG, SECOND_RARE_TAG, 6, 50)],
)  # fmt: skip
def test_popular_is_on_a_tenth_of_its_owners_items_and_rare_on_ten(
    seeded: Database, owner: str, popular_tag: str, rare_tag: str, first: int, every: int
) -> None:
    d = seeded.dataset
    tagged = """SELECT array_agg(item_id ORDER BY item_id) FROM item_tags
                JOIN tags ON tags.id = tag_id WHERE tags.name = %(tag)s AND item_id <= %(n)s"""
    [(popular,)] = rows(seeded, tagged, tag=popular_tag, n=d.items)
    assert popular == list(range(first, d.items + 1, every))
    owned = SLOT_OWNERS.count(owner) * d.items // 10
    assert len(popular) == owned // 10
    [(rare,)] = rows(seeded, tagged, tag=rare_tag, n=d.items)
    assert len(rare) == RARE_ITEMS
    assert all(SLOT_OWNERS[(item_id - 1) % 10] == owner for item_id in popular + rare)
    # Spread over the ids: one in each tenth of the table.
    assert [item_id * 10 // d.items for item_id in rare] == list(range(10))
    owners = "SELECT DISTINCT owner FROM tags WHERE name IN (%(popular)s, %(rare)s)"
    assert rows(seeded, owners, popular=popular_tag, rare=rare_tag) == [(owner,)]


def test_every_items_tag_names_are_its_links_names(seeded: Database) -> None:
    with psycopg.connect(seeded.url) as conn:  # the seeded ids (the peer's writes have none)
        seeded_ids = seeded.dataset.items
        assert [row for row in tag_names_mismatched(conn) if row[0] <= seeded_ids] == []
        [(empty,)] = conn.execute(
            "SELECT count(*) FROM items WHERE tag_names = '{}' AND id <= %s", (seeded_ids,)
        ).fetchall()
        assert empty == 0


def test_items_link_only_to_tags_of_their_own_owner(seeded: Database) -> None:
    mismatched = """SELECT count(*) FROM item_tags
                    WHERE item_id <= %(n)s AND (item_id - 1) %% 10 <> (tag_id - 1) %% 10"""
    assert rows(seeded, mismatched, n=seeded.dataset.items) == [(0,)]


def test_tag_use_is_skewed_like_real_tags(seeded: Database) -> None:
    """Besides the named two, the most used tag holds many times the median's items, as
    the links of 200k items would be (generated, not stored: a small table has too few
    tags to show a skew)."""
    links_sql, params = load_sql(Dataset(200_000), owner_columns=set())[2]
    generated = links_sql[links_sql.index("SELECT") :]
    [(top, median)] = rows(
        seeded,
        f"""SELECT max(n), percentile_disc(0.5) WITHIN GROUP (ORDER BY n) FROM (
                SELECT count(*) AS n FROM ({generated}) AS links (item_id, tag_id)
                WHERE tag_id > 10 GROUP BY tag_id) AS uses""",
        **params,
    )
    assert top >= 5 * median


def test_the_bench_acts_for_two_owners_and_an_admin() -> None:
    """Issue 25's callers, in turn: two owners and an admin, each with a token."""
    owners = [c for c in BENCH_CALLERS if c.with_token and not c.admin]
    admins = [c for c in BENCH_CALLERS if c.with_token and c.admin]
    assert len(owners) == 2 and len(admins) == 1 and len(BENCH_CALLERS) == 3
    assert {c.owner for c in BENCH_CALLERS} == {BENCH_OWNER, SECOND_OWNER, admins[0].owner}
    scopes = {c.owner: jwt.decode(c.token(), options={"verify_signature": False})["scope"]
              for c in BENCH_CALLERS}  # fmt: skip
    assert [("items:admin" in scopes[c.owner].split()) for c in BENCH_CALLERS] == [
        c.admin for c in BENCH_CALLERS
    ]


@pytest.mark.parametrize("caller", [*BENCH_CALLERS, *WITHOUT_TOKENS], ids=lambda c: c.owner)
def test_the_scripts_pick_only_the_callers_rows(seeded: Database, caller: BenchCaller) -> None:
    """bench/wrk/callers.lua's formulas (random_id, random_tag_name), over their range: each
    caller asks only for rows it reaches (its owner's; every row for an admin; `unowned`
    for the auth-off twin's anonymous), posts its owner's own tags, and pages tags it
    reaches."""
    d, slots = seeded.dataset, [int(s) for s in caller.slots]
    owner = caller.owner if caller.with_token else "unowned"
    n = len(slots)
    ids = [10 * (k // n) + slots[k % n] + 1 for k in range(d.items // 10 * n)]
    assert len(set(ids)) == len(ids) and max(ids) <= d.items
    if caller.admin:
        assert sorted(ids) == list(range(1, d.items + 1))
    else:
        assert all(SLOT_OWNERS[(i - 1) % 10] == owner for i in ids)
    tag_slots = [int(s) for s in caller.tag_slots]
    names = [f"tag-{10 * q + s + 1}" for q in range(1, d.tags // 10) for s in tag_slots]
    by_owner = "SELECT owner, count(*) FROM tags WHERE name = ANY(%(n)s) GROUP BY 1"
    found = rows(seeded, by_owner, n=names)
    assert found == [(owner, len(names))]
    named = "SELECT owner FROM tags WHERE name IN (%(popular)s, %(rare)s)"
    named_owners = {o for (o,) in rows(seeded, named, popular=caller.popular, rare=caller.rare)}
    if caller.with_token:
        assert named_owners == ({BENCH_OWNER} if caller.admin else {owner})
    script = (SCRIPTS / "callers.lua").read_text()
    assert "10 * math.floor(k / n) + caller.slots[k % n + 1] + 1" in script
    assert "(10 * q + caller.tag_slots[math.random(1, #caller.tag_slots)] + 1)" in script


@pytest.fixture(scope="module")
def freshly_migrated() -> Iterator[Schema]:
    """The indexes and constraints the migrations make, on a database of their own."""
    with throwaway_postgres() as server, psycopg.connect(server.url()) as conn:
        migrate(server.url())
        yield Schema.read(conn)


def test_the_schema_is_rebuilt_exactly_as_migrated(
    seeded: Database, freshly_migrated: Schema
) -> None:
    with psycopg.connect(seeded.url) as conn:
        after = Schema.read(conn)
        assert after == freshly_migrated
        assert freshly_migrated.constraints and freshly_migrated.indexes
        invalid = "SELECT count(*) FROM pg_constraint WHERE NOT convalidated"
        assert conn.execute(invalid).fetchall() == [(0,)]
        assert conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchall() == [
            (0,)
        ]


def test_the_server_runs_with_its_normal_settings_again(seeded: Database) -> None:
    with psycopg.connect(seeded.admin_url) as conn:
        settings = dict(
            conn.execute(
                """SELECT name, setting FROM pg_settings
                   WHERE name IN ('wal_level', 'autovacuum', 'max_wal_senders')"""
            ).fetchall()
        )
        assert settings == {"wal_level": "replica", "autovacuum": "on", "max_wal_senders": "10"}


def test_new_rows_get_ids_after_the_seeded_ones(seeded: Database) -> None:
    with psycopg.connect(seeded.url) as conn:
        [(item_id,)] = conn.execute(
            "INSERT INTO items (owner, name) VALUES ('o', 'after-the-seed') RETURNING id"
        ).fetchall()
        [(tag_id,)] = conn.execute(
            "INSERT INTO tags (owner, name) VALUES ('o', 'after-the-seed') RETURNING id"
        ).fetchall()
        conn.rollback()
    assert item_id > seeded.dataset.items and tag_id > seeded.dataset.tags


def test_an_owner_column_is_filled_with_each_rows_owner() -> None:
    """Every table with an `owner` column (items and tags since issue 25; item_tags given
    one here, as a later release might) gets each row's owner."""

    def add_owner_columns(url: str) -> None:
        with psycopg.connect(url) as conn:
            conn.execute("ALTER TABLE item_tags ADD COLUMN owner text NOT NULL")

    with seeded_postgres(2000, report=lambda line: None, before_seeding=add_owner_columns) as db:
        expected = {f"{s}": owner for s, owner in enumerate(SLOT_OWNERS)}
        for table, key in (("items", "id"), ("tags", "id"), ("item_tags", "item_id")):
            by_slot = dict(
                rows(db, f"SELECT DISTINCT (({key} - 1) % 10)::text, owner FROM {table}")
            )
            assert by_slot == expected, table
        mixed = """SELECT count(*) FROM item_tags
                   JOIN items ON items.id = item_id JOIN tags ON tags.id = tag_id
                   WHERE items.owner <> tags.owner OR item_tags.owner <> items.owner"""
        assert rows(db, mixed) == [(0,)]
        shares = dict(rows(db, "SELECT owner, count(*) FROM items GROUP BY owner"))
        assert shares[BENCH_OWNER] == db.dataset.items // 2
