"""Indexes that start with the owner, built CONCURRENTLY: writes go on while they build.

A caller's pages (owner, id), its names, unique per owner (owner, name), which also find
its tags by name, and an admin's `?tag=` over every owner (name). Each is built outside a
transaction (service/store/concurrent_index.py): a failed build leaves at most an invalid
index, which the next run replaces.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

from service.store.concurrent_index import create_index_concurrently

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (  # name, table, columns, unique
    ("ix_items_owner_id", "items", ["owner", "id"], False),
    ("uq_items_owner_name", "items", ["owner", "name"], True),
    ("ix_tags_owner_id", "tags", ["owner", "id"], False),
    ("uq_tags_owner_name", "tags", ["owner", "name"], True),
    ("ix_tags_name", "tags", ["name"], False),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, columns, unique in INDEXES:
            create_index_concurrently(name, table, columns, unique=unique)


def downgrade() -> None:
    for name, table, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
