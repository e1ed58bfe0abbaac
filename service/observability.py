"""The request hooks: a request id on every request and log line, and request metrics."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from service import metrics
from service.logs import accept_or_make_request_id, request_id_var

REQUEST_ID_HEADER = "X-Request-ID"


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
            elapsed = time.perf_counter() - g.started
            metrics.observe(request.method, route, response.status_code, elapsed)
        return response

    if metrics_enabled:
        app.register_blueprint(metrics.blueprint)
