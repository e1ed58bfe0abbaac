"""Request metrics counted in process memory and written to Prometheus values in batches.

Why: in multiprocess mode one prometheus_client observation takes the process-wide
metrics lock, checks the pid and writes into an mmap'd file, and a request makes three
(the counter, the histogram's sum and one bucket): ~7 us, a tenth of the CPU of the
cheapest request, /livez (docs/performance.md, change 15). Counting in a dict under our
own lock costs ~1 us; the values are then written once per label set per flush, not
three times per request.

The price, and why it is paid safely:
- /metrics flushes the worker that answers it first, so a single process (the dev
  server, tests) always shows every request it answered.
- Another gunicorn worker's requests reach /metrics at most FLUSH_SECONDS late: each
  worker flushes from a background thread. Prometheus scrapes every 15-60 s.
- A worker that exits flushes in gunicorn's worker_exit hook (recycled by max_requests,
  stopped, or killed by the timeout, which gunicorn does with SIGABRT). SIGKILL cannot be
  caught: the kernel's OOM killer, or gunicorn when a worker outlives the graceful
  timeout at shutdown or ignores SIGABRT. A worker killed so loses the requests it
  answered in its last FLUSH_SECONDS (a worker the timeout kills has been stuck for
  GUNICORN_TIMEOUT seconds, so its earlier requests were flushed while it was).
- A flush that fails (a full disk) keeps the tallies it had not started on for the next.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0

Key = tuple[str, str, str]  # method, route template, status code
# (labels, bucket index) -> (trace id, seconds, Unix time): service/telemetry/exemplars.py
Exemplars = dict[tuple[Key, int], tuple[str, float, float]]


class RequestMetricsBuffer:
    """Counts requests into a counter and a latency histogram that share their labels.

    Each label set has one tally: [sum of seconds, count per bucket..., count above the
    last bucket]; the number of requests is the sum of the bucket counts. A request that
    comes with a sampled trace id leaves it as its bucket's exemplar, handed to
    `exemplar_sink` at the next flush.
    """

    def __init__(self, counter: Counter, histogram: Histogram) -> None:
        self._counter = counter
        self._histogram = histogram
        # The histogram's own bounds, "+Inf" last: one definition, no copy to drift from it.
        self._bounds = tuple(histogram._upper_bounds[:-1])
        self._tally_size = 1 + len(histogram._upper_bounds)
        self._tallies: dict[Key, list[float]] = {}
        self._lock = threading.Lock()  # guards _tallies: taken per request, briefly
        self._flush_lock = threading.Lock()  # one writer at a time: timer, scrape, exit
        self._children: dict[Key, tuple[Any, Any]] = {}
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._exemplars: Exemplars = {}
        self.exemplar_sink: Callable[[Exemplars], None] | None = None
        _buffers.add(self)

    def record(self, key: Key, seconds: float, trace_id: str | None = None) -> None:
        # The bucket a request falls in: the first bound at or above it, as Histogram does.
        index = 1 + bisect.bisect_left(self._bounds, seconds)
        with self._lock:
            tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = [0.0] * self._tally_size
            tally[0] += seconds
            tally[index] += 1
            if trace_id is not None:
                self._exemplars[(key, index - 1)] = (trace_id, seconds, time.time())

    def flush(self) -> None:
        """Add what was counted since the last flush to the Prometheus values."""
        with self._flush_lock:
            with self._lock:
                pending, self._tallies = self._tallies, {}
                exemplars, self._exemplars = self._exemplars, {}
            if exemplars and self.exemplar_sink is not None:
                self.exemplar_sink(exemplars)
            keys = list(pending)
            for position, key in enumerate(keys):
                try:
                    self._write(key, pending[key])
                except BaseException:  # also SystemExit: gunicorn's SIGABRT, mid-scrape
                    # Keep what was not started on; the tally that failed may be half
                    # written, and counting it again would count its requests twice.
                    self._keep_for_next_flush({k: pending[k] for k in keys[position + 1 :]})
                    raise

    def _keep_for_next_flush(self, unwritten: dict[Key, list[float]]) -> None:
        with self._lock:
            for key, tally in unwritten.items():
                current = self._tallies.setdefault(key, [0.0] * self._tally_size)
                for index, amount in enumerate(tally):
                    current[index] += amount

    def start_flushing(self) -> None:
        """Flush every FLUSH_SECONDS from a daemon thread (once per process)."""
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_forever, daemon=True,
                                             name="metrics-flusher")  # fmt: skip
            self._flusher.start()

    def stop_flushing(self) -> None:
        """Stop the thread and write what it had not: called as the worker exits."""
        self._stop.set()
        self.flush()

    def _flush_forever(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            try:
                self.flush()
            except Exception:  # a full disk must not stop the next flush
                log.exception("writing request metrics failed")

    def _write(self, key: Key, tally: list[float]) -> None:
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self._counter.labels(*key),
                                              self._histogram.labels(*key))  # fmt: skip
        counter, histogram = children
        buckets = tally[1:]
        counter.inc(sum(buckets))
        # Histogram.observe() adds one observation; a batch goes to the same values it
        # writes, its sum and its per-bucket counts. Those are private attributes, like
        # _upper_bounds: tests/service/test_metrics_buffer.py checks, in both modes, that
        # the result is what observe() would have written, so an upgrade cannot drift.
        histogram._sum.inc(tally[0])
        for value, count in zip(histogram._buckets, buckets, strict=True):
            if count:
                value.inc(count)

    def _forget_parent(self) -> None:
        # A forked child counts its own requests: the parent's unflushed counts and its
        # flusher thread (which does not exist in the child) belong to the parent.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._tallies = {}
        self._exemplars = {}
        self._stop = threading.Event()
        self._flusher = None


_buffers: weakref.WeakSet[RequestMetricsBuffer] = weakref.WeakSet()


def _forget_parents() -> None:
    for buffer in list(_buffers):
        buffer._forget_parent()


os.register_at_fork(after_in_child=_forget_parents)
