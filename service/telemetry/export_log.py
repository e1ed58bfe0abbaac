"""The OTLP exporter's own log lines, at most one of a kind per minute per worker.

With the collector down (dev's values point at a local Tempo that `make monitoring` may
not have started; a collector being redeployed), every batch logs its retries as
warnings and its failure as an error: per worker, a line every second or so, for as long
as the collector is away. The first of a kind is logged; the next ones within the window
are counted, and the first after it says how many were not logged. The spans themselves
are counted in `tracing_spans_dropped_total` (service/telemetry/span_drops.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

# The logger the OTLP/HTTP span exporter and its HTTP client write to.
EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
WINDOW_SECONDS = 60.0


class OncePerWindow(logging.Filter):
    """Lets a record through when no record of its level and message template passed in
    the last `window` seconds; counts the others and adds their number to the next one
    that passes."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._passed: dict[tuple[int, str], float] = {}
        self._held: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()  # the exporter thread and a stopping worker's

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.levelno, str(record.msg))
        now = self.clock()
        with self._lock:
            last = self._passed.get(kind)
            if last is not None and now - last < self.window:
                self._held[kind] = self._held.get(kind, 0) + 1
                return False
            self._passed[kind] = now
            held = self._held.pop(kind, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like it held back since the last one)"
        return True


def limit_exporter_logs(window: float = WINDOW_SECONDS) -> None:
    """Install the filter on the exporter's logger, once per process."""
    logger = logging.getLogger(EXPORTER_LOGGER)
    if not any(isinstance(f, OncePerWindow) for f in logger.filters):
        logger.addFilter(OncePerWindow(window))
