"""A circuit breaker per worker process: once the database kept a request past its
deadline, requests that need it fail fast with 503 until a cheap probe shows it is back.

Without it every request would spend a whole DB_DEADLINE_MS waiting, and requests queued
behind it longer still (a sync worker serves one at a time). Two sides, because a
database can be half broken:
- reads: the server does not answer at all (frozen, its node lost). Every request that
  needs the database fails fast, and /readyz says so.
- writes: commits are not confirmed (the synchronous standby is gone; PostgreSQL commits
  locally and waits). Writes fail fast; reads keep flowing, from the same primary. A
  write that reached its deadline opens only this side.
While a side is open, one probe thread per process checks every PROBE_INTERVAL_SECONDS,
under its own deadline, on a connection of its own (not one the serving threads need):
reads with `SELECT 1` (a connection made and a statement answered), writes with
`SELECT pg_logical_emit_message(true, ...)` in autocommit: a transaction that writes WAL
and touches no table, so its commit waits for the synchronous standby exactly as a
write's does (any role may call it; logical decoding consumers ignore an unknown prefix).
The side closes when its probe succeeds; requests never wait for a probe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

PROBE_INTERVAL_SECONDS = 0.5
READS, WRITES = "reads", "writes"  # the sides, as the metrics label them


class Breaker:
    def __init__(
        self,
        probe: Callable[[bool], None],
        on_change: Callable[[str, bool], None] = lambda side, open_: None,
    ) -> None:
        """`probe(writing)` returns if the database answers (commits, if `writing`) and
        raises otherwise; `on_change(side, open)` hears every opening and closing."""
        self.reads_open = False  # read straight from the request path: plain attributes
        self.writes_open = False
        self._probe = probe
        self._on_change = on_change
        self._lock = threading.Lock()
        self._prober: threading.Thread | None = None

    def trip(self, writing: bool) -> None:
        """A request reached its deadline: open the writes side, and for a read both."""
        opened = []
        with self._lock:
            if not self.writes_open:
                self.writes_open = True
                opened.append(WRITES)
            if not writing and not self.reads_open:
                self.reads_open = True
                opened.append(READS)
            if self._prober is None:
                self._prober = threading.Thread(target=self._probe_until_closed,
                                                name="db-probe", daemon=True)  # fmt: skip
                self._prober.start()
        for side in opened:
            log.warning("database %s fail fast from now on, until a probe succeeds", side)
            self._on_change(side, True)

    def forget_after_fork(self) -> None:
        """A forked worker has no probe thread: its breaker starts closed and idle."""
        self.reads_open = self.writes_open = False
        self._prober = None
        self._lock = threading.Lock()

    def _probe_until_closed(self) -> None:
        failed = True
        while True:
            if failed:
                time.sleep(PROBE_INTERVAL_SECONDS)
            with self._lock:
                if not (self.reads_open or self.writes_open):
                    self._prober = None
                    return
                writing = not self.reads_open  # the server must answer before it can commit
            try:
                self._probe(writing)
            except Exception as exc:  # noqa: BLE001 - a failed probe only keeps the side open
                log.debug("database probe (%s) failed: %s", WRITES if writing else READS, exc)
                failed = True
                continue
            failed = False  # the other side, if open, is probed at once
            side = WRITES if writing else READS
            with self._lock:
                if writing:
                    self.writes_open = False
                else:
                    self.reads_open = False
            log.warning("database %s answer again: requests go through", side)
            self._on_change(side, False)
