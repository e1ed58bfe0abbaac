"""Tag request and response schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from service.api.fields import Id, OneLine, Strict, page_of
from service.store.models import TAG_NAME_MAX

TagName = Annotated[
    OneLine,
    Field(min_length=1, max_length=TAG_NAME_MAX,
          description="Unique (exact match); one line, no control characters."),
]  # fmt: skip


class TagCreate(Strict):
    """The body of POST /api/v1/tags."""

    name: TagName


class Tag(BaseModel):
    """A tag as the API returns it."""

    id: Id
    name: str
    created_at: datetime


TagPage = page_of(Tag, "tags")
