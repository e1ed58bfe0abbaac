"""Contract step of 0007: the service writes `items.tag_names` itself, drop the triggers.

While the previous release served, it wrote links without names, and 0007's triggers set
them. Once no pod of it is left (`python -m service migrate --contract`, or the next
release's first migration), the writes of this release keep the names in the statements
that change the links, and the triggers would only write every such item a second time.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from service.store.tag_name_triggers import create_triggers, drop_triggers

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
contract: bool = True  # not applied while the previous release may be serving


def upgrade() -> None:
    drop_triggers()


def downgrade() -> None:
    create_triggers()
