"""The benchmark's data: N items, N/100 tags and 3N links, generated inside PostgreSQL.

The same shape at every size (`make bench` seeds 100k, the data-size mode 100k and 10M),
so a scenario does the same work per request at each size and only the tables grow:

- **Owners.** Every row has one, from its id: slots 0-4 of each ten ids belong to the
  bench token's subject (`BENCH_OWNER`, 50% of the rows), 5-6 to `owner-1` (20%), 7 and
  8 to `owner-2` and `owner-3`, 9 to `unowned` (10% each), interleaved as rows arrive. An
  item links only to tags of its own owner (same slot). `seed` fills `owner` in each
  table that has the column (issue 25 added it; the previous release's schema has none).
  The scenarios act for two owners and an admin in turn (issue 25; bench/servers.py,
  BENCH_CALLERS): the bench owner, `owner-1`, and `owner-2` with `items:admin`; each asks
  only for rows it reaches (`random_id` in bench/wrk/callers.lua), the auth-off twin
  only for the unowned ones.
- **Tag names.** Where `items.tag_names` exists (issue 26), each item's is written with
  the item, from the same formulas as its links, sorted as the service sorts them.
- **Tags.** Tag 1 is `popular`, on 10% of the bench owner's items (ids 1, 21, 41...);
  tag 2 is `rare`, on exactly 10 of them, spread over the ids; `owner-1` has the same
  two shapes among its own items, tag 6 `popular-1` (ids 6, 56, 106...) and tag 7
  `rare-1`; the others are `tag-<id>`. Every item has three tags: each other item's
  first tag is skewed towards the low tag ids (P ~ 1/rank, as real tag use is), the
  other two spread evenly.

Loading is `INSERT ... SELECT generate_series(...)` in the server, with every index and
constraint dropped first and rebuilt after from the definitions the migrations left (read
from the catalog, so whatever indexes a later migration adds are rebuilt too), with
`wal_level=minimal` while loading (a table truncated in the loading transaction is written
without WAL) and the server's normal settings back before anything is measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

BENCH_OWNER = "bench"
SECOND_OWNER = "owner-1"  # slots 5 and 6: the bench's other owner
ADMIN_OWNER = "owner-2"  # slot 7: the bench's admin acts as it (its own tags for its posts)
# Slot 9's rows are `unowned` (service/store/owners.py: from before owners existed), what a
# request reaches with access control off (the bench's auth-off twin).
UNOWNED_SLOT = 9
# Owner of each slot, a row's id modulo 10 (ids start at 1: slot = (id - 1) % 10).
SLOT_OWNERS = (BENCH_OWNER,) * 5 + (SECOND_OWNER,) * 2 + (ADMIN_OWNER, "owner-3", "unowned")
POPULAR_TAG, RARE_TAG = "popular", "rare"
# The named tags by id, each of its slot's owner: the bench owner's (slots 0 and 1) and
# owner-1's (slots 5 and 6). Names stay unique across owners, as the schema before the
# owners' contract step requires.
SECOND_POPULAR_TAG, SECOND_RARE_TAG = "popular-1", "rare-1"
NAMED_TAGS = {1: POPULAR_TAG, 2: RARE_TAG, 6: SECOND_POPULAR_TAG, 7: SECOND_RARE_TAG}
RARE_ITEMS = 10
TABLES = ("items", "tags", "item_tags", "notes")  # notes: empty, but its key refers to items
# Settings while loading (ALTER SYSTEM, then a restart); reset before measuring.
LOAD_SETTINGS = {
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "maintenance_work_mem": "1GB",
    "max_parallel_maintenance_workers": "2",
    "max_wal_size": "8GB",
    "autovacuum": "off",
}


@dataclass(frozen=True)
class Dataset:
    """`items` items; the tags and links follow from it."""

    items: int

    def __post_init__(self) -> None:
        if self.items < 2000 or self.items % 200:
            raise ValueError(
                f"{self.items:,} items: a data size must be a multiple of 200 and at least 2,000 "
                "(a rare tag needs ten items of its owner)"
            )

    @property
    def tags(self) -> int:
        return max(self.items // 100, 100)

    @property
    def links(self) -> int:
        return 3 * self.items

    @property
    def bench_items(self) -> int:
        """The bench owner's items: ids 1-5, 11-15, ... (bench_item_id in common.lua)."""
        return self.items // 2

    @property
    def label(self) -> str:
        return size_label(self.items)


def size_label(rows: int) -> str:
    """100000 -> '100k', 10000000 -> '10m'."""
    for suffix, unit in (("m", 1_000_000), ("k", 1_000)):
        if rows % unit == 0:
            return f"{rows // unit}{suffix}"
    return str(rows)


def parse_size(text: str) -> int:
    """'100k' -> 100000, '10m' or '10M' -> 10000000, '250000' -> 250000."""
    raw = text.strip().lower().replace("_", "")
    unit = {"k": 1_000, "m": 1_000_000}.get(raw[-1:], 1)
    digits = raw[:-1] if unit > 1 else raw
    if not digits.isdigit():
        raise ValueError(f"{text!r} is not a data size: write a count of items, e.g. 100k or 10m")
    rows = int(digits) * unit
    Dataset(rows)  # refuses sizes the shape cannot be built at
    return rows


def _owner_of(row_id: str) -> str:
    owners = ",".join(f"'{owner}'" for owner in SLOT_OWNERS)
    return f"(ARRAY[{owners}])[({row_id} - 1) %% 10 + 1]"


def _hash(row_id: str, multiplier: int) -> str:
    """A multiplicative hash of a row id (Knuth's), as a fraction in [0, 1)."""
    return f"((({row_id}) * {multiplier}::bigint) %% 4294967296)::float8 / 4294967296"


ITEMS_SQL = """
INSERT INTO items (id, name, description{owner_column}{names_column}) OVERRIDING SYSTEM VALUE
SELECT g.i, 'seed-' || g.i,
       'Seeded item ' || g.i || ', one of the rows the load benchmark reads.'
       {owner_value}{names_value}
FROM ({tagged}) AS g
"""
# A tag's name from its id `t`: a named tag's, else tag-<id>.
TAG_NAME_SQL = (
    "CASE t "
    + " ".join(f"WHEN {tag_id} THEN %(tag_{tag_id})s" for tag_id in NAMED_TAGS)
    + " ELSE 'tag-' || t END"
)
TAGS_SQL = """
INSERT INTO tags (id, name{owner_column}) OVERRIDING SYSTEM VALUE
SELECT t, {tag_name}
       {owner_value}
FROM generate_series(1, %(tags)s) AS t
"""
# Tag ids of slot s are 10q + s + 1. q = 0 holds the four named tags (and six unused
# ones); each item's three others are q0, q0 + d, q0 + 2d around the ring 1..m (m = tags/10
# - 1), distinct because 0 < d < m/2. The popular items (every 20th id, slot 0; owner-1's,
# every 50th, slot 5) and the rare ones (slots 1 and 6, ten ids each spread over the
# range) carry their named tag instead of the third.
# Each item with what picks its tags (TAG_ID_SQL): its named tag, if any, q0 and d.
TAGGED_SQL = """
    SELECT i,
           CASE WHEN (i - 1) %% 20 = 0 THEN 1
                WHEN (i - 1) %% 10 = 1
                     AND ((i - 1) / 10) %% %(rare_every)s = %(rare_offset)s THEN 2
                WHEN (i - 1) %% 50 = 5 THEN 6
                WHEN (i - 1) %% 10 = 6
                     AND ((i - 1) / 10) %% %(rare_every)s = %(rare_offset)s THEN 7
                ELSE 0 END AS named,
           floor(power(%(ring)s::float8, {skew}))::bigint AS q0,
           1 + floor({spread} * ((%(ring)s - 1) / 2))::bigint AS d
    FROM generate_series(1, %(items)s) AS i
"""
# The k-th (0-2) tag id of item g.
TAG_ID_SQL = """CASE WHEN {k} = 2 AND g.named > 0 THEN g.named
            ELSE 10 * (1 + (g.q0 - 1 + {k} * g.d) %% %(ring)s) + (g.i - 1) %% 10 + 1 END"""
LINKS_SQL = """
INSERT INTO item_tags (item_id, tag_id{owner_column})
SELECT g.i, {tag_id}{owner_value}
FROM ({tagged}) AS g CROSS JOIN generate_series(0, 2) AS k
"""
# An item's `tag_names` (issue 26), sorted as the service sorts them: its three tags' names.
TAG_NAMES_SQL = """ARRAY(
           SELECT {tag_name}
           FROM unnest(ARRAY[{ids}]) AS t ORDER BY 1)"""


def load_sql(
    dataset: Dataset, owner_columns: set[str], *, tag_names: bool = False
) -> list[tuple[str, dict[str, Any]]]:
    """The three INSERTs, filling `owner` in the tables of `owner_columns` that have one,
    and `items.tag_names` if it exists (`tag_names`)."""

    def owner(table: str, row_id: str) -> dict[str, str]:
        if table not in owner_columns:
            return {"owner_column": "", "owner_value": ""}
        return {"owner_column": ", owner", "owner_value": ", " + _owner_of(row_id)}

    ring = dataset.tags // 10 - 1
    params = {
        "items": dataset.items,
        "tags": dataset.tags,
        **{f"tag_{tag_id}": name for tag_id, name in NAMED_TAGS.items()},
        "ring": ring,
        # Slot-1 items are ids 10j + 2, j < items/10: every (items/100)th j, ten of them.
        "rare_every": dataset.items // 10 // RARE_ITEMS,
        "rare_offset": dataset.items // 10 // RARE_ITEMS // 2,
    }
    tagged = TAGGED_SQL.format(skew=_hash("i", 2654435761), spread=_hash("i", 2246822519))
    links = LINKS_SQL.format(
        tagged=tagged, tag_id=TAG_ID_SQL.format(k="k"), **owner("item_tags", "g.i")
    )
    names = {"names_column": "", "names_value": ""}
    if tag_names:
        ids = ", ".join(TAG_ID_SQL.format(k=k) for k in range(3))
        names_value = TAG_NAMES_SQL.format(ids=ids, tag_name=TAG_NAME_SQL)
        names = {"names_column": ", tag_names", "names_value": ", " + names_value}
    return [
        (ITEMS_SQL.format(tagged=tagged, **owner("items", "g.i"), **names), params),
        (TAGS_SQL.format(tag_name=TAG_NAME_SQL, **owner("tags", "t")), params),
        (links, params),
    ]


@dataclass(frozen=True)
class Schema:
    """The indexes and constraints of the benchmark's tables, as the migrations made them."""

    constraints: tuple[tuple[str, str, str, str], ...]  # (table, name, type, definition)
    indexes: tuple[tuple[str, str], ...]  # (name, CREATE INDEX ...), not backing a constraint

    @classmethod
    def read(cls, conn: psycopg.Connection[Any]) -> Schema:
        constraints = conn.execute(
            """SELECT conrelid::regclass::text, conname, contype::text, pg_get_constraintdef(oid)
               FROM pg_constraint
               WHERE conrelid = ANY(%(tables)s::regclass[]) AND contype IN ('p', 'u', 'f', 'x')
               ORDER BY 1, 2""",
            {"tables": list(TABLES)},
        ).fetchall()
        indexes = conn.execute(
            """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
               FROM pg_index AS i
               WHERE i.indrelid = ANY(%(tables)s::regclass[])
                 AND NOT EXISTS (SELECT FROM pg_constraint AS c
                                 WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
               ORDER BY 1""",
            {"tables": list(TABLES)},
        ).fetchall()
        return cls(tuple(constraints), tuple(indexes))

    def drop(self, conn: psycopg.Connection[Any]) -> None:
        # Foreign keys first: they depend on the keys they reference.
        for table, name, _, _ in sorted(self.constraints, key=lambda c: c[2] != "f"):
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in self.indexes:
            conn.execute(f"DROP INDEX {name}")

    def create(self, conn: psycopg.Connection[Any]) -> None:
        # Keys first (a foreign key needs the key it references), then indexes, then
        # foreign keys, each checked against every row as it is added.
        keys = [c for c in self.constraints if c[2] != "f"]
        foreign_keys = [c for c in self.constraints if c[2] == "f"]
        for table, name, _, definition in keys:
            conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for _, definition in self.indexes:
            conn.execute(definition)
        for table, name, _, definition in foreign_keys:
            conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


def owner_columns(conn: psycopg.Connection[Any], column: str = "owner") -> set[str]:
    """The benchmark's tables that have an `owner` column (or `column`)."""
    rows = conn.execute(
        """SELECT table_name::text FROM information_schema.columns
           WHERE table_schema = current_schema() AND column_name = %(column)s
             AND table_name = ANY(%(tables)s)""",
        {"tables": list(TABLES), "column": column},
    ).fetchall()
    return {table for (table,) in rows}


def seed(
    app_url: str,
    admin_url: str,
    restart: Callable[[], None],
    dataset: Dataset,
    report: Callable[[str], None] = print,
    server_settings: dict[str, str] | None = None,
) -> dict[str, float]:
    """Fill the migrated, empty database at `app_url` with `dataset`; seconds per step.

    `admin_url` is a superuser's (ALTER SYSTEM); `restart` restarts the server, which
    applies the loading settings and, at the end, the normal ones again, with
    `server_settings` (e.g. shared_buffers) for what is measured next.
    """
    timings: dict[str, float] = {}

    def step(name: str) -> _Step:
        return _Step(name, timings, report)

    with step("loading settings"):
        _alter_system(admin_url, LOAD_SETTINGS)
        restart()
    with psycopg.connect(app_url, autocommit=True) as conn:
        schema = Schema.read(conn)
        owners = owner_columns(conn)
        with step("rows"), conn.transaction():
            # Truncated in the loading transaction: with wal_level=minimal the new files
            # are written without WAL (and fsync is off on the throwaway server).
            conn.execute("TRUNCATE " + ", ".join(TABLES))
            schema.drop(conn)
            named = "items" in owner_columns(conn, "tag_names")
            for sql, params in load_sql(dataset, owners, tag_names=named):
                conn.execute(sql, params)
        with step("keys, indexes and foreign keys"), conn.transaction():
            schema.create(conn)
        conn.execute(
            "SELECT setval(pg_get_serial_sequence(%(table)s, 'id'), %(last)s)",
            {"table": "items", "last": dataset.items},
        )
        conn.execute(
            "SELECT setval(pg_get_serial_sequence(%(table)s, 'id'), %(last)s)",
            {"table": "tags", "last": dataset.tags},
        )
        with step("vacuum and analyze"):
            # Hint bits and the visibility map (index-only scans), and the statistics.
            conn.execute("VACUUM (ANALYZE) " + ", ".join(TABLES))
    with step("normal settings"):
        _alter_system(admin_url, dict.fromkeys(LOAD_SETTINGS) | (server_settings or {}))
        restart()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    return timings


def _alter_system(admin_url: str, settings: dict[str, str | None]) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name, value in settings.items():
            if value is None:
                conn.execute(f"ALTER SYSTEM RESET {name}")
            else:
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")


class _Step:
    """Times one step of the seeding and says when it is done."""

    def __init__(self, name: str, timings: dict[str, float], report: Callable[[str], None]):
        self.name, self.timings, self.report = name, timings, report

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        took = time.monotonic() - self.started
        self.timings[self.name] = round(took, 1)
        if exc[0] is None:
            self.report(f"  {self.name}: {took:.1f} s")
