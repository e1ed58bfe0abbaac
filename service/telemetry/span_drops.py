"""Spans the service could not send, counted in `tracing_spans_dropped_total{reason}`.

The SDK's batch processor drops a span when its queue is full (a collector that is down or
slow) and its exporter gives up on a batch the collector refused or never answered; the
SDK only logs both. A drop is tallied in memory (a full queue is checked before each
sampled span is queued); the Prometheus counter, whose every update in multiprocess mode
writes a file, is updated by the exporter's thread, once per batch, and at exit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

QUEUE_FULL = "queue_full"
EXPORT_FAILED = "export_failed"
AT_EXIT = "at_exit"

# The processor logs a warning for every span it drops: thousands of lines a second with a
# collector down. The count is in the metric, so only its errors are logged.
logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)


class DropTally:
    """Drops by reason, kept in memory until `publish` adds them to Prometheus."""

    def __init__(self) -> None:
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, reason: str, spans: int = 1) -> None:
        with self._lock:  # taken only when a span is dropped
            self._pending[reason] = self._pending.get(reason, 0) + spans

    def publish(self) -> None:
        """Add what was dropped since the last call to the Prometheus counter."""
        from service.telemetry.metrics import SPANS_DROPPED

        with self._lock:
            pending, self._pending = self._pending, {}
        for reason, spans in pending.items():
            SPANS_DROPPED.labels(reason).inc(spans)


DROPS = DropTally()


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's batch processor, counting the spans it drops from a full queue."""

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            processor = self._batch_processor
            if len(processor._queue) >= processor._max_queue_size:
                DROPS.add(QUEUE_FULL)  # the SDK drops the oldest span to queue this one
        super().on_end(span)

    def shutdown(self) -> None:
        super().shutdown()  # type: ignore[no-untyped-call]
        left = len(self._batch_processor._queue)  # never sent: the wait at exit ran out
        if left:
            DROPS.add(AT_EXIT, left)
        DROPS.publish()


class CountedExporter(SpanExporter):
    """Wraps the OTLP exporter: counts the spans of each batch it could not deliver."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.exporter.export(spans)
        if result is not SpanExportResult.SUCCESS:
            DROPS.add(EXPORT_FAILED, len(spans))
        DROPS.publish()
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)
