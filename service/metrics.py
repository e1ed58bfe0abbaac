"""Prometheus metrics: request count and latency by method, route template and status,
plus database pool gauges.

Under gunicorn every worker is a process, so with PROMETHEUS_MULTIPROC_DIR set the
values live in mmap'd files in that directory and /metrics aggregates them (the
directory is wiped when gunicorn starts; a dead worker's files are marked dead).
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Engine, event

REQUESTS = Counter("http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from the request reaching the app to the response leaving it.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
POOL_CHECKED_OUT = Gauge(
    "db_pool_connections_checked_out",
    "Database connections in use by requests.",
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

blueprint = Blueprint("metrics", __name__)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


@blueprint.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition of this pod's metrics (all workers)."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def observe(method: str, route: str, status: int, seconds: float) -> None:
    code = str(status)
    REQUESTS.labels(method, route, code).inc()
    LATENCY.labels(method, route, code).observe(seconds)


def track_pool(engine: Engine, pool_size: int) -> None:
    """Keep the pool gauges current from the pool's own events."""
    POOL_SIZE.set(pool_size)
    event.listen(engine, "connect", lambda *_: POOL_OPEN.inc())
    event.listen(engine, "close", lambda *_: POOL_OPEN.dec())
    event.listen(engine, "close_detached", lambda *_: POOL_OPEN.dec())
    event.listen(engine, "checkout", lambda *_: POOL_CHECKED_OUT.inc())
    event.listen(engine, "checkin", lambda *_: POOL_CHECKED_OUT.dec())


def wipe_multiprocess_dir() -> None:
    """Called once by the gunicorn master before any worker starts."""
    directory = multiprocess_dir()
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)


def mark_worker_dead(pid: int) -> None:
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
