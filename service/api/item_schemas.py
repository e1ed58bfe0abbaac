"""Item request and response schemas: one source for validation and for the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from service.api.fields import (
    MultiLine,
    OneLine,
    PageQuery,
    Strict,
    absent_not_null,
    page_of,
    row_schema,
)
from service.api.tag_schemas import TagName
from service.store.items import ITEM
from service.store.models import DESCRIPTION_MAX, NAME_MAX

TAGS_MAX = 20

Name = Annotated[
    OneLine,
    Field(min_length=1, max_length=NAME_MAX,
          description="Unique among its owner's items, human-readable; one line, no "
          "control characters."),
]  # fmt: skip
Description = Annotated[
    MultiLine,
    Field(max_length=DESCRIPTION_MAX,
          description="Free text; may span several lines; no NUL characters."),
]  # fmt: skip
TagNames = Annotated[
    list[TagName],
    Field(max_length=TAGS_MAX,
          description="Names of its owner's tags; duplicates count once. An unknown name "
          "(another owner's tag too) is a 422."),
    AfterValidator(lambda names: sorted(set(names))),
]  # fmt: skip


class ItemCreate(Strict):
    """The body of POST /api/v1/items."""

    name: Name
    description: Description | None = None
    tags: TagNames = Field(default_factory=list)


class ItemUpdate(Strict):
    """The body of PATCH /api/v1/items/{id}: the fields to change, at least one; `tags`
    replaces the item's set."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra=lambda schema: _document_update_rules(schema),
    )

    name: Name | None = None
    description: Description | None = None
    tags: TagNames | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ItemUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one of: name, description, tags")
        for field in ("name", "tags"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


def _document_update_rules(schema: dict[str, Any]) -> None:
    """State in the JSON schema what `_not_empty` enforces: some field; name, tags not null."""
    schema["minProperties"] = 1
    absent_not_null("name", "tags")(schema)


Item = row_schema(
    "Item", ITEM, "An item as the API returns it.",
    tags=(list[str], Field(description="The names of its tags, sorted.")),
)  # fmt: skip
ItemPage = page_of(Item, "items")


class ItemPageQuery(PageQuery):
    """A page of items, of all or of those with one tag (an unknown tag: an empty page)."""

    model_config = ConfigDict(json_schema_extra=absent_not_null("owner", "tag"))

    tag: TagName | None = None
