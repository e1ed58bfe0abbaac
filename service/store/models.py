"""SQLAlchemy 2 models: the schema the code expects (Alembic migrations create it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    MetaData,
    String,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.store.owners import OWNER_MAX

NAME_MAX = 200
DESCRIPTION_MAX = 2000
TAG_NAME_MAX = 64
NOTE_MAX = 2000

# Deterministic constraint names, so migrations can refer to them by name, and a unique
# violation names its column (uq_<table>_<column>, or uq_<table>_owner_<column> when it
# is unique per owner: service/http/errors.py reads it).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Owned:
    """A resource's row: its id (what the shared queries and pages go by), its owner
    (service/store/owners.py: every shared statement reaches only the caller's rows), and
    when it was created. Its lists need an index that starts with the owner."""

    id: Mapped[int] = mapped_column(
        BigInteger, Identity(always=True), primary_key=True, sort_order=-1
    )
    owner: Mapped[str] = mapped_column(
        String(OWNER_MAX),
        sort_order=-1,
        doc="Who owns it: the `sub` (or AUTH_OWNER_CLAIM) of the token that created it; "
        "never changes. `unowned`: created before owners existed.",
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Item(Owned, Base):
    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_owner_id", "owner", "id"),  # a caller's pages
        Index("uq_items_owner_name", "owner", "name", unique=True),
    )

    name: Mapped[str] = mapped_column(String(NAME_MAX))
    description: Mapped[str | None] = mapped_column(String(DESCRIPTION_MAX))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), sort_order=1
    )
    # Its tags' names, sorted, written with its links in the same statement or transaction
    # (service/store/items.py, tags.py): a page reads them from the row instead of a
    # subquery over the links (docs/performance.md, issue 26).
    tag_names: Mapped[list[str]] = mapped_column(
        ARRAY(String(TAG_NAME_MAX)), server_default=text("'{}'"), sort_order=2
    )


class Tag(Owned, Base):
    __tablename__ = "tags"
    __table_args__ = (
        Index("ix_tags_owner_id", "owner", "id"),  # a caller's pages
        # Unique per owner; also finds a caller's tags by name (`?tag=`, an item's tags).
        Index("uq_tags_owner_name", "owner", "name", unique=True),
        Index("ix_tags_name", "name"),  # an admin's `?tag=`: the tags of that name of everyone
        # The sweeper's next deleted tag (service/store/tag_sweeper.py): usually empty.
        Index("ix_tags_deleted_at", "deleted_at", postgresql_where=text("deleted_at IS NOT NULL")),
    )

    name: Mapped[str] = mapped_column(String(TAG_NAME_MAX))
    # Set by DELETE when its links are too many for one request: from then on it is gone to
    # the API, and service/store/tag_sweeper.py removes its links and name in batches,
    # then the row (docs/architecture.md: deleting a tag).
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), sort_order=2)


class ItemTag(Base):
    """Which item carries which tag (always of the item's owner: service/store/tags.py).
    The primary key (item_id, tag_id) finds an item's tags; the index (tag_id, item_id)
    finds a tag's items in id order (?tag= pages)."""

    __tablename__ = "item_tags"
    __table_args__ = (Index("ix_item_tags_tag_id_item_id", "tag_id", "item_id"),)

    item_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True
    )


class Note(Owned, Base):
    """A note on an item, owned by the item's owner; it goes with the item."""

    __tablename__ = "notes"
    __table_args__ = (Index("ix_notes_item_id_id", "item_id", "id"),)  # an item's pages

    item_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("items.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(String(NOTE_MAX), doc="The text; it may span lines.")
