"""No request waits on the database past DB_DEADLINE_MS, whatever the database does.

PostgreSQL's statement timeout ends a slow statement cheaply (the connection stays), but
some waits are beyond it:
- a COMMIT waiting for a synchronous standby that is gone: the timeout is disarmed
  before COMMIT, so the wait lasts until the standby is back;
- a server that stops answering (frozen, or its node lost without a reset): its kernel,
  or a proxy's, still ACKs, so TCP keepalives and `tcp_user_timeout` never fire, and a
  cancel request reaches the postmaster but the frozen backend never acts on it.
psycopg's synchronous `execute` then sits in its poll loop for as long as that lasts,
until gunicorn kills the worker (SIGKILL at GUNICORN_TIMEOUT) with its request unanswered.

So each worker process has one watchdog thread and a registry of `Watch`es, one per
serving thread. A request arms its thread's watch at its first database call (deadline,
connection) and disarms it at its end: attribute writes, no lock, no system call. The
watchdog sleeps until the earliest deadline it knows of (when all is well it wakes once
per DB_DEADLINE_MS and finds nothing to do), so the hot path pays nothing measurable
(docs/performance.md). When a wait outlasts its budget, the watchdog
1. marks the watch expired, and sends PostgreSQL a cancel request: a backend waiting for
   a standby stops waiting and replies at once (success, with the WARNING that
   service/store/commits.py turns into `commit_unconfirmed`);
2. gives the reply ABORT_GRACE_SECONDS, then, if none came (a server that does not
   answer), shuts the connection's socket down: the serving thread's poll returns at
   once and psycopg reports the connection lost. This always ends: shutdown(2) on our
   own socket needs nothing from the server, the network or libpq;
3. tells `on_expired` whether the server replied, which decides what the worker's circuit
   breaker opens (service/store/breaker.py): a write on a server that replied, only the
   writes side (a lost standby); otherwise both.
The serving thread answers 503 and discards the connection. The budget ends a margin
before DB_DEADLINE_MS, so the answer, and those of requests queued behind it, leave
within DB_DEADLINE_MS as the client counts it.

The one lock orders every use of an expired request's connection by the watchdog (its
cancel key, its state, its socket) before any close of that connection, so the watchdog
never touches a freed connection or a descriptor the kernel has handed to another
socket: a serving thread takes it (only on error paths) before it closes a connection
it has armed a watch with.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, ParamSpec

import psycopg
from psycopg import pq

log = logging.getLogger(__name__)
P = ParamSpec("P")

# Of DB_DEADLINE_MS, what is kept back from the wait (half the time between the statement
# timeout and the deadline, at most MARGIN_SECONDS): the grace for the server's reply to
# the cancel, then time to answer, and to answer the requests queued behind.
MARGIN_SECONDS = 1.0
GRACE_SECONDS = 0.3
POLL_SECONDS = 0.005  # how often the grace checks whether the statement has returned


def wait_budget(deadline_ms: int, statement_timeout_ms: int) -> float:
    """Seconds a request may wait on the database, from its first database call."""
    return (deadline_ms - margin_ms(deadline_ms, statement_timeout_ms)) / 1000


def abort_grace(deadline_ms: int, statement_timeout_ms: int) -> float:
    """Seconds the server gets to reply to the cancel before the socket is shut down."""
    return min(GRACE_SECONDS, margin_ms(deadline_ms, statement_timeout_ms) / 2000)


def margin_ms(deadline_ms: int, statement_timeout_ms: int) -> float:
    # The wait still outlasts the statement timeout, which ends slow statements cheaper.
    room = deadline_ms - statement_timeout_ms if statement_timeout_ms else deadline_ms / 2
    return min(MARGIN_SECONDS * 1000, room / 2)


class Watch:
    """One serving thread's entry in the registry."""

    __slots__ = (
        "__weakref__", "aborted", "connection", "deadline", "expired", "probing",
        "unconfirmed", "writing",
    )  # fmt: skip

    def __init__(self) -> None:
        self.deadline = 0.0  # time.monotonic() by which the wait must end; 0: idle
        self.connection: psycopg.Connection[Any] | None = None  # what it is waiting on
        self.writing = False  # a write in progress: a lost standby opens only the writes side
        self.expired = False  # set by the watchdog; the serving thread answers 503
        self.aborted: psycopg.Connection[Any] | None = None  # the connection it dealt with
        self.unconfirmed = False  # the write's commit was not confirmed (service/store/commits.py)
        self.probing = False  # the circuit breaker's probe thread, not a request

    def arm(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic() if self.deadline else 0.0


class Watchdog:
    """Ends every armed watch's database wait at its deadline (see the module docstring)."""

    def __init__(
        self,
        on_expired: Callable[[Watch, bool], None],
        on_unanswered: Callable[[Watch], None],
        grace_seconds: float,
    ) -> None:
        """`on_expired(watch, writing)`: a write's or a read's wait passed its deadline (the
        cancel is about to be sent); `on_unanswered(watch)`: the server did not reply to
        it (the socket is about to be shut down). Both before the serving thread can go
        on, so the circuit breaker is open before it takes its next request."""
        self.on_expired = on_expired
        self.on_unanswered = on_unanswered
        self.grace_seconds = grace_seconds
        self.lock = threading.Lock()
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle_seconds = 60.0
        # A forked worker inherits the object but not the thread: it starts its own. Weakly:
        # neither the hook nor the thread keeps a dropped watchdog (its app, in tests) alive.
        os.register_at_fork(after_in_child=weakly(self._forget_thread))

    def watch(self, budget_seconds: float) -> Watch:
        """A new serving thread's watch (the thread keeps it; dropped when it ends)."""
        watch = Watch()
        with self.lock:
            self._watches.add(watch)
            # Every deadline is at least this far away when armed: sleeping this long
            # when nothing is armed never oversleeps one armed meanwhile.
            self._idle_seconds = min(self._idle_seconds, budget_seconds)
        return watch

    def ensure_running(self) -> None:
        """Started by the first request of each worker (never in gunicorn's master, whose
        forks would not inherit it)."""
        if self._thread is None:
            with self.lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=_watch_over, args=(weakref.ref(self), self._wake),
                        name="db-watchdog", daemon=True,
                    )  # fmt: skip
                    self._thread.start()

    def _forget_thread(self) -> None:
        self._thread = None
        self.lock = threading.Lock()  # the parent's may have been held at fork

    def check(self) -> float:
        """End the waits past their deadline; the seconds until the next deadline."""
        now = time.monotonic()
        wake_at = now + self._idle_seconds
        with self.lock:
            watches = list(self._watches)
        for watch in watches:
            deadline = watch.deadline
            if not deadline:
                continue
            if deadline > now:
                wake_at = min(wake_at, deadline)
            elif watch.connection is not watch.aborted or not watch.expired:
                self._expire(watch, now)
        return max(POLL_SECONDS, wake_at - time.monotonic())

    def _expire(self, watch: Watch, now: float) -> None:
        with self.lock:
            first = not watch.expired
            watch.expired = True  # before the check below: see Database's end of request
            deadline = watch.deadline
            if not deadline or deadline > now:  # the request ended meanwhile
                watch.expired = not first
                return
            connection, writing = watch.connection, watch.writing
            watch.aborted = connection
            cancel = None
            if connection is not None and not connection.closed:
                cancel = _prepare_cancel(connection)
        if first:
            if not watch.probing:
                log.warning("a request waited on the database past DB_DEADLINE_MS (%s): "
                            "cancelling it", "writing" if writing else "reading")  # fmt: skip
            self.on_expired(watch, writing)
        # The grace must not hold up other threads' deadlines: one short thread per end.
        threading.Thread(
            target=self._abort, args=(watch, deadline, connection, cancel),
            name="db-abort", daemon=True,
        ).start()  # fmt: skip

    def _abort(
        self,
        watch: Watch,
        deadline: float,
        connection: psycopg.Connection[Any] | None,
        cancel: Callable[[float], None] | None,
    ) -> None:
        give_up = time.monotonic() + self.grace_seconds
        if cancel is not None:
            cancel(self.grace_seconds)
        while connection is not None:
            with self.lock:
                if watch.deadline != deadline:
                    return  # answered, and on to the next request
                if connection.pgconn.transaction_status != pq.TransactionStatus.ACTIVE:
                    return  # the statement returned: the request is being answered
                if time.monotonic() >= give_up:  # no reply: end the wait from our side
                    if not watch.probing:
                        log.warning("the database did not reply to the cancel: the "
                                    "request's connection is abandoned")  # fmt: skip
                    self.on_unanswered(watch)
                    _shut_down(connection)
                    return
            time.sleep(POLL_SECONDS)


def weakly(method: Callable[P, None]) -> Callable[P, None]:
    """`method`, called only while its object lives: a callback that keeps nothing alive."""
    ref = weakref.WeakMethod(method)

    def call(*args: P.args, **kwargs: P.kwargs) -> None:
        if (bound := ref()) is not None:
            bound(*args, **kwargs)

    return call


def _watch_over(watchdog: weakref.ref[Watchdog], wake: threading.Event) -> None:
    """The watchdog thread: sleeps until the earliest deadline; ends with its watchdog."""
    while (dog := watchdog()) is not None:
        seconds = dog.check()
        del dog
        wake.wait(seconds)


def _shut_down(connection: psycopg.Connection[Any]) -> None:
    """End every wait on the connection's socket now (the descriptor stays ours: the
    serving thread closes it, under the lock, when it discards the connection)."""
    try:
        sock = socket.socket(fileno=connection.pgconn.socket)
    except (OSError, psycopg.Error):
        return  # already closed
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


def _prepare_cancel(connection: psycopg.Connection[Any]) -> Callable[[float], None] | None:
    """A cancel request for the connection's backend, to send within a time limit. Built
    under the lock (it copies the connection's address and key), sent after."""
    pgconn = connection.pgconn
    try:
        if psycopg.capabilities.has_cancel_safe():
            cancel_conn = pgconn.cancel_conn()  # libpq >= 17: non-blocking, so bounded
            return lambda seconds: _send_cancel(cancel_conn, seconds)
        blocking = pgconn.get_cancel()  # older libpq: PQcancel blocks, so off this thread
    except psycopg.Error:
        return None
    return lambda _seconds: threading.Thread(target=blocking.cancel, daemon=True).start()


def _send_cancel(cancel_conn: pq.abc.PGcancelConn, seconds: float) -> None:
    give_up = time.monotonic() + seconds
    try:
        cancel_conn.start()
        while (status := cancel_conn.poll()) in (pq.PollingStatus.READING,
                                                  pq.PollingStatus.WRITING):  # fmt: skip
            left = give_up - time.monotonic()
            if left <= 0:
                return  # a frozen postmaster: the socket is shut down next
            reading = status == pq.PollingStatus.READING
            fd = cancel_conn.socket
            select.select([fd] if reading else [], [] if reading else [fd], [], left)
        if status == pq.PollingStatus.FAILED:
            log.info("cancel request failed: %s", cancel_conn.get_error_message())
    except (OSError, psycopg.Error) as exc:
        log.info("cancel request failed: %s", exc)
    finally:
        cancel_conn.finish()
