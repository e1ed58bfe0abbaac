"""Item request and response schemas: one source for validation and for the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.api.fields import Id, MultiLine, OneLine, Strict, page_of
from service.store.models import DESCRIPTION_MAX, NAME_MAX

Name = Annotated[
    OneLine,
    Field(min_length=1, max_length=NAME_MAX,
          description="Unique, human-readable name; one line, no control characters."),
]  # fmt: skip
Description = Annotated[
    MultiLine,
    Field(max_length=DESCRIPTION_MAX,
          description="Free text; may span several lines; no NUL characters."),
]  # fmt: skip


class ItemCreate(Strict):
    """The body of POST /api/v1/items."""

    name: Name
    description: Description | None = None


def _document_update_rules(schema: dict[str, Any]) -> None:
    """State in the JSON schema what `_not_empty` enforces: some field, and name not null."""
    schema["minProperties"] = 1
    name = schema["properties"]["name"]
    name.update(next(s for s in name.pop("anyOf") if s.get("type") == "string"))
    name.pop("default", None)


class ItemUpdate(Strict):
    """The body of PATCH /api/v1/items/{id}: the fields to change, at least one."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_document_update_rules)

    name: Name | None = None
    description: Description | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ItemUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one of: name, description")
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null")
        return self


class Item(BaseModel):
    """An item as the API returns it."""

    id: Id
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


ItemPage = page_of(Item, "items")
