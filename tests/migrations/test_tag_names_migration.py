"""Migration 0007 (items.tag_names) is expand-only: it backfills the items from before in
committed batches, resuming where a killed run stopped; during the rollout its triggers
keep the names right for the previous release, which writes links without them; the
contract step 0008 drops the triggers."""

from __future__ import annotations

import os
from typing import Any

import psycopg
from alembic import command

from service.store.schema_revision import alembic_config
from tests.conftest import migrate
from tests.conftest import tag_names_mismatched as mismatched

BEFORE, EXPAND, CONTRACT = "0006", "0007", "0008"
# The previous release's data: items with links, written without names.
SEED = """
INSERT INTO tags (owner, name) SELECT 'o', 'tag-' || t FROM generate_series(1, 5) AS t;
INSERT INTO items (owner, name) SELECT 'o', 'item-' || n FROM generate_series(1, %(items)s) AS n;
INSERT INTO item_tags (item_id, tag_id)
SELECT items.id, tags.id FROM items
JOIN tags ON tags.id IN (1 + items.id %% 5, 1 + (items.id + 2) %% 5)
"""


def seeded(url: str, items: int) -> psycopg.Connection[Any]:
    migrate(url, BEFORE)
    conn = psycopg.connect(url, autocommit=True)
    for statement in SEED.split(";"):
        if statement.strip():
            conn.execute(statement, {"items": items})
    return conn


def downgrade(url: str, revision: str) -> None:
    os.environ["DATABASE_URL"] = url
    try:
        command.downgrade(alembic_config(), revision)
    finally:
        del os.environ["DATABASE_URL"]


def triggers(conn: psycopg.Connection[Any]) -> int:
    query = (
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'item_tags'::regclass AND NOT tgisinternal"
    )
    (count,) = conn.execute(query).fetchone() or (0,)
    return int(count)


def test_the_backfill_names_every_item_and_the_triggers_follow_the_previous_release(
    empty_database: str,
) -> None:
    with seeded(empty_database, 25_000) as conn:  # three batches
        migrate(empty_database, EXPAND)
        assert mismatched(conn) == []
        assert conn.execute("SELECT tag_names FROM items WHERE id = 1").fetchone() == (
            ["tag-2", "tag-4"],
        )
        assert conn.execute("SELECT to_regclass('tag_names_backfill')").fetchone() == (None,)
        assert triggers(conn) == 2
        # The previous release's writes: links added and removed, a tag deleted (cascade).
        conn.execute("INSERT INTO item_tags VALUES (1, 1)")
        conn.execute("DELETE FROM item_tags WHERE item_id = 2")
        conn.execute("DELETE FROM tags WHERE name = 'tag-4'")
        conn.execute("INSERT INTO items (owner, name) VALUES ('o', 'new')")
        assert conn.execute("SELECT tag_names FROM items WHERE id = 1").fetchone() == (
            ["tag-1", "tag-2"],
        )
        assert conn.execute("SELECT tag_names FROM items WHERE id = 2").fetchone() == ([],)
        assert mismatched(conn) == []
        migrate(empty_database, CONTRACT)
        assert triggers(conn) == 0
        downgrade(empty_database, EXPAND)  # the contract step's downgrade puts them back
        assert triggers(conn) == 2


def test_a_killed_backfill_resumes_after_its_last_committed_batch(empty_database: str) -> None:
    with seeded(empty_database, 25_000) as conn:
        # What a run killed after its first batch left: the column, its triggers' table of
        # progress at 10,000 (those items marked, to tell whether they are done again).
        conn.execute("ALTER TABLE items ADD COLUMN tag_names varchar(64)[] NOT NULL DEFAULT '{}'")
        conn.execute("UPDATE items SET tag_names = '{done-before}' WHERE id <= 10000")
        conn.execute("CREATE TABLE tag_names_backfill (done_through bigint NOT NULL)")
        conn.execute("INSERT INTO tag_names_backfill VALUES (10000)")
        migrate(empty_database, EXPAND)
        wrong = mismatched(conn)
        assert {row[0] for row in wrong} == set(range(1, 10_001))  # not done again
        assert all(row[1] == ["done-before"] for row in wrong)
        assert conn.execute(
            "SELECT count(*) FROM items WHERE id > 10000 AND tag_names = '{}'"
        ).fetchone() == (0,)
