"""A real OTLP/HTTP trace receiver on a loopback port, for the tests and the benchmark.

It answers `POST /v1/traces` as a collector does (protobuf in, an empty
ExportTraceServiceResponse out) and decodes every request with opentelemetry-proto into
`ReceivedSpan`s (the benchmark only counts them: `decode=False`). `delay` makes it
answer that many seconds late (a slow collector).

    python -m tools.otlp_receiver [--port N] [--delay S]   # prints spans as JSON lines
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

KINDS = {value: name.removeprefix("SPAN_KIND_") for name, value in Span.SpanKind.items()}
STATUSES = {value: name.removeprefix("STATUS_CODE_") for name, value in Status.StatusCode.items()}


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    kind: str  # SERVER, CLIENT, INTERNAL...
    trace_id: str  # lower-case hex, as traceparent writes it
    span_id: str
    parent_span_id: str  # "" for a root span
    attributes: dict[str, Any]
    status: str  # UNSET, OK, ERROR
    resource: dict[str, Any]
    start_ns: int
    end_ns: int

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


@dataclass
class Receiver:
    port: int
    delay: float = 0.0
    decode: bool = True
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    content_types: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        """The base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it."""
        return f"http://127.0.0.1:{self.port}"

    def received(self, body: bytes, content_type: str) -> None:
        spans = []
        if self.decode:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            spans = list(decode(request))
        with self._lock:
            self.requests += 1
            self.content_types.add(content_type)
            self.spans.extend(spans)

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> list[ReceivedSpan]:
        """Poll until some received spans satisfy `predicate(span)`; those spans."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [span for span in self.spans if predicate(span)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]


def value(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return attributes(any_value.kvlist_value.values)
    return getattr(any_value, kind) if kind else None


def attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


def decode(request: ExportTraceServiceRequest) -> Iterator[ReceivedSpan]:
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield ReceivedSpan(
                    name=span.name,
                    kind=KINDS[span.kind],
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    attributes=attributes(span.attributes),
                    status=STATUSES[span.status.code],
                    resource=resource,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                )


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a collector serves the exporter

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/v1/traces":
                self._answer(404, b"")
                return
            if receiver.delay:
                time.sleep(receiver.delay)
            receiver.received(body, self.headers.get("Content-Type", ""))
            self._answer(200, ExportTraceServiceResponse().SerializeToString())

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def running_receiver(
    delay: float = 0.0, port: int = 0, *, decode: bool = True
) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 (a free port unless `port`), in threads of this process."""
    receiver = Receiver(port=0, delay=delay, decode=decode)
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.otlp_receiver", description=__doc__)
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--delay", type=float, default=0.0, help="answer this many s late")
    args = parser.parse_args(argv)
    with running_receiver(args.delay, args.port) as receiver:
        print(f"OTLP/HTTP receiver on {receiver.endpoint}/v1/traces", file=sys.stderr)
        shown = 0
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(0.5)
                for span in receiver.spans[shown:]:
                    print(json.dumps(span.__dict__), flush=True)
                shown = len(receiver.spans)
    return 0


if __name__ == "__main__":
    sys.exit(main())
