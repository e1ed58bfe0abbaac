"""Contract step of 0003-0004: names unique per owner only, and every row names its owner.

The previous release (before 0003) needs names unique across all owners: its `?tag=`
reads one tag per name, and its tag links find one tag per name. So this waits until no
pod of it is left: `python -m service migrate` stops before it, and `migrate --contract`
applies it once the rollout is done (as does the next release's first migration, which
comes after it). From then on, two owners may each have `red`, and an INSERT that names
no owner fails instead of landing with `unowned`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
contract: bool = True  # not applied while the previous release may be serving

OWNED = ("items", "tags")


def upgrade() -> None:
    for table in OWNED:
        op.drop_constraint(op.f(f"uq_{table}_name"), table, type_="unique")
        op.alter_column(table, "owner", server_default=None)


def downgrade() -> None:
    # Fails, changing nothing, while two owners share a name: rename one first.
    for table in reversed(OWNED):
        op.alter_column(table, "owner", server_default="unowned")
        op.create_unique_constraint(op.f(f"uq_{table}_name"), table, ["name"])
