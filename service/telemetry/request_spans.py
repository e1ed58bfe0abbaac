"""The request's SERVER span: started from the caller's W3C context, current while the app
runs, its ids in the logs, named by the matched route, ended once the body is sent.

The SDK does the work: the propagator reads `traceparent`/`tracestate`, the configured
sampler decides, the span is the SDK's. The attributes are the maintained WSGI
instrumentation's own (`collect_request_attributes`, `add_response_attributes`), so they
follow its semantic conventions release by release. What this class replaces is only
`OpenTelemetryMiddleware.__call__`'s control flow, because that costs every request the
same whether the span records or not: it reads the request's attributes, wraps
start_response and the body, enters the span's context twice and records two metrics
into the meter provider (a no-op one here: the service has its own histogram). On a GET
by id that was 25% of the request's instructions with 1% of requests sampled; here a
request whose span does not record pays the context extraction, the sampler and the
ids for the logs (docs/performance.md, "Tracing").
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from service.telemetry.logs import (
    SAMPLED_TRACE_ID_ENVIRON_KEY,
    SPAN_ID_ENVIRON_KEY,
    TRACE_ID_ENVIRON_KEY,
    span_id_var,
    trace_id_var,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from opentelemetry.trace import Span

# Probes and the scrape are not traffic: no span, nor for their statements (/readyz's),
# which would be traces of their own. The access log keeps them at DEBUG for the same reason.
UNTRACED_PATHS = frozenset({"/livez", "/readyz", "/metrics"})
TRACER_NAME = "service"

# Whether the request's span records (its trace is sampled): read by every step that could
# make a child span (service/telemetry/tracing.py), which skips it at the cost of this
# lookup when nothing would be sent. False outside a request.
recording_var: contextvars.ContextVar[bool] = contextvars.ContextVar("recording", default=False)


class TracedRequests:
    """The WSGI middleware that gives every request but the probes' its SERVER span."""

    def __init__(self, app: WSGIApplication) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.instrumentation._semconv import (
            _get_schema_url,
            _get_semconv_opt_in_modes,
            _OpenTelemetryStabilitySignalType,
        )
        from opentelemetry.instrumentation.utils import suppress_instrumentation
        from opentelemetry.instrumentation.wsgi import wsgi_getter

        # OTEL_SEMCONV_STABILITY_OPT_IN, read as the instrumentation reads it.
        http = _OpenTelemetryStabilitySignalType.HTTP
        self.semconv = _get_semconv_opt_in_modes((http,))[http]
        self.app = app
        self.tracer = trace.get_tracer(TRACER_NAME, schema_url=_get_schema_url(self.semconv))
        self.extract, self.getter = propagate.extract, wsgi_getter
        self.in_context = trace.set_span_in_context
        self.attach, self.detach = context.attach, context.detach
        self.suppressed = suppress_instrumentation
        self.server = trace.SpanKind.SERVER

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in UNTRACED_PATHS:
            with self.suppressed():
                return self.app(environ, start_response)
        parent = self.extract(environ, getter=self.getter)
        # The name is the method as sent until the span records (the sampler is not told
        # the route either way); sanitizing it reads the environment on every call.
        method = environ.get("REQUEST_METHOD", "")
        span = self.tracer.start_span(method, parent, kind=self.server)
        recording = span.is_recording()
        trace_token, span_token = _note_span(span, environ)
        recording_token = recording_var.set(recording)
        context_token = self.attach(self.in_context(span, parent))
        try:
            if not recording:
                # Nothing to record: its children are skipped (recording_var) and ending
                # a non-recording span does nothing, so the body goes out unwrapped.
                return self.app(environ, start_response)
            return self._recorded(span, environ, start_response)
        finally:
            self.detach(context_token)
            recording_var.reset(recording_token)
            trace_id_var.reset(trace_token)
            span_id_var.reset(span_token)

    def _recorded(
        self, span: Span, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """What OpenTelemetryMiddleware does for a span that records."""
        from opentelemetry.instrumentation.wsgi import (
            add_response_attributes,
            collect_request_attributes,
        )
        from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
        from opentelemetry.trace import Status, StatusCode

        # Named by its method until the route is known (at start_response).
        span.update_name(_method(environ))
        attributes = collect_request_attributes(environ, self.semconv)
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})

        def traced_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            add_response_attributes(span, status, headers, attributes, self.semconv)
            _name_by_route(span, environ)
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, traced_start_response)
        except Exception as error:
            span.record_exception(error)
            span.set_attribute(ERROR_TYPE, type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(error)))
            span.end()
            raise
        return _ended_after(body, span, self.in_context(span))


def _ended_after(body: Iterable[bytes], span: Span, in_span: Any) -> Iterator[bytes]:
    """The body, sent inside the span's context; the span ends once it is sent (or the
    server gave up on it)."""
    from opentelemetry import context

    token = context.attach(in_span)
    try:
        yield from body
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
        context.detach(token)
        span.end()


def _method(environ: WSGIEnvironment) -> str:
    from opentelemetry.util.http import sanitize_method

    method = sanitize_method(environ.get("REQUEST_METHOD", "").strip())
    return "HTTP" if method == "_OTHER" else method


def _note_span(
    span: Span, environ: WSGIEnvironment
) -> tuple[contextvars.Token[str | None], contextvars.Token[str | None]]:
    """The request's span ids, for its log records, its access line and (sampled) for the
    latency histogram's exemplar. An unsampled request's span still has ids: its lines are
    found by trace id like any other. The tokens restore the log context."""
    context = span.get_span_context()
    trace_id, span_id = format(context.trace_id, "032x"), format(context.span_id, "016x")
    environ[TRACE_ID_ENVIRON_KEY], environ[SPAN_ID_ENVIRON_KEY] = trace_id, span_id
    if context.trace_flags.sampled:
        environ[SAMPLED_TRACE_ID_ENVIRON_KEY] = trace_id
    return trace_id_var.set(trace_id), span_id_var.set(span_id)


def _name_by_route(span: Span, environ: WSGIEnvironment) -> None:
    """`{method} {route}` and http.route, from the rule Flask matched (still active when
    the response starts); a request no route matched keeps the method alone."""
    from service.telemetry.middleware import route_template

    route = route_template()
    if route is not None:
        span.update_name(f"{_method(environ)} {route}")
        span.set_attribute("http.route", route)
