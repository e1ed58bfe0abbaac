"""A request id (and a W3C trace id, when one came in) on every request and log line, and
request metrics: one WSGI middleware.

It wraps the Flask app (not Flask's before/after-request hooks) because it is the
cheapest place that sees every request and every response, errors included: the
response headers are still a plain list there, and no hook dispatch runs per request.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, has_request_context, request

from service.telemetry import metrics
from service.telemetry.logs import (
    SAMPLED_TRACE_ID_ENVIRON_KEY,
    TRACE_ID_ENVIRON_KEY,
    accept_or_make_request_id,
    request_id_var,
    trace_id_from,
    trace_id_var,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

REQUEST_ID_HEADER = "X-Request-ID"


class RequestObserver:
    """Accepts or makes the request id, echoes it as X-Request-ID, takes the trace id of a
    valid `traceparent` for the logs, and records metrics."""

    def __init__(self, app: WSGIApplication, *, metrics_enabled: bool) -> None:
        self.app = app
        self.metrics_enabled = metrics_enabled

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = accept_or_make_request_id(environ.get("HTTP_X_REQUEST_ID"))
        token = request_id_var.set(request_id)
        # Most requests carry no traceparent: then this is one dict lookup, nothing parsed.
        traceparent = environ.get("HTTP_TRACEPARENT")
        trace_token = None
        if traceparent is not None:
            trace_id = trace_id_from(traceparent)
            if trace_id is not None:
                environ[TRACE_ID_ENVIRON_KEY] = trace_id
                trace_token = trace_id_var.set(trace_id)

        def observed_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            # One X-Request-ID, ours: the access log and the app's log lines must agree.
            if any(name.lower() == "x-request-id" for name, _ in headers):
                headers[:] = [(n, v) for n, v in headers if n.lower() != "x-request-id"]
            headers.append((REQUEST_ID_HEADER, request_id))
            if self.metrics_enabled:
                metrics.observe(
                    environ["REQUEST_METHOD"],
                    route_template() or "<unmatched>",
                    status[:3],
                    time.perf_counter() - started,
                    # Set by service/telemetry/tracing.py for a sampled request's span.
                    environ.get(SAMPLED_TRACE_ID_ENVIRON_KEY),
                )
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, observed_start_response)
        finally:
            request_id_var.reset(token)
            if trace_token is not None:
                trace_id_var.reset(trace_token)


def route_template() -> str | None:
    """The matched route's template, never the raw path (ids in paths would explode label
    cardinality); None when no route matched. Flask calls start_response while the request
    context is still active."""
    rule = request.url_rule if has_request_context() else None
    return rule.rule if rule is not None else None


def init_app(app: Flask, *, metrics_enabled: bool) -> None:
    app.wsgi_app = RequestObserver(app.wsgi_app, metrics_enabled=metrics_enabled)  # type: ignore[method-assign]
    if metrics_enabled:
        app.register_blueprint(metrics.blueprint)
