"""A query's rows become the dicts the API returns (service/store/sql.py's Shape), by a
function written for the shape's column keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table

from service.store.items import ITEM
from service.store.sql import Shape

odd = Table(
    "odd", MetaData(),
    Column("id", Integer), Column("it's", String), Column('say "hi"\\n', String),
    Column("class", String), Column("größe", String),
)  # fmt: skip


def test_rows_become_dicts_of_the_column_keys_in_order_whatever_the_keys() -> None:
    shape = Shape.of(odd)
    rows = [(1, "a", "b", "c", "d"), (2, "e", "f", "g", "h")]
    assert shape.all(rows) == [dict(zip(shape.keys, row, strict=True)) for row in rows]
    assert list(shape.all(rows)[0]) == ["id", "it's", 'say "hi"\\n', "class", "größe"]
    assert shape.one(rows[1]) == dict(zip(shape.keys, rows[1], strict=True))
    assert shape.one(None) is None
    assert shape.all([]) == []


def test_each_row_is_a_new_dict_holding_the_rows_own_values() -> None:
    tags = ["red"]
    at = datetime(2026, 12, 7, tzinfo=UTC)
    first, second = ITEM.all([(1, "bob", "n", None, at, at, tags)] * 2)
    assert first == second and first is not second
    assert first["tags"] is tags and first["created_at"] is at


def test_a_shape_of_no_columns_makes_empty_dicts() -> None:
    empty = Shape[dict[str, object]]()
    assert empty.all([(), ()]) == [{}, {}] and empty.one(()) == {}


@pytest.mark.parametrize("row", [(1, "a", "b", "c"), (1, "a", "b", "c", "d", "e")])
def test_a_row_of_another_length_than_the_shape_is_refused(row: tuple[object, ...]) -> None:
    """A statement selecting other columns than its shape is a bug: it fails loudly."""
    with pytest.raises(ValueError, match="unpack"):
        Shape.of(odd).all([row])
    with pytest.raises(ValueError, match="unpack"):
        Shape.of(odd).one(row)
