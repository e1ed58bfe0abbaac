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

Connections are made only to a writable primary (libpq's `target_session_attrs=read-write`):
through an address that points at a standby (a Service during a failover, a demoted
primary) connecting fails at once, so requests get quick 503s and no connection is left
on a server in recovery serving stale reads. The session settings go the way that holds
through a transaction pooler (service/store/session_settings.py), not in `options`.
"""

from __future__ import annotations

import math
import select
import time
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Engine, NullPool, create_engine, event
from sqlalchemy.exc import InvalidatePoolError

from service.config import Settings
from service.store import session_settings
from service.store.credentials import reread_on_connect

# A connection older than this is closed and replaced by a new one: a long-lived session
# slowly accumulates server-side memory (caches, prepared plans).
RECYCLE_SECONDS = 1800
OPENED_AT = "opened_at"  # the key, in a pooled connection's `info`, of when it was opened


def make_engine(
    settings: Settings,
    *,
    pooled: bool = True,
    connect_within: Callable[[], float] = lambda: 0.0,
) -> Engine:
    """The process's pool; its connections are in autocommit (see the module docstring).

    `pooled=False`: a connection per use and closed after (the circuit breaker's probes).
    `connect_within()`: the seconds left before the current request's deadline (0: none),
    which a connection attempt may not outlast by more than libpq's 2 s minimum.
    """
    sizing: dict[str, Any] = (
        {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow,
         "pool_timeout": settings.db_pool_timeout, "pool_recycle": RECYCLE_SECONDS}
        if pooled else {"poolclass": NullPool}
    )  # fmt: skip
    engine = create_engine(
        settings.database_url,
        isolation_level="AUTOCOMMIT",
        **sizing,
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "application_name": "service",
            # Only a server that accepts writes (see the module docstring).
            "target_session_attrs": "read-write",
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
    # Bound every statement. Timestamps in UTC whatever the server's TimeZone setting (the
    # API writes them as they come), and as datetime.timezone.utc, which psycopg and
    # orjson handle in C; a named zone, even "Etc/UTC", goes through Python per value: 7%
    # of the CPU of a page of 20.
    timeout_ms = settings.db_statement_timeout_ms
    event.listen(engine, "connect", lambda dbapi_connection, _record: (
        session_settings.set_for_session(dbapi_connection, timeout_ms)))  # fmt: skip
    if settings.rereads_database_credentials:
        event.listen(engine, "do_connect", reread_on_connect(settings))
    # After the URL is read (it may name its own connect_timeout): within the deadline.
    event.listen(engine, "do_connect", _connect_within(connect_within, settings.db_connect_timeout))
    # Last: it makes the connection, with the arguments the listeners above settled (a
    # do_connect listener added after it would never run: the first to connect wins).
    event.listen(engine, "do_connect", connect_leaving_no_session_behind)
    return engine


def _connect_within(remaining: Callable[[], float], configured: int) -> Callable[..., None]:
    def do_connect(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        left = remaining()
        if left > 0:  # whole seconds (libpq's unit); psycopg waits 2 s at the least
            current = int(cparams.get("connect_timeout", configured))
            cparams["connect_timeout"] = max(1, min(current, math.floor(left)))

    return do_connect


def connect_leaving_no_session_behind(
    dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]
) -> psycopg.Connection[Any]:
    """The dialect's connect, but an attempt that times out leaves no session on the server.

    psycopg (3.3) gives up on an attempt at its connect_timeout without closing it: the
    libpq connection stays open, held through the traceback of the ConnectionTimeout it
    raises, in a reference cycle that only the garbage collector frees. An attempt that
    timed out after the server had authenticated it (a loaded server or host, a slow
    network) leaves an idle backend there until then, holding one of max_connections: in a
    worker, whose full collections are rare (service/runtime/gunicorn_conf.py), for minutes.
    The traceback (SQLAlchemy's connect and psycopg's frames; the message keeps what went
    wrong) is dropped, so the attempt is freed, and closed, at once.
    """
    try:
        return dialect.connect(*cargs, **cparams)  # type: ignore[no-any-return]
    except psycopg.errors.ConnectionTimeout as timed_out:
        raise timed_out.with_traceback(None)  # noqa: B904 - the same error, not a new one


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
