"""Field types, base models and envelopes that every resource's schemas are built from."""

from __future__ import annotations

import re
from collections.abc import Callable
from types import GenericAlias
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
)
from sqlalchemy import ARRAY, Column, String, Table

from service.store.owners import OWNER_MAX
from service.store.sql import Shape

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


# Unicode category Cc (control characters) is exactly U+0000-U+001F and U+007F-U+009F:
# one regular expression finds them (a test checks it against unicodedata), in C, where a
# loop over the characters cost a `?tag=` page 6 us.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _single_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


# The same rules as the validators above, stated in the OpenAPI document for clients.
SINGLE_LINE_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
NO_NUL_PATTERN = "^[^\\u0000]*$"


# Give each its length and description where it is used, e.g.
# `Name = Annotated[OneLine, Field(min_length=1, max_length=64, description="...")]`.
OneLine = Annotated[
    str,
    Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN}),
    AfterValidator(_storable),
    AfterValidator(_single_line),
]
"""Text on one line: no control characters (tabs and newlines included), no NUL."""
MultiLine = Annotated[
    str,
    Field(json_schema_extra={"pattern": NO_NUL_PATTERN}),
    AfterValidator(_storable),
]
"""Text that may span lines (no NUL)."""


def absent_not_null(*fields: str) -> Callable[[dict[str, Any]], None]:
    """A json_schema_extra for fields typed `X | None = None` where None only means "not
    given" (null is refused by a validator, or cannot arrive, as in a query): the
    document states X alone."""

    def document(schema: dict[str, Any]) -> None:
        for name in fields:
            field = schema["properties"][name]
            field.update(next(s for s in field.pop("anyOf") if s.get("type") != "null"))
            field.pop("default", None)

    return document


Id = Annotated[int, Field(ge=1, le=BIGINT_MAX)]


class Strict(BaseModel):
    """A request body: unknown fields are an error (a typo must not be silently dropped),
    and "1" is not an int: the API takes JSON types as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)


OwnerName = Annotated[
    OneLine,
    Field(min_length=1, max_length=OWNER_MAX,
          description="Only this owner's rows. An `items:admin` token may name any "
          "owner; any other caller only an owner it reaches (403 otherwise)."),
]  # fmt: skip


class PageQuery(BaseModel):
    """Query parameters of a list (strings as they arrive, converted here)."""

    model_config = ConfigDict(
        extra="forbid", strict=False, json_schema_extra=absent_not_null("owner")
    )

    limit: int = Field(PAGE_SIZE_DEFAULT, ge=1, le=PAGE_SIZE_MAX)
    # Clients see an opaque string (the last id of the previous page, for now).
    cursor: Annotated[
        int,
        # No default stated: 0 is no string, and the first page has no cursor.
        Field(ge=0, le=BIGINT_MAX, json_schema_extra=lambda schema: schema.pop("default")),
        WithJsonSchema({"type": "string", "pattern": "^[0-9]{1,18}$",
                        "description": "The `next_cursor` of the previous page."}),
    ] = 0  # fmt: skip
    owner: OwnerName | None = None


def page_of(row: type[BaseModel], key: str) -> type[BaseModel]:
    """The envelope of one page: `{key: [row, ...], "next_cursor"}` (e.g. ItemPage)."""
    page: type[BaseModel] = create_model(
        f"{row.__name__}Page",
        __doc__=f"One page of {key}, oldest first; pass `next_cursor` as `cursor` for the next.",
        **{key: (list[row], ...)},  # type: ignore[call-overload, valid-type]
        next_cursor=(str | None, Field(description="Opaque; null on the last page.")),
    )
    return page


def body_schema(name: str, table: Table, doc: str, **columns: Any) -> type[Strict]:
    """A request body (Strict) of some of `table`'s columns, each given as `column=Type`
    (e.g. `body=MultiLine`): the column says the rest, its length (and, for text that
    may not be null, at least one character), whether it may be null (then it is
    optional) and its description (`doc`)."""
    fields: dict[str, Any] = {}
    for key, kind in columns.items():
        column = table.c[key]
        rules: dict[str, Any] = {"description": column.doc}
        if isinstance(column.type, String) and column.type.length:
            rules |= {"max_length": column.type.length, "min_length": 0 if column.nullable else 1}
        fields[key] = (
            (kind | None, Field(None, **rules)) if column.nullable else (kind, Field(**rules))
        )
    model: type[Strict] = create_model(name, __base__=Strict, __doc__=doc, **fields)
    return model


def row_schema(name: str, shape: Shape[Any], doc: str, **fields: Any) -> type[BaseModel]:
    """The response model of a resource's rows, from the columns its queries select: a
    column's type, nullability and `doc` say what the schema does (an id or a reference
    to one is an Id). `fields` add to or replace what a column cannot say, as
    `name=(type, Field(...))`, e.g. for a computed column."""
    derived: dict[str, Any] = {}
    for column in shape.columns:
        kind = column.type
        annotation: Any = (
            GenericAlias(list, (kind.item_type.python_type,))
            if isinstance(kind, ARRAY)
            else kind.python_type
        )
        if isinstance(column, Column) and (column.primary_key or column.foreign_keys):
            annotation = Id
        if isinstance(column, Column) and column.nullable:
            annotation = annotation | None
        derived[str(column.key)] = (annotation, Field(description=getattr(column, "doc", None)))
    model: type[BaseModel] = create_model(name, __doc__=doc, **(derived | fields))
    return model


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
