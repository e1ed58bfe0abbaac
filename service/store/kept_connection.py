"""The connection a worker thread keeps between requests, and its one cursor.

A worker thread keeps its connection between requests. It serves one request at a time,
so giving the connection back to the pool after each request only to borrow it again
before the next bought nothing, and the pool's checkout and return (locks, events, reset)
cost 15% of a GET's CPU. So a thread takes one connection from the pool and keeps it,
with one cursor on it (psycopg caches per cursor how to convert each parameter and column
type: a new cursor per statement rebuilt that cache every time). The connection is
discarded, and the next request takes a new one from the pool, when:
- the server hung up, checked before each request that uses it, as the pool checks a
  connection on checkout (service/store/pool.py): after a database restart no request gets a
  dead connection;
- it broke during a request, or a request left a transaction open;
- its request waited on it past DB_DEADLINE_MS (service/store/deadline.py): it may be
  half-way through a reply;
- it was opened more than RECYCLE_SECONDS ago, the pool's recycle age;
- a statement failed in a way that makes it stale (a column's type changed under its
  prepared statements, a failover made its server read-only: service/store/stale.py).
  The API runs its queries through `read()` and `write()`, which then run the query once
  more on a fresh connection when that cannot write twice, so clients see no error.
It goes back to the pool when the thread borrows through `Database.connect()` (/readyz),
so that a pool of one connection per thread (the default) can lend it.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any, cast

import psycopg
from psycopg.errors import Diagnostic
from psycopg.rows import tuple_row
from sqlalchemy import Engine

from service.store import commits, pool
from service.store.deadline import Watchdog, weakly


class KeptConnection:
    """The connection a worker thread took from the pool, and its one cursor."""

    def __init__(self, engine: Engine) -> None:
        self.pooled = engine.raw_connection()
        self.connection = cast("psycopg.Connection[Any]", self.pooled.driver_connection)
        self.cursor = binary_cursor(self.connection)
        self.opened_at: float = self.pooled.info.get(pool.OPENED_AT, time.monotonic())
        # Back to the pool when called, or when the thread ends (its thread-local storage
        # goes, and this with it): the Flask dev server runs each request on a new thread.
        self.give_back = weakref.finalize(self, self.pooled.close)
        self.give_back.atexit = False  # an exiting process closes its sockets anyway

    def usable(self) -> bool:
        """Neither gone (see `pool.hung_up`) nor due for recycling."""
        return (
            not pool.gone(self.connection)
            and time.monotonic() - self.opened_at < pool.RECYCLE_SECONDS
        )

    def request_cursor(self) -> psycopg.Cursor[Any]:
        """The kept cursor, or a new one if the last request closed it or changed how it
        makes rows (`with db.cursor() as cursor:` closes it on the way out)."""
        if self.cursor.closed or self.cursor.row_factory is not tuple_row:
            self.cursor = binary_cursor(self.connection)
        return self.cursor

    def discard(self) -> None:
        self.give_back.detach()
        self.pooled.invalidate()  # the pool closes it and opens another when asked


def binary_cursor(connection: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
    """A cursor whose results come in PostgreSQL's binary format: the same Python values,
    cheaper at both ends. The server sends a timestamp's microseconds instead of writing
    them out as text, and psycopg reads them without parsing: a page of 20 items costs
    ~6 us less client CPU and ~3 us less server CPU (docs/performance.md). psycopg then
    sends every statement by the extended protocol, parameters or not: one statement per
    execute (no "A; B" strings), which is all the service runs on it."""
    return connection.cursor(binary=True)


class ThreadState(threading.local):
    """Per thread: the connection it keeps, and its entry in the deadline watchdog."""

    held: KeptConnection | None = None  # the connection this thread keeps, once it has taken one

    def __init__(self, watchdog: Watchdog, deadline_seconds: float) -> None:
        # threading.local runs this in each thread, on its first use of the object.
        self.watch = watchdog.watch(deadline_seconds)

    def watch_new_connection(self, dbapi_connection: psycopg.Connection[Any], _: Any) -> None:
        """A pool listener: what this thread now waits on is the connection it opens."""
        self.watch.connection = dbapi_connection

    def hear_notices(self, dbapi_connection: psycopg.Connection[Any], _: Any) -> None:
        """A pool listener: every new connection's notices go to `notice` (held weakly:
        the connection must not keep this state alive)."""
        dbapi_connection.add_notice_handler(weakly(self.notice))

    def notice(self, diag: Diagnostic) -> None:
        """Runs in the thread whose statement got the notice, during that statement."""
        if commits.unconfirmed_by_standby(diag):
            self.watch.unconfirmed = True
