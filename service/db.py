"""The engine (one per process) and the per-request session.

Fork safety: the engine is created lazily on first use, so a gunicorn master never
opens a connection that its workers could inherit; `dispose_after_fork` covers apps
that were imported before forking anyway.

Round trips are the cost of a request (docs/performance.md), so a request makes one per
statement and no more:
- Connections run in autocommit, set once when opened. Every statement the API runs
  (crud.py) is a single statement, atomic on its own, so BEGIN before it and
  COMMIT/ROLLBACK after it would only add two round trips. An operation that needs
  several statements in one transaction must ask for one before its first statement:
  `session.connection(execution_options={"isolation_level": "READ COMMITTED"})`, then
  `session.commit()`; `session.begin()` alone does not make an autocommit connection
  transactional. `Database.engine` hands out transactional connections (for /readyz).
- A pooled connection is checked without a round trip (no `SELECT 1` pre-ping): the
  server never speaks on an idle connection, so a readable socket means it hung up.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

from flask import Flask, g
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings


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
    if dbapi_connection.closed or dbapi_connection.broken:
        raise InvalidatePoolError("the database connection is closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise InvalidatePoolError("the database server closed the connection")


class Database:
    """Holds the lazily created engine and session factory for one app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool_engine: Engine | None = None
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self.on_engine_created: list[Callable[[Engine], None]] = []

    @property
    def engine(self) -> Engine:
        """Connections in a transaction, as `engine.connect()` callers expect (/readyz).

        The same pool as the request sessions: a connection checked out here is switched
        out of autocommit (psycopg does that client-side, no round trip) and back on return.
        """
        if self._engine is None:
            self._pool_engine = make_engine(self.settings)
            self._engine = self._pool_engine.execution_options(isolation_level="READ COMMITTED")
            self._sessions = sessionmaker(self._pool_engine, expire_on_commit=False)
            for hook in self.on_engine_created:
                hook(self._pool_engine)
        return self._engine

    def session(self) -> Session:
        """The request's session, created on first use and closed at teardown."""
        if "db_session" not in g:
            if self._sessions is None:
                _ = self.engine
            assert self._sessions is not None
            g.db_session = self._sessions()
        session: Session = g.db_session
        return session

    def bind_sessions_to(self, connection: Connection) -> None:
        """Make every session join `connection`'s transaction (tests roll it back after)."""
        self._sessions = sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )

    def init_app(self, app: Flask) -> None:
        app.extensions["db"] = self

        @app.teardown_appcontext
        def close_session(_exc: BaseException | None) -> None:
            session: Session | None = g.pop("db_session", None)
            if session is not None:
                session.close()

    def dispose_after_fork(self) -> None:
        if self._pool_engine is not None:
            self._pool_engine.dispose(close=False)


def get_db(app: Flask) -> Database:
    db: Database = app.extensions["db"]
    return db
