"""The watchdog (service/store/deadline.py) on a real connection: a wait past its
deadline is cancelled, and if the server does not reply the socket is shut down from
our side, so the wait always ends."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from service.store.deadline import Watch, Watchdog
from tools.localpg import LocalPostgres

BUDGET, GRACE = 0.5, 0.3
SLEEP = 30  # what the statements would last without the watchdog


class Ends:
    """What the watchdog reported: `expired` (writing?) and `unanswered` watches."""

    def __init__(self) -> None:
        self.expired: list[bool] = []
        self.unanswered: list[Watch] = []


@pytest.fixture
def watched(lone_server: LocalPostgres) -> Iterator[tuple[psycopg.Connection[Any], Watch, Ends]]:
    ends = Ends()
    dog = Watchdog(lambda _w, writing: ends.expired.append(writing), ends.unanswered.append,
                   GRACE)  # fmt: skip
    watch = dog.watch(BUDGET)
    dog.ensure_running()
    with psycopg.connect(lone_server.url(), autocommit=True) as connection:
        watch.connection = connection
        yield connection, watch, ends


def test_a_wait_past_its_deadline_is_cancelled_and_the_connection_kept(
    watched: tuple[psycopg.Connection[Any], Watch, Ends],
) -> None:
    connection, watch, ends = watched
    watch.arm(BUDGET)
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        connection.execute(f"SELECT pg_sleep({SLEEP})")
    took = time.monotonic() - started
    watch.deadline = 0.0
    assert took < SLEEP / 2, took  # ended by the cancel, not by the statement
    assert ends.expired == [False] and ends.unanswered == []  # the server replied
    assert watch.expired
    assert connection.execute("SELECT 1").fetchone() == (1,)  # the socket was left alone


def test_a_backend_that_never_replies_has_its_socket_shut_down(
    watched: tuple[psycopg.Connection[Any], Watch, Ends],
) -> None:
    """The backend stopped (SIGSTOP): its postmaster takes the cancel request and signals
    it, but the backend never acts on it, and TCP sees nothing wrong."""
    connection, watch, ends = watched
    backend = connection.info.backend_pid
    os.kill(backend, signal.SIGSTOP)
    try:
        watch.arm(BUDGET)
        watch.writing = True
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            connection.execute("SELECT 1")
        took = time.monotonic() - started
    finally:
        os.kill(backend, signal.SIGCONT)
    watch.deadline = 0.0
    assert took < SLEEP / 2, took
    assert ends.expired == [True] and ends.unanswered == [watch]
    assert connection.broken or connection.closed
