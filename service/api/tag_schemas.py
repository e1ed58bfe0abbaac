"""Tag request and response schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from service.api.fields import OneLine, Strict, page_of, row_schema
from service.store.models import TAG_NAME_MAX
from service.store.tags import TAGS

TagName = Annotated[
    OneLine,
    Field(min_length=1, max_length=TAG_NAME_MAX,
          description="Unique among its owner's tags (exact match); one line, no control "
          "characters."),
]  # fmt: skip


class TagCreate(Strict):
    """The body of POST /api/v1/tags."""

    name: TagName


Tag = row_schema("Tag", TAGS.shape, "A tag as the API returns it.")
TagPage = page_of(Tag, "tags")
