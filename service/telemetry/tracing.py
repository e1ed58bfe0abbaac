"""Traces over OTLP/HTTP, with the OpenTelemetry SDK configured by its standard variables.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set (service/config.py
checks every OTEL_* variable first): then nothing is installed, no wrapper sits on the
request path and nothing is exported. On:
- one SERVER span per request (service/telemetry/request_spans.py: the SDK's span, the
  WSGI instrumentation's attributes), named `{method} {route}` once Flask has matched the
  route; probes and /metrics are not traced (the access log keeps them at DEBUG for the
  same reason: they are not traffic);
- the maintained psycopg instrumentation's cursor tracer makes a CLIENT span per
  statement, on every connection of the service's pool: the statements the API runs on
  a worker thread's kept cursor (service/store/kept_connection.py) and SQLAlchemy's;
- the few steps no instrumentation sees get spans from the same SDK: the COMMIT of a
  `connection.transaction()` block (in autocommit, a single statement commits inside its
  own span), the connection checkout, and the bearer token check;
- the request's span goes to the logs (trace_id, span_id), the access line and, when
  sampled, the latency histogram's exemplars (service/telemetry/metrics_buffer.py).

The current HTTP and database semantic conventions are what the instrumentations emit
with OTEL_SEMCONV_STABILITY_OPT_IN=http,database, the default here unless it is set.
Each gunicorn worker starts its own exporter after the fork (`start_exporting`, from
gunicorn's post_worker_init) and flushes it as it exits (`stop_exporting`).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask

from service.config import TracingSettings
from service.telemetry.request_spans import TRACER_NAME, TracedRequests, recording_var

# Nothing of OpenTelemetry is imported at module level: with tracing off the process never
# loads it (start-up time, memory of every worker).
if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
T = TypeVar("T")

# Module state, per process: whether gunicorn starts the exporter in each worker, and the
# provider this process exports with.
_state: dict[str, Any] = {"start_in_workers": False, "provider": None}


def start_in_workers() -> None:
    """Called by gunicorn's config, in the master, before the app is imported: the app is
    built there once (preloaded) and forked, and an exporter's thread and connection must
    belong to the worker that uses them, so each worker starts its own (post_worker_init)."""
    _state["start_in_workers"] = True


def init_app(app: Flask, settings: TracingSettings) -> None:
    """Install the instrumentations when tracing is on; do nothing at all when it is off."""
    if not settings.enabled:
        return
    # Before any instrumentation reads it: the stable attribute names (http.request.method,
    # url.path, db.system.name, db.query.text) rather than the pre-2023 ones.
    os.environ.setdefault(SEMCONV_OPT_IN, "http,database")
    _trace_statements(app)
    _trace_commits()
    _trace_checkout(app)
    _trace_token_check(app)
    app.wsgi_app = TracedRequests(app.wsgi_app)  # type: ignore[method-assign]
    log.info("tracing on: spans go to %s", settings.endpoint.split("?")[0])
    if not _state["start_in_workers"]:
        start_exporting()


def start_exporting() -> None:
    """The process's tracer provider: resource, sampler and batching from the OTEL_*
    variables (the SDK reads them), spans to the OTLP/HTTP exporter."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from service.telemetry.export_log import limit_exporter_logs
    from service.telemetry.span_drops import CountedExporter, CountingBatchSpanProcessor

    if _state["provider"] is not None:
        return
    limit_exporter_logs()
    # shutdown_on_exit=False: the worker's exit is gunicorn's worker_exit hook, which ends
    # the process with os._exit (no atexit); stop_exporting flushes there instead.
    provider = TracerProvider(resource=Resource.create(), shutdown_on_exit=False)
    provider.add_span_processor(CountingBatchSpanProcessor(CountedExporter(OTLPSpanExporter())))
    trace.set_tracer_provider(provider)
    _state["provider"] = provider


def stop_exporting(timeout_seconds: float) -> bool:
    """Export what is buffered and stop, waiting `timeout_seconds` at most (a collector that
    is down must not hold a stopping worker past gunicorn's graceful timeout). Whether
    everything was sent."""
    provider: TracerProvider | None = _state["provider"]
    if provider is None:
        return True
    _state["provider"] = None
    stopping = threading.Thread(target=provider.shutdown, name="tracing-shutdown", daemon=True)
    stopping.start()
    stopping.join(timeout_seconds)
    if stopping.is_alive():
        log.warning("spans still buffered after %.0f s at exit were dropped", timeout_seconds)
        return False
    return True


@functools.cache
def _tracer() -> Any:
    """The service's tracer, made once (the SDK makes a new one per call, at ~2k
    instructions); first asked for under a recording span, so the provider is set."""
    from opentelemetry import trace

    return trace.get_tracer(TRACER_NAME)


def _recording() -> bool:
    """Whether the request's span records: a step of an unsampled (or untraced) request
    would only make a span that is never sent, at the cost of making it."""
    return recording_var.get()


def _timed(name: str, function: Callable[..., T]) -> Callable[..., T]:
    """`function`, run inside an INTERNAL span `name` when the request is sampled."""

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> T:
        if not _recording():
            return function(*args, **kwargs)
        with _tracer().start_as_current_span(name):
            return function(*args, **kwargs)

    return timed


# How the psycopg instrumentation reads a connection's attributes (server.address, ...).
_CONNECTION_ATTRIBUTES = {
    "database": "info.dbname",
    "port": "info.port",
    "host": "info.host",
    "user": "info.user",
}


def _trace_statements(app: Flask) -> None:
    """Each connection the pool opens gets a cursor class whose statements go through the
    psycopg instrumentation's tracer: the same spans as `PsycopgInstrumentor`, which would
    wrap `psycopg.connect` for the whole process instead.

    A statement of a request that is not sampled skips the tracer: it would only make a
    span that is never sent, and that costs more instructions than a GET's own statement
    (docs/performance.md, "Tracing")."""
    import psycopg
    from opentelemetry.instrumentation.psycopg import CursorTracer, DatabaseApiIntegration
    from opentelemetry.instrumentation.psycopg.version import __version__
    from sqlalchemy import Engine, event

    from service.store.database import get_db

    integration = DatabaseApiIntegration(
        "opentelemetry.instrumentation.psycopg", "postgresql",
        connection_attributes=_CONNECTION_ATTRIBUTES, version=__version__,
        connect_module=psycopg,  # type: ignore[arg-type] # what the instrumentation passes
    )  # fmt: skip
    tracer = CursorTracer(integration)

    class TracedCursor(psycopg.Cursor[Any]):
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            if not _recording():
                return super().execute(*args, **kwargs)
            return tracer.traced_execution(self, super().execute, *args, **kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> Any:
            if not _recording():
                return super().executemany(*args, **kwargs)
            return tracer.traced_execution(self, super().executemany, *args, **kwargs)

    def traced_cursors(connection: psycopg.Connection[Any], _record: Any) -> None:
        integration.get_connection_attributes(connection)
        connection.cursor_factory = TracedCursor

    def on_engine(engine: Engine) -> None:
        event.listen(engine, "connect", traced_cursors)

    get_db(app).on_engine_created.append(on_engine)


def _trace_checkout(app: Flask) -> None:
    """The request's first use of the database: its thread's kept connection checked (and
    replaced when the server hung up), or taken from the pool."""
    from service.store.database import get_db

    db = get_db(app)
    db._thread_connection = _timed("connection checkout", db._thread_connection)  # type: ignore[method-assign]


def _trace_token_check(app: Flask) -> None:
    """The bearer token's verification (a cache lookup for a token seen before)."""
    verifier = app.extensions.get("auth")
    if verifier is not None:
        verifier.verify = _timed("token check", verifier.verify)


def _trace_commits() -> None:
    """A span for the end of each `connection.transaction()` block: the COMMIT (or
    ROLLBACK) that psycopg sends itself, which the statement instrumentation never sees."""
    import psycopg
    import wrapt
    from opentelemetry.trace import SpanKind

    def end_of_transaction(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if not _recording():
            return wrapped(*args, **kwargs)
        failed = args[1] is not None if len(args) > 1 else False
        if not instance.savepoint_name:  # the outermost block (nested ones are savepoints)
            operation = "ROLLBACK" if failed else "COMMIT"
        else:
            operation = "ROLLBACK TO SAVEPOINT" if failed else "RELEASE SAVEPOINT"
        attributes = {
            "db.system.name": "postgresql",
            "db.operation.name": operation,
            "db.query.text": operation,
        }
        with _tracer().start_as_current_span(operation, kind=SpanKind.CLIENT,
                                             attributes=attributes):  # fmt: skip
            return wrapped(*args, **kwargs)

    if not getattr(psycopg.Transaction.__exit__, "__wrapped__", None):
        wrapt.wrap_function_wrapper(psycopg.Transaction, "__exit__", end_of_transaction)
