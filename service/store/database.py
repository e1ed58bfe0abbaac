"""The engine (one per process) and each worker thread's database connection.

SQLAlchemy owns the connections: the engine's pool opens, checks, recycles and counts
them (service/telemetry/metrics.py), and /readyz and the migrations use the engine as usual. The
API runs its statements on the driver (psycopg) directly, with SQL that SQLAlchemy wrote
once, at import, from the table definitions (service/store/items.py). SQLAlchemy's per-statement
execution layer (an ORM Session, or even a Core Connection: execution context, result
wrapper, row objects) cost more CPU per statement than psycopg needs to run it, round
trip included (in-process: 245 us with a Session, 172 with a Core Connection, 91 on
psycopg); dropping it cut a GET's server CPU under load by 17% (docs/performance.md).

Each worker thread keeps one connection between requests (service/store/kept_connection.py);
the pool's rules, one round trip per statement, are in service/store/pool.py.

Whatever the database does, a request waits on it at most DB_DEADLINE_MS
(service/store/deadline.py); after one did, the worker's circuit breaker fails requests
fast until the database answers again (service/store/breaker.py); and a write is answered
as done only once PostgreSQL confirmed its commit (service/store/commits.py).

Fork safety: the engine is created lazily on first use (under gunicorn: in each worker,
by `warm_up` before it serves), so a gunicorn master never opens a connection that its
workers could inherit; `dispose_after_fork` covers apps imported before forking anyway.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, NoReturn, ParamSpec, TypeVar

import psycopg
from flask import Flask, g
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import OperationalError

from service.config import Settings
from service.store import commits, pool, session_settings
from service.store.breaker import READS, WRITES, Breaker
from service.store.deadline import Watch, Watchdog, abort_grace, wait_budget, weakly
from service.store.kept_connection import KeptConnection, ThreadState, binary_cursor
from service.store.stale import nothing_written, stale
from service.store.tag_sweeper import Sweeper

log = logging.getLogger(__name__)

# How long a new gunicorn worker waits for its first connection before serving anyway.
WARM_UP_WAIT_SECONDS = 2.0

P = ParamSpec("P")
T = TypeVar("T")
Query = Callable[Concatenate[psycopg.Cursor[Any], P], T]

# A write probe commits a transaction that wrote WAL (a logical decoding message, in no
# table), so its commit waits for the synchronous standby as a write's does; a bare
# transaction id (pg_current_xact_id) writes none and would not wait.
PROBE_SQL = {
    False: "SELECT 1",
    True: "SELECT pg_logical_emit_message(true, 'service-probe', '')",
}


class DeadlineExceededError(Exception):
    """A read waited on the database past DB_DEADLINE_MS (answered 503)."""


class CircuitOpenError(Exception):
    """The worker's circuit breaker fails the request fast (answered 503)."""

    def __init__(self, side: str) -> None:
        super().__init__(f"database {side} fail fast")
        self.side = side


class Database:
    """Holds the lazily created engine and each worker thread's connection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool_engine: Engine | None = None
        self._engine: Engine | None = None
        self._probe_engine: Engine | None = None
        deadline, timeout = settings.db_deadline_ms, settings.db_statement_timeout_ms
        self._deadline_seconds = wait_budget(deadline, timeout)
        # The watchdog's thread outlives requests: it holds this object only weakly.
        self.watchdog = Watchdog(
            weakly(self._expired), weakly(self._unanswered), abort_grace(deadline, timeout)
        )
        self.breaker = Breaker(weakly(self._probe), weakly(self._breaker_changed))
        # Hooks for metrics (service/telemetry/metrics.py): a write answered unconfirmed
        # (reason), a deadline expired (read or write), a breaker side opened or closed.
        self.on_unconfirmed: Callable[[str], None] = lambda reason: None
        self.on_deadline: Callable[[str], None] = lambda operation: None
        self.on_breaker: Callable[[str, bool], None] = lambda side, open_: None
        self._threads = ThreadState(self.watchdog, self._deadline_seconds)
        self._bound: psycopg.Cursor[Any] | None = None
        self.on_engine_created: list[Callable[[Engine], None]] = []
        self._creating = threading.Lock()
        # Started by the server (gunicorn's post_worker_init, `dev`), not by create_app:
        # tests and tools that build an app run no thread behind their back.
        self.tag_sweeper = Sweeper(settings)

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
                    pool_engine = self._make_engine(pooled=True)
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
        watch = self._threads.watch
        watch.arm(self._deadline_seconds)
        self.watchdog.ensure_running()
        try:
            with self.engine.connect() as connection:
                watch.connection = connection.connection.driver_connection
                try:
                    yield connection
                finally:
                    watch.deadline = 0.0
                    if watch.expired:
                        self._after_expiry(watch, connection.invalidate)
        finally:
            watch.deadline = 0.0
            watch.connection = None

    def cursor(self) -> psycopg.Cursor[Any]:
        """The request's cursor, on this thread's connection (autocommit); rows are tuples."""
        cursor: psycopg.Cursor[Any] | None = g.get("db_cursor")
        if cursor is None:
            if self._bound is not None:
                cursor = self._bound
                cursor.execute("SAVEPOINT request")
            else:
                watch = self._threads.watch
                if not watch.deadline:  # the request's first database call: its clock starts
                    watch.arm(self._deadline_seconds)
                    self.watchdog.ensure_running()
                cursor = self._thread_connection(watch).request_cursor()
                watch.connection = cursor.connection
            g.db_cursor = cursor
        return cursor

    def read(self, query: Query[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `query` on the request's cursor; if its connection was stale or lost, run it
        once more on a fresh one (a read is always safe to repeat)."""
        watch = self._threads.watch
        if watch.expired or self.breaker.reads_open:
            self._refuse(watch, READS)
        watch.writing = False
        while True:
            try:
                return query(self.cursor(), *args, **kwargs)
            except psycopg.Error as exc:
                self._after_failure(exc, watch, repeatable=True)

    def write(self, query: Query[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `query` on the request's cursor; run it once more on a fresh connection only
        if the server refused it before it ran (so it wrote nothing). Answered as done
        only if PostgreSQL confirmed its commit (service/store/commits.py)."""
        watch = self._threads.watch
        if watch.expired or self.breaker.writes_open:
            self._refuse(watch, WRITES)
        watch.writing = True
        watch.unconfirmed = False
        while True:
            try:
                result = query(self.cursor(), *args, **kwargs)
                break
            except psycopg.Error as exc:
                self._after_failure(exc, watch, repeatable=nothing_written(exc))
        if watch.unconfirmed:  # committed locally, not confirmed by the standby
            raise commits.CommitUnconfirmedError(commits.SYNC_STANDBY)
        return result

    def _refuse(self, watch: Watch, side: str) -> NoReturn:
        if watch.expired:
            raise DeadlineExceededError("the request's database deadline has passed")
        raise CircuitOpenError(READS if self.breaker.reads_open else side)

    def _after_failure(self, exc: psycopg.Error, watch: Watch, *, repeatable: bool) -> None:
        """Return if the statement may run once more; raise what to answer otherwise.

        Only an error path: the happy path costs a request one `try`.
        """
        if watch.expired:  # the watchdog ended the wait
            if watch.writing:
                raise commits.CommitUnconfirmedError(commits.DEADLINE) from exc
            raise DeadlineExceededError("the database did not answer in time") from exc
        if self._retry_after(exc, repeatable=repeatable):
            return
        if watch.writing and (
            watch.unconfirmed or commits.outcome_unknown(exc, self.connection_broken())
        ):
            raise commits.CommitUnconfirmedError(commits.CONNECTION_LOST) from exc
        raise exc

    def _retry_after(self, exc: psycopg.Error, *, repeatable: bool) -> bool:
        """Discard the request's connection if `exc` made it stale; whether to run again.

        Only an error path: the happy path costs a request one `try`.
        """
        cursor: psycopg.Cursor[Any] | None = g.get("db_cursor")
        if cursor is None or cursor is self._bound:
            return False
        lost = pool.lost(cursor.connection)
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

    def _thread_connection(self, watch: Watch) -> KeptConnection:
        held = self._threads.held
        if held is not None and not held.usable():
            self._discard_thread_connection()
            held = None
        if held is None:
            _ = self.engine  # created on first use
            assert self._pool_engine is not None
            watch.connection = None  # until connected (see _watch_new_connection)
            try:
                held = self._threads.held = KeptConnection(self._pool_engine)
            except OperationalError as exc:
                watch.connection = None  # the pool has closed it
                if isinstance(exc.orig, psycopg.errors.ConnectionTimeout):
                    # Accepted, never answered (a frozen server): as bad as a deadline.
                    self.breaker.trip(writing=False)
                raise
        return held

    def connection_broken(self) -> bool:
        """Whether this request's connection broke (the server went away mid-request)."""
        cursor: psycopg.Cursor[Any] | None = g.get("db_cursor")
        return g.get("db_connection_lost", False) or (
            cursor is not None and pool.lost(cursor.connection)
        )

    def bind_to(self, connection: psycopg.Connection[Any]) -> None:
        """Run every request on `connection`, which is in a transaction (tests roll it back
        after). Each request runs in a savepoint, so a statement that fails undoes only its
        own request's work, as it would in autocommit, and the test goes on."""
        self._bound = binary_cursor(connection)  # as the service's own

    def init_app(self, app: Flask) -> None:
        app.extensions["db"] = self

        @app.teardown_appcontext
        def end_of_request(_exc: BaseException | None) -> None:
            cursor: psycopg.Cursor[Any] | None = g.pop("db_cursor", None)
            if cursor is None:
                # It never used the database (one attribute read, then), or its connection
                # failed, its deadline still armed.
                if self._threads.watch.deadline:
                    self._disarm()
                return
            connection = cursor.connection
            if cursor is self._bound:
                if connection.info.transaction_status == TransactionStatus.INERROR:
                    cursor.execute("ROLLBACK TO SAVEPOINT request")
                cursor.execute("RELEASE SAVEPOINT request")
                return
            watch = self._threads.watch
            watch.deadline = 0.0  # first, then `expired`: see Watchdog._expire
            if watch.expired:
                self._after_expiry(watch, self._discard_thread_connection)
                return
            if pool.lost(connection):
                self._discard_thread_connection()  # the server went away
            elif connection.info.transaction_status != TransactionStatus.IDLE:
                # Nothing in the API leaves a transaction open (autocommit, or a closed
                # `connection.transaction()` block). If something did, its work would be
                # lost with the connection, silently: say so loudly and start clean.
                log.error("a request left a database transaction open; it was rolled back")
                self._discard_thread_connection()

    def _stop_keeping(self) -> KeptConnection | None:
        """This thread's connection, which it no longer keeps: the caller returns it."""
        held, self._threads.held = self._threads.held, None
        return held

    def _discard_thread_connection(self) -> None:
        if (held := self._stop_keeping()) is not None:
            watch = self._threads.watch
            with self.watchdog.lock:  # never while the watchdog uses its socket
                if watch.connection is held.connection:
                    watch.connection = None
                held.discard()

    def _disarm(self) -> None:
        watch = self._threads.watch
        watch.deadline = 0.0
        if watch.expired:
            self._after_expiry(watch, self._discard_thread_connection)

    def _after_expiry(self, watch: Watch, discard: Callable[[], None]) -> None:
        """The watchdog abandoned this request's connection: wait until it is done with
        the socket, then discard the connection (it may be half-way through a reply)."""
        with self.watchdog.lock:
            watch.expired = False
            watch.aborted = None
        discard()

    def _expired(self, watch: Watch, writing: bool) -> None:
        """The watchdog's: a wait reached its deadline. Writes fail fast from now on; a
        read that waited that long says the server is not answering: reads too. A
        probe's failing changes nothing more."""
        if watch.probing:
            return
        self.on_deadline("write" if writing else "read")
        self.breaker.trip(writing=writing)

    def _breaker_changed(self, side: str, open_: bool) -> None:
        self.on_breaker(side, open_)

    def _unanswered(self, watch: Watch) -> None:
        """The watchdog's: the server did not reply to the cancel either. A write was not
        just waiting for its standby: reads fail fast too."""
        if not watch.probing:
            self.breaker.trip(writing=False)

    def _make_engine(self, *, pooled: bool) -> Engine:
        # The listeners hold the thread state weakly: a thread's kept connection (and its
        # pool, and these listeners) hangs from the thread itself, and a strong reference
        # back would keep the state, and that connection, alive for good once the app is
        # dropped (tests build many).
        threads = weakref.ref(self._threads)

        def remaining() -> float:
            state = threads()
            return state.watch.remaining() if state is not None else 0.0

        engine = pool.make_engine(self.settings, pooled=pooled, connect_within=remaining)
        # First of all: the statements a new connection runs (SQLAlchemy's first look at
        # the server, the session settings) are under the connecting thread's deadline.
        for moment in ("first_connect", "connect"):
            event.listen(engine, moment, weakly(self._threads.watch_new_connection), insert=True)
        event.listen(engine, "connect", weakly(self._threads.hear_notices))
        return engine

    def _probe(self, writing: bool) -> None:
        """The breaker's probe (its own thread): return if the database answers, and
        confirms a commit if `writing`; raise otherwise. Under a deadline, on a
        connection of its own, closed after."""
        if self._probe_engine is None:
            self._probe_engine = self._make_engine(pooled=False)
        watch = self._threads.watch
        watch.probing, watch.writing, watch.unconfirmed = True, writing, False
        watch.arm(self._deadline_seconds)
        self.watchdog.ensure_running()
        try:
            pooled = self._probe_engine.raw_connection()
            connection: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
            answered = False
            try:
                watch.connection = connection
                connection.execute(PROBE_SQL[writing])
                answered = not (watch.expired or watch.unconfirmed)
            finally:
                with self.watchdog.lock:
                    watch.connection = None
                    # A broken one is dropped without the pool's rollback (it would fail).
                    (pooled.close if answered else pooled.invalidate)()
            if not answered:
                raise DeadlineExceededError("the probe did not complete in time")
        finally:
            watch.deadline = 0.0
            watch.expired, watch.aborted = False, None

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

        self.watchdog.ensure_running()
        timeout_ms = self.settings.db_statement_timeout_ms

        def connect() -> None:
            try:
                with self.engine.connect() as connection:
                    session_settings.ensure_role_defaults(connection, timeout_ms)
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
        self.breaker.forget_after_fork()


def first_line(exc: BaseException) -> str:
    """What went wrong, in one line: the driver's message (it never holds the password)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def get_db(app: Flask) -> Database:
    db: Database = app.extensions["db"]
    return db
