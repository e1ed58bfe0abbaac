"""The second half of deleting a tag with many links: its links and its name off every
item, in bounded batches, then the row.

DELETE /tags/{id} marks the tag deleted at once (service/store/tags.py: from then on no
statement of the API finds it) and, if its links are more than one batch, answers 202
and leaves the rest here. One sweeper works at a time, whichever process holds the
advisory lock SWEEP_LOCK_KEY; all it needs is in the database (the marked tags and their
remaining links), so a sweeper killed half-way loses at most its open batch, and the
next one (any worker's next round, or `python -m service sweep-tags`) resumes there.
Each batch is one transaction of at most TAG_DELETE_BATCH links: on a loaded 2-core host,
10,000 links took 2.4 s at worst (docs/performance.md), under DB_STATEMENT_TIMEOUT_MS.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

import psycopg
from sqlalchemy import Engine

from service.config import Settings
from service.store import pool
from service.store.tags import DROP_SWEPT, SWEEP_BATCH

log = logging.getLogger(__name__)

SWEEP_LOCK_KEY = 0x7461675F7377  # "tag_sw" in ASCII: no other lock uses it
_NEXT = "SELECT id, name FROM tags WHERE deleted_at IS NOT NULL ORDER BY deleted_at, id LIMIT 1"


def sweep(connection: psycopg.Connection[Any], *, batch: int) -> int | None:
    """Finish every tag marked deleted, oldest first, `batch` links per transaction; the
    number finished, or None if another sweeper holds the lock. `connection` is in
    autocommit (each batch is its own transaction)."""
    with connection.cursor() as cursor:
        (locked,) = cursor.execute(
            "SELECT pg_try_advisory_lock(%s)", (SWEEP_LOCK_KEY,)
        ).fetchone() or (False,)
        if not locked:
            return None
        try:
            finished = 0
            while (tag := cursor.execute(_NEXT).fetchone()) is not None:
                params = {"id": tag[0], "name": tag[1], "batch": batch}
                found = batch
                while found >= batch:
                    with connection.transaction():
                        (found,) = cursor.execute(SWEEP_BATCH, params).fetchone() or (0,)
                with connection.transaction():
                    dropped = cursor.execute(DROP_SWEPT, params).rowcount
                if dropped:  # else a link came in after the last batch: _NEXT finds it again
                    finished += 1
                    log.info("deleted tag %d: its links and name are gone", tag[0])
            return finished
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", (SWEEP_LOCK_KEY,))


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
