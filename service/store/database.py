"""The engine (one per process) and each worker thread's database connection.

SQLAlchemy owns the connections: the engine's pool opens, checks, recycles and counts
them (service/telemetry/metrics.py), and /readyz and the migrations use the engine as usual. The
API runs its statements on the driver (psycopg) directly, with SQL that SQLAlchemy wrote
once, at import, from the table definitions (service/store/items.py). SQLAlchemy's per-statement
execution layer (an ORM Session, or even a Core Connection: execution context, result
wrapper, row objects) cost more CPU per statement than psycopg needs to run it, round
trip included (in-process: 245 us with a Session, 172 with a Core Connection, 91 on
psycopg); dropping it cut a GET's server CPU under load by 17% (docs/performance.md).

A worker thread keeps its connection between requests. It serves one request at a time,
so giving the connection back to the pool after each request only to borrow it again
before the next bought nothing, and the pool's checkout and return (locks, events, reset)
cost 15% of a GET's CPU. So a thread takes one connection from the pool and keeps it,
with one cursor on it (psycopg caches per cursor how to convert each parameter and column
type: a new cursor per statement rebuilt that cache every time). The connection is
discarded, and the next request takes a new one from the pool, when:
- the server hung up, checked before each request that uses it, as the pool checks a
  connection on checkout (next paragraph): after a database restart no request gets a
  dead connection;
- it broke during a request, or a request left a transaction open;
- it was opened more than RECYCLE_SECONDS ago, the pool's recycle age;
- a statement failed in a way that makes it stale (a column's type changed under its
  prepared statements, a failover made its server read-only: service/store/stale.py).
  The API runs its queries through `read()` and `write()`, which then run the query once
  more on a fresh connection when that cannot write twice, so clients see no error.
It goes back to the pool when the thread borrows through `Database.connect()` (/readyz),
so that a pool of one connection per thread (the default) can lend it.

One round trip per statement, and no more:
- Connections run in autocommit, set once when opened. Every statement the API runs
  (crud.py) is a single statement, atomic on its own, so BEGIN before it and
  COMMIT/ROLLBACK after it would only add two round trips. An operation that needs
  several statements in one transaction wraps them in
  `with cursor.connection.transaction():` (psycopg sends BEGIN and COMMIT, or ROLLBACK
  if the block raises). `Database.connect()` hands out transactional SQLAlchemy
  connections (for /readyz).
- A connection is checked without a round trip (no `SELECT 1` pre-ping): the server
  never speaks on an idle connection, so a readable socket means it hung up.

Fork safety: the engine is created lazily on first use (under gunicorn: in each worker,
by `warm_up` before it serves), so a gunicorn master never opens a connection that its
workers could inherit; `dispose_after_fork` covers apps imported before forking anyway.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import psycopg
from flask import Flask, g
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import InvalidatePoolError

from service.config import Settings
from service.store.credentials import reread_on_connect
from service.store.stale import nothing_written, stale

log = logging.getLogger(__name__)

# A connection older than this is closed and replaced by a new one: a long-lived session
# slowly accumulates server-side memory (caches, prepared plans).
RECYCLE_SECONDS = 1800
OPENED_AT = "opened_at"  # the key, in a pooled connection's `info`, of when it was opened
# How long a new gunicorn worker waits for its first connection before serving anyway.
WARM_UP_WAIT_SECONDS = 2.0

P = ParamSpec("P")
T = TypeVar("T")
Query = Callable[Concatenate[psycopg.Cursor[Any], P], T]


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
    if settings.database_url_file:
        event.listen(engine, "do_connect", reread_on_connect(settings.database_url_file))
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
    if _gone(dbapi_connection):
        raise InvalidatePoolError("the database server closed the connection")


def _gone(connection: psycopg.Connection[Any]) -> bool:
    """Unusable: closed or broken on our side, or hung up on by the server."""
    return _lost(connection) or _hung_up(connection)


def _hung_up(connection: psycopg.Connection[Any]) -> bool:
    """The server never sends anything on an idle connection unasked, so if the socket is
    readable it has hung up (restart, crash, failover, idle timeout) or sent its last
    error before doing so."""
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _lost(connection: psycopg.Connection[Any]) -> bool:
    """Closed by us, or broken because the server went away (psycopg tracks both)."""
    return bool(connection.closed or connection.broken)


class _Held:
    """The connection a worker thread took from the pool, and its one cursor."""

    def __init__(self, engine: Engine) -> None:
        self.pooled = engine.raw_connection()
        self.connection = cast("psycopg.Connection[Any]", self.pooled.driver_connection)
        self.cursor = self.connection.cursor()
        self.opened_at: float = self.pooled.info.get(OPENED_AT, time.monotonic())
        # Back to the pool when called, or when the thread ends (its thread-local storage
        # goes, and this with it): the Flask dev server runs each request on a new thread.
        self.give_back = weakref.finalize(self, self.pooled.close)
        self.give_back.atexit = False  # an exiting process closes its sockets anyway

    def usable(self) -> bool:
        """Neither gone (see `_hung_up`) nor due for recycling."""
        return not _gone(self.connection) and time.monotonic() - self.opened_at < RECYCLE_SECONDS

    def request_cursor(self) -> psycopg.Cursor[Any]:
        """The kept cursor, or a new one if the last request closed it or changed how it
        makes rows (`with db.cursor() as cursor:` closes it on the way out)."""
        if self.cursor.closed or self.cursor.row_factory is not tuple_row:
            self.cursor = self.connection.cursor()
        return self.cursor

    def discard(self) -> None:
        self.give_back.detach()
        self.pooled.invalidate()  # the pool closes it and opens another when asked


class _ThreadState(threading.local):
    held: _Held | None = None  # the connection this thread keeps, once it has taken one


class Database:
    """Holds the lazily created engine and each worker thread's connection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool_engine: Engine | None = None
        self._engine: Engine | None = None
        self._threads = _ThreadState()
        self._bound: psycopg.Cursor[Any] | None = None
        self.on_engine_created: list[Callable[[Engine], None]] = []
        self._creating = threading.Lock()

    @property
    def engine(self) -> Engine:
        """Connections in a transaction, as `engine.connect()` callers expect.

        The same pool as the requests': a connection checked out here is switched out of
        autocommit (psycopg does that client-side, no round trip) and back on return.
        In a request, borrow through `connect()`: it first returns this thread's kept
        connection, without which a pool of one per thread has none to lend.
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

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """An SQLAlchemy connection in a transaction, from the pool (for /readyz).

        This thread's own connection goes back to the pool first, unless the current
        request is using it, so a pool of one connection per thread can lend it.
        """
        if "db_cursor" not in g and (held := self._stop_keeping()) is not None:
            held.give_back()
        with self.engine.connect() as connection:
            yield connection

    def cursor(self) -> psycopg.Cursor[Any]:
        """The request's cursor, on this thread's connection (autocommit); rows are tuples."""
        cursor: psycopg.Cursor[Any] | None = g.get("db_cursor")
        if cursor is None:
            if self._bound is not None:
                cursor = self._bound
                cursor.execute("SAVEPOINT request")
            else:
                cursor = self._thread_connection().request_cursor()
            g.db_cursor = cursor
        return cursor

    def read(self, query: Query[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `query` on the request's cursor; if its connection was stale or lost, run it
        once more on a fresh one (a read is always safe to repeat)."""
        try:
            return query(self.cursor(), *args, **kwargs)
        except psycopg.Error as exc:
            if not self._retry_after(exc, repeatable=True):
                raise
        return query(self.cursor(), *args, **kwargs)

    def write(self, query: Query[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `query` on the request's cursor; run it once more on a fresh connection only
        if the server refused it before it ran (so it wrote nothing)."""
        try:
            return query(self.cursor(), *args, **kwargs)
        except psycopg.Error as exc:
            if not self._retry_after(exc, repeatable=nothing_written(exc)):
                raise
        return query(self.cursor(), *args, **kwargs)

    def _retry_after(self, exc: psycopg.Error, *, repeatable: bool) -> bool:
        """Discard the request's connection if `exc` made it stale; whether to run again.

        Only an error path: the happy path costs a request one `try`.
        """
        cursor: psycopg.Cursor[Any] | None = g.get("db_cursor")
        if cursor is None or cursor is self._bound:
            return False
        lost = _lost(cursor.connection)
        if not (lost or stale(exc)):
            return False  # e.g. a unique violation or a statement timeout: not the connection
        g.pop("db_cursor")
        g.db_connection_lost = lost
        self._discard_thread_connection()
        if not repeatable or g.get("db_retried"):
            return False
        g.db_retried = True
        log.info("database connection stale (%s); running the statement again on a new one",
                 first_line(exc))  # fmt: skip
        return True

    def connection(self) -> psycopg.Connection[Any]:
        """The request's connection (autocommit): the one its cursor runs on."""
        return self.cursor().connection

    def _thread_connection(self) -> _Held:
        held = self._threads.held
        if held is not None and not held.usable():
            self._discard_thread_connection()
            held = None
        if held is None:
            _ = self.engine  # created on first use
            assert self._pool_engine is not None
            held = self._threads.held = _Held(self._pool_engine)
        return held

    def connection_broken(self) -> bool:
        """Whether this request's connection broke (the server went away mid-request)."""
        cursor: psycopg.Cursor[Any] | None = g.get("db_cursor")
        return g.get("db_connection_lost", False) or (
            cursor is not None and _lost(cursor.connection)
        )

    def bind_to(self, connection: psycopg.Connection[Any]) -> None:
        """Run every request on `connection`, which is in a transaction (tests roll it back
        after). Each request runs in a savepoint, so a statement that fails undoes only its
        own request's work, as it would in autocommit, and the test goes on."""
        self._bound = connection.cursor()

    def init_app(self, app: Flask) -> None:
        app.extensions["db"] = self

        @app.teardown_appcontext
        def end_of_request(_exc: BaseException | None) -> None:
            cursor: psycopg.Cursor[Any] | None = g.pop("db_cursor", None)
            if cursor is None:
                return  # this request did not touch the database
            connection = cursor.connection
            if cursor is self._bound:
                if connection.info.transaction_status == TransactionStatus.INERROR:
                    cursor.execute("ROLLBACK TO SAVEPOINT request")
                cursor.execute("RELEASE SAVEPOINT request")
                return
            if _lost(connection):
                self._discard_thread_connection()  # the server went away
            elif connection.info.transaction_status != TransactionStatus.IDLE:
                # Nothing in the API leaves a transaction open (autocommit, or a closed
                # `connection.transaction()` block). If something did, its work would be
                # lost with the connection, silently: say so loudly and start clean.
                log.error("a request left a database transaction open; it was rolled back")
                self._discard_thread_connection()

    def _stop_keeping(self) -> _Held | None:
        """This thread's connection, which it no longer keeps: the caller returns it."""
        held, self._threads.held = self._threads.held, None
        return held

    def _discard_thread_connection(self) -> None:
        if (held := self._stop_keeping()) is not None:
            held.discard()

    def warm_up(self, wait_seconds: float = WARM_UP_WAIT_SECONDS) -> None:
        """Open the process's first connection before it serves, not in its first request.

        A new worker's first connection costs ~25 ms of CPU (TCP, SCRAM authentication,
        SQLAlchemy reading the server's settings), and the request that paid it took
        35-50 ms under load where the others take 1: with `max_requests` recycling, a
        stall at the tail every few minutes (docs/performance.md, change 16). Called by
        gunicorn before a worker accepts; the connection goes back to the pool, where
        the first request's thread takes it (in a gthread worker, one thread's; the
        others still connect, but SQLAlchemy's first-connection setup is done).

        The worker waits `wait_seconds` at most: a database that does not answer (DNS,
        a black-holed address: DB_CONNECT_TIMEOUT per address) must not keep it from
        serving /livez, which never touches the database. The connect then finishes in
        the background; a request that needs the database meanwhile waits for the pool
        as it would for its own connect. A failure is logged, not raised: requests and
        /readyz report an unreachable database, and connect once it is back.
        """

        def connect() -> None:
            try:
                with self.engine.connect():
                    pass
            except Exception as exc:  # noqa: BLE001 - the worker serves without it
                log.warning("no database connection ahead of requests: %s", first_line(exc))

        opening = threading.Thread(target=connect, name="db-warm-up", daemon=True)
        opening.start()
        opening.join(wait_seconds)

    def dispose_after_fork(self) -> None:
        if (held := self._stop_keeping()) is not None:
            held.give_back.detach()  # the parent's to return, not ours
        if self._pool_engine is not None:
            self._pool_engine.dispose(close=False)


def first_line(exc: BaseException) -> str:
    """What went wrong, in one line: the driver's message (it never holds the password)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def get_db(app: Flask) -> Database:
    db: Database = app.extensions["db"]
    return db
