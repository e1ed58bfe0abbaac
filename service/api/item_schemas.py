"""Request and response schemas: one source for validation and for the OpenAPI document."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from service.store.models import DESCRIPTION_MAX, NAME_MAX

PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100
BIGINT_MAX = 2**63 - 1


def _storable(value: str) -> str:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _single_line(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


# The same rules as the validators below, stated in the OpenAPI document for clients.
# (Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F.)
SINGLE_LINE_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
NO_NUL_PATTERN = "^[^\\u0000]*$"

Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=NAME_MAX,
        description="Unique, human-readable name; one line, no control characters.",
        json_schema_extra={"pattern": SINGLE_LINE_PATTERN},
    ),
    AfterValidator(_storable),
    AfterValidator(_single_line),
]
Description = Annotated[
    str,
    Field(
        max_length=DESCRIPTION_MAX,
        description="Free text; may span several lines; no NUL characters.",
        json_schema_extra={"pattern": NO_NUL_PATTERN},
    ),
    AfterValidator(_storable),
]


class _Strict(BaseModel):
    # Unknown fields are an error (a typo must not be silently dropped), and "1" is
    # not an int: the API takes JSON types as they are.
    model_config = ConfigDict(extra="forbid", strict=True)


class ItemCreate(_Strict):
    """The body of POST /api/v1/items."""

    name: Name
    description: Description | None = None


def _document_update_rules(schema: dict[str, Any]) -> None:
    """State in the JSON schema what `_not_empty` enforces: some field, and name not null."""
    schema["minProperties"] = 1
    name = schema["properties"]["name"]
    name.update(next(s for s in name.pop("anyOf") if s.get("type") == "string"))
    name.pop("default", None)


class ItemUpdate(_Strict):
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

    id: int = Field(ge=1, le=BIGINT_MAX)
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    """One page of items, oldest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[Item]
    next_cursor: str | None = Field(description="Opaque; null on the last page.")


class PageQuery(_Strict):
    """Query parameters of GET /api/v1/items (strings as they arrive, converted here)."""

    model_config = ConfigDict(extra="forbid", strict=False)

    limit: int = Field(PAGE_SIZE_DEFAULT, ge=1, le=PAGE_SIZE_MAX)
    cursor: int = Field(0, ge=0, le=BIGINT_MAX, description="Opaque cursor from next_cursor.")


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail]


class Error(BaseModel):
    """Every error response, whatever its status."""

    error: ErrorBody
