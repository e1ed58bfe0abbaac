"""The triggers that keep `items.tag_names` right for a writer that does not set it.

Migration 0007 creates them for the rollout (the previous release writes links without
names); its contract step 0008 drops them (this release sets the names in the statements
that change the links). Here so both migrations use one definition.
"""

from __future__ import annotations

from alembic import op

FUNCTION = "items_tag_names_from_links"
# (trigger, event, transition table)
TRIGGERS = (
    ("item_tags_names_on_insert", "INSERT", "NEW"),
    ("item_tags_names_on_delete", "DELETE", "OLD"),
)
# The names of an item's live tags, sorted: what `items.tag_names` holds.
NAMES_OF_ITEM = """coalesce((SELECT array_agg(t.name ORDER BY t.name) FROM item_tags AS it
    JOIN tags AS t ON t.id = it.tag_id AND t.owner = items.owner AND t.deleted_at IS NULL
    WHERE it.item_id = items.id), '{}')"""


def create_triggers() -> None:
    """One UPDATE of the items whose links a statement changed, per statement."""
    op.execute(f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE items SET tag_names = {NAMES_OF_ITEM}
    WHERE items.id IN (SELECT item_id FROM changed);
    RETURN NULL;
END $$""")  # noqa: S608 - constant SQL
    for name, event, table in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON item_tags")
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON item_tags REFERENCING {table} TABLE AS "
            f"changed FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def drop_triggers() -> None:
    for name, _, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON item_tags")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
