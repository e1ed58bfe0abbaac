"""What every resource's queries share: SQL compiled once by SQLAlchemy for psycopg, and
rows turned into the dicts the API returns as they are.

Queries run on the request's psycopg cursor, not through a Session or a Core
Connection: service/store/database.py says why, with the measurements. Values always
travel as bound parameters, never in the SQL text. psycopg prepares a statement on the
server after its fifth run on a connection, so the hot ones are parsed and planned once
per connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar, cast

import psycopg
from sqlalchemy import ColumnElement, Table, bindparam, delete, insert, select
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql.expression import ClauseElement

_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]
Row = TypeVar("Row", bound=Mapping[str, Any])


def compile_sql(statement: ClauseElement) -> str:
    """The statement as psycopg's SQL, with `%(name)s` placeholders for its parameters."""
    return str(statement.compile(dialect=_DIALECT))


def compile_with_values(statement: ClauseElement) -> tuple[str, dict[str, Any]]:
    """For a statement built per call (e.g. an UPDATE of the fields a PATCH names)."""
    compiled = statement.compile(dialect=_DIALECT)
    return str(compiled), compiled.params


class PageBounds(Protocol):
    """Which page of a list: the rows after id `cursor` (0 for the first), `limit` of them."""

    @property
    def cursor(self) -> int: ...

    @property
    def limit(self) -> int: ...


class Shape(Generic[Row]):
    """The columns a resource's queries select, in order, and their rows as dicts
    (datetimes too: the JSON provider writes them), so serving a page builds no
    intermediate object per row."""

    def __init__(self, *columns: ColumnElement[Any]) -> None:
        self.columns = columns
        self.keys = tuple(column.key for column in columns)

    def one(self, row: Sequence[Any] | None) -> Row | None:
        return None if row is None else cast(Row, dict(zip(self.keys, row)))  # noqa: B905

    def all(self, rows: list[Any]) -> list[Row]:
        # Every query selects `columns`, so the lengths match. zip(strict=True) (a keyword
        # argument: the slow way to call zip) and a function call per row each cost 4% of
        # the CPU of a page of 20.
        keys = self.keys
        return cast("list[Row]", [dict(zip(keys, row)) for row in rows])  # noqa: B905

    def fetch_one(self, cursor: psycopg.Cursor[Any], sql: str, params: Any) -> Row | None:
        return self.one(cursor.execute(sql, params).fetchone())

    def fetch_all(self, cursor: psycopg.Cursor[Any], sql: str, params: Any) -> list[Row]:
        return self.all(cursor.execute(sql, params).fetchall())


class Resource(Generic[Row]):
    """The statements every resource has: create, get by id, a page by id (keyset:
    stable under concurrent inserts, as fast on page 5,000 as on 1), delete by id.
    Compiled once; `shape`'s columns may include correlated subqueries (an item's tags)."""

    def __init__(
        self,
        table: Table,
        shape: Shape[Row],
        *,
        creates: tuple[str, ...],
        returning: tuple[ColumnElement[Any], ...] | None = None,
    ) -> None:
        """`creates`: the columns a create sets; `returning`: what the INSERT returns, in
        the shape's order, if not the shape's columns."""
        key = table.c.id
        self.table, self.shape = table, shape
        values: dict[str, Any] = {name: bindparam(name) for name in creates}
        self._create = compile_sql(
            insert(table).values(values).returning(*(returning or shape.columns))
        )
        self._get = compile_sql(select(*shape.columns).where(key == bindparam("id")))
        self._page = compile_sql(
            select(*shape.columns)
            .where(key > bindparam("after_id"))
            .order_by(key)
            .limit(bindparam("limit"))
        )
        self._delete = compile_sql(delete(table).where(key == bindparam("id")).returning(key))

    def create(self, cursor: psycopg.Cursor[Any], values: dict[str, Any]) -> Row:
        row = self.shape.fetch_one(cursor, self._create, values)
        if row is None:  # INSERT ... RETURNING returns the row or raises; never reached
            raise RuntimeError("INSERT ... RETURNING returned no row")
        return row

    def get(self, cursor: psycopg.Cursor[Any], row_id: int) -> Row | None:
        return self.shape.fetch_one(cursor, self._get, {"id": row_id})

    def page(self, cursor: psycopg.Cursor[Any], bounds: PageBounds) -> list[Row]:
        params = {"after_id": bounds.cursor, "limit": bounds.limit}
        return self.shape.fetch_all(cursor, self._page, params)

    def delete(self, cursor: psycopg.Cursor[Any], row_id: int) -> bool:
        return cursor.execute(self._delete, {"id": row_id}).fetchone() is not None
