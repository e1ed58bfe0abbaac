"""The engine (one per process) and the request's database connection.

SQLAlchemy owns the connections: the engine's pool opens, checks, recycles and counts
them (service/metrics.py), and /readyz and the migrations use the engine as usual. A
request borrows one pooled connection and runs its statements on the driver (psycopg)
directly, with SQL that SQLAlchemy wrote once, at import, from the table definitions
(service/crud.py). SQLAlchemy's per-statement execution layer (an ORM Session, or even
a Core Connection: execution context, result wrapper, row objects) cost more CPU per
statement than psycopg needs to run it, round trip included (in-process: 245 us with a
Session, 172 with a Core Connection, 91 on psycopg); dropping it cut a GET's server CPU
under load by 17% (docs/performance.md).

Fork safety: the engine is created lazily on first use, so a gunicorn master never
opens a connection that its workers could inherit; `dispose_after_fork` covers apps
that were imported before forking anyway.

One round trip per statement, and no more:
- Connections run in autocommit, set once when opened. Every statement the API runs
  (crud.py) is a single statement, atomic on its own, so BEGIN before it and
  COMMIT/ROLLBACK after it would only add two round trips. An operation that needs
  several statements in one transaction wraps them in `with connection.transaction():`
  (psycopg sends BEGIN and COMMIT, or ROLLBACK if the block raises).
  `Database.engine` hands out transactional connections (for /readyz).
- A pooled connection is checked without a round trip (no `SELECT 1` pre-ping): the
  server never speaks on an idle connection, so a readable socket means it hung up.

A connection that broke during a request is discarded when the request ends, never
returned to the pool.
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable
from typing import Any, cast

import psycopg
from flask import Flask, g
from psycopg.pq import TransactionStatus
from sqlalchemy import Engine, PoolProxiedConnection, create_engine, event
from sqlalchemy.exc import InvalidatePoolError

from service.config import Settings

log = logging.getLogger(__name__)


def make_engine(settings: Settings) -> Engine:
    """The process's pool; its connections are in autocommit (see the module docstring)."""
    engine = create_engine(
        settings.database_url,
        isolation_level="AUTOCOMMIT",
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "application_name": "service",
            # Bound every statement, and notice a peer that vanished without a FIN
            # (node loss, network partition) within seconds, not the kernel's 2 hours.
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 2,
            "tcp_user_timeout": settings.db_connect_timeout * 1000 * 3,
        },
    )
    # Registered first, so no other checkout listener (pool metrics) sees a dead connection.
    event.listen(engine, "checkout", replace_if_server_hung_up)
    return engine


def replace_if_server_hung_up(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled connection the server has closed, without a round trip.

    The server never sends anything on an idle connection unasked, so if the socket is
    readable it has hung up (restart, crash, failover, idle timeout) or sent its last
    error before doing so. Raising makes the pool drop every connection older than now
    (they share the server's fate) and open a fresh one for this request: after a
    database restart no request gets a dead connection, as with a pre-ping, but a
    healthy checkout costs one poll() instead of a `SELECT 1` round trip.
    """
    if _lost(dbapi_connection):
        raise InvalidatePoolError("the database connection is closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise InvalidatePoolError("the database server closed the connection")


def _lost(connection: psycopg.Connection[Any]) -> bool:
    """Closed by us, or broken because the server went away (psycopg tracks both)."""
    return bool(connection.closed or connection.broken)


def _driver(pooled: PoolProxiedConnection) -> psycopg.Connection[Any] | None:
    """The psycopg connection inside a pooled one (None once the pool has dropped it)."""
    return cast("psycopg.Connection[Any] | None", pooled.driver_connection)


class Database:
    """Holds the lazily created engine and lends each request one pooled connection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool_engine: Engine | None = None
        self._engine: Engine | None = None
        self._bound: psycopg.Connection[Any] | None = None
        self.on_engine_created: list[Callable[[Engine], None]] = []
        self._creating = threading.Lock()

    @property
    def engine(self) -> Engine:
        """Connections in a transaction, as `engine.connect()` callers expect (/readyz).

        The same pool as the requests': a connection checked out here is switched out of
        autocommit (psycopg does that client-side, no round trip) and back on return.
        """
        if self._engine is None:
            # Threads of a gthread worker may get here together: one engine, its hooks
            # (pool metrics) registered before any thread borrows a connection.
            with self._creating:
                if self._engine is None:
                    pool_engine = make_engine(self.settings)
                    for hook in self.on_engine_created:
                        hook(pool_engine)
                    self._pool_engine = pool_engine
                    self._engine = pool_engine.execution_options(isolation_level="READ COMMITTED")
        return self._engine

    def connection(self) -> psycopg.Connection[Any]:
        """The request's connection (autocommit), borrowed on first use, returned at teardown."""
        if self._bound is not None:
            if "db_savepoint" not in g:
                self._bound.execute("SAVEPOINT request")
                g.db_savepoint = True
            return self._bound
        pooled: PoolProxiedConnection | None = g.get("db_connection")
        if pooled is None:
            _ = self.engine  # created on first use
            assert self._pool_engine is not None
            pooled = g.db_connection = self._pool_engine.raw_connection()
        connection = _driver(pooled)
        assert connection is not None  # just borrowed
        return connection

    def connection_broken(self) -> bool:
        """Whether this request's connection broke (the server went away mid-request)."""
        pooled: PoolProxiedConnection | None = g.get("db_connection")
        if pooled is None:
            return self._bound is not None and _lost(self._bound)
        driver = _driver(pooled)
        return driver is None or _lost(driver)

    def bind_to(self, connection: psycopg.Connection[Any]) -> None:
        """Run every request on `connection`, which is in a transaction (tests roll it back
        after). Each request runs in a savepoint, so a statement that fails undoes only its
        own request's work, as it would in autocommit, and the test goes on."""
        self._bound = connection

    def init_app(self, app: Flask) -> None:
        app.extensions["db"] = self

        @app.teardown_appcontext
        def return_connection(_exc: BaseException | None) -> None:
            if g.pop("db_savepoint", False) and self._bound is not None:
                if self._bound.info.transaction_status == TransactionStatus.INERROR:
                    self._bound.execute("ROLLBACK TO SAVEPOINT request")
                self._bound.execute("RELEASE SAVEPOINT request")
            pooled: PoolProxiedConnection | None = g.pop("db_connection", None)
            if pooled is None:
                return
            driver = _driver(pooled)
            if driver is None or _lost(driver):
                pooled.invalidate()  # the server went away: the pool must not lend it again
            elif driver.info.transaction_status != TransactionStatus.IDLE:
                # Nothing in the API leaves a transaction open (autocommit, or a closed
                # `connection.transaction()` block). If something did, its work would be
                # rolled back on return, silently: say so loudly and start clean.
                log.error("a request left a database transaction open; it was rolled back")
                pooled.invalidate()
            pooled.close()

    def dispose_after_fork(self) -> None:
        if self._pool_engine is not None:
            self._pool_engine.dispose(close=False)


def get_db(app: Flask) -> Database:
    db: Database = app.extensions["db"]
    return db
