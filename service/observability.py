"""The request hooks: a request id on every request and log line, and request metrics."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from service import metrics
from service.logs import accept_or_make_request_id, request_id_var

REQUEST_ID_HEADER = "X-Request-ID"
# Label values must come from a fixed set: gunicorn accepts any upper-case token as a
# method, and each new label value would be a new series (and file) for good.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def init_app(app: Flask, *, metrics_enabled: bool) -> None:
    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        request_id = accept_or_make_request_id(request.headers.get(REQUEST_ID_HEADER))
        g.request_id = request_id
        request_id_var.set(request_id)

    @app.after_request
    def finish_request(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        if metrics_enabled and "started" in g:
            rule = request.url_rule
            # The route template, never the raw path: ids in paths would explode cardinality.
            route = rule.rule if rule is not None else "<unmatched>"
            method = request.method if request.method in KNOWN_METHODS else "OTHER"
            metrics.observe(method, route, response.status_code, time.perf_counter() - g.started)
        return response

    if metrics_enabled:
        app.register_blueprint(metrics.blueprint)
