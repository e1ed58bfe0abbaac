"""Each item's sorted tag names in `items.tag_names`, and `tags.deleted_at` (expand only).

The list pages read an item's tags from its row instead of a subquery over its links
(docs/performance.md, issue 26: "P3 + L"). The previous release keeps serving during the
rollout and writes links without names, so until the contract step 0008 two statement
triggers on `item_tags` set the names of every item whose links a statement changed
(whoever wrote them; a read fallback instead would cost every page a subquery, the cost
this removes). Adding a column with a constant default rewrites nothing.

The backfill of the items from before runs here, in batches of BACKFILL_BATCH ids, each
committed on its own (outside the migration's transaction: no lock held for minutes),
its progress in `tag_names_backfill`, so a migration killed half-way resumes where it
stopped. The revision is recorded only once every item is done, so the new release (which
waits for this revision) never reads a column not yet filled. 10M items took 12 minutes
on a loaded 2-core host (docs/performance.md): mind the migration Job's deadline.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.store.tag_name_triggers import NAMES_OF_ITEM, create_triggers, drop_triggers

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_BATCH = 10_000

BACKFILL = f"""
UPDATE items SET tag_names = {NAMES_OF_ITEM}
WHERE items.id > %(after)s AND items.id <= %(after)s + %(batch)s
  AND EXISTS (SELECT FROM item_tags WHERE item_tags.item_id = items.id)
"""  # noqa: S608 - constant SQL, values bound


def upgrade() -> None:
    # Idempotent: a run killed during the backfill left these committed.
    op.execute(
        "ALTER TABLE items ADD COLUMN IF NOT EXISTS tag_names varchar(64)[] NOT NULL DEFAULT '{}'"
    )
    op.execute("ALTER TABLE tags ADD COLUMN IF NOT EXISTS deleted_at timestamptz")
    # Holds no row but while a tag is being deleted: built in a moment whatever the size.
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_tags_deleted_at ON tags (deleted_at) "
        "WHERE deleted_at IS NOT NULL"
    )
    create_triggers()
    op.execute("CREATE TABLE IF NOT EXISTS tag_names_backfill (done_through bigint NOT NULL)")
    with op.get_context().autocommit_block():
        backfill(op.get_bind())
    op.execute("DROP TABLE tag_names_backfill")


def backfill(connection: sa.Connection) -> None:
    """Every item that existed before the triggers, BACKFILL_BATCH ids per transaction."""
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute("SELECT done_through FROM tag_names_backfill")
        row = cursor.fetchone()
        if row is None:
            cursor.execute("INSERT INTO tag_names_backfill VALUES (0)")
        after = row[0] if row else 0
        cursor.execute("SELECT coalesce(max(id), 0) FROM items")
        (last,) = cursor.fetchone() or (0,)
        while after < last:
            # One transaction per batch: the batch and its progress commit together.
            with driver.transaction():
                cursor.execute(BACKFILL, {"after": after, "batch": BACKFILL_BATCH})
                after += BACKFILL_BATCH
                cursor.execute("UPDATE tag_names_backfill SET done_through = %s", (after,))


def downgrade() -> None:
    drop_triggers()
    op.drop_index("ix_tags_deleted_at", table_name="tags")
    op.drop_column("tags", "deleted_at")
    op.drop_column("items", "tag_names")
