"""gunicorn settings, derived from Settings (`gunicorn -c python:service.runtime.gunicorn_conf`).

Worker count and threads come from config, never from the host's CPU count: a pod sees
the node's cores, not its CPU limit.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from datetime import timedelta
from typing import Any

from gunicorn import glogging

from service.auth import SUBJECT_KEY
from service.config import ConfigError, Settings
from service.http import server_errors
from service.telemetry import tracing
from service.telemetry.logs import (
    SPAN_ID_ENVIRON_KEY,
    TRACE_ID_ENVIRON_KEY,
    client_address,
    log_line,
    logging_config,
    print_line,
)

# Probe and scrape requests arrive every few seconds from every replica: log them at DEBUG.
QUIET_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


class JsonAccessLogger(glogging.Logger):  # type: ignore[misc]
    """One JSON line per request, with the request id the app put on the response, and the
    trace id (and span id) of the request's span with tracing on, or else of its W3C
    `traceparent`, when it had a valid one.

    The line has the shape every log line has (service/telemetry/logs.py) but is written directly,
    not through `logging`: a LogRecord, the handler chain and the formatter cost 27 us per
    request, this 6 (docs/performance.md). `LOG_LEVEL` still decides which lines appear.
    """

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        path = environ.get("PATH_INFO", "")
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        if not self.access_log.isEnabledFor(level):
            return
        method = environ.get("REQUEST_METHOD")
        request_id = next((v for k, v in resp.headers if k.lower() == "x-request-id"), None)
        fields = {
            "method": method,
            "path": path,
            "status": resp.status_code,
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "bytes": getattr(resp, "sent", None),
            "remote_addr": client_address(environ, settings.trusted_proxies),
            "user_agent": environ.get("HTTP_USER_AGENT"),
            # Who called (the verified token's `sub`, set by service/auth/guard.py); the token
            # itself is never logged.
            "sub": environ.get(SUBJECT_KEY),
        }
        trace_id = environ.get(TRACE_ID_ENVIRON_KEY)  # set by the app (see above)
        if trace_id is not None:
            fields["trace_id"] = trace_id
            span_id = environ.get(SPAN_ID_ENVIRON_KEY)
            if span_id is not None:
                fields["span_id"] = span_id
        message = f"{method} {path} {resp.status_code}"
        name, level_name = self.access_log.name, logging.getLevelName(level)
        try:
            print_line(log_line(time.time(), level_name, name, message, request_id, fields))
        except Exception:  # noqa: BLE001 - as gunicorn's own access(): never fail the request
            self.exception("could not write the access line")


def _settings() -> Settings:
    try:
        settings = Settings.from_env()
        settings.refuse_anonymous_api()
        return settings
    except ConfigError as exc:  # `serve` checks first; this guards a direct gunicorn run
        sys.stderr.write(f"config error: {exc}\n")
        raise SystemExit(2) from None


settings = _settings()
server_errors.install()
# The app is preloaded here, in the master: each worker starts its own exporter
# (post_worker_init).
tracing.start_in_workers()
# A stopping worker flushes its spans within half the graceful timeout, leaving the rest
# for the requests it is finishing.
TRACES_FLUSH_SECONDS = settings.gunicorn_graceful_timeout / 2

wsgi_app = "service.wsgi:app"
bind = [f"0.0.0.0:{settings.port}"]
workers = settings.gunicorn_workers
threads = settings.gunicorn_threads
# The sync worker also answers its queued connections at SIGTERM (service/runtime/workers.py).
worker_class = (
    "gthread" if settings.gunicorn_threads > 1 else "service.runtime.workers.DrainingSyncWorker"
)
timeout = settings.gunicorn_timeout
graceful_timeout = settings.gunicorn_graceful_timeout
keepalive = settings.gunicorn_keepalive
max_requests = settings.gunicorn_max_requests
max_requests_jitter = settings.gunicorn_max_requests_jitter
# The app is imported once, in the master, and every worker is a fork of it: a worker
# (re)start costs a fork instead of ~0.5 s of CPU importing and building the app, which
# max_requests would otherwise pay every few thousand requests per worker, and the
# workers share those pages. Safe because nothing opens a connection at import: each
# worker creates its engine in post_worker_init (service/store/database.py). Code is never reloaded
# in place (a new image is a new pod), which is the one thing preloading gives up.
preload_app = True
# The heartbeat file must not live on a read-only root filesystem; /dev/shm is a tmpfs
# in every container runtime (and avoids disk-backed /tmp stalls).
worker_tmp_dir = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # noqa: S108
# Header limits (request line, count, size): oversize gets 4xx before the app runs.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
proc_name = "service"
# gunicorn >= 25 opens a control socket under $HOME for `gunicornc`; a pod has no writable
# home (read-only root filesystem) and no use for it: kubectl and signals manage the pod.
control_socket_disable = True
accesslog = "-"
logger_class = JsonAccessLogger
logconfig_dict = logging_config(settings.log_level)
loglevel = settings.log_level.lower()


# service.telemetry.metrics is imported only in the hooks: importing prometheus_client in
# multiprocess mode touches PROMETHEUS_MULTIPROC_DIR, which Settings has checked by then.
def on_starting(server: Any) -> None:
    from service.telemetry import metrics

    metrics.wipe_multiprocess_dir()


def worker_exit(server: Any, worker: Any) -> None:
    """Runs in a worker that is done (recycled by max_requests, or stopping) just before it
    exits: skip the interpreter's teardown.

    Freeing the app's objects one by one takes ~150 ms of CPU, and until the process is
    gone the master does not start its replacement: the pod serves with one worker fewer
    and requests queue. Nothing is lost: every request has been answered (gunicorn waited
    for them), log lines are written as they are emitted, request metrics are flushed to
    their mmap'd files here, and idle database connections need no goodbye. An exit with
    an error code (a worker that failed to boot, or was killed by the timeout) goes the
    normal way, so the master still sees the code.
    """
    # gunicorn also calls this hook in the master, for a worker that was already gone.
    if worker.pid == os.getpid():
        try:
            tracing.stop_exporting(TRACES_FLUSH_SECONDS)
        except Exception:  # logged; the worker still exits as below
            server.log.exception("could not send this worker's last spans")
    if settings.metrics_enabled and worker.pid == os.getpid():
        from service.telemetry import metrics

        try:
            metrics.REQUEST_METRICS.stop_flushing()
        except Exception:  # logged; the worker still exits as below
            server.log.exception("could not write this worker's last request metrics")
    exiting = sys.exc_info()[1]
    if isinstance(exiting, SystemExit) and exiting.code in (0, None):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def pre_fork(server: Any, worker: Any) -> None:
    """Runs in the master before each worker is forked: move every object the master has
    (the preloaded app, ~100,000 of them) to the garbage collector's permanent generation.

    A worker's full collection then scans only the objects it made itself: 3.5 ms instead
    of 50 ms. At full load a worker ran one every ~10,000 requests, and requests queued
    behind that stall set the p99 (docs/performance.md). Frozen before the fork, as the
    gc docs advise, so a worker's collections do not touch the GC headers of the objects
    it shares with the master. Collected first, so no garbage is frozen for good.
    """
    gc.collect()
    gc.freeze()


def post_fork(server: Any, worker: Any) -> None:
    """Runs in each new worker. The app is preloaded in the master: should it ever have
    opened a connection there, the worker must not share it (service/store/database.py creates the
    engine lazily, so normally there is none). And the worker's request metrics, counted
    in memory, start reaching the other workers' scrapes (service/telemetry/metrics_buffer.py)."""
    from service.store.database import get_db

    app = getattr(server.app, "callable", None)
    if app is not None:
        get_db(app).dispose_after_fork()
    if settings.metrics_enabled:
        from service.telemetry import metrics

        metrics.REQUEST_METRICS.start_flushing()


def post_worker_init(worker: Any) -> None:
    """Runs in a new worker just before it accepts: its first database connection is
    opened now, so no request waits ~30 ms for it (Database.warm_up). Nothing here may
    raise: a worker that fails before it has booted makes gunicorn stop the whole server.
    """
    from service.store.database import get_db

    try:
        get_db(worker.wsgi).warm_up()
    except Exception:  # logged; the worker serves, and connects on its first request
        worker.log.exception("could not open a database connection ahead of requests")
    get_db(worker.wsgi).tag_sweeper.start()  # deleted tags' links, in the background
    # With tracing on, the worker's own exporter (thread, connection), started after the
    # warm-up so that its connection setup statements make no spans outside any request.
    if worker.wsgi.extensions["settings"].tracing.enabled:
        try:
            tracing.start_exporting()
        except Exception:  # logged; the worker serves without traces
            worker.log.exception("could not start exporting spans")


def child_exit(server: Any, worker: Any) -> None:
    """Runs in the master when a worker has exited. Nothing here may raise: an exception
    would end the master's loop, and the master with every worker (the whole pod)."""
    try:
        from service.telemetry import metrics

        metrics.mark_worker_dead(worker.pid)
    except Exception:  # logged; only the exited worker's counts are lost
        server.log.exception("could not keep the request counts of exited worker %s", worker.pid)
