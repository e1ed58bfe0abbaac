"""Building an index in a migration without stopping writes (CREATE INDEX CONCURRENTLY).

A plain CREATE INDEX blocks every INSERT, UPDATE and DELETE on its table until it is
built: seconds to minutes on a large table, while the previous release is serving. The
concurrent build lets them go on, at the price of running outside a transaction: call
these inside `op.get_context().autocommit_block()`. A build that fails (lock timeout,
cancel) leaves an INVALID index behind, which the next run drops and builds again.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text


def create_index_concurrently(
    name: str, table: str, columns: list[str], *, unique: bool = False
) -> None:
    if op.get_context().as_sql:  # `alembic upgrade --sql`: the statement, for review
        op.create_index(name, table, columns, unique=unique, postgresql_concurrently=True)
        return
    valid = (
        op.get_bind()
        .execute(
            text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
            {"name": name},
        )
        .scalar()
    )
    if valid:
        return  # built by an earlier run that failed after it
    if valid is False:
        op.drop_index(name, table_name=table, postgresql_concurrently=True)
    op.create_index(name, table, columns, unique=unique, postgresql_concurrently=True)
