"""Give every item and tag an owner (expand only: the previous release keeps serving).

Rows from before, and rows the previous release writes while this one rolls out, belong
to the reserved owner `unowned` (the column default: the previous release never names an
owner). Adding a column with a constant default rewrites nothing (PostgreSQL 11+). The
owner's indexes come in 0004, built without blocking writes; the global unique names
the previous release relies on stay until the contract step 0006.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNED = ("items", "tags")


def upgrade() -> None:
    for table in OWNED:
        op.add_column(
            table,
            sa.Column("owner", sa.String(length=255), server_default="unowned", nullable=False),
        )


def downgrade() -> None:
    for table in reversed(OWNED):
        op.drop_column(table, "owner")
