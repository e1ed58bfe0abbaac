"""What every resource's queries share: SQL compiled once by SQLAlchemy for psycopg, with
the caller's owner filter in every statement, and rows turned into the dicts the API
returns as they are.

Queries run on the request's psycopg cursor, not through a Session or a Core
Connection: service/store/database.py says why, with the measurements. Values always
travel as bound parameters, never in the SQL text. psycopg prepares a statement on the
server after its fifth run on a connection, so the hot ones are parsed and planned once
per connection.

Owners (service/store/owners.py): a statement is compiled once per Reach, each variant
with its owner filter (`reached(table)`), and picked by the request's Scope: no extra
round trip, no per-request SQL. `compile_sql` refuses a statement that reads an owned
table without comparing its `owner`, unless told why (`unscoped=`): a forgotten filter
fails when the module is imported, not in production.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Generic, Protocol, cast

import psycopg
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    FromClause,
    Insert,
    Table,
    any_,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql import visitors
from sqlalchemy.sql.expression import BinaryExpression, ClauseElement
from sqlalchemy.sql.util import find_tables
from typing_extensions import TypeVar

from service.store.owners import Reach, Scope

_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]
Row = TypeVar("Row", bound=Mapping[str, Any], default=dict[str, Any])


class OwnerFilter:
    """`owned(table)` in a statement's build: the owner filter of the Reach it is compiled
    for (ScopedSQL compiles each statement once per Reach)."""

    def __init__(self, reach: Reach) -> None:
        self.reach = reach

    def __call__(self, table: FromClause) -> ColumnElement[bool]:
        return reached(table, self.reach)


class UnscopedStatementError(TypeError):
    """A statement reads an owned table without filtering it by owner."""


class MissingParentError(LookupError):
    """The parent a child row is looked up or created under (its path id) does not exist,
    or is not the caller's: the API answers 404 for `key` (service/http/errors.py)."""

    def __init__(self, key: str, row_id: int) -> None:
        super().__init__(f"{key}={row_id}")
        self.key, self.row_id = key, row_id


def compile_sql(statement: ClauseElement, *, unscoped: Mapping[str, str] | None = None) -> str:
    """The statement as psycopg's SQL, with `%(name)s` placeholders for its parameters.

    `unscoped`: owned tables it may read without an owner filter, each with the reason."""
    refuse_unscoped(statement, unscoped or {})
    return str(statement.compile(dialect=_DIALECT))


def compile_with_values(
    statement: ClauseElement, *, unscoped: Mapping[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """For a statement built per call (e.g. an UPDATE of the fields a PATCH names)."""
    refuse_unscoped(statement, unscoped or {})
    compiled = statement.compile(dialect=_DIALECT)
    return str(compiled), compiled.params


def after_in_key_order(
    table: FromClause, key: ColumnElement[Any], owned: OwnerFilter, *, owner_index: bool
) -> tuple[list[ColumnElement[bool]], list[ColumnElement[Any]]]:
    """A page's rows (those after `after_id`, in key order) and its ORDER BY; `owner_index`:
    the table has an index on (owner, id) (a child's page is bounded by its parent's
    instead: notes by (item_id, id)).

    One owner's page is `(owner, id) > (:owner, :after_id) AND owner <= :owner`, the rows
    of `owner = :owner AND id > :after_id`, in (owner, id) order: so its only good plan
    walks (owner, id) from the page's first row. With the equality, PostgreSQL may instead
    read the primary key in id order and keep the owner's rows; a prepared statement's
    generic plan (a page's LIMIT is in its text, PagedSQL) prices an owner at 1/(owners)
    of the table, whoever asks, and with few owners chooses that: a small owner's page
    beside a big one would scan the big one's rows (tests/service/test_owner_indexes.py).

    The values are read by sub-selects (`(SELECT :owner)`) that the planner does not look
    into, so a custom plan knows no more than the generic one and PostgreSQL keeps the
    prepared statement's generic plan: the one plan that suits every owner. With the values
    in sight it priced a custom plan below the generic one and planned every execution,
    40 us more database CPU a page at 100k items (docs/performance.md).
    Other reaches read every owner's rows, or a list of them: `id > :after_id`."""
    if owner_index and owned.reach is Reach.OWNER:
        owner = table.c.owner
        caller, after_id = _unplanned("owner", owner.type), _unplanned("after_id", key.type)
        return [tuple_(owner, key) > tuple_(caller, after_id), owner <= caller], [owner, key]
    return [key > bindparam("after_id"), owned(table)], [key]


def _unplanned(name: str, type_: Any) -> ColumnElement[Any]:
    """`(SELECT :name)`: the value at execution, never a planner's estimate."""
    return select(bindparam(name, type_=type_)).scalar_subquery()


def reached(table: FromClause, reach: Reach) -> ColumnElement[bool]:
    """The rows of `table` that a scope of this `reach` may touch."""
    if "owner" not in table.c:
        return true()
    owner = table.c.owner
    if reach is Reach.OWNER:
        return owner == bindparam("owner")
    if reach is Reach.OWNERS:
        return owner == any_(bindparam("owners", type_=ARRAY(owner.type)))
    return true()


class ScopedSQL:
    """One statement, compiled once per Reach: `build(reached)` makes it, calling
    `reached(table)` for the owner filter of each owned table it reads. `sql[scope]` is
    the variant for a request's scope; pass `scope.params` with the statement's own."""

    def __init__(
        self,
        build: Callable[[OwnerFilter], ClauseElement],
        *,
        unscoped: Mapping[str, str] | None = None,
    ) -> None:
        variants = []
        for reach in Reach:
            statement = build(OwnerFilter(reach))
            if reach is Reach.OWNER:  # the others filter less, or not at all, on purpose
                refuse_unscoped(statement, unscoped or {})
            variants.append(str(statement.compile(dialect=_DIALECT)))
        self._variants = tuple(variants)

    def __getitem__(self, scope: Scope) -> str:
        return self._variants[scope.reach]


class PagedSQL:
    """A page statement with its LIMIT written into the SQL text, not bound: compiled once
    per (limit, Reach), on first use (limits are 1..PAGE_SIZE_MAX, so a worker holds at
    most a few hundred). `build(reached, limit)` makes it, `limit` being the literal.

    Why: with the limit a parameter, PostgreSQL's generic plan of a prepared statement
    assumes it returns 10% of the table, so it never wins over a custom plan and every
    execution is planned again (pg_prepared_statements: 0 generic, 1,778 custom plans).
    With the limit in the text the generic plan wins after five runs: 60-100 us less
    database CPU per page (docs/performance.md, issue 26)."""

    def __init__(
        self,
        build: Callable[[OwnerFilter, ColumnElement[Any]], ClauseElement],
        *,
        unscoped: Mapping[str, str] | None = None,
    ) -> None:
        self._build, self._unscoped = build, unscoped
        self._by_limit: dict[int, ScopedSQL] = {}
        self.sql(Scope("owner", Reach.OWNER, {}), 1)  # refuses an unscoped statement now

    def sql(self, scope: Scope, limit: int) -> str:
        if (variants := self._by_limit.get(limit)) is None:
            literal: ColumnElement[Any] = literal_column(str(int(limit)))
            variants = ScopedSQL(lambda owned: self._build(owned, literal), unscoped=self._unscoped)
            self._by_limit[limit] = variants  # a race compiles it twice: same text
        return variants[scope]


def refuse_unscoped(statement: ClauseElement, unscoped: Mapping[str, str]) -> None:
    """Raise UnscopedStatementError if `statement` reads an owned table (one with an
    `owner` column) without comparing that owner anywhere. An INSERT's own table is
    exempt: the row gets the caller's owner as a value (Resource.create)."""
    written = statement.table.name if isinstance(statement, Insert) else None
    read = {
        name
        for table in find_tables(statement, include_aliases=True, include_crud=True)
        if "owner" in table.c and (name := _table_name(table)) != written
    }
    compared = {
        _table_name(side.table)
        for node in visitors.iterate(statement)
        if isinstance(node, BinaryExpression)
        for side in (node.left, node.right)
        if getattr(side, "key", None) == "owner" and getattr(side, "table", None) is not None
    }
    if missing := sorted(read - compared - set(unscoped)):
        raise UnscopedStatementError(
            f"this statement reads {', '.join(missing)} without an owner filter, so every "
            f"caller would reach every owner's rows: add `reached({missing[0]})` to its "
            f"WHERE (service/store/sql.py), or pass unscoped={{{missing[0]!r}: 'why'}}"
            f":\n{statement}"
        )


def _table_name(table: Any) -> str:
    while not isinstance(table, Table) and hasattr(table, "element"):
        table = table.element  # an alias of a table
    return str(getattr(table, "name", table))


class PageBounds(Protocol):
    """Which page of a list: the rows after id `cursor` (0 for the first), `limit` of them,
    of `owner` only if given (among the rows the caller reaches)."""

    @property
    def cursor(self) -> int: ...

    @property
    def limit(self) -> int: ...

    @property
    def owner(self) -> str | None: ...


class Shape(Generic[Row]):
    """The columns a resource's queries select, in order, and their rows as dicts
    (datetimes too: the JSON provider writes them), so serving a page builds no
    intermediate object per row."""

    def __init__(self, *columns: ColumnElement[Any]) -> None:
        self.columns = columns
        self.keys = tuple(column.key for column in columns)
        self._as_dict, self._as_dicts = _row_and_rows_as_dicts(self.keys)

    @classmethod
    def of(cls, table: Table) -> Shape[dict[str, Any]]:
        """Every column of the table, in its order: a row is the table's row."""
        return Shape(*table.columns)

    def one(self, row: Sequence[Any] | None) -> Row | None:
        return None if row is None else cast(Row, self._as_dict(row))

    def all(self, rows: list[Any]) -> list[Row]:
        return cast("list[Row]", self._as_dicts(rows))

    def fetch_one(self, cursor: psycopg.Cursor[Any], sql: str, params: Any) -> Row | None:
        return self.one(cursor.execute(sql, params).fetchone())

    def fetch_all(self, cursor: psycopg.Cursor[Any], sql: str, params: Any) -> list[Row]:
        return self.all(cursor.execute(sql, params).fetchall())


def _row_and_rows_as_dicts(
    keys: Sequence[str | None],
) -> tuple[Callable[[Sequence[Any]], Any], Callable[[Sequence[Sequence[Any]]], list[Any]]]:
    """A row, and a list of rows, as dicts of `keys`, by functions written for these keys,
    as collections.namedtuple writes its class: `[{'id': c0, 'name': c1} for (c0, c1) in
    rows]`. A dict display with its keys in the code is built in one step, where
    `dict(zip(keys, row))` iterates a zip: 4 us instead of 10 for a page of 20 rows, ~5% of
    the instructions of a list page (docs/performance.md). Unpacking also checks each row's
    length, which zip did not. The keys are written as repr() of plain str, so the code
    holds them as string literals whatever they are."""
    values = "".join(f"c{place}, " for place in range(len(keys)))  # "c0, c1, " ("" for none)
    display = "{" + ", ".join(f"{str(key)!r}: c{place}" for place, key in enumerate(keys)) + "}"
    source = (
        f"def row_as_dict(row):\n    ({values}) = row\n    return {display}\n"
        f"def rows_as_dicts(rows):\n    return [{display} for ({values}) in rows]\n"
    )
    namespace: dict[str, Any] = {}
    # The file name a traceback through this code shows.
    code = compile(source, f"<Shape {', '.join(map(str, keys))}>", "exec")
    exec(code, namespace)  # noqa: S102  (the source is built above from repr()'d keys)
    return namespace["row_as_dict"], namespace["rows_as_dicts"]


class Resource(Generic[Row]):
    """The statements every resource has: create, get by id, a page by id (keyset:
    stable under concurrent inserts, as fast on page 5,000 as on 1), delete by id; each
    reaching only the caller's rows (its Scope) and compiled once per Reach.

    A child resource names its `parent` (notes under items): its rows are created under
    a parent the caller reaches, owned by the parent's owner, and its pages are a
    parent's; a parent that is missing or another owner's raises MissingParentError.
    """

    def __init__(
        self,
        table: Table | type[Any],
        shape: Shape[Row] | None = None,
        *,
        creates: tuple[str, ...],
        returning: tuple[ColumnElement[Any], ...] | None = None,
        parent: Resource[Any] | None = None,
        unowned: str | None = None,
        unscoped: Mapping[str, str] | None = None,
        live: ColumnElement[bool] | None = None,
    ) -> None:
        """`table`: the table or its model; `shape`: what its statements select (all its
        columns if not given); `creates`: the columns a create sets (the owner comes
        from the scope, a child's parent id from its path); `returning`: what the INSERT
        returns, in the shape's order, if not the shape's columns; `unowned`: why a
        table without an owner column may be reached by every caller (it must say so);
        `unscoped`: owned tables the shape reads without filter, and why (compile_sql);
        `live`: which rows exist for the API (no statement here finds the others, e.g.
        tags being deleted)."""
        if not isinstance(table, Table):
            table = cast(Table, table.__table__)  # a model class
        if ("owner" in table.c) == bool(unowned):
            raise TypeError(
                f"{table.name}: give a table without an `owner` column `unowned='why every "
                "caller may reach every row'`, or make it Owned (service/store/models.py)"
            )
        self.table, self.shape = table, shape or cast(Shape[Row], Shape.of(table))
        self.parent = parent
        key, columns = table.c.id, self.shape.columns
        self.parent_key = ""
        filters: list[Callable[[], ColumnElement[bool]]] = []
        if parent is not None:
            link = next(fk for fk in table.foreign_keys if fk.column.table is parent.table)
            self.parent_key = link.parent.name
            self._parent_link = link.constraint.name if link.constraint is not None else None
            filters.append(lambda: table.c[self.parent_key] == bindparam(self.parent_key))
        alive = () if live is None else (live,)

        def scoped(build: Callable[[OwnerFilter], ClauseElement]) -> ScopedSQL:
            return ScopedSQL(build, unscoped=unscoped)

        self._create = scoped(partial(self._insert, creates, returning or columns))
        by_id = key == bindparam("id")
        self._get = scoped(lambda owned: select(*columns).where(by_id, owned(table), *alive))
        self._exists = scoped(
            lambda owned: select(literal_column("1")).where(by_id, owned(table), *alive)
        )

        def page(owned: OwnerFilter, limit: ColumnElement[Any]) -> ClauseElement:
            owner_index = parent is None and not unowned
            after, order = after_in_key_order(table, key, owned, owner_index=owner_index)
            query = select(*columns).where(*after, *alive, *(f() for f in filters))
            return query.order_by(*order).limit(limit)

        self._page = PagedSQL(page, unscoped=unscoped)
        self._delete = scoped(
            lambda owned: (
                delete(table).where(key == bindparam("id"), owned(table), *alive).returning(key)
            )
        )

    def _insert(
        self, creates: tuple[str, ...], returning: Sequence[ColumnElement[Any]], owned: OwnerFilter
    ) -> ClauseElement:
        table = self.table
        values: dict[str, Any] = {name: bindparam(name) for name in creates}
        if self.parent is None:
            owner: dict[str, Any] = {"owner": bindparam("owner")} if "owner" in table.c else {}
            return insert(table).values(owner | values).returning(*returning)
        # Under a parent the caller reaches, owned by the parent's owner, in one statement.
        parent, key = self.parent.table, self.parent_key
        typed = [bindparam(name, type_=table.c[name].type) for name in (key, *creates)]
        found = select(parent.c.owner, *typed).where(parent.c.id == bindparam(key), owned(parent))
        return insert(table).from_select(["owner", key, *creates], found).returning(*returning)

    def create(
        self, cursor: psycopg.Cursor[Any], /, scope: Scope, values: Mapping[str, Any], **parent: int
    ) -> Row:
        """The new row; `parent`: a child's parent id by its key (`item_id=5`)."""
        try:
            params = {**scope.params, **values, **parent}
            row = self.shape.fetch_one(cursor, self._create[scope], params)
        except psycopg.errors.ForeignKeyViolation as exc:  # the parent went in between
            if not parent or exc.diag.constraint_name != self._parent_link:
                raise
            row = None
        if row is None:  # only under a parent the caller does not reach
            raise MissingParentError(self.parent_key, parent[self.parent_key])
        return row

    def get(self, cursor: psycopg.Cursor[Any], /, scope: Scope, row_id: int) -> Row | None:
        return self.shape.fetch_one(cursor, self._get[scope], {**scope.params, "id": row_id})

    def exists(self, cursor: psycopg.Cursor[Any], /, scope: Scope, row_id: int) -> bool:
        params = {**scope.params, "id": row_id}
        return cursor.execute(self._exists[scope], params).fetchone() is not None

    def page(
        self, cursor: psycopg.Cursor[Any], /, scope: Scope, bounds: PageBounds, **parent: int
    ) -> list[Row]:
        """A page of the rows the scope reaches; `parent`: a child's, of that parent."""
        rows: list[Row] = []
        if (listed := scope.listing(bounds.owner)) is not None:
            params = {**listed.params, "after_id": bounds.cursor, **parent}
            rows = self.shape.fetch_all(cursor, self._page.sql(listed, bounds.limit), params)
        # A row found means its parent is reached (a child has its parent's owner); only
        # an empty page asks whether the parent is there at all.
        if not rows and self.parent is not None:
            parent_id = parent[self.parent_key]
            if not self.parent.exists(cursor, scope, parent_id):
                raise MissingParentError(self.parent_key, parent_id)
        return rows

    def delete(self, cursor: psycopg.Cursor[Any], /, scope: Scope, row_id: int) -> bool:
        params = {**scope.params, "id": row_id}
        return cursor.execute(self._delete[scope], params).fetchone() is not None
