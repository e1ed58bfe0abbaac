"""The engine (one per process) and the per-request session.

Fork safety: the engine is created lazily on first use, so a gunicorn master never
opens a connection that its workers could inherit; `dispose_after_fork` covers apps
that were imported before forking anyway.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, g
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings


def make_engine(settings: Settings) -> Engine:
    return create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        # A connection broken by a database restart is replaced, not handed to a request.
        pool_pre_ping=True,
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


class Database:
    """Holds the lazily created engine and session factory for one app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self.on_engine_created: list[Callable[[Engine], None]] = []

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings)
            self._sessions = sessionmaker(self._engine, expire_on_commit=False)
            for hook in self.on_engine_created:
                hook(self._engine)
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
        if self._engine is not None:
            self._engine.dispose(close=False)


def get_db(app: Flask) -> Database:
    db: Database = app.extensions["db"]
    return db
