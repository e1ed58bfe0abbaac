"""Prometheus metrics: request count and latency by method, route template and status,
plus database pool gauges.

Under gunicorn every worker is a process, so with PROMETHEUS_MULTIPROC_DIR set the
values live in mmap'd files in that directory and /metrics aggregates them. The
directory is wiped when gunicorn starts. When a worker exits (recycled by max_requests,
killed by the timeout), its live gauges are dropped and its counters and histograms are
folded into one archive file per type: without that, every recycled worker would leave
its files behind, and the directory (a size-limited emptyDir) and the time of each scrape
would grow for as long as the pod lives. A file lock keeps a scrape from reading halfway
through a fold. Request counts and latencies are tallied in memory and written to those
files in batches (service/telemetry/metrics_buffer.py): once a second and when a worker exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from sqlalchemy import Engine, event

from service.store import commits
from service.telemetry import exemplars
from service.telemetry.metrics_buffer import RequestMetricsBuffer

if TYPE_CHECKING:
    from service.store.database import Database

ARCHIVE = "archive"  # counter_archive.db, histogram_archive.db: what exited workers counted
LOCK_FILE = ".fold.lock"

REQUESTS = Counter("http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from the request reaching the app to the response leaving it.",
    ["method", "route", "status"],
    # 0.3: the latency SLO's default threshold (charts/app prometheusRule.slo), which must
    # be a bucket bound for "share of requests faster than it" to be exact.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0),
)
# Labels: the fixed reasons in service/auth/verify.py (REASONS), never client input.
AUTH_FAILURES = Counter(
    "auth_failures_total", "Requests to /api refused or failed by access control.", ["reason"]
)
POOL_CHECKED_OUT = Gauge(
    "db_pool_connections_checked_out",
    "Database connections taken from the pool: kept by worker threads, or in use by a probe.",
    multiprocess_mode="livesum",
)
POOL_OPEN = Gauge(
    "db_pool_connections_open",
    "Database connections open (in use or idle in the pool).",
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "db_pool_size", "Configured pool size per process, summed.", multiprocess_mode="livesum"
)
# What the database did that a request could not hide (service/store/deadline.py,
# breaker.py, commits.py): rare, counted as they happen. Labels are fixed words.
COMMITS_UNCONFIRMED = Counter(
    "db_commits_unconfirmed_total",
    "Writes answered 503 commit_unconfirmed: PostgreSQL did not confirm the commit "
    "(reason: sync_standby, connection_lost, deadline); each may or may not be applied.",
    ["reason"],
)
DEADLINES_EXPIRED = Counter(
    "db_deadlines_expired_total",
    "Requests whose database wait reached DB_DEADLINE_MS and was cancelled or abandoned "
    "(operation: read or write).",
    ["operation"],
)
BREAKER_OPEN = Gauge(
    "db_circuit_breaker_open",
    "Worker processes whose circuit breaker side is open (requests fail fast with 503).",
    ["side"],
    multiprocess_mode="livesum",
)
# Labels: the fixed reasons in service/telemetry/span_drops.py. Only with tracing on.
SPANS_DROPPED = Counter(
    "tracing_spans_dropped_total",
    "Sampled spans never sent to the collector (down, slow or refusing them).",
    ["reason"],
)

blueprint = Blueprint("metrics", __name__)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


@blueprint.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition of this pod's metrics (all workers): OpenMetrics, with the
    latency histogram's exemplars, when the scraper asks for it, as Prometheus does."""
    REQUEST_METRICS.flush()  # this worker's requests are exact; others' FLUSH_SECONDS late
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    with_exemplars = content_type.startswith(OPENMETRICS.split(";")[0])
    directory = multiprocess_dir()
    registry = CollectorRegistry()
    if directory:
        source: Any = multiprocess.MultiProcessCollector(None, directory)  # type: ignore[no-untyped-call]
    else:
        source = REGISTRY
    registry.register(_Exposed(source, EXEMPLARS if with_exemplars else None))
    if directory:
        with _locked(directory, fcntl.LOCK_SH):
            body = encode(registry)
    else:
        body = encode(registry)
    return Response(body, content_type=content_type)


class _Exposed:
    """What /metrics shows: `source`'s metrics, with exemplars when `store` is given."""

    def __init__(self, source: Any, store: exemplars.ExemplarStore | None) -> None:
        self.source, self.store = source, store

    def collect(self) -> Iterator[Metric]:
        metrics: Iterator[Metric] = iter(self.source.collect())
        if self.store is None:
            return metrics
        bounds = tuple(LATENCY._upper_bounds)
        return exemplars.attach(metrics, LATENCY._name, bounds, self.store.current())


# Methods with a meaning in HTTP; any other token a client sends is counted as "OTHER",
# so clients cannot mint label values (each one a time series and memory) at will.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_METRICS = RequestMetricsBuffer(REQUESTS, LATENCY)
EXEMPLARS = exemplars.ExemplarStore(multiprocess_dir())
REQUEST_METRICS.exemplar_sink = EXEMPLARS.merge
os.register_at_fork(after_in_child=EXEMPLARS.forget_parent)  # a worker's own exemplars only


def observe(
    method: str, route: str, status: str, seconds: float, trace_id: str | None = None
) -> None:
    """One answered request; `status` is the code as the status line has it ("200");
    `trace_id`, a sampled trace's, becomes its latency bucket's exemplar."""
    key = (method if method in KNOWN_METHODS else "OTHER", route, status)
    REQUEST_METRICS.record(key, seconds, trace_id)


def track_pool(engine: Engine, pool_size: int) -> None:
    """Keep the pool gauges current from the pool's own events."""
    POOL_SIZE.set(pool_size)
    event.listen(engine, "connect", lambda *_: POOL_OPEN.inc())
    event.listen(engine, "close", lambda *_: POOL_OPEN.dec())
    event.listen(engine, "close_detached", lambda *_: POOL_OPEN.dec())
    event.listen(engine, "checkout", lambda *_: POOL_CHECKED_OUT.inc())
    event.listen(engine, "checkin", lambda *_: POOL_CHECKED_OUT.dec())


def track_database(db: Database) -> None:
    """Count unconfirmed commits and deadlines, and keep the breaker gauge, from the
    Database's hooks. Every series starts at 0, so the first one a pod counts is an
    increase Prometheus sees (a series born at 1 has none) and the alert fires."""
    for reason in commits.REASONS:
        COMMITS_UNCONFIRMED.labels(reason=reason)
    for operation in ("read", "write"):
        DEADLINES_EXPIRED.labels(operation=operation)
    db.on_unconfirmed = lambda reason: COMMITS_UNCONFIRMED.labels(reason=reason).inc()
    db.on_deadline = lambda operation: DEADLINES_EXPIRED.labels(operation=operation).inc()
    db.on_breaker = lambda side, open_: BREAKER_OPEN.labels(side=side).set(1 if open_ else 0)


def wipe_multiprocess_dir() -> None:
    """Called once by the gunicorn master before any worker starts."""
    directory = multiprocess_dir()
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in (*path.glob("*.db"), *path.glob(f"{exemplars.FILE_PREFIX}*")):
            stale.unlink(missing_ok=True)


def mark_worker_dead(pid: int) -> None:
    """Called by the gunicorn master when a worker exits."""
    directory = multiprocess_dir()
    if not directory:
        return
    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    exemplars.remove(directory, pid)
    with _locked(directory, fcntl.LOCK_EX):
        for kind in ("counter", "histogram"):
            fold_into_archive(Path(directory), kind, pid)


def fold_into_archive(directory: Path, kind: str, pid: int) -> None:
    dead = directory / f"{kind}_{pid}.db"
    if not dead.exists():
        return
    archive = MmapedDict(str(directory / f"{kind}_{ARCHIVE}.db"))  # type: ignore[no-untyped-call]
    try:
        for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(dead)):  # type: ignore[no-untyped-call]
            current, _ = archive.read_value(key)  # type: ignore[no-untyped-call]
            archive.write_value(key, current + value, timestamp)  # type: ignore[no-untyped-call]
    finally:
        archive.close()  # type: ignore[no-untyped-call]
    dead.unlink()


@contextlib.contextmanager
def _locked(directory: str, mode: int) -> Iterator[None]:
    with open(os.path.join(directory, LOCK_FILE), "a") as lock:
        fcntl.flock(lock, mode)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
