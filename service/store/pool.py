"""The process's connection pool: how its connections are opened, checked and recycled.

One round trip per statement, and no more:
- Connections run in autocommit, set once when opened. Every statement the API runs
  (service/store/*.py) is a single statement, atomic on its own, so BEGIN before it and
  COMMIT/ROLLBACK after it would only add two round trips. An operation that needs
  several statements in one transaction wraps them in
  `with cursor.connection.transaction():` (psycopg sends BEGIN and COMMIT, or ROLLBACK
  if the block raises). `Database.connect()` hands out transactional SQLAlchemy
  connections (for /readyz).
- A connection is checked without a round trip (no `SELECT 1` pre-ping): the server
  never speaks on an idle connection, so a readable socket means it hung up.
"""

from __future__ import annotations

import select
import time
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import InvalidatePoolError

from service.config import Settings
from service.store.credentials import reread_on_connect

# A connection older than this is closed and replaced by a new one: a long-lived session
# slowly accumulates server-side memory (caches, prepared plans).
RECYCLE_SECONDS = 1800
OPENED_AT = "opened_at"  # the key, in a pooled connection's `info`, of when it was opened


def make_engine(settings: Settings) -> Engine:
    """The process's pool; its connections are in autocommit (see the module docstring)."""
    engine = create_engine(
        settings.database_url,
        isolation_level="AUTOCOMMIT",
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=RECYCLE_SECONDS,
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "application_name": "service",
            # Bound every statement. Timestamps in UTC whatever the server's TimeZone
            # setting (the API writes them as they come), and as datetime.timezone.utc,
            # which psycopg and orjson handle in C; a named zone, even "Etc/UTC", goes
            # through Python per value: 7% of the CPU of a page of 20.
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms} -c timezone=UTC",
            # Notice a peer that vanished without a FIN (node loss, network partition)
            # within seconds, not the kernel's 2 hours.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 2,
            "tcp_user_timeout": settings.db_connect_timeout * 1000 * 3,
            # psycopg prepares a statement on the server after its fifth run; None never
            # does, for a PgBouncer in transaction mode that moves sessions between servers.
            "prepare_threshold": 5 if settings.db_prepared_statements else None,
        },
    )
    # Registered first, so no other checkout listener (pool metrics) sees a dead connection.
    event.listen(engine, "checkout", replace_if_server_hung_up)
    event.listen(engine, "connect", _note_when_opened)
    if settings.rereads_database_credentials:
        event.listen(engine, "do_connect", reread_on_connect(settings))
    return engine


def _note_when_opened(_dbapi_connection: Any, record: Any) -> None:
    record.info[OPENED_AT] = time.monotonic()  # kept connections are recycled by this age


def replace_if_server_hung_up(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled connection the server has closed, without a round trip.

    Raising makes the pool drop every connection older than now (they share the server's
    fate) and open a fresh one: after a database restart no request gets a dead
    connection, as with a pre-ping, but a healthy checkout costs one poll() instead of a
    `SELECT 1` round trip.
    """
    if gone(dbapi_connection):
        raise InvalidatePoolError("the database server closed the connection")


def gone(connection: psycopg.Connection[Any]) -> bool:
    """Unusable: closed or broken on our side, or hung up on by the server."""
    return lost(connection) or _hung_up(connection)


def _hung_up(connection: psycopg.Connection[Any]) -> bool:
    """The server never sends anything on an idle connection unasked, so if the socket is
    readable it has hung up (restart, crash, failover, idle timeout) or sent its last
    error before doing so."""
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def lost(connection: psycopg.Connection[Any]) -> bool:
    """Closed by us, or broken because the server went away (psycopg tracks both)."""
    return bool(connection.closed or connection.broken)
