"""Which database errors mean a connection must not be used again, and which may be retried.

A worker thread keeps its connection between requests (service/store/database.py). Some
errors leave that connection open and idle, so nothing else would discard it, yet every
later statement on it fails the same way: the kept connection must go, and the request
may run once more on a fresh one.
"""

from __future__ import annotations

import psycopg

# The connection is stale: the next statement on it would fail again.
STALE_SQLSTATES = frozenset(
    {
        "0A000",  # cached plan must not change result type: a column's type changed
        "26000",  # prepared statement does not exist: PgBouncer moved us to another server
        "25006",  # read-only transaction: this server was demoted by a failover
        "57P01",  # admin_shutdown: the server (or an admin) terminated this session
        "57P02",  # crash_shutdown: another backend crashed, the server is resetting
        "57P03",  # cannot_connect_now: the server is starting or shutting down
    }
)
# Of those, the errors the server gives when it refuses a statement before running it:
# the statement (autocommit, so its whole transaction) wrote nothing, so a write may be
# retried as safely as a read. After the others, a write may or may not have committed.
REFUSED_BEFORE_RUNNING = frozenset({"0A000", "26000", "25006"})


def stale(exc: psycopg.Error) -> bool:
    return exc.sqlstate in STALE_SQLSTATES


def nothing_written(exc: psycopg.Error) -> bool:
    return exc.sqlstate in REFUSED_BEFORE_RUNNING
