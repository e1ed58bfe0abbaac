"""The second half of deleting a tag with many links: its links and its name off every
item, in bounded batches, then the row.

DELETE /tags/{id} marks the tag deleted at once (service/store/tags.py: from then on no
statement of the API finds it) and, if its links are more than one batch, answers 202
and leaves the rest here. One sweeper's transaction runs at a time: each first takes the
advisory lock SWEEP_LOCK_KEY for itself (`pg_try_advisory_xact_lock`), and a sweeper
that finds it taken stops (two whose transactions never overlap may take turns: each
batch locks its rows, and a link already gone is skipped). Transaction-level, because
the service reaches PostgreSQL through a transaction pooler in production
(CloudNativePG's Pooler), which runs each transaction on one server session but may run
a session-level lock and its unlock on two, leaving the lock held by a session nobody
owns. All a sweeper needs is in
the database (the marked tags and their remaining links), so one killed half-way loses
at most its open batch, and the next (any worker's next round, or `python -m service
sweep-tags`) resumes there. Each batch is one transaction of at most TAG_DELETE_BATCH
links: on a loaded 2-core host, 10,000 scattered links took 3.4 s at worst
(docs/performance.md), under DB_STATEMENT_TIMEOUT_MS.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
from sqlalchemy import Engine

from service.config import Settings
from service.store import pool
from service.store.tags import SWEEP_BATCH, drop_swept

log = logging.getLogger(__name__)

SWEEP_LOCK_KEY = 0x7461675F7377  # "tag_sw" in ASCII: no other lock uses it
_NEXT = "SELECT id, name FROM tags WHERE deleted_at IS NOT NULL ORDER BY deleted_at, id LIMIT 1"
_TAKE_LOCK = "SELECT pg_try_advisory_xact_lock(%s)"


@contextlib.contextmanager
def _as_the_sweeper(
    connection: psycopg.Connection[Any], cursor: psycopg.Cursor[Any]
) -> Iterator[bool]:
    """A transaction that holds the sweeper's lock: True, or False if another sweeper's
    transaction holds it."""
    with connection.transaction():
        (locked,) = cursor.execute(_TAKE_LOCK, (SWEEP_LOCK_KEY,)).fetchone() or (False,)
        yield bool(locked)


def sweep(connection: psycopg.Connection[Any], *, batch: int) -> int | None:
    """Finish every tag marked deleted, oldest first, `batch` links per transaction; the
    number finished, or None if another sweeper held the lock before any was. `connection`
    is in autocommit (each batch is its own transaction)."""
    finished = 0
    with connection.cursor() as cursor:
        while True:
            with _as_the_sweeper(connection, cursor) as mine:
                if not mine:
                    return finished or None
                tag = cursor.execute(_NEXT).fetchone()
            if tag is None:
                return finished
            params = {"id": tag[0], "name": tag[1], "batch": batch}
            found = batch
            while found >= batch:
                with _as_the_sweeper(connection, cursor) as mine:
                    if not mine:
                        return finished or None
                    (found,) = cursor.execute(SWEEP_BATCH, params).fetchone() or (0,)
            with _as_the_sweeper(connection, cursor) as mine:
                if not mine:
                    return finished or None
                dropped = drop_swept(cursor, params)
            if dropped:
                finished += 1
                log.info("deleted tag %d: its links and name are gone", tag[0])
            else:  # _NEXT finds it again
                log.info("tag %d was linked by a write that found it live: sweeping again", tag[0])


class Sweeper:
    """A worker's sweeper thread: it sweeps every TAG_SWEEP_INTERVAL_S seconds, and at once
    when this worker answered a DELETE with 202 (`wake`). Its connection is its own, not
    one of the requests' pool, opened for a round and closed after it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._wake = threading.Event()
        self._engine: Engine | None = None

    def start(self) -> None:
        if self.settings.tag_sweep_interval_s > 0:
            threading.Thread(target=self._run, name="tag-sweeper", daemon=True).start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        self._wake.set()  # a first round at start: resume what a killed sweeper left
        while True:
            self._wake.wait(self.settings.tag_sweep_interval_s)
            self._wake.clear()
            try:
                self.round()
            except Exception:  # logged; the next round tries again
                log.exception(
                    "tag sweep failed; retrying in %s s", self.settings.tag_sweep_interval_s
                )

    def round(self) -> int | None:
        if self._engine is None:
            one = replace(self.settings, db_pool_size=1, db_max_overflow=0)
            self._engine = pool.make_engine(one)
        try:
            with self._engine.connect() as connection:
                driver = connection.connection.driver_connection
                assert driver is not None
                return sweep(driver, batch=self.settings.tag_delete_batch)
        finally:
            self._engine.dispose()  # no connection held between rounds
